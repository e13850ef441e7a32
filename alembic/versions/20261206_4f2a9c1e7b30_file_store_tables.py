"""The database file store: stored files and their chunks

Revision ID: 4f2a9c1e7b30
Revises: b3e5f1a2c9d4
Create Date: 2026-12-06

New tables only (``qicollab.file_store = database`` keeps generated files here; the default
local folder does not use them). Downgrade drops them with any files they hold.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4f2a9c1e7b30"
down_revision = "b3e5f1a2c9d4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_files")),
        sa.UniqueConstraint("key", name=op.f("uq_stored_files_key")),
    )
    op.create_table(
        "stored_file_chunks",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["stored_files.id"],
            name=op.f("fk_stored_file_chunks_file_id_stored_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_stored_file_chunks")),
    )


def downgrade() -> None:
    op.drop_table("stored_file_chunks")
    op.drop_table("stored_files")
