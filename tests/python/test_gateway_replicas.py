"""Two ``relay serve`` gateway processes on one PostgreSQL and one Redis: requests per minute are
counted once across both (the C++ limiter on Redis), and spend, usage and budgets come from the
one ledger in PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fake_upstream import FakeUpstream, serve_in_thread
from gateway_support import UPSTREAM_KEY, jwt_for
from relay_context.security.auth import UserRole
from service_support import real_backends, run_server, service_env


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(FakeUpstream(required_key=UPSTREAM_KEY)) as url:
        yield url


def chat(url: str, user: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": f"Bearer {jwt_for(user)}"},
        timeout=30,
    )


def test_two_gateways_share_limits_budgets_and_spend(
    tmp_path: Path, upstream: str, pg_dsn: str, redis_server: str
) -> None:
    with real_backends(pg_dsn, redis_server, "gw") as backends:
        env = service_env(
            tmp_path / "data",
            **backends,
            OPENAI_BASE_URL=upstream + "/v1",
            OPENAI_API_KEY=UPSTREAM_KEY,
            GATEWAY_RPM="4",
            GATEWAY_BUDGETS='{"dave": {"usd": 0.00025, "period": "day"}}',
        )
        with run_server(env, tmp_path / "a") as a, run_server(env, tmp_path / "b") as b:
            # Requests per minute: 4 for "carol" across both processes.
            statuses = [chat(server.url, "carol").status_code for server in (a, b, a, b, a, b)]
            assert statuses[:4] == [200, 200, 200, 200]
            assert statuses[4:] == [429, 429]
            # Spend: "dave" spends through A; B sees it once A's ledger has flushed.
            spent_statuses = []
            for _ in range(3):  # within the 4 per minute
                spent_statuses.append(chat(a.url, "dave").status_code)
            assert 429 in spent_statuses  # the budget, through A
            time.sleep(1.0)  # the ledger writes every 0.5 s
            refused = chat(b.url, "dave")
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "budget_exceeded"
            admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
            report = httpx.get(
                b.url + "/api/v1/gateway/usage", params={"group_by": "key"}, headers=admin
            ).json()
            requests = {row["key"]: row["requests"] for row in report["data"]}
            assert requests["carol"] == 4
            assert requests["dave"] == spent_statuses.count(200)
