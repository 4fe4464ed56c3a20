"""The system of record: PostgreSQL when ``SWITCHBOARD_DATABASE_URL`` is set (any number of replicas), else SQLite
files under the data directory (the workers of one host).

It holds what must survive restarts and cache loss: the ledger (and so the budgets' settled spend), the
virtual keys and the history of active policy versions. Redis holds only hot counters, reservations and
call state. PostgreSQL's schema is migrated with Alembic (``router/db/migrations``) at every start, under an
advisory lock so replicas starting together migrate once; the SQLite files create their own tables.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_url(database_url: str) -> str:
    """The SQLAlchemy URL Alembic connects with: the same database through asyncpg."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ValueError("SWITCHBOARD_DATABASE_URL must be a postgresql:// URL")
    return f"postgresql+asyncpg://{rest}"


def migrate(database_url: str, revision: str = "head") -> None:
    """Bring the PostgreSQL schema to ``revision`` (blocking: call it from a thread inside an event loop)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would read a '%' in a password as a placeholder.
    config.set_main_option("sqlalchemy.url", alembic_url(database_url).replace("%", "%%"))
    command.upgrade(config, revision)


# A database that stopped answering must not hold answers for long: past this, a ledger batch goes to the spool
# and a key lookup answers 503.
CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 5.0


async def open_postgres(database_url: str, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool to an up-to-date schema."""
    import asyncpg

    await asyncio.to_thread(migrate, database_url)
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        timeout=CONNECT_TIMEOUT_SECONDS,
        command_timeout=COMMAND_TIMEOUT_SECONDS,
    )


async def record_policy_version(pool: asyncpg.Pool, version: str, shadow_version: str | None, path: str) -> None:
    """Append an activation of a policy version to its history (which replica ran what, from when)."""
    await pool.execute(
        "INSERT INTO policy_versions (version, shadow_version, path, replica) VALUES ($1, $2, $3, $4)",
        version,
        shadow_version,
        path,
        f"{socket.gethostname()}:{os.getpid()}",
    )
