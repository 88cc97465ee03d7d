"""Benchmarks of the suite itself (training throughput) and of the search methods."""
