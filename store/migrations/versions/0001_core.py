"""core tables

Revision ID: 0001_core
Revises: 
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = '0001_core'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('catalog_course',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('topic', sa.String(length=60), nullable=True),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('hours', sa.Numeric(precision=8, scale=2), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=True),
    sa.Column('subject', sa.String(length=40), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('recorded_by', sa.String(length=18), nullable=True),
    sa.Column('moodle_course_id', sa.Integer(), nullable=True),
    sa.Column('row_hash', sa.String(length=64), nullable=True),
    sa.Column('applied_hash', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_course')),
    sa.UniqueConstraint('programme', 'code', name=op.f('uq_catalog_course_programme_code'))
    )
    with op.batch_alter_table('catalog_course', schema=None) as batch_op:
        batch_op.create_index('ix_catalog_course_moodle', ['moodle_course_id'], unique=False)

    op.create_table('learning_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('teacher', sa.String(length=18), nullable=False),
    sa.Column('course', sa.String(length=100), nullable=False),
    sa.Column('activity', sa.String(length=100), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('hours', sa.Numeric(precision=8, scale=2), nullable=True),
    sa.Column('minutes', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('score', sa.Numeric(precision=8, scale=2), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('withdrawn_by', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learning_record')),
    sa.UniqueConstraint('source', name=op.f('uq_learning_record_source'))
    )
    with op.batch_alter_table('learning_record', schema=None) as batch_op:
        batch_op.create_index('ix_learning_record_programme_teacher', ['programme', 'teacher'], unique=False)

    op.create_table('lesson_case_assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('teacher', sa.String(length=18), nullable=False),
    sa.Column('course', sa.String(length=100), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('enrolled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lesson_case_assignment')),
    sa.UniqueConstraint('programme', 'teacher', 'course', name=op.f('uq_lesson_case_assignment_programme_teacher_course'))
    )
    with op.batch_alter_table('lesson_case_assignment', schema=None) as batch_op:
        batch_op.create_index('ix_lesson_case_assignment_course', ['programme', 'course'], unique=False)

    op.create_table('school_topic',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('school_code', sa.String(length=40), nullable=False),
    sa.Column('topic', sa.String(length=60), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_school_topic')),
    sa.UniqueConstraint('programme', 'school_code', 'topic', name=op.f('uq_school_topic_programme_school_code_topic'))
    )
    op.create_table('teacher',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=40), nullable=False),
    sa.Column('id_number', sa.String(length=18), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('school_code', sa.String(length=40), nullable=False),
    sa.Column('school_name', sa.String(length=200), nullable=False),
    sa.Column('county', sa.String(length=100), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=40), nullable=True),
    sa.Column('rural', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=200), nullable=True),
    sa.Column('teacher_code', sa.String(length=60), nullable=True),
    sa.Column('username', sa.String(length=100), nullable=True),
    sa.Column('moodle_user_id', sa.Integer(), nullable=True),
    sa.Column('row_hash', sa.String(length=64), nullable=True),
    sa.Column('applied_hash', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teacher')),
    sa.UniqueConstraint('programme', 'id_number', name=op.f('uq_teacher_programme_id_number'))
    )
    with op.batch_alter_table('teacher', schema=None) as batch_op:
        batch_op.create_index('ix_teacher_moodle_user_id', ['moodle_user_id'], unique=False)
        batch_op.create_index('ix_teacher_programme_school', ['programme', 'school_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('teacher', schema=None) as batch_op:
        batch_op.drop_index('ix_teacher_programme_school')
        batch_op.drop_index('ix_teacher_moodle_user_id')

    op.drop_table('teacher')
    op.drop_table('school_topic')
    with op.batch_alter_table('lesson_case_assignment', schema=None) as batch_op:
        batch_op.drop_index('ix_lesson_case_assignment_course')

    op.drop_table('lesson_case_assignment')
    with op.batch_alter_table('learning_record', schema=None) as batch_op:
        batch_op.drop_index('ix_learning_record_programme_teacher')

    op.drop_table('learning_record')
    with op.batch_alter_table('catalog_course', schema=None) as batch_op:
        batch_op.drop_index('ix_catalog_course_moodle')

    op.drop_table('catalog_course')
