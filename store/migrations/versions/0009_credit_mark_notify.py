"""credits: NOTIFY the continuous workers when marks are added (PostgreSQL only)

Revision ID: 0009_credit_mark_notify
Revises: 0008_credits_marks
Create Date: 2026-12-06

A statement-level trigger on credit_mark sends `NOTIFY creditbridge_marks` (delivered at commit, and
PostgreSQL folds identical notifications of one transaction into one), so an idle `creditbridge worker`
wakes as soon as a change is committed instead of polling. SQLite has no NOTIFY: its worker polls.
"""
from __future__ import annotations

from alembic import op

revision = '0009_credit_mark_notify'
down_revision = '0008_credits_marks'
branch_labels = None
depends_on = None

CHANNEL = 'creditbridge_marks'


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("CREATE FUNCTION credit_mark_notify() RETURNS trigger LANGUAGE plpgsql AS $$ "
               f"BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$")
    op.execute('CREATE TRIGGER credit_mark_notify AFTER INSERT ON credit_mark '
               'FOR EACH STATEMENT EXECUTE FUNCTION credit_mark_notify()')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP TRIGGER IF EXISTS credit_mark_notify ON credit_mark')
    op.execute('DROP FUNCTION IF EXISTS credit_mark_notify()')
