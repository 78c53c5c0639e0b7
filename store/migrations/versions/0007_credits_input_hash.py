"""credits: input fingerprint per result, so a re-evaluation skips people whose inputs did not change

Revision ID: 0007_credits_input_hash
Revises: 0004_credits
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_credits_input_hash'
down_revision = '0004_credits'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('credit_result') as batch:
        batch.add_column(sa.Column('input_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('credit_result') as batch:
        batch.drop_column('input_hash')
