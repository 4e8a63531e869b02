"""``relay count``: token counts of files or standard input."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from relay_context.core.tokenizer import TokenCounter
from relay_context.errors import RelayError

#: Inputs at least this large (in bytes, all files together) get a progress bar on a terminal.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


def _read_text(path: str) -> str:
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{'standard input' if path == '-' else path}: not UTF-8 text "
            f"(invalid byte at offset {exc.start})"
        ) from exc


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--model", "-m", default=None, help="Model whose encoding to use (e.g. gpt-4o).")
@click.option(
    "--encoding",
    "-e",
    default=None,
    help="Encoding to use instead of a model's (cl100k_base, o200k_base, o200k_harmony).",
)
@click.option("--progress/--no-progress", default=None, help="Force the progress bar on or off.")
def count(
    files: tuple[str, ...], model: str | None, encoding: str | None, progress: bool | None
) -> None:
    """Print the token count of each FILE and the total.

    Reads standard input when no FILE is given (or FILE is -). Uses gpt-4o's encoding
    (o200k_base) unless --model or --encoding says otherwise.
    """
    if model and encoding:
        raise click.UsageError("give --model or --encoding, not both")
    try:
        counter = TokenCounter(encoding) if encoding else TokenCounter.for_model(model or "gpt-4o")
    except RelayError as exc:
        raise click.ClickException(str(exc)) from exc

    paths = list(files) or ["-"]
    for p in paths:
        if p != "-" and not Path(p).is_file():
            raise click.ClickException(f"{p}: no such file")
    sizes = [0 if p == "-" else Path(p).stat().st_size for p in paths]
    err = Console(stderr=True)
    show = (
        progress if progress is not None else (err.is_terminal and sum(sizes) >= PROGRESS_MIN_BYTES)
    )

    results: list[tuple[str, int]] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task("counting", total=sum(sizes) or None)
        for path, size in zip(paths, sizes, strict=True):
            bar.update(task, description=f"counting {path}")
            results.append((path, counter.count(_read_text(path))))
            bar.advance(task, size)

    width = max(len(f"{n:,}") for _, n in results)
    total = sum(n for _, n in results)
    for path, n in results:
        click.echo(f"{n:>{width},}  {'<stdin>' if path == '-' else path}")
    if len(results) > 1:
        click.echo(f"{total:>{width},}  total")
    click.echo(f"({counter.name})", err=True)
