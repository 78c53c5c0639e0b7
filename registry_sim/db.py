"""The simulator's SQLite file: what it received, the stored answers to idempotency keys."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    idempotency_key TEXT PRIMARY KEY,
    body_sha256 TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS credit_record (
    id INTEGER PRIMARY KEY,
    record_key TEXT NOT NULL UNIQUE,
    programme TEXT NOT NULL,
    teacher TEXT NOT NULL,
    role TEXT NOT NULL,
    year INTEGER NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,            -- active | superseded | voided | void (the voiding entry itself)
    supersedes TEXT,
    payload TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    received_at TEXT NOT NULL,
    UNIQUE (programme, teacher, role, year, version)
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SimDB:
    """One connection behind a lock: the simulator's throughput is bounded by HTTP, not by this."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self.lock = threading.Lock()

    def stored_batch(self, key: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM batch WHERE idempotency_key = ?", (key,)).fetchone()

    def find_record(self, record_key: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM credit_record WHERE record_key = ?", (record_key,)).fetchone()

    def records(self, **filters: Any) -> list[dict[str, Any]]:
        where, args = [], []
        for col in ("programme", "teacher", "role", "year", "state", "record_key"):
            if filters.get(col) is not None:
                where.append(f"{col} = ?")
                args.append(filters[col])
        sql = "SELECT * FROM credit_record"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id LIMIT ? OFFSET ?"
        args += [int(filters.get("limit") or 1000), int(filters.get("offset") or 0)]
        out = []
        for row in self.conn.execute(sql, args):
            d = dict(row)
            d["payload"] = json.loads(d["payload"])
            out.append(d)
        return out

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, COUNT(*) AS n FROM credit_record GROUP BY state").fetchall()
        return {r["state"]: r["n"] for r in rows}

    def close(self) -> None:
        self.conn.close()
