"""Benchmarks of OpenGP over real HTTP against real databases (`python -m benchmarks.crud`)."""
