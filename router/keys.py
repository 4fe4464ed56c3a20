"""Virtual API keys: one per tenant (and optionally agent), with tier/model limits and rate limits.

Key material is ``sb-<key_id>-<secret>``. It is shown once, when the key is issued, and stored only as the
SHA-256 of the whole key: a lookup parses the key id, fetches that key's record and compares digests in
constant time. The plaintext is never stored and never logged; ``IssuedKey`` keeps it out of its ``repr``.

Keys live in the system of record: ``PostgresKeyStore`` (``SWITCHBOARD_DATABASE_URL``, shared by replicas) or
``SQLiteKeyStore`` (``data_dir/keys.sqlite3``, shared by the workers of one host and the CLI). ``KeyRing`` adds
key generation, verification and a short in-process cache in front of either; no cache (and no Redis) is ever
the authority.

Cache bound: a key revoked through this process stops working at once; a key revoked through another
replica or the CLI keeps working here for at most ``cache_ttl_s`` (5 s by default). Fail closed: an answer
older than that is never used, so while the store is unreachable lookups answer 503, and a process that
cannot tell whether keys were ever issued answers 503 rather than serving without a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Generic, Protocol, TypeVar

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from redis.asyncio import Redis

from router.errors import GatewayError
from router.redisclient import REDIS_ERRORS, SharedRedis, decoded
from router.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

KEY_PREFIX = "sb"
_KEY_ID_BYTES = 6
_SECRET_BYTES = 32
_KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}-([0-9a-f]{{{2 * _KEY_ID_BYTES}}})-[A-Za-z0-9_-]{{20,}}$")

Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class KeySpec(BaseModel):
    """What an operator asks for: whose key it is and what it may do (``None``: no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: Identifier
    agent: Identifier | None = None
    name: str | None = Field(default=None, max_length=200)
    allowed_tiers: list[Identifier] | None = Field(default=None, min_length=1)
    allowed_models: list[Identifier] | None = Field(default=None, min_length=1)
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute.")
    tpm: int | None = Field(default=None, gt=0, description="Tokens per minute (prompt estimate + max output).")


class KeyRecord(KeySpec):
    """A key as stored and listed: never its material, never its hash."""

    key_id: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class IssuedKey(BaseModel):
    """A new key: the only time its material exists outside the caller's hands."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(repr=False, description="The key material; shown once, stored only as a hash.")
    record: KeyRecord


@dataclass(frozen=True, slots=True)
class StoredKey:
    record: KeyRecord
    key_hash: str


class KeyStoreUnavailable(GatewayError):
    """The key store cannot be reached (for a lookup: and this process has no earlier answer): neither 401 nor 200."""

    status_code = 503
    default_code = "key_store_unavailable"


class KeyStore(Protocol):
    """Where key records and their hashes live."""

    async def add(self, record: KeyRecord, key_hash: str) -> None: ...

    async def adopt(self, record: KeyRecord, key_hash: str) -> bool:
        """Add a key made elsewhere (with its revocation) unless its id is stored already; whether it was added."""
        ...

    async def get(self, key_id: str) -> StoredKey | None: ...

    async def revoke(self, key_id: str, revoked_at: datetime) -> KeyRecord | None:
        """Mark the key revoked (keeping the first revocation time); ``None`` if there is no such key."""
        ...

    async def list(self, tenant: str | None = None) -> list[KeyRecord]:
        """Keys in creation order, of one tenant or of all."""
        ...

    async def issued_any(self) -> bool:
        """Whether any key was ever issued (revoked ones count: revoking the last key must not open the gateway)."""
        ...

    async def aclose(self) -> None: ...


def hash_key(material: str) -> str:
    return hashlib.sha256(material.encode()).hexdigest()


def key_id_of(material: str) -> str | None:
    """The key id of well-formed key material, else ``None`` (without touching any store)."""
    match = _KEY_PATTERN.match(material)
    return match.group(1) if match else None


def new_key_material() -> tuple[str, str]:
    """(key id, key material)."""
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    return key_id, f"{KEY_PREFIX}-{key_id}-{secrets.token_urlsafe(_SECRET_BYTES)}"


def _record_from(record_json: str, revoked_at: str | datetime | None) -> KeyRecord:
    record = KeyRecord.model_validate_json(record_json)
    if revoked_at is None:
        return record
    when = revoked_at if isinstance(revoked_at, datetime) else datetime.fromisoformat(revoked_at)
    return record.model_copy(update={"revoked_at": when})


def _record_json(record: KeyRecord) -> str:
    # Revocation is stored beside the record, so revoking never rewrites it.
    return record.model_copy(update={"revoked_at": None}).model_dump_json()


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant, created_at);
"""


class SQLiteKeyStore:
    """Keys in a SQLite file (WAL), safe to share between the workers of one host and the CLI."""

    def __init__(self, path: Path, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SQLITE_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # A connection per operation: cheap for SQLite, and lookups are cached by the KeyRing anyway.
        return sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connect()
        try:
            return operation(connection)
        finally:
            connection.close()

    async def add(self, record: KeyRecord, key_hash: str) -> None:
        def insert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO api_keys (key_id, tenant, key_hash, record, created_at) VALUES (?, ?, ?, ?, ?)",
                (record.key_id, record.tenant, key_hash, _record_json(record), record.created_at.isoformat()),
            )

        await asyncio.to_thread(self._run, insert)

    async def adopt(self, record: KeyRecord, key_hash: str) -> bool:
        def insert(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "INSERT INTO api_keys (key_id, tenant, key_hash, record, created_at, revoked_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key_id) DO NOTHING",
                (
                    record.key_id,
                    record.tenant,
                    key_hash,
                    _record_json(record),
                    record.created_at.isoformat(),
                    record.revoked_at.isoformat() if record.revoked_at else None,
                ),
            )
            return cursor.rowcount == 1

        return await asyncio.to_thread(self._run, insert)

    async def get(self, key_id: str) -> StoredKey | None:
        def select(connection: sqlite3.Connection) -> StoredKey | None:
            row = connection.execute(
                "SELECT record, revoked_at, key_hash FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            return None if row is None else StoredKey(_record_from(row[0], row[1]), row[2])

        return await asyncio.to_thread(self._run, select)

    async def revoke(self, key_id: str, revoked_at: datetime) -> KeyRecord | None:
        def update(connection: sqlite3.Connection) -> KeyRecord | None:
            row = connection.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ? "
                "RETURNING record, revoked_at",
                (revoked_at.isoformat(), key_id),
            ).fetchone()
            return None if row is None else _record_from(row[0], row[1])

        return await asyncio.to_thread(self._run, update)

    async def list(self, tenant: str | None = None) -> list[KeyRecord]:
        def select(connection: sqlite3.Connection) -> list[KeyRecord]:
            if tenant is None:
                rows = connection.execute("SELECT record, revoked_at FROM api_keys ORDER BY created_at, key_id")
            else:
                rows = connection.execute(
                    "SELECT record, revoked_at FROM api_keys WHERE tenant = ? ORDER BY created_at, key_id", (tenant,)
                )
            return [_record_from(record, revoked) for record, revoked in rows]

        return await asyncio.to_thread(self._run, select)

    async def issued_any(self) -> bool:
        def exists(connection: sqlite3.Connection) -> bool:
            return connection.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None

        return await asyncio.to_thread(self._run, exists)

    async def aclose(self) -> None:
        return None


class PostgresKeyStore:
    """Keys in PostgreSQL (table ``api_keys``, schema by ``router/db/migrations``), shared by every replica.

    The pool belongs to the caller.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, record: KeyRecord, key_hash: str) -> None:
        await self._pool.execute(
            "INSERT INTO api_keys (key_id, tenant, key_hash, record, created_at) VALUES ($1, $2, $3, $4, $5)",
            record.key_id,
            record.tenant,
            key_hash,
            _record_json(record),
            record.created_at,
        )

    async def adopt(self, record: KeyRecord, key_hash: str) -> bool:
        status = await self._pool.execute(
            "INSERT INTO api_keys (key_id, tenant, key_hash, record, created_at, revoked_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id) DO NOTHING",
            record.key_id,
            record.tenant,
            key_hash,
            _record_json(record),
            record.created_at,
            record.revoked_at,
        )
        return bool(status == "INSERT 0 1")

    async def get(self, key_id: str) -> StoredKey | None:
        row = await self._pool.fetchrow("SELECT record, revoked_at, key_hash FROM api_keys WHERE key_id = $1", key_id)
        return None if row is None else StoredKey(_record_from(row[0], row[1]), row[2])

    async def revoke(self, key_id: str, revoked_at: datetime) -> KeyRecord | None:
        row = await self._pool.fetchrow(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE key_id = $2 RETURNING record, revoked_at",
            revoked_at,
            key_id,
        )
        return None if row is None else _record_from(row[0], row[1])

    async def list(self, tenant: str | None = None) -> list[KeyRecord]:
        if tenant is None:
            rows = await self._pool.fetch("SELECT record, revoked_at FROM api_keys ORDER BY created_at, key_id")
        else:
            rows = await self._pool.fetch(
                "SELECT record, revoked_at FROM api_keys WHERE tenant = $1 ORDER BY created_at, key_id", tenant
            )
        return [_record_from(row[0], row[1]) for row in rows]

    async def issued_any(self) -> bool:
        return bool(await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM api_keys)"))

    async def aclose(self) -> None:
        return None


STORE_ERRORS = (OSError, TimeoutError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


@contextlib.asynccontextmanager
async def _store_errors() -> AsyncIterator[None]:
    """Administrative operations cannot be answered from a cache: a failing store is a 503."""
    try:
        yield
    except STORE_ERRORS as exc:
        raise KeyStoreUnavailable(f"the key store is unavailable: {type(exc).__name__}") from exc


@dataclass(slots=True)
class _Cached(Generic[T]):
    value: T
    fetched_at: float


class KeyRing:
    """Issues, verifies, lists and revokes keys over a ``KeyStore``, caching lookups for ``cache_ttl_s``.

    When the store fails and the cached answer is older than ``cache_ttl_s`` (or there is none), it raises
    ``KeyStoreUnavailable`` (503): an expired answer could be a revoked key, or "no keys issued" long after
    the first was. Only "keys were issued" is cached for good, as keys are never deleted.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        cache_ttl_s: float = 5.0,
        max_cached: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._ttl = cache_ttl_s
        self._max_cached = max_cached
        self._clock = clock
        self._keys: OrderedDict[str, _Cached[StoredKey | None]] = OrderedDict()
        self._issued_any: _Cached[bool] | None = None
        self._degraded = False

    @property
    def degraded(self) -> bool:
        """True while the store fails (lookups not answered from a fresh cache entry get 503)."""
        return self._degraded

    async def create(self, spec: KeySpec) -> IssuedKey:
        key_id, material = new_key_material()
        record = KeyRecord(**spec.model_dump(), key_id=key_id, created_at=datetime.now(UTC))
        async with _store_errors():
            await self.store.add(record, hash_key(material))
        self._keys.pop(key_id, None)
        self._issued_any = _Cached(True, self._clock())
        logger.info("issued key %s for tenant %s", key_id, record.tenant)
        return IssuedKey(key=material, record=record)

    async def revoke(self, key_id: str) -> KeyRecord | None:
        async with _store_errors():
            record = await self.store.revoke(key_id, datetime.now(UTC))
        self._keys.pop(key_id, None)
        if record is not None:
            logger.info("revoked key %s of tenant %s", key_id, record.tenant)
        return record

    async def list(self, tenant: str | None = None) -> list[KeyRecord]:
        async with _store_errors():
            return await self.store.list(tenant)

    async def issued_any(self) -> bool:
        cached = self._issued_any
        if cached is not None and cached.value:
            return True  # keys are never deleted, so once issued always issued
        if cached is not None and self._clock() - cached.fetched_at < self._ttl:
            return False
        try:
            issued = await self.store.issued_any()
        except STORE_ERRORS as exc:
            raise self._unavailable(exc) from exc
        self._degraded = False
        self._issued_any = _Cached(issued, self._clock())
        return issued

    async def record(self, key_id: str) -> KeyRecord | None:
        """The record of a key id (cached), whatever its state; for callers that already authenticated it."""
        stored = await self._stored(key_id)
        return None if stored is None else stored.record

    async def authenticate(self, material: str) -> KeyRecord | None:
        """The active key this material is, or ``None`` (malformed, unknown, wrong secret or revoked)."""
        key_id = key_id_of(material)
        if key_id is None:
            return None
        stored = await self._stored(key_id)
        if stored is None or not hmac.compare_digest(hash_key(material), stored.key_hash):
            return None
        return stored.record if stored.record.active else None

    async def _stored(self, key_id: str) -> StoredKey | None:
        cached = self._keys.get(key_id)
        if cached is not None and self._clock() - cached.fetched_at < self._ttl:
            self._keys.move_to_end(key_id)
            return cached.value
        try:
            stored = await self.store.get(key_id)
        except STORE_ERRORS as exc:
            raise self._unavailable(exc) from exc
        self._degraded = False
        self._remember(key_id, stored)
        return stored

    def _unavailable(self, exc: BaseException) -> KeyStoreUnavailable:
        if not self._degraded:
            logger.warning("keys: store unavailable (%s); answering 503 until it is back", exc)
        self._degraded = True
        return KeyStoreUnavailable("the key store is unavailable; retry shortly")

    def _remember(self, key_id: str, stored: StoredKey | None) -> None:
        self._keys[key_id] = _Cached(stored, self._clock())
        self._keys.move_to_end(key_id)
        while len(self._keys) > self._max_cached:
            self._keys.popitem(last=False)

    async def aclose(self) -> None:
        await self.store.aclose()


LEGACY_REDIS_PREFIX = "switchboard:keys"  # where gateways before the system of record kept keys when REDIS_URL was set


async def import_redis_keys(redis: Redis, store: KeyStore, prefix: str = LEGACY_REDIS_PREFIX) -> int:
    """Copy the keys that older gateways kept only in Redis (the index ``<prefix>:all`` of key ids and a hash per
    key: record JSON, SHA-256, revocation time) into the system of record. Idempotent: a key already stored is kept
    as it is, except that a revocation made in Redis (by an older replica during a rolling upgrade) is applied,
    keeping the earliest revocation time. Redis is only read. Returns how many keys were added."""
    added = 0
    for key_id in await redis.zrange(f"{prefix}:all", 0, -1):
        fields = await redis.hmget(f"{prefix}:key:{decoded(key_id)}", ["record", "revoked_at", "hash"])
        record_json, revoked_at, key_hash = (None if value is None else decoded(value) for value in fields)
        if record_json is None or key_hash is None:
            continue
        record = _record_from(record_json, revoked_at)
        if await store.adopt(record, key_hash):
            added += 1
            logger.info("imported key %s of tenant %s from Redis", record.key_id, record.tenant)
        elif record.revoked_at is not None:
            await store.revoke(record.key_id, record.revoked_at)
    return added


async def import_legacy_keys(redis: SharedRedis, store: KeyStore) -> bool:
    """One attempt at ``import_redis_keys``; False (logged) if Redis or the store did not answer."""
    try:
        added = await import_redis_keys(redis.client, store)
    except (*REDIS_ERRORS, *STORE_ERRORS) as exc:
        logger.error("keys: could not import the keys older gateways kept in Redis (%s); retrying", exc)
        return False
    if added:
        logger.warning("keys: imported %d keys that existed only in Redis into the system of record", added)
    return True


async def import_legacy_keys_until_done(redis: SharedRedis, store: KeyStore, retry_s: float = 5.0) -> None:
    """For a start that found Redis down: until this succeeds, a replica on an empty store whose old keys exist
    only in Redis cannot know keys were issued (``SWITCHBOARD_REQUIRE_KEYS`` closes that gap)."""
    while not await import_legacy_keys(redis, store):
        await asyncio.sleep(retry_s)


def build_key_store(settings: Settings, postgres: asyncpg.Pool | None = None) -> KeyStore:
    """PostgreSQL when a pool of the system of record is given, else SQLite under the data directory."""
    if postgres is not None:
        return PostgresKeyStore(postgres)
    return SQLiteKeyStore(settings.data_dir / "keys.sqlite3")
