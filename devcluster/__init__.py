"""The built-in test cluster (see cluster.py)."""
