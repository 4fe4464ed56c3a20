"""Virtual keys, their stores (SQLite and a real PostgreSQL), the authenticator and per-key rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from router.auth import Authenticator
from router.db import open_postgres
from router.errors import AuthenticationError, RateLimited
from router.keys import (
    KeyRecord,
    KeyRing,
    KeySpec,
    KeyStore,
    KeyStoreUnavailable,
    PostgresKeyStore,
    SQLiteKeyStore,
    hash_key,
    import_redis_keys,
    new_key_material,
)
from router.keys_cli import keys as keys_cli
from router.ratelimit import RateLimiter
from router.redisclient import SharedRedis
from router.types import Caller
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.start()  # a test may have stopped it
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.e2e)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    if request.param == "sqlite":
        yield SQLiteKeyStore(tmp_path / "keys.sqlite3")
        return
    pool = await open_postgres(request.getfixturevalue("postgres_url"))
    yield PostgresKeyStore(pool)
    await pool.close()


async def test_store_round_trip(store: KeyStore) -> None:
    ring = KeyRing(store)
    assert not await ring.issued_any()
    first = await ring.create(KeySpec(tenant="acme", agent="billing", name="prod", allowed_tiers=["small"], rpm=5))
    second = await ring.create(KeySpec(tenant="acme", allowed_models=["small-a"], tpm=1000))
    other = await ring.create(KeySpec(tenant="globex/eu"))
    assert await ring.issued_any()
    assert first.key.startswith(f"sb-{first.record.key_id}-")
    assert len({first.key, second.key, other.key}) == 3

    assert await ring.authenticate(first.key) == first.record
    assert await ring.authenticate(other.key) == other.record
    assert [r.key_id for r in await ring.list("acme")] == [first.record.key_id, second.record.key_id]
    assert [r.key_id for r in await ring.list("globex/eu")] == [other.record.key_id]
    assert [r.key_id for r in await ring.list()] == [r.record.key_id for r in (first, second, other)]
    assert await ring.list("nobody") == []

    revoked = await ring.revoke(first.record.key_id)
    assert revoked is not None and revoked.revoked_at is not None and not revoked.active
    again = await ring.revoke(first.record.key_id)
    assert again is not None and again.revoked_at == revoked.revoked_at  # the first revocation time stays
    assert await ring.revoke("0123456789ab") is None
    assert await ring.authenticate(first.key) is None
    assert await ring.authenticate(second.key) == second.record
    assert (await ring.list("acme"))[0] == revoked
    assert await ring.issued_any()  # revoked keys still count: revoking the last key must not open the gateway


async def test_only_the_exact_key_authenticates(store: KeyStore) -> None:
    ring = KeyRing(store)
    issued = await ring.create(KeySpec(tenant="acme"))
    key_id = issued.record.key_id
    secret = issued.key.split("-", 2)[2]
    forged_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    for attempt in (
        f"sb-{key_id}-{forged_secret}",
        f"sb-{key_id}-{secret}x",
        f"sb-0123456789ab-{secret}",
        issued.key.upper(),
        secret,
        key_id,
        "",
    ):
        assert await ring.authenticate(attempt) is None, attempt
    assert await ring.authenticate(issued.key) == issued.record


async def test_sqlite_holds_only_the_hash(tmp_path: Path) -> None:
    ring = KeyRing(SQLiteKeyStore(tmp_path / "keys.sqlite3"))
    issued = await ring.create(KeySpec(tenant="acme"))
    secret = issued.key.split("-", 2)[2]
    stored = await ring.store.get(issued.record.key_id)
    assert stored is not None and stored.key_hash == hash_key(issued.key)
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the database and its WAL
    assert hash_key(issued.key).encode() in files
    assert secret.encode() not in files and issued.key.encode() not in files
    assert issued.key not in repr(issued) and issued.key not in str(issued)


@pytest.mark.e2e
async def test_postgres_holds_only_the_hash(postgres_server: PostgresServer, postgres_url: str) -> None:
    pool = await open_postgres(postgres_url)
    issued = await KeyRing(PostgresKeyStore(pool)).create(KeySpec(tenant="acme", agent="billing"))
    await pool.close()
    database = postgres_url.rsplit("/", 1)[1]
    dumped = postgres_server.query("SELECT key_id || key_hash || record || tenant FROM api_keys", database)
    secret = issued.key.split("-", 2)[2]
    assert hash_key(issued.key) in dumped
    assert secret not in dumped and issued.key not in dumped


async def test_revocation_invalidates_this_process_at_once_and_others_within_the_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "keys.sqlite3"
    here = KeyRing(SQLiteKeyStore(path), cache_ttl_s=5.0, clock=clock)
    elsewhere = KeyRing(SQLiteKeyStore(path), cache_ttl_s=5.0, clock=clock)  # another worker on the same file
    issued = await here.create(KeySpec(tenant="acme"))
    assert await here.authenticate(issued.key) is not None
    assert await elsewhere.authenticate(issued.key) is not None

    await here.revoke(issued.record.key_id)
    assert await here.authenticate(issued.key) is None
    clock.now += 4.9
    assert await elsewhere.authenticate(issued.key) is not None  # served from its cache, as documented
    clock.now += 0.2
    assert await elsewhere.authenticate(issued.key) is None


async def test_fail_closed_while_the_store_is_down(tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    ring = KeyRing(SQLiteKeyStore(data / "keys.sqlite3"), cache_ttl_s=5.0, clock=clock)
    issued = await ring.create(KeySpec(tenant="acme"))
    assert await ring.authenticate(issued.key) is not None
    data.rename(tmp_path / "gone")  # the store cannot be opened any more
    clock.now += 4.9
    assert await ring.authenticate(issued.key) == issued.record  # a fresh cache entry is still the store's answer
    clock.now += 0.2
    with pytest.raises(KeyStoreUnavailable) as refused:  # an older one could be a revoked key
        await ring.authenticate(issued.key)
    assert refused.value.status_code == 503 and ring.degraded
    with pytest.raises(KeyStoreUnavailable):
        await ring.authenticate(f"sb-0123456789ab-{'x' * 43}")
    assert await ring.issued_any()  # once issued, always issued: never reopens
    with pytest.raises(KeyStoreUnavailable):  # administration needs the store itself
        await ring.revoke(issued.record.key_id)
    (tmp_path / "gone").rename(data)
    assert await ring.authenticate(issued.key) == issued.record
    assert not ring.degraded


async def test_unknown_whether_keys_exist_is_503_not_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ring = KeyRing(SQLiteKeyStore(data / "keys.sqlite3"))
    auth = Authenticator(None, ring, RateLimiter(ring))
    data.rename(tmp_path / "gone")
    with pytest.raises(KeyStoreUnavailable):
        await auth.caller({"x-tenant": "acme"})


def _ring_and_auth(tmp_path: Path, **options: bool) -> tuple[KeyRing, Authenticator]:
    ring = KeyRing(SQLiteKeyStore(tmp_path / "keys.sqlite3"))
    return ring, Authenticator("admin-secret", ring, RateLimiter(ring), **options)


async def test_open_until_a_key_is_issued_then_the_key_decides_tenant_and_agent(tmp_path: Path) -> None:
    ring, auth = _ring_and_auth(tmp_path)
    assert await auth.caller({"x-tenant": "acme", "x-agent": "bot", "authorization": "Bearer unused"}) == Caller(
        tenant="acme", agent="bot"
    )
    pinned = await ring.create(KeySpec(tenant="acme", agent="billing", allowed_tiers=["small"]))
    open_agent = await ring.create(KeySpec(tenant="acme", allowed_models=["small-a"]))
    with pytest.raises(AuthenticationError):
        await auth.caller({"x-tenant": "acme"})
    with pytest.raises(AuthenticationError):
        await auth.caller({"authorization": "Bearer sk-not-ours"})
    spoofed = {"authorization": f"Bearer {pinned.key}", "x-tenant": "globex", "x-agent": "support"}
    assert await auth.caller(spoofed) == Caller(
        tenant="acme",
        agent="billing",
        key_id=pinned.record.key_id,
        allowed_tiers=frozenset({"small"}),
        agent_pinned=True,
    )
    narrowed = await auth.caller({"authorization": f"bearer {open_agent.key}", "x-agent": "support"})
    assert (narrowed.tenant, narrowed.agent, narrowed.allowed_models) == ("acme", "support", frozenset({"small-a"}))
    assert not narrowed.agent_pinned


async def test_require_keys_refuses_callers_before_any_key_exists(tmp_path: Path) -> None:
    _, auth = _ring_and_auth(tmp_path, require_keys=True)
    with pytest.raises(AuthenticationError):
        await auth.caller({"x-tenant": "acme"})


def test_admin_key_is_compared_exactly(tmp_path: Path) -> None:
    _, auth = _ring_and_auth(tmp_path)
    auth.require_admin({"authorization": "Bearer admin-secret"})
    for headers in ({}, {"authorization": "Bearer admin-secre"}, {"authorization": "Basic admin-secret"}):
        with pytest.raises(AuthenticationError):
            auth.require_admin(headers)


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.e2e)])
async def limiter_parts(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[KeyRing, RateLimiter, FakeClock]]:
    clock = FakeClock(now=1_700_000_000.0 - 1_700_000_000.0 % 60 + 10)  # 10 s into a window
    ring = KeyRing(SQLiteKeyStore(tmp_path / "keys.sqlite3"))
    shared = SharedRedis(request.getfixturevalue("redis_url")) if request.param == "redis" else None
    yield ring, RateLimiter(ring, shared, clock=clock), clock
    if shared is not None:
        await shared.aclose()


def _caller(key_id: str) -> Caller:
    return Caller(tenant="acme", key_id=key_id)


async def test_rpm_holds_per_key_per_fixed_window(limiter_parts: tuple[KeyRing, RateLimiter, FakeClock]) -> None:
    ring, limiter, clock = limiter_parts
    limited = (await ring.create(KeySpec(tenant="acme", rpm=3))).record.key_id
    unlimited = (await ring.create(KeySpec(tenant="acme"))).record.key_id
    for _ in range(3):
        await limiter.admit_request(_caller(limited))
    with pytest.raises(RateLimited) as refused:
        await limiter.admit_request(_caller(limited))
    assert refused.value.status_code == 429 and refused.value.param == "rpm"
    assert refused.value.headers["retry-after"] == "50"
    for _ in range(20):
        await limiter.admit_request(_caller(unlimited))
    await limiter.admit_request(Caller(tenant="open"))  # keyless callers have no per-key limits
    clock.now += 50  # the next window
    for _ in range(3):
        await limiter.admit_request(_caller(limited))
    with pytest.raises(RateLimited):
        await limiter.admit_request(_caller(limited))


async def test_tpm_counts_tokens_and_refuses_what_cannot_fit(
    limiter_parts: tuple[KeyRing, RateLimiter, FakeClock],
) -> None:
    ring, limiter, clock = limiter_parts
    key_id = (await ring.create(KeySpec(tenant="acme", tpm=1000))).record.key_id
    with pytest.raises(RateLimited) as too_large:
        await limiter.check(_caller(key_id), 1001)
    assert too_large.value.param == "tpm" and "retry-after" not in too_large.value.headers
    await limiter.check(_caller(key_id), 600)  # the refused 1001 tokens were not counted
    await limiter.check(_caller(key_id), 400)
    with pytest.raises(RateLimited) as refused:
        await limiter.check(_caller(key_id), 1)
    assert refused.value.param == "tpm" and refused.value.headers["retry-after"] == "50"
    clock.now += 60
    await limiter.check(_caller(key_id), 1000)


@pytest.mark.e2e
async def test_rate_limits_are_shared_through_redis_and_survive_its_outage(
    tmp_path: Path, redis_url: str, redis_server: RedisServer
) -> None:
    ring = KeyRing(SQLiteKeyStore(tmp_path / "keys.sqlite3"))
    key_id = (await ring.create(KeySpec(tenant="acme", rpm=4))).record.key_id
    clock = FakeClock()
    shared = [SharedRedis(redis_url) for _ in range(2)]
    replicas = [RateLimiter(ring, redis, clock=clock) for redis in shared]
    for index in range(4):
        await replicas[index % 2].admit_request(_caller(key_id))
    for replica in replicas:
        with pytest.raises(RateLimited):
            await replica.admit_request(_caller(key_id))

    redis_server.stop(persist=False)
    for _ in range(4):  # Redis is down: never an error, counted in-process per replica
        await replicas[0].admit_request(_caller(key_id))
    assert replicas[0].degraded and shared[0].down
    with pytest.raises(RateLimited):
        await replicas[0].admit_request(_caller(key_id))
    redis_server.start()
    for client in shared:
        await client.aclose()


@pytest.mark.e2e
async def test_keys_kept_only_in_redis_by_older_gateways_are_imported_once(store: KeyStore, redis_url: str) -> None:
    """The layout of the Redis key store before the system of record: an index of ids and a hash per key."""
    created = datetime(2026, 11, 1, tzinfo=UTC)
    legacy = []
    with redis.Redis.from_url(redis_url) as client:
        for n, tenant in enumerate(("acme", "globex", "acme")):
            key_id, material = new_key_material()
            record = KeyRecord(tenant=tenant, key_id=key_id, created_at=created + timedelta(minutes=n), rpm=5)
            client.hset(
                f"switchboard:keys:key:{key_id}",
                mapping={"record": record.model_dump_json(), "hash": hash_key(material)},
            )
            client.zadd("switchboard:keys:all", {key_id: record.created_at.timestamp()})
            legacy.append((material, record))
        revoked_at = created + timedelta(days=1)
        client.hset(f"switchboard:keys:key:{legacy[1][1].key_id}", "revoked_at", revoked_at.isoformat())
    shared = SharedRedis(redis_url)
    assert not await store.issued_any()
    assert await import_redis_keys(shared.client, store) == 3
    assert await import_redis_keys(shared.client, store) == 0  # idempotent: every replica runs it at start
    ring = KeyRing(store)
    assert await ring.issued_any()
    assert await ring.authenticate(legacy[0][0]) == legacy[0][1]
    assert await ring.authenticate(legacy[1][0]) is None  # revoked in Redis stays revoked
    assert await ring.authenticate(legacy[0][0][:-1] + "x") is None
    listed = await ring.list()
    assert [r.key_id for r in listed] == [r.key_id for _, r in legacy]
    assert listed[1].revoked_at == revoked_at
    # An older replica revokes a key in Redis during a rolling upgrade: the next import applies it.
    with redis.Redis.from_url(redis_url) as client:
        client.hset(f"switchboard:keys:key:{legacy[2][1].key_id}", "revoked_at", revoked_at.isoformat())
    assert await import_redis_keys(shared.client, store) == 0
    assert not (await store.get(legacy[2][1].key_id)).record.active  # type: ignore[union-attr]
    await shared.aclose()


def test_cli_creates_lists_and_revokes_in_the_gateway_store(tmp_path: Path) -> None:
    runner = CliRunner()
    data_dir = str(tmp_path / "data")
    options = ["--data-dir", data_dir, "--tenant", "acme", "--agent", "billing", "--tiers", "small,standard"]
    created = runner.invoke(keys_cli, ["create", *options, "--rpm", "60"])
    assert created.exit_code == 0, created.output
    description, material = created.stdout.splitlines()
    key_id = description.split()[0]
    assert material.startswith(f"sb-{key_id}-")
    assert "tiers=small,standard" in description and "rpm=60" in description

    listed = runner.invoke(keys_cli, ["list", "--tenant", "acme"], env={"SWITCHBOARD_DATA_DIR": data_dir})
    assert listed.exit_code == 0 and key_id in listed.stdout and "active" in listed.stdout
    assert material not in listed.stdout
    assert runner.invoke(keys_cli, ["list", "--data-dir", data_dir, "--tenant", "globex"]).stdout == ""

    revoked = runner.invoke(keys_cli, ["revoke", "--data-dir", data_dir, key_id])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    missing = runner.invoke(keys_cli, ["revoke", "--data-dir", data_dir, "0123456789ab"])
    assert missing.exit_code != 0 and "no key" in missing.output
    invalid = runner.invoke(keys_cli, ["create", "--data-dir", data_dir, "--tenant", " "])
    assert invalid.exit_code != 0


@pytest.mark.e2e
def test_cli_uses_postgres_when_database_url_is_set(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("cli_keys")
    runner = CliRunner()
    created = runner.invoke(keys_cli, ["create", "--tenant", "acme"], env={"SWITCHBOARD_DATABASE_URL": url})
    assert created.exit_code == 0, created.output
    key_id = created.stdout.split()[0]
    assert postgres_server.query(f"SELECT tenant FROM api_keys WHERE key_id = '{key_id}'", "cli_keys") == "acme"
    assert not (tmp_path / ".switchboard").exists()
