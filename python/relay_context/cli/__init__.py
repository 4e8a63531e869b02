"""The ``relay`` command line."""

from relay_context.cli.main import main

__all__ = ["main"]
