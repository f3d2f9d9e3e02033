"""What the benches share: round trips counted, the machine's load, medians, a lean HTTP load
generator (raw asyncio sockets, keep-alive, requests built before the clock starts), and the
thin FastAPI + psycopg app that is the floor for bookings and single lookups."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

from sqlalchemy import event


class RoundTrips:
    """Counts the database round trips an engine makes: every statement, and on PostgreSQL the
    BEGIN psycopg sends before a transaction's first statement and each COMMIT/ROLLBACK (SQLite's
    BEGIN is a statement of its own, already counted). A pool pre-ping, when on, is one more per
    checkout."""

    def __init__(self, engine):
        self.value = 0
        self.statements = 0
        postgres = engine.dialect.name == "postgresql"
        pings = engine.pool._pre_ping

        def statement(*_):
            self.value += 1
            self.statements += 1

        def begin(conn):
            if postgres and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                self.value += 1

        def end(conn):
            if postgres and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                self.value += 1

        def checkout(*_):
            if pings:
                self.value += 1

        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "begin", begin)
        event.listen(engine, "commit", end)
        event.listen(engine, "rollback", end)
        event.listen(engine.pool, "checkout", checkout)

    def reset(self) -> None:
        self.value = self.statements = 0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def median(values: list[float]) -> float:
    return statistics.median(values)
