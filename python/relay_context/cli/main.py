"""``relay``: the command group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from relay_context._version import __version__
from relay_context.cli.bridge import bridge
from relay_context.cli.count import count
from relay_context.cli.keys import keys
from relay_context.cli.mcp import mcp
from relay_context.cli.serve import serve
from relay_context.cli.setup import setup
from relay_context.cli.stats import stats
from relay_context.cli.token import token
from relay_context.cli.usage import usage


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="relay")
def main() -> None:
    """Relay: exact token budgets and context for LLM applications."""


main.add_command(bridge)
main.add_command(count)
main.add_command(keys)
main.add_command(mcp)
main.add_command(serve)
main.add_command(stats)
main.add_command(token)
main.add_command(setup)
main.add_command(usage)
