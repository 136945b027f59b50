"""BEVFusion problems: camera + LiDAR 3D detectors and their data."""
