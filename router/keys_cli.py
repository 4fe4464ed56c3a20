"""``switchboard keys``: issue, revoke and list virtual keys in the gateway's own store.

The store is the one the gateway uses with the same settings: Redis when ``REDIS_URL`` is set, else
``<data dir>/keys.sqlite3``. A running gateway sees new keys at once and revocations within its cache TTL.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from router.keys import IssuedKey, KeyRecord, KeyRing, KeySpec, KeyStoreUnavailable, build_key_store
from router.settings import Settings

T = TypeVar("T")
# The CLI talks to one store once; waiting a little longer than the gateway's hot-path timeout is fine here.
CLI_REDIS_TIMEOUT_SECONDS = 5.0


def _store_options(command: Callable[..., None]) -> Callable[..., None]:
    @click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SWITCHBOARD_DATA_DIR",
        help="Gateway data directory holding keys.sqlite3 (default .switchboard).",
    )
    @click.option("--redis-url", envvar=["SWITCHBOARD_REDIS_URL", "REDIS_URL"], help="Use the keys in this Redis.")
    @functools.wraps(command)
    def wrapper(data_dir: Path | None, redis_url: str | None, **kwargs: Any) -> None:
        options: dict[str, Any] = {"redis_url": redis_url}
        if data_dir is not None:
            options["data_dir"] = data_dir
        command(KeyRing(build_key_store(Settings(**options), CLI_REDIS_TIMEOUT_SECONDS)), **kwargs)

    return wrapper


def _run(ring: KeyRing, operation: Callable[[KeyRing], Awaitable[T]]) -> T:
    async def run() -> T:
        try:
            return await operation(ring)
        except KeyStoreUnavailable as exc:
            raise click.ClickException(exc.message) from exc
        finally:
            await ring.aclose()

    return asyncio.run(run())


def _names(values: tuple[str, ...]) -> list[str] | None:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


def _describe(record: KeyRecord) -> str:
    limits = [
        f"tiers={','.join(record.allowed_tiers)}" if record.allowed_tiers else "",
        f"models={','.join(record.allowed_models)}" if record.allowed_models else "",
        f"rpm={record.rpm}" if record.rpm else "",
        f"tpm={record.tpm}" if record.tpm else "",
    ]
    state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
    return "  ".join(
        part
        for part in (
            record.key_id,
            f"tenant={record.tenant}",
            f"agent={record.agent}" if record.agent else "",
            f"name={record.name}" if record.name else "",
            *limits,
            f"created {record.created_at:%Y-%m-%d %H:%M}",
            state,
        )
        if part
    )


@click.group("keys")
def keys() -> None:
    """Virtual API keys: one per tenant (and agent), with tier, model and rate limits."""


@keys.command("create")
@_store_options
@click.option("--tenant", required=True)
@click.option("--agent", help="Pin the key to one agent (X-Agent cannot change it).")
@click.option("--name", help="A label for people.")
@click.option("--tiers", multiple=True, help="Allowed tiers, comma-separated (default: all).")
@click.option("--models", multiple=True, help="Allowed deployments, comma-separated (default: all).")
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute.")
def create(
    ring: KeyRing,
    tenant: str,
    agent: str | None,
    name: str | None,
    tiers: tuple[str, ...],
    models: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
) -> None:
    """Issue a key and print it: it is shown this once and stored only as a hash."""
    try:
        spec = KeySpec(
            tenant=tenant,
            agent=agent,
            name=name,
            allowed_tiers=_names(tiers),
            allowed_models=_names(models),
            rpm=rpm,
            tpm=tpm,
        )
    except ValidationError as exc:
        raise click.BadParameter(str(exc)) from exc
    issued: IssuedKey = _run(ring, lambda r: r.create(spec))
    click.echo(_describe(issued.record))
    click.echo(issued.key)
    click.echo("Store this key now: it cannot be shown again.", err=True)


@keys.command("revoke")
@_store_options
@click.argument("key_id")
def revoke(ring: KeyRing, key_id: str) -> None:
    """Revoke a key (gateways stop accepting it within their cache TTL, a few seconds)."""
    record = _run(ring, lambda r: r.revoke(key_id))
    if record is None:
        raise click.ClickException(f"no key '{key_id}'")
    click.echo(_describe(record))


@keys.command("list")
@_store_options
@click.option("--tenant", help="Only this tenant's keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
def list_keys(ring: KeyRing, tenant: str | None, as_json: bool) -> None:
    """List keys (never their material)."""
    for record in _run(ring, lambda r: r.list(tenant)):
        click.echo(record.model_dump_json() if as_json else _describe(record))
