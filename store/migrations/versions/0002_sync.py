"""sync tables: run log, Moodle cohort/category ids, cohort memberships and enrolments made by sync

Revision ID: 0002_sync
Revises: 0001_core
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = '0002_sync'
down_revision = '0001_core'
branch_labels = ('sync',)
depends_on = None


def upgrade() -> None:
    op.create_table('sync_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('file', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('delta', sa.Boolean(), nullable=False),
    sa.Column('force', sa.Boolean(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('plan_counts', sa.JSON(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('report_path', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_run'))
    )
    op.create_index('ix_sync_run_started_at', 'sync_run', ['started_at'], unique=False)
    op.create_table('sync_moodle_ref',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('idnumber', sa.String(length=255), nullable=False),
    sa.Column('moodle_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_moodle_ref')),
    sa.UniqueConstraint('kind', 'idnumber', name=op.f('uq_sync_moodle_ref_kind_idnumber'))
    )
    op.create_table('sync_cohort_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('teacher', sa.String(length=18), nullable=False),
    sa.Column('cohort', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_cohort_member')),
    sa.UniqueConstraint('programme', 'teacher', 'cohort', name=op.f('uq_sync_cohort_member_programme_teacher_cohort'))
    )
    op.create_table('sync_enrolment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('teacher', sa.String(length=18), nullable=False),
    sa.Column('course', sa.String(length=100), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_enrolment')),
    sa.UniqueConstraint('programme', 'teacher', 'course', name=op.f('uq_sync_enrolment_programme_teacher_course'))
    )
    op.create_table('sync_state',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sync_state'))
    )


def downgrade() -> None:
    op.drop_table('sync_state')
    op.drop_table('sync_enrolment')
    op.drop_table('sync_cohort_member')
    op.drop_table('sync_moodle_ref')
    op.drop_index('ix_sync_run_started_at', table_name='sync_run')
    op.drop_table('sync_run')
