"""credits: marks of teachers whose inputs changed (credit_mark), written by triggers; run mode

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


def _key_changed(teacher: str | None, school: str | None, distinct: str) -> str:
    keys = ['programme', *(c for c in (teacher, school) if c)]
    return ' OR '.join(f'OLD.{k} {distinct} NEW.{k}' for k in keys)


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
    ins = 'INSERT INTO credit_mark (programme, teacher, school)'
    changed = ' OR '.join(f'OLD.{c} IS DISTINCT FROM NEW.{c}' for c in watched)
    return [
        f'''CREATE FUNCTION credit_mark_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'DELETE' THEN
    {ins} VALUES ({_values("NEW", teacher, school)});
  END IF;
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND ({_key_changed(teacher, school, "IS DISTINCT FROM")})) THEN
    {ins} VALUES ({_values("OLD", teacher, school)});
  END IF;
  RETURN NULL;
END $$''',
        f'CREATE TRIGGER credit_mark_{table}_ins_del AFTER INSERT OR DELETE ON {table} '
        f'FOR EACH ROW EXECUTE FUNCTION credit_mark_{table}()',
        # a WHEN clause may name OLD only on an UPDATE-only trigger
        f'CREATE TRIGGER credit_mark_{table}_upd AFTER UPDATE ON {table} FOR EACH ROW WHEN ({changed}) '
        f'EXECUTE FUNCTION credit_mark_{table}()',
    ]


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
    make = _postgres if op.get_bind().dialect.name == 'postgresql' else _sqlite
    for table, (teacher, school, watched) in SOURCES.items():
        for statement in make(table, teacher, school, watched):
            op.execute(statement)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == 'postgresql'
    for table in SOURCES:
        if pg:
            op.execute(f'DROP TRIGGER IF EXISTS credit_mark_{table}_ins_del ON {table}')
            op.execute(f'DROP TRIGGER IF EXISTS credit_mark_{table}_upd ON {table}')
            op.execute(f'DROP FUNCTION IF EXISTS credit_mark_{table}()')
        else:
            for suffix in ('ins', 'del', 'upd'):
                op.execute(f'DROP TRIGGER IF EXISTS credit_mark_{table}_{suffix}')
    with op.batch_alter_table('credit_evaluation_run') as batch:
        batch.drop_column('mode')
    op.drop_index('ix_credit_mark_programme_teacher', table_name='credit_mark')
    op.drop_table('credit_mark')
