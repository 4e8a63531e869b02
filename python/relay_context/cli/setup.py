"""``relay setup CLIENT``: what points a coding client at this gateway (brief 004's helper).

Prints the settings for ``claude-code``, ``opencode``, ``aider``, ``cline`` or ``gemini-cli``;
with ``--write``, merges them into the client's own config file (a JSON file for Claude Code and
OpenCode, YAML for Aider), keeping a backup (``<file>.relay-backup``). Cline keeps its settings
in the editor, so its instructions are printed only.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml


@dataclass(frozen=True)
class ClientSetup:
    #: What to tell the user (environment variables, settings to enter).
    instructions: str
    #: The config file ``--write`` merges into, and what it merges.
    path: Path | None = None
    merge: dict[str, Any] | None = None


def client_setup(client: str, url: str, key: str, model: str, home: Path) -> ClientSetup:
    v1 = url.rstrip("/") + "/v1"
    if client == "claude-code":
        env = {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_AUTH_TOKEN": key}
        return ClientSetup(
            "\n".join(f"export {k}={v}" for k, v in env.items()),
            home / ".claude" / "settings.json",
            {"env": env},
        )
    if client == "opencode":
        provider = {
            "relay": {
                "name": "Relay gateway",
                "npm": "@ai-sdk/openai-compatible",
                "options": {"baseURL": v1, "apiKey": key},
                "models": {model: {"name": model}},
            }
        }
        return ClientSetup(
            json.dumps({"provider": provider, "model": f"relay/{model}"}, indent=2),
            home / ".config" / "opencode" / "opencode.json",
            {"provider": provider, "model": f"relay/{model}"},
        )
    if client == "aider":
        settings = {"openai-api-base": v1, "openai-api-key": key, "model": f"openai/{model}"}
        return ClientSetup(
            yaml.safe_dump(settings, sort_keys=False), home / ".aider.conf.yml", settings
        )
    if client == "cline":
        return ClientSetup(
            "In Cline's settings choose the API provider 'OpenAI Compatible' and enter:\n"
            f"  Base URL: {v1}\n  API Key:  {key}\n  Model ID: {model}"
        )
    env = {"GOOGLE_GEMINI_BASE_URL": url, "GEMINI_API_KEY": key}
    return ClientSetup("\n".join(f"export {k}={v}" for k, v in env.items()))


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        out[key] = (
            _deep_merge(current, value)
            if isinstance(current, dict) and isinstance(value, dict)
            else value
        )
    return out


def write_setup(setup: ClientSetup) -> Path:
    """Merges ``setup`` into its config file (backing the old one up); the file's path."""
    assert setup.path is not None
    assert setup.merge is not None
    path = setup.path
    is_yaml = path.suffix in (".yml", ".yaml")
    current: dict[str, Any] = {}
    if path.exists():
        text = path.read_text(encoding="utf-8")
        loaded = (yaml.safe_load(text) if is_yaml else json.loads(text or "{}")) or {}
        if not isinstance(loaded, dict):
            raise click.ClickException(f"{path} does not hold a mapping; not touching it")
        current = loaded
        shutil.copy2(path, path.with_name(path.name + ".relay-backup"))
    merged = _deep_merge(current, setup.merge)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        yaml.safe_dump(merged, sort_keys=False) if is_yaml else json.dumps(merged, indent=2) + "\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


@click.command()
@click.argument(
    "client", type=click.Choice(["claude-code", "opencode", "aider", "cline", "gemini-cli"])
)
@click.option("--url", envvar="RELAY_URL", default=None, help="Gateway URL (default: HOST:PORT).")
@click.option("--api-key", envvar="RELAY_API_KEY", default="relay_...", help="The Relay key.")
@click.option("--model", default="claude-sonnet-4-5", show_default=True, help="Model to use.")
@click.option("--write", is_flag=True, help="Merge into the client's config file (with a backup).")
def setup(client: str, url: str | None, api_key: str, model: str, write: bool) -> None:
    """Point CLIENT at this gateway: print its settings, or merge them in with --write."""
    from relay_context.cli.stats import _default_url

    result = client_setup(client, url or _default_url(), api_key, model, Path.home())
    if not write:
        click.echo(result.instructions)
        if result.path is not None:
            click.echo(f"# (--write merges this into {result.path})")
        return
    if result.path is None:
        click.echo(result.instructions)
        raise click.ClickException(f"{client} has no config file to write; set it as shown above")
    path = write_setup(result)
    click.echo(f"wrote {path}")
