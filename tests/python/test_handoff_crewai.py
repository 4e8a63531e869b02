"""CrewAI tools of the handoff relay (``relay_context.integrations.crewai``), with the real
``crewai`` installed in a venv of its own (it pins ``mcp<2`` and pulls ~140 packages; the venv
is cached, so only the first run installs), against the service under uvicorn."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from handoff_support import handoff_service, handoff_settings
from relay_context.handoff import ContextRelay
from venv_support import cached_venv, run_in

CREWAI = ["crewai>=1.0,<2"]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from crewai.tools import BaseTool
    from relay_context.handoff import ContextRelay
    from relay_context.integrations.crewai import crewai_tools

    base = sys.argv[1]
    relay = ContextRelay(base)
    push, pull, peek = crewai_tools(relay)
    assert all(isinstance(tool, BaseTool) for tool in (push, pull, peek))
    url = push.run(data="the research notes " * 1000, metadata={"step": "research"})
    out = {
        "names": [push.name, pull.name, peek.name],
        "push_fields": sorted(push.args_schema.model_json_schema()["properties"]),
        "url": url,
        "pulled": pull.run(url=url) == "the research notes " * 1000,
        "peek": json.loads(peek.run(url=url)),
        "missing": pull.run(url=base + "/pull/" + "A" * 32),
    }
    secret = push.run(data="classified", encrypted=True)
    out["secret"] = secret
    out["secret_pulled"] = pull.run(url=secret)
    nobody = crewai_tools(ContextRelay("http://127.0.0.1:9"))[1]
    out["unreachable"] = nobody.run(url="http://127.0.0.1:9/pull/" + "A" * 32)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def crewai_python() -> Any:
    return cached_venv("crewai", CREWAI)


@pytest.mark.slow
def test_crewai_tools_push_pull_peek(crewai_python: Any, tmp_path: Any) -> None:
    with handoff_service(handoff_settings(tmp_path)) as (base, _):
        out = json.loads(run_in(crewai_python, SCRIPT, base).strip().splitlines()[-1])
        assert out["names"] == ["push_context", "pull_context", "peek_context"]
        assert out["push_fields"] == ["channel", "data", "encrypted", "metadata"]
        assert out["url"].startswith(f"{base}/pull/")
        assert out["pulled"] is True
        assert out["peek"] == {"step": "research"}
        assert out["missing"].startswith("error: ")
        assert "no live payload" in out["missing"]
        assert "#key=" in out["secret"]
        assert out["secret_pulled"] == "classified"
        assert out["unreachable"].startswith("error: the relay is unreachable")
        # What the crew pushed is an ordinary payload to Relay's own client.
        with ContextRelay(base) as relay:
            assert relay.pull(out["secret"]) == "classified"
