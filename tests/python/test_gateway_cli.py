"""``relay setup CLIENT`` (print, or merge into the client's config with a backup) and
``relay usage`` against a running gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gateway_support import running_gateway
from relay_context.cli.main import main


def test_setup_prints_and_merges_with_a_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    runner = CliRunner()
    printed = runner.invoke(
        main, ["setup", "claude-code", "--url", "http://gw:8080", "--api-key", "relay_k"]
    )
    assert printed.exit_code == 0
    assert "export ANTHROPIC_BASE_URL=http://gw:8080" in printed.output
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"theme": "dark", "env": {"OTHER": "1"}}))
    wrote = runner.invoke(
        main, ["setup", "claude-code", "--url", "http://gw:8080", "--api-key", "relay_k", "--write"]
    )
    assert wrote.exit_code == 0, wrote.output
    merged = json.loads(settings.read_text())
    assert merged == {
        "theme": "dark",
        "env": {
            "OTHER": "1",
            "ANTHROPIC_BASE_URL": "http://gw:8080",
            "ANTHROPIC_AUTH_TOKEN": "relay_k",
        },
    }
    assert (
        json.loads((settings.parent / "settings.json.relay-backup").read_text())["theme"] == "dark"
    )
    aider = runner.invoke(
        main,
        ["setup", "aider", "--url", "http://gw", "--api-key", "k", "--model", "gpt-4o", "--write"],
    )
    assert aider.exit_code == 0
    assert (
        yaml.safe_load((tmp_path / ".aider.conf.yml").read_text())["openai-api-base"]
        == "http://gw/v1"
    )
    opencode = runner.invoke(
        main, ["setup", "opencode", "--url", "http://gw", "--api-key", "k", "--write"]
    )
    assert opencode.exit_code == 0
    config = json.loads((tmp_path / ".config" / "opencode" / "opencode.json").read_text())
    assert config["provider"]["relay"]["options"]["baseURL"] == "http://gw/v1"
    cline = runner.invoke(main, ["setup", "cline", "--url", "http://gw", "--api-key", "k"])
    assert "OpenAI Compatible" in cline.output
    gemini = runner.invoke(main, ["setup", "gemini-cli", "--url", "http://gw", "--api-key", "k"])
    assert "GOOGLE_GEMINI_BASE_URL=http://gw" in gemini.output


def test_usage_prints_the_ledger(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as rig:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
        assert rig.post("/v1/chat/completions", body).status_code == 200
        result = CliRunner().invoke(
            main, ["usage", "--url", rig.url, "--api-key", rig.key, "--group-by", "model"]
        )
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].split()[:2] == ["model", "requests"]
        assert lines[0].split()[-3:] == ["saved_usd", "cache_hits", "coalesced"]
        assert lines[1].split()[:2] == ["gpt-4o", "1"]
        assert lines[1].split()[-3:] == ["0.000000", "0", "0"]  # a miss: nothing saved
        as_json = CliRunner().invoke(
            main, ["usage", "--url", rig.url, "--api-key", rig.key, "--json"]
        )
        assert json.loads(as_json.output)["data"][0]["requests"] == 1
