"""Relay's configuration: one settings class read from the environment."""

from relay_context.config.settings import Environment, Settings, get_settings

__all__ = ["Environment", "Settings", "get_settings"]
