"""scheduler: drop APScheduler's job store table

Revision ID: 0010_scheduler_drop_jobstore
Revises: 0006_scheduler
Create Date: 2026-12-06

The scheduler is a leader loop over APScheduler's cron trigger (scheduling/loop.py) that resumes from its own
run ledger (scheduler_job_run); APScheduler's SQLAlchemyJobStore, and so its table, has not been used since.
Whatever rows it holds are pickled APScheduler jobs nothing reads.
"""
import sqlalchemy as sa
from alembic import op

revision = '0010_scheduler_drop_jobstore'
down_revision = '0006_scheduler'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scheduler_jobstore', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scheduler_jobstore_next_run_time'))
    op.drop_table('scheduler_jobstore')


def downgrade() -> None:
    op.create_table('scheduler_jobstore',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scheduler_jobstore'))
    )
    with op.batch_alter_table('scheduler_jobstore', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scheduler_jobstore_next_run_time'), ['next_run_time'], unique=False)
