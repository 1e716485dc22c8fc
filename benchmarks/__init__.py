"""Benchmarks: each prints a table, and with --json a JSON object as its last line."""
