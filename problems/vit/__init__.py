"""Built-in transformer problem: a small vision transformer on scikit-learn's digits."""
