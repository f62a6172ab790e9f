"""The first schema: devices, cameras, events, hourly counts, snapshots.

Times are epoch milliseconds (BIGINT) and hours epoch hours, so that SQLite and PostgreSQL hold,
compare and group them the same way.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NAME = 64
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite's rowid alias


def upgrade():
    op.create_table(
        "devices",
        sa.Column("name", sa.String(NAME), primary_key=True),
        sa.Column("online", sa.Boolean, nullable=True),
        sa.Column("availability_ms", sa.BigInteger, nullable=True),
        sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
        sa.Column("stats", sa.Text, nullable=True),
        sa.Column("stats_ms", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "cameras",
        sa.Column("device", sa.String(NAME), primary_key=True),
        sa.Column("name", sa.String(NAME), primary_key=True),
        sa.Column("state", sa.Text, nullable=True),
        sa.Column("state_ms", sa.BigInteger, nullable=True),
        sa.Column("alert", sa.Boolean, nullable=True),
        sa.Column("alert_since_ms", sa.BigInteger, nullable=True),
        sa.Column("alert_cleared_ms", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(NAME), primary_key=True),
        sa.Column("device", sa.String(NAME), nullable=False),
        sa.Column("camera", sa.String(NAME), nullable=False),
        sa.Column("type", sa.String(NAME), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("track_id", sa.BigInteger, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("snapshot_id", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_events_time", "events", ["time_ms", "id"])
    op.create_index("ix_events_door_time", "events", ["device", "camera", "time_ms"])
    op.create_index("ix_events_type_time", "events", ["type", "time_ms"])
    op.create_table(
        "hourly",
        sa.Column("device", sa.String(NAME), primary_key=True),
        sa.Column("camera", sa.String(NAME), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("people", sa.Integer, nullable=False),
        sa.Column("without_mask", sa.Integer, nullable=False),
    )
    op.create_index("ix_hourly_hour", "hourly", ["hour"])
    op.create_table(
        "snapshots",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("device", sa.String(NAME), nullable=False),
        sa.Column("camera", sa.String(NAME), nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("event_id", sa.String(NAME), nullable=True),
        sa.UniqueConstraint("device", "camera", "sha256", name="uq_snapshots_content"),
    )
    op.create_index("ix_snapshots_door_time", "snapshots", ["device", "camera", "received_ms"])


def downgrade():
    for table in ("snapshots", "hourly", "events", "cameras", "devices"):
        op.drop_table(table)
