"""scheduler tables: job-run history and the APScheduler job store

Revision ID: 0006_scheduler
Revises: 0001_core
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_scheduler'
down_revision = '0001_core'
branch_labels = ('scheduler',)
depends_on = None


def upgrade() -> None:
    op.create_table('scheduler_job_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=60), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('instance', sa.String(length=200), nullable=False),
    sa.Column('manual', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scheduler_job_run')),
    sa.UniqueConstraint('job_id', 'scheduled_at', name=op.f('uq_scheduler_job_run_job_id_scheduled_at'))
    )
    op.create_table('scheduler_jobstore',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scheduler_jobstore'))
    )
    with op.batch_alter_table('scheduler_jobstore', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scheduler_jobstore_next_run_time'), ['next_run_time'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('scheduler_jobstore', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scheduler_jobstore_next_run_time'))

    op.drop_table('scheduler_jobstore')
    op.drop_table('scheduler_job_run')
