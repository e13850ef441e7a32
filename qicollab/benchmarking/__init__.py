"""benchmarking domain."""
