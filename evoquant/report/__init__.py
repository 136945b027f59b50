"""Reporting of a search from plain values: front files, hypervolume, plots, summary."""

from evoquant.report.front import knee_point, pareto_front, write_front
from evoquant.report.hypervolume import hypervolume, points_hypervolume, reference_point
from evoquant.report.plots import plot_generation, plot_hypervolume
from evoquant.report.summary import write_summary

__all__ = [
    "hypervolume",
    "knee_point",
    "pareto_front",
    "plot_generation",
    "plot_hypervolume",
    "points_hypervolume",
    "reference_point",
    "write_front",
    "write_summary",
]
