"""The handoff relay's tables: component ``handoff`` of the shared database's migrations."""

from __future__ import annotations

from relay_context.persistence import Migration

HANDOFF_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "handoff",
        1,
        "payloads, blobs, channel events",
        (
            # One row per distinct content (SHA-256 of the bytes as pushed), with how many live
            # payloads point at it: the bytes go when the last one does.
            """
            CREATE TABLE relay_handoff_blobs (
                sha256 TEXT PRIMARY KEY,
                size BIGINT NOT NULL,
                stored_size BIGINT NOT NULL,
                refs BIGINT NOT NULL,
                location TEXT NOT NULL,
                created_at_us BIGINT NOT NULL
            )""",
            # The compressed bytes when they live in the database (blob_storage=database).
            """
            CREATE TABLE relay_handoff_chunks (
                sha256 TEXT NOT NULL,
                n INTEGER NOT NULL,
                data {blob} NOT NULL,
                PRIMARY KEY (sha256, n)
            )""",
            """
            CREATE TABLE relay_handoff_payloads (
                id TEXT PRIMARY KEY,
                sha256 TEXT NOT NULL,
                size BIGINT NOT NULL,
                content_type TEXT NOT NULL,
                encrypted INTEGER NOT NULL,
                channel TEXT,
                metadata TEXT NOT NULL,
                owner TEXT,
                created_at_us BIGINT NOT NULL,
                expires_at_us BIGINT NOT NULL
            )""",
            "CREATE INDEX relay_handoff_payloads_expiry ON relay_handoff_payloads (expires_at_us)",
            # Each channel's last sequence id: incremented under its row lock, so ids are
            # gapless and ordered across replicas.
            """
            CREATE TABLE relay_handoff_channels (
                channel TEXT PRIMARY KEY,
                last_seq BIGINT NOT NULL
            )""",
            # The retained history a reconnecting subscriber resumes from.
            """
            CREATE TABLE relay_handoff_events (
                channel TEXT NOT NULL,
                seq BIGINT NOT NULL,
                body TEXT NOT NULL,
                created_at_us BIGINT NOT NULL,
                PRIMARY KEY (channel, seq)
            )""",
            "CREATE INDEX relay_handoff_events_age ON relay_handoff_events (created_at_us)",
        ),
    ),
    Migration(
        "handoff",
        2,
        "plans and monthly usage",
        (
            # The plan of an owner (a principal: the owner of API keys), set by
            # `relay keys create --plan`; owners without a row are on the default plan.
            """
            CREATE TABLE relay_handoff_plans (
                owner TEXT PRIMARY KEY,
                plan TEXT NOT NULL,
                updated_at_us BIGINT NOT NULL
            )""",
            """
            CREATE TABLE relay_handoff_usage (
                owner TEXT NOT NULL,
                period TEXT NOT NULL,
                pushes BIGINT NOT NULL,
                pulls BIGINT NOT NULL,
                PRIMARY KEY (owner, period)
            )""",
            "CREATE INDEX relay_handoff_payloads_owner ON relay_handoff_payloads (owner)",
        ),
    ),
)

__all__ = ["HANDOFF_MIGRATIONS"]
