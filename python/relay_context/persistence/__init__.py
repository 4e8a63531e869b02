"""Shared persistence: one SQL database (SQLite or PostgreSQL) that every component stands on.

A :class:`Database` gives connections, transactions (:meth:`Database.write` holds the write lock
that ordered updates need; :meth:`Database.read` is autocommit, one snapshot per statement),
the clock, and a migration registry: each component (the session store, API keys, and later
the gateway's ledger and the handoff store) registers its own tables with
:meth:`Database.register`, and :meth:`Database.migrate` applies what is pending, once, across
processes. Statements use PostgreSQL's ``$1, $2, ...`` placeholders on both back-ends.
"""

from relay_context.persistence.clock import Clock, system_clock
from relay_context.persistence.database import Database
from relay_context.persistence.migrations import Migration
from relay_context.persistence.open import database_for
from relay_context.persistence.transaction import Row, Transaction

__all__ = [
    "Clock",
    "Database",
    "Migration",
    "Row",
    "Transaction",
    "database_for",
    "system_clock",
]
