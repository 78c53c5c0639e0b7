"""The state store: SQLAlchemy 2 models, Alembic migrations, engine and sessions."""

from creditbridge.store.db import Store, open_store

__all__ = ["Store", "open_store"]
