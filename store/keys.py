"""A list of keys bound as ONE parameter: `col = ANY(:keys)` on PostgreSQL, `col IN (SELECT value FROM
json_each(:keys))` on SQLite.

Why not `col.in_(list)`: SQLAlchemy's "expanding" IN renders one placeholder per value on every execution
(5,000 ids: 5,000 placeholders rendered, then parsed again by psycopg), and SQLite caps the number of
parameters. One parameter keeps the statement the same text for any number of keys, so it is compiled once
and the cost of a query grows with the keys it reads, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Integer, String, any_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text, TypeEngine


def in_keys(dialect: Any, col: Any, name: str = "keys", item_type: TypeEngine[Any] | None = None
            ) -> ColumnElement[bool]:
    """`col` is one of the keys bound as the parameter `name` (its value made by `keys_value`)."""
    if dialect.name == "postgresql":
        return col == any_(bindparam(name, type_=ARRAY(item_type if item_type is not None else String())))
    return col.in_(select(literal_column("value")).select_from(func.json_each(bindparam(name, type_=Text))))


def in_ids(dialect: Any, col: Any, name: str = "ids") -> ColumnElement[bool]:
    """`in_keys` for integer ids."""
    return in_keys(dialect, col, name, Integer())


def keys_value(dialect: Any, keys: Iterable[Any]) -> Any:
    """The value to bind for an `in_keys` parameter: a list (PostgreSQL array) or a JSON array text (SQLite)."""
    return list(keys) if dialect.name == "postgresql" else orjson.dumps(list(keys)).decode()
