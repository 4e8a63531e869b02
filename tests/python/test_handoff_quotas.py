"""Plans and quotas: a push over its plan answers 402 with the quota in the body, pulls are
never refused, usage is visible to the owner and to admins; ``relay keys create --plan``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from handoff_support import handoff_service, handoff_settings
from service_support import assert_error, create_key, relay_cli, run_server, service_env

PLANS = {
    "free": {"pushes_per_month": 3},
    "tiny": {"pushes_per_month": 2, "pulls_per_month": 1},
    "small": {"bytes_stored": 100},
    "unlimited": {},
}


def test_plans_of_keys(tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", HANDOFF_AUTH="keys", HANDOFF_PLANS=PLANS)
    tiny = json.loads(relay_cli(env, "keys", "create", "--plan", "tiny", "--json").stdout)
    small = json.loads(relay_cli(env, "keys", "create", "--plan", "small", "--json").stdout)
    assert tiny["plan"] == "tiny"
    default = create_key(env, "user")
    admin = create_key(env, "admin")
    refused = relay_cli(env, "keys", "create", "--plan", "gold", check=False)
    assert refused.returncode != 0
    assert "unknown plan" in refused.stderr
    with run_server(env, tmp_path / "logs") as server:
        c = server.client

        def push(key: str, data: str = "x") -> httpx.Response:
            return c.post("/push", json={"data": data}, headers={"X-API-Key": key})

        ids = [push(tiny["key"]).json()["id"] for _ in range(2)]
        over = assert_error(push(tiny["key"]), 402, "quota_exceeded")
        assert over["details"]["quota"] == "pushes_per_month"
        assert over["details"]["limit"] == 2
        assert over["details"]["used"] == 2
        # Pulls are never refused, even past pulls_per_month.
        for _ in range(3):
            assert c.get(f"/pull/{ids[0]}", headers={"X-API-Key": tiny["key"]}).status_code == 200
        time.sleep(0.1)
        usage = c.get("/api/v1/handoff/usage", headers={"X-API-Key": tiny["key"]}).json()
        assert usage["plan"] == "tiny"
        assert (usage["pushes"], usage["pulls"], usage["bytes_stored"]) == (2, 3, 2)
        assert usage["limits"]["pushes_per_month"] == 2
        # Another key without a plan is on the default one; an admin is not limited.
        assert all(push(default["key"]).status_code == 200 for _ in range(3))
        assert_error(push(default["key"]), 402, "quota_exceeded")
        assert all(push(admin["key"]).status_code == 200 for _ in range(5))
        # Bytes stored.
        assert push(small["key"], "y" * 60).status_code == 200
        over = assert_error(push(small["key"], "y" * 60), 402, "quota_exceeded")
        assert over["details"]["quota"] == "bytes_stored"
        # Admins see anyone's usage; others only their own.
        seen = c.get(
            "/api/v1/handoff/usage",
            params={"owner": tiny["owner"]},
            headers={"X-API-Key": admin["key"]},
        )
        assert seen.json()["pushes"] == 2
        assert_error(
            c.get(
                "/api/v1/handoff/usage",
                params={"owner": tiny["owner"]},
                headers={"X-API-Key": default["key"]},
            ),
            403,
            "permission_denied",
        )


def test_open_mode_has_quotas_per_client_address(tmp_path: Path) -> None:
    settings = handoff_settings(tmp_path, handoff={"plans": PLANS, "open_plan": "tiny"})
    with handoff_service(settings) as (url, _), httpx.Client(base_url=url) as c:
        first = c.post("/push", json={"data": "a"})
        assert c.post("/api/v1/handoff", content=b"b").status_code == 201
        assert_error(c.post("/push", json={"data": "c"}), 402, "quota_exceeded")
        assert c.get(f"/pull/{first.json()['id']}").status_code == 200
        usage = c.get("/api/v1/handoff/usage").json()
        assert usage["owner"] == "addr:127.0.0.1"
        assert usage["pushes"] == 2
