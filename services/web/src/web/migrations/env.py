from alembic import context

from refnet_platform.db import run_migrations_online

run_migrations_online(context)
