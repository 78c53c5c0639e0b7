"""credits: marks of teachers whose inputs changed (credit_mark), written by triggers; run mode and evaluator

Revision ID: 0008_credits_marks
Revises: 0007_credits_input_hash
Create Date: 2026-12-06

Triggers, not calls in the write paths: every writer of these tables (inbox processing, `intake import`,
reconcile, sync, a hand-written SQL fix, writers still to come) marks without knowing about it. Each trigger
appends one row per changed row (no upsert: concurrent multi-teacher transactions never wait on each other's
mark rows). An UPDATE marks only when a column the evaluator reads changed, so sync's bookkeeping updates
(applied_hash, moodle ids, updated_at) mark nobody.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_credits_marks'
down_revision = '0007_credits_input_hash'
branch_labels = None
depends_on = None

# table -> (mark's teacher column or None, mark's school column or None, columns whose change marks)
# teacher NULL + school set: every teacher of the school; both NULL: the whole programme.
SOURCES: dict[str, tuple[str | None, str | None, tuple[str, ...]]] = {
    'learning_record': ('teacher', None, ('programme', 'teacher', 'course', 'activity', 'kind', 'hours', 'minutes',
                                          'score', 'passed', 'occurred_at', 'withdrawn_by')),
    'lesson_case_assignment': ('teacher', None, ('programme', 'teacher', 'course')),
    # the school goes with the mark: a transfer recomputes the admin result of the old school and the new
    'teacher': ('id_number', 'school_code', ('programme', 'id_number', 'school_code', 'stage', 'subject', 'city')),
    'school_topic': (None, 'school_code', ('programme', 'school_code', 'topic')),
    'catalog_course': (None, None, ('programme', 'code', 'kind', 'topic', 'mode', 'hours', 'stage', 'subject',
                                    'city')),
}


def _values(row: str, teacher: str | None, school: str | None) -> str:
    t = f'{row}.{teacher}' if teacher else 'NULL'
    s = f'{row}.{school}' if school else 'NULL'
    return f'{row}.programme, {t}, {s}'


def _key_changed(teacher: str | None, school: str | None, distinct: str, old: str = 'OLD', new: str = 'NEW') -> str:
    keys = ['programme', *(c for c in (teacher, school) if c)]
    return ' OR '.join(f'{old}.{k} {distinct} {new}.{k}' for k in keys)


# Every name below is one of this module's constants (SOURCES); nothing comes from outside.
def _sqlite(table: str, teacher: str | None, school: str | None, watched: tuple[str, ...]) -> list[str]:
    ins = 'INSERT INTO credit_mark (programme, teacher, school)'
    new = f'{ins} VALUES ({_values("NEW", teacher, school)})'
    old = f'{ins} VALUES ({_values("OLD", teacher, school)})'
    old_if_moved = f'{ins} SELECT {_values("OLD", teacher, school)} WHERE {_key_changed(teacher, school, "IS NOT")}'
    changed = ' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in watched)
    return [
        f'CREATE TRIGGER credit_mark_{table}_ins AFTER INSERT ON {table} BEGIN {new}; END',
        f'CREATE TRIGGER credit_mark_{table}_del AFTER DELETE ON {table} BEGIN {old}; END',
        f'CREATE TRIGGER credit_mark_{table}_upd AFTER UPDATE ON {table} WHEN {changed} BEGIN {new}; {old_if_moved}; END',
    ]


def _postgres(table: str, teacher: str | None, school: str | None, watched: tuple[str, ...]) -> list[str]:
    """Statement-level triggers over the transition tables: one INSERT ... SELECT DISTINCT per statement, so a
    COPY of a million records costs one set-based insert of the distinct teachers, not a function call per row
    (row-level triggers made the bench's bulk load 2.7 times slower)."""
    ins = 'INSERT INTO credit_mark (programme, teacher, school)'
    changed = ' OR '.join(f'o.{c} IS DISTINCT FROM n.{c}' for c in watched)
    pairs = 'new_rows n JOIN old_rows o ON o.id = n.id'
    select_new = f'SELECT DISTINCT {_values("n", teacher, school)}'
    select_old = f'SELECT DISTINCT {_values("o", teacher, school)}'
    moved = _key_changed(teacher, school, "IS DISTINCT FROM", "o", "n")
    bodies = {
        'ins': ('REFERENCING NEW TABLE AS new_rows', 'INSERT', f'{ins} {select_new} FROM new_rows n'),
        'del': ('REFERENCING OLD TABLE AS old_rows', 'DELETE', f'{ins} {select_old} FROM old_rows o'),
        'upd': ('REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows', 'UPDATE',
                f'{ins} {select_new} FROM {pairs} WHERE {changed} UNION {select_old} FROM {pairs} WHERE {moved}'),
    }
    out = []
    for suffix, (referencing, event, body) in bodies.items():
        out.append(f'CREATE FUNCTION credit_mark_{table}_{suffix}() RETURNS trigger LANGUAGE plpgsql AS $$ '
                   f'BEGIN {body}; RETURN NULL; END $$')
        out.append(f'CREATE TRIGGER credit_mark_{table}_{suffix} AFTER {event} ON {table} {referencing} '
                   f'FOR EACH STATEMENT EXECUTE FUNCTION credit_mark_{table}_{suffix}()')
    return out


def upgrade() -> None:
    op.create_table('credit_mark',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('teacher', sa.String(length=18), nullable=True),
    sa.Column('school', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_mark'))
    )
    op.create_index('ix_credit_mark_programme_teacher', 'credit_mark', ['programme', 'teacher'], unique=False)
    with op.batch_alter_table('credit_evaluation_run') as batch:
        batch.add_column(sa.Column('mode', sa.String(length=20), nullable=True))
        batch.add_column(sa.Column('evaluator_version', sa.String(length=20), nullable=True))
    make = _postgres if op.get_bind().dialect.name == 'postgresql' else _sqlite
    for table, (teacher, school, watched) in SOURCES.items():
        for statement in make(table, teacher, school, watched):
            op.execute(statement)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == 'postgresql'
    for table in SOURCES:
        for suffix in ('ins', 'del', 'upd'):
            if pg:
                op.execute(f'DROP TRIGGER IF EXISTS credit_mark_{table}_{suffix} ON {table}')
                op.execute(f'DROP FUNCTION IF EXISTS credit_mark_{table}_{suffix}()')
            else:
                op.execute(f'DROP TRIGGER IF EXISTS credit_mark_{table}_{suffix}')
    with op.batch_alter_table('credit_evaluation_run') as batch:
        batch.drop_column('evaluator_version')
        batch.drop_column('mode')
    op.drop_index('ix_credit_mark_programme_teacher', table_name='credit_mark')
    op.drop_table('credit_mark')
