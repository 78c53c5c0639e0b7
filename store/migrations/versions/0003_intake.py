"""intake tables: webhook inbox, parked events, receiver counters

Revision ID: 0003_intake
Revises: 0001_core
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_intake'
down_revision = '0001_core'
branch_labels = ('intake',)
depends_on = None


def upgrade() -> None:
    op.create_table('webhook_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('webhook_id', sa.String(length=100), nullable=False),
    sa.Column('event', sa.String(length=60), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery')),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_webhook_delivery_webhook_id'))
    )
    op.create_index('ix_webhook_delivery_state', 'webhook_delivery', ['state'], unique=False)
    op.create_table('parked_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('webhook_id', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('parked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_tried_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parked_event')),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_parked_event_webhook_id'))
    )
    op.create_table('intake_counter',
    sa.Column('reason', sa.String(length=60), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('reason', name=op.f('pk_intake_counter'))
    )


def downgrade() -> None:
    op.drop_table('intake_counter')
    op.drop_table('parked_event')
    op.drop_index('ix_webhook_delivery_state', table_name='webhook_delivery')
    op.drop_table('webhook_delivery')
