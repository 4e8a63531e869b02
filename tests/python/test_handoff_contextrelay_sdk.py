"""The published ContextRelay SDK (``contextrelay`` 0.2.0 from PyPI), unchanged, against
``relay serve`` in open mode: push (plain and ``encrypted=True``), pull, peek, subscribe.

The SDK is installed into a throwaway virtual environment this test creates (it pins
``requests`` and ``websocket-client``, which Relay does not use), and driven there by a script.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relay_context.handoff_client import HandoffClient
from service_support import run_server, service_env

SDK = "contextrelay==0.2.0"
# Its client imports only these (its MCP server needs `mcp`, which is not exercised here).
SDK_DEPENDENCIES = ("requests>=2.28", "websocket-client>=1.7", "cryptography>=42")

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    from contextrelay import ContextRelay

    relay = ContextRelay(sys.argv[1])
    out = {}
    text = "Architecture document " * 4000
    url = relay.push(text, metadata={"type": "code_review", "pr": "PR-441"})
    out["url"] = url
    out["pulled"] = relay.pull(url) == text
    out["peek"] = relay.peek(url)
    secret = relay.push("the secret plan", encrypted=True, metadata={"e2e": True})
    out["secret_url"] = secret
    out["secret_pulled"] = relay.pull(secret)
    out["secret_peek"] = relay.peek(secret)

    received = []
    def on_url(u):
        received.append(u)
    threading.Thread(target=relay.subscribe, args=("report-channel", on_url), daemon=True).start()
    time.sleep(1.0)  # the SDK gives no signal that it is subscribed
    pushed = [relay.push(f"[{s}]", channel="report-channel", metadata={"section": s})
              for s in ("intro", "analysis", "conclusion")]
    deadline = time.time() + 15
    while len(received) < 3 and time.time() < deadline:
        time.sleep(0.05)
    out["subscribed"] = received == pushed
    out["sections"] = [relay.peek(u)["section"] for u in received]
    try:
        relay.pull(secret.split("#")[0] + "#key=" + "A" * 43 + "=")
        out["wrong_key"] = "no error"
    except ValueError as exc:
        out["wrong_key"] = str(exc)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("contextrelay-sdk") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*install, "--no-deps", SDK], check=True, timeout=600)
    subprocess.run([*install, *SDK_DEPENDENCIES], check=True, timeout=600)
    return python


def test_published_sdk_works_unchanged_in_open_mode(sdk_python: Path, tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", HANDOFF_AUTH="open", RATE_LIMIT_REQUESTS="100000")
    with run_server(env, tmp_path / "logs") as server:
        result = subprocess.run(
            [str(sdk_python), "-c", SCRIPT, server.url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr + server.log()
        out = json.loads(result.stdout)
        assert out["url"].startswith(f"{server.url}/pull/")
        assert out["pulled"] is True
        assert out["peek"] == {"type": "code_review", "pr": "PR-441"}
        assert "#key=" in out["secret_url"]
        assert out["secret_pulled"] == "the secret plan"
        assert out["secret_peek"] == {"e2e": True}
        assert out["subscribed"] is True
        assert out["sections"] == ["intro", "analysis", "conclusion"]
        assert out["wrong_key"] == "Failed to decrypt: Invalid or missing key"
        # Both ways: Relay's client reads the SDK's Fernet payload...
        with HandoffClient(server.url) as relay:
            assert relay.pull(out["secret_url"]) == "the secret plan"
            # ... and the SDK reads what Relay's client encrypts with ContextRelay's scheme.
            url = relay.push("from relay", encrypted="fernet")
        pulled = subprocess.run(
            [
                str(sdk_python),
                "-c",
                "import sys; from contextrelay import ContextRelay; "
                "print(ContextRelay(sys.argv[1]).pull(sys.argv[2]))",
                server.url,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pulled.stdout.strip() == "from relay", pulled.stderr
