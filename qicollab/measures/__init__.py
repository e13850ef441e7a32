"""measures domain."""
