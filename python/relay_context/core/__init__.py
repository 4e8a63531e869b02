"""Relay's context engine building blocks (token counting, selection, compression)."""
