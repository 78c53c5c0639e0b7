"""The migrations build exactly the tables the models declare, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from creditbridge.store import Store
from creditbridge.store.migrate import alembic_config, upgrade
from creditbridge.store.models import Base


def test_migrations_match_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_is_repeatable(store: Store) -> None:
    upgrade(store.url)  # already at head: a no-op, not an error
    tables = set(inspect(store.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_a_store_made_before_0010_loses_the_unused_jobstore_table_and_keeps_its_runs(db_url: str) -> None:
    """A store migrated up to 0006 (APScheduler's job store beside the run ledger) upgrades to the heads: the job
    store table is dropped, the ledger's rows stay; a downgrade to 0006 makes the table again."""
    upgrade(db_url, "0006_scheduler")
    engine = create_engine(db_url)
    try:
        assert "scheduler_jobstore" in inspect(engine).get_table_names()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO scheduler_job_run (job_id, scheduled_at, started_at, outcome, instance, "
                              "manual) VALUES ('push', '2026-12-01 05:00:00+00', '2026-12-01 05:00:00+00', 'ok', "
                              "'host:1', false)"))
        upgrade(db_url)
        inspector = inspect(engine)
        assert "scheduler_jobstore" not in inspector.get_table_names()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT job_id, outcome FROM scheduler_job_run")).all() == [("push", "ok")]
        command.downgrade(alembic_config(db_url), "0006_scheduler")
        assert "scheduler_jobstore" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
