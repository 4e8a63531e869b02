"""Routing from the environment alone and from the YAML ``gateway:`` section: model families,
the LLM_PROVIDER_URL catch-all, one-line model mapping, weights and fallbacks, hot reload, and a
bad edit refused with its line named while the last good config keeps serving."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import pytest

from gateway_support import UPSTREAM_KEY, running_gateway
from relay_context.config.gateway import GatewaySettings
from relay_context.config.live import LiveSettings
from relay_context.config.settings import Settings
from relay_context.errors import InvalidArgumentError
from relay_context.gateway.errors import ModelNotFoundError
from relay_context.gateway.routing import RoutingTable


def table(**values: object) -> RoutingTable:
    return RoutingTable.from_settings(GatewaySettings(**values))  # type: ignore[arg-type]


def test_families_route_by_name() -> None:
    t = table(openai_api_key="k", anthropic_api_key="k")
    assert t.resolve("gpt-4o-mini").deployments[0].provider.name == "openai"
    assert t.resolve("o3-mini").deployments[0].provider.name == "openai"
    assert t.resolve("text-embedding-3-small").deployments[0].provider.name == "openai"
    assert t.resolve("claude-opus-4-1").deployments[0].provider.type == "anthropic"
    assert t.resolve("anthropic/claude-x").deployments[0].upstream_model == "claude-x"
    with pytest.raises(ModelNotFoundError, match="llama-3"):
        t.resolve("llama-3")


def test_llm_provider_url_takes_every_unmatched_model_brief_002() -> None:
    t = table(
        llm_provider_url="https://api.together.xyz",
        llm_provider_key="tk",
        llm_default_model="MiniMaxAI/MiniMax-M2.5",
    )
    # No OpenAI key: even gpt-4 (what OpenCode asks for) goes to the configured backend.
    d = t.resolve("gpt-4").deployments[0]
    assert d.provider.base_url == "https://api.together.xyz/v1"
    assert d.provider.api_key == "tk"
    assert d.upstream_model == "MiniMaxAI/MiniMax-M2.5"
    assert t.resolve("anything-else").deployments[0].provider.name == "default"


def test_yaml_models_weights_and_fallbacks() -> None:
    t = table(
        providers={"a": {"type": "openai", "base_url": "http://a/v1"}, "b": {"type": "anthropic"}},
        models={
            "mapped": "a/gpt-4o",
            "balanced": {
                "routes": [
                    {"provider": "a", "model": "m1", "weight": 3},
                    {"provider": "a", "model": "m2", "weight": 1},
                    {"provider": "b", "model": "claude-sonnet-4-5"},
                ],
                "context_window": 1000,
            },
        },
    )
    assert t.resolve("mapped").deployments[0].key == "a/gpt-4o"
    balanced = t.resolve("balanced")
    assert balanced.context_window == 1000
    rng = random.Random(7)
    firsts = [balanced.ordered(rng)[0].upstream_model for _ in range(2000)]
    assert 0.7 < firsts.count("m1") / len(firsts) < 0.8
    assert all(balanced.ordered(rng)[-1].upstream_model == "claude-sonnet-4-5" for _ in range(20))


def test_unknown_provider_in_a_route_is_refused() -> None:
    with pytest.raises(ValueError, match="nowhere"):
        GatewaySettings(models={"x": "nowhere/gpt-4o"})


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    time.sleep(0.01)


def test_hot_reload_and_bad_edit_named_by_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "relay.yaml"
    write(config, "gateway:\n  models:\n    house-model: openai/gpt-4o-mini\n")
    with running_gateway(tmp_path / "data", config_file=config) as rig:
        first = rig.post(
            "/v1/chat/completions",
            {"model": "house-model", "messages": [{"role": "user", "content": "x"}]},
        )
        assert first.status_code == 200
        assert first.headers["x-relay-model"] == "gpt-4o-mini"
        write(config, "gateway:\n  models:\n    house-model: anthropic/claude-haiku-4-5\n")
        second = rig.post(
            "/v1/chat/completions",
            {"model": "house-model", "messages": [{"role": "user", "content": "x"}]},
        )
        assert second.headers["x-relay-model"] == "claude-haiku-4-5"
        assert rig.upstream.requests[-1].headers["x-api-key"] == UPSTREAM_KEY
        bad = (
            "gateway:\n"
            "  models:\n"
            "    house-model:\n"
            "      routes:\n"
            "        - provider: openai\n"
            "          modle: gpt-4o\n"
        )
        with caplog.at_level(logging.ERROR, logger="relay_context.config.live"):
            write(config, bad)
            third = rig.post(
                "/v1/chat/completions",
                {"model": "house-model", "messages": [{"role": "user", "content": "x"}]},
            )
        assert third.headers["x-relay-model"] == "claude-haiku-4-5"  # the last good config
        assert any("line 6" in r.getMessage() and "modle" in r.getMessage() for r in caplog.records)


def test_bad_file_at_start_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text("limits:\n  rate_limit_requests: 5\ngateway:\n  context_policy: squash\n")
    with pytest.raises(InvalidArgumentError, match="line 4"):
        LiveSettings(Settings(config_file=config, data_dir=tmp_path))
