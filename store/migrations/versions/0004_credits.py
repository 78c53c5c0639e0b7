"""credits tables: credit results, evaluation runs, result changes

Revision ID: 0004_credits
Revises: 0001_core
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = '0004_credits'
down_revision = '0001_core'
branch_labels = ('credits',)
depends_on = None


def upgrade() -> None:
    op.create_table('credit_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('teacher', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('hours', sa.Numeric(precision=8, scale=2), nullable=False),
    sa.Column('credits', sa.Numeric(precision=8, scale=2), nullable=False),
    sa.Column('points', sa.Numeric(precision=8, scale=2), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('components', sa.JSON(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('reasons_zh', sa.JSON(), nullable=False),
    sa.Column('rule_version', sa.String(length=40), nullable=False),
    sa.Column('rule_hash', sa.String(length=64), nullable=False),
    sa.Column('result_hash', sa.String(length=64), nullable=False),
    sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_result')),
    sa.UniqueConstraint('programme', 'teacher', 'role', name=op.f('uq_credit_result_programme_teacher_role'))
    )
    op.create_table('credit_evaluation_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('rule_version', sa.String(length=40), nullable=False),
    sa.Column('rule_hash', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('evaluated', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('passed', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_evaluation_run'))
    )
    op.create_table('credit_result_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('teacher', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=False),
    sa.Column('rule_changed', sa.Boolean(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_result_change'))
    )
    op.create_index('ix_credit_result_change_run', 'credit_result_change', ['run_id'], unique=False)
    op.create_index('ix_credit_result_change_person', 'credit_result_change', ['programme', 'teacher', 'role'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_credit_result_change_person', table_name='credit_result_change')
    op.drop_index('ix_credit_result_change_run', table_name='credit_result_change')
    op.drop_table('credit_result_change')
    op.drop_table('credit_evaluation_run')
    op.drop_table('credit_result')
