"""Analyses: relational work in queries/*.sql, statistics here; functions return frames."""
