"""A CPU-sized BEVFusion with the thesis's 108 quantizable layers, on synthetic scenes."""
