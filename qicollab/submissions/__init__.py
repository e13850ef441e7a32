"""submissions domain."""
