"""Alembic's environment for the monitor: migrations run on the connection that
`monitor.store.migrate` hands over (SQLite or PostgreSQL), never from alembic.ini."""
from alembic import context

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it; PostgreSQL ignores the setting.
context.configure(connection=connection, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
