"""Relay's security building blocks (rate limiting)."""
