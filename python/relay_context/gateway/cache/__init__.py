"""Gateway response caches."""
