"""The demo collaborative: a seeded, deterministic generator with a saved known truth."""
