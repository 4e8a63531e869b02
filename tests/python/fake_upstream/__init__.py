"""A fake LLM upstream the project owns (OpenAI and Anthropic shapes), for tests and benchmarks.

In process::

    fake = FakeUpstream()
    with serve_in_thread(fake) as url:       # http://127.0.0.1:PORT
        fake.push(Scenario(status=429, retry_after=0.1))   # the next request gets a 429
        ...
        fake.requests[-1].headers["authorization"]

As a process (benchmarks): ``PYTHONPATH=tests/python python -m fake_upstream --port 9100``.
What one request does is a :class:`Scenario` (see :mod:`fake_upstream.scenario`).
"""

from .app import ConnectionCutError, FakeUpstream, RecordedRequest
from .scenario import Scenario
from .server import free_port, serve_in_thread

__all__ = [
    "ConnectionCutError",
    "FakeUpstream",
    "RecordedRequest",
    "Scenario",
    "free_port",
    "serve_in_thread",
]
