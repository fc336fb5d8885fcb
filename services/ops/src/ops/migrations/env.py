from alembic import context

from refnet_platform.migrations import run_migrations_online

run_migrations_online(context)
