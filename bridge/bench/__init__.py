"""Benchmarks behind ``bridge bench``: speed targets live here, not in timed tests."""
