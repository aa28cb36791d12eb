"""Built-in workloads that need no download."""
