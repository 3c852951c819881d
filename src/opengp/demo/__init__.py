"""A synthetic English GP practice: deterministic for a seed, no real patient in it."""
