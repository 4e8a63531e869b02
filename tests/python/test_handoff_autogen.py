"""AutoGen ``FunctionTool``s of the handoff relay (``get_autogen_tools``), with the real
``autogen-core`` installed in a venv of its own (it would downgrade protobuf in the main one;
the venv is cached), run through AutoGen's own tool interface against the service."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from handoff_support import handoff_service, handoff_settings
from relay_context.handoff import ContextRelay
from venv_support import cached_venv, run_in

AUTOGEN = ["autogen-core>=0.7,<0.8"]

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from autogen_core import CancellationToken
    from autogen_core.tools import FunctionTool
    from relay_context.integrations.autogen import get_autogen_tools

    async def main(base):
        tools = {tool.name: tool for tool in get_autogen_tools(base_url=base)}
        assert all(isinstance(tool, FunctionTool) for tool in tools.values())
        token = CancellationToken()

        async def call(name, **arguments):
            result = await tools[name].run_json(arguments, token)
            return tools[name].return_value_as_string(result)

        url = await call("push_context", data="findings " * 500, metadata={"agent": "a1"})
        out = {
            "names": sorted(tools),
            "schema": sorted(tools["push_context"].schema["parameters"]["properties"]),
            "url": url,
            "pulled": await call("pull_context", url=url) == "findings " * 500,
            "peek": json.loads(await call("peek_context", url=url)),
            "seq": await call("publish", channel="autogen-ch", message="done"),
        }
        try:
            await call("pull_context", url=base + "/pull/" + "A" * 32)
            out["missing"] = "no error"
        except Exception as exc:
            out["missing"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out))

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.fixture(scope="module")
def autogen_python() -> Any:
    return cached_venv("autogen", AUTOGEN)


@pytest.mark.slow
def test_autogen_function_tools(autogen_python: Any, tmp_path: Any) -> None:
    with handoff_service(handoff_settings(tmp_path)) as (base, _):
        out = json.loads(run_in(autogen_python, SCRIPT, base).strip().splitlines()[-1])
        assert out["names"] == ["peek_context", "publish", "pull_context", "push_context"]
        assert out["schema"] == ["channel", "data", "encrypted", "metadata"]
        assert out["url"].startswith(f"{base}/pull/")
        assert out["pulled"] is True
        assert out["peek"] == {"agent": "a1"}
        assert out["seq"] == "1"
        assert out["missing"].startswith("PayloadNotFoundError")
        assert "no live payload" in (out["missing"])
        with ContextRelay(base) as relay:
            assert relay.pull(out["url"]) == "findings " * 500
