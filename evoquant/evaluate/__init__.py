"""Turning genomes into metrics: the fitness function and the back-ends that run it."""
