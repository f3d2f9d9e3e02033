"""Alembic environment: run programmatically by `stockhub.db.migrate`, on the connection it is given."""

from alembic import context

from stockhub.db.tables import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
