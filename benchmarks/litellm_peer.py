"""LiteLLM's proxy as a benchmark peer, in a virtual environment of its own.

    from litellm_peer import litellm_proxy
    with litellm_proxy(upstream_base_url="http://127.0.0.1:PORT/v1", port=4000) as peer:
        ...  # peer.url, peer.key, peer.pid

LiteLLM's dependencies conflict with Relay's, so it never goes into ``.venv``: the first call
creates ``benchmarks/.venv-litellm`` (override with ``RELAY_LITELLM_VENV``) and installs
``litellm[proxy]`` from PyPI pinned to 1.106.x (1.107.0 was a compromised release and is
excluded explicitly). Later calls reuse it (standard library only here, so the
builder runs from any Python); a stamp file records the requirement it was built
for, so changing ``LITELLM_REQUIREMENT`` rebuilds it.

The proxy is started with a config that maps every model name (``*``) to the OpenAI-compatible
upstream given, with LiteLLM's own logging, telemetry and spend tracking off, so that it is
measured doing the same job as Relay: authenticate, forward, answer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

LITELLM_REQUIREMENT = "litellm[proxy]==1.106.*,!=1.107.0"
DEFAULT_VENV = Path(__file__).resolve().parent / ".venv-litellm"
MASTER_KEY = "sk-litellm-bench-master"


@dataclass(frozen=True)
class LiteLLMPeer:
    url: str  # e.g. http://127.0.0.1:4000 (OpenAI routes under /v1 and at the root)
    key: str  # the master key, sent as ``Authorization: Bearer``
    pid: int


def venv_dir() -> Path:
    return Path(os.environ.get("RELAY_LITELLM_VENV", str(DEFAULT_VENV)))


def ensure_venv(log: bool = True) -> Path:
    """The LiteLLM venv's python, created and installed on first use (several minutes)."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    stamp = venv / ".relay-litellm-requirement"
    if python.exists() and stamp.exists() and stamp.read_text() == LITELLM_REQUIREMENT:
        return python
    if log:
        print(f"[litellm_peer] creating {venv} with {LITELLM_REQUIREMENT}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", LITELLM_REQUIREMENT], check=True)
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if version.startswith("1.107"):
        raise RuntimeError(f"refusing litellm {version}")
    stamp.write_text(LITELLM_REQUIREMENT)
    return python


def installed_version() -> str:
    python = ensure_venv()
    return subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def proxy_config(upstream_base_url: str, upstream_key: str) -> str:
    """LiteLLM's YAML: every model to the OpenAI-compatible upstream, extras off."""
    return f"""model_list:
  - model_name: "*"
    litellm_params:
      model: "openai/*"
      api_base: "{upstream_base_url}"
      api_key: "{upstream_key}"
litellm_settings:
  telemetry: false
  drop_params: true
  turn_off_message_logging: true
general_settings:
  master_key: "{MASTER_KEY}"
  disable_spend_logs: true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def litellm_proxy(
    upstream_base_url: str,
    upstream_key: str = "sk-fake",
    port: int | None = None,
    workers: int = 1,
    start_timeout_seconds: float = 180.0,
) -> Iterator[LiteLLMPeer]:
    """Runs ``litellm --config ...`` until the block ends."""
    python = ensure_venv()
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryFile() as log:
        config = Path(work) / "litellm.yaml"
        config.write_text(proxy_config(upstream_base_url, upstream_key))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENAI", "ANTHROPIC", "LITELLM", "DATABASE_URL", "REDIS"))
        }
        env.update(
            LITELLM_LOG="ERROR",
            LITELLM_MODE="PRODUCTION",
            LITELLM_TELEMETRY="False",
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            NO_DOCS="True",
        )
        litellm_bin = python.parent / "litellm"
        args = [str(litellm_bin), "--config", str(config), "--host", "127.0.0.1"]
        args += ["--port", str(port), "--num_workers", str(workers)]
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
        try:
            deadline = time.monotonic() + start_timeout_seconds
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-3000:]
                    raise RuntimeError(f"litellm proxy did not start: {tail}")
                try:
                    with urlopen(url + "/health/liveliness", timeout=1) as answer:
                        if answer.status == 200:
                            break
                except (URLError, OSError):
                    pass
                time.sleep(0.25)
            yield LiteLLMPeer(url=url, key=MASTER_KEY, pid=proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    ensure_venv()
    print(installed_version())
