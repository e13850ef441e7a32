"""cycles domain."""
