"""Rows into a PostgreSQL table by COPY, through a SQLAlchemy connection (so inside its transaction).

Why COPY: an executemany INSERT is run by psycopg as one statement per row, each parsed and, on tables with
statement-level triggers (migration 0008's marks), firing them once more; COPY streams the rows as one
statement, with no per-row parameter processing. PostgreSQL only: callers keep their INSERT for SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY `rows` (values in `columns` order) into `table` on `conn`'s DBAPI connection (psycopg 3)."""
    cur = conn.connection.cursor()
    try:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
    finally:
        cur.close()
