"""Persistence: tables, migrations, engine set-up and the few hot-path statements."""
