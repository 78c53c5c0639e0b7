"""registry tables: the outbox of credit-record submissions and its audit trail

Revision ID: 0005_registry
Revises: 0001_core
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_registry'
down_revision = '0001_core'
branch_labels = ('registry',)
depends_on = None


def upgrade() -> None:
    op.create_table('registry_submission',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('teacher', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('result_hash', sa.String(length=64), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('registry_id', sa.String(length=100), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('target', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['supersedes_id'], ['registry_submission.id'], name=op.f('fk_registry_submission_supersedes_id_registry_submission')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_submission')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_registry_submission_idempotency_key')),
    sa.UniqueConstraint('programme', 'teacher', 'role', 'year', 'version', name=op.f('uq_registry_submission_programme_teacher_role_year_version'))
    )
    with op.batch_alter_table('registry_submission', schema=None) as batch_op:
        batch_op.create_index('ix_registry_submission_state', ['state'], unique=False)

    op.create_table('registry_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('submission_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=30), nullable=False),
    sa.Column('from_state', sa.String(length=20), nullable=True),
    sa.Column('to_state', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['registry_submission.id'], name=op.f('fk_registry_audit_submission_id_registry_submission')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_audit'))
    )
    with op.batch_alter_table('registry_audit', schema=None) as batch_op:
        batch_op.create_index('ix_registry_audit_submission_id', ['submission_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('registry_audit', schema=None) as batch_op:
        batch_op.drop_index('ix_registry_audit_submission_id')

    op.drop_table('registry_audit')
    with op.batch_alter_table('registry_submission', schema=None) as batch_op:
        batch_op.drop_index('ix_registry_submission_state')

    op.drop_table('registry_submission')
