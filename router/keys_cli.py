"""``switchboard keys``: issue, revoke and list virtual keys in the gateway's own store.

The store is the one the gateway uses with the same settings: PostgreSQL when ``SWITCHBOARD_DATABASE_URL`` is set,
else ``<data dir>/keys.sqlite3``. A running gateway sees new keys and revocations within its cache TTL (5 s).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from router.db import open_postgres
from router.keys import STORE_ERRORS, IssuedKey, KeyRecord, KeyRing, KeySpec, KeyStoreUnavailable, build_key_store
from router.settings import Settings

T = TypeVar("T")


def _store_options(command: Callable[..., None]) -> Callable[..., None]:
    @click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SWITCHBOARD_DATA_DIR",
        help="Gateway data directory holding keys.sqlite3 (default .switchboard).",
    )
    @click.option("--database-url", envvar="SWITCHBOARD_DATABASE_URL", help="Use the keys in this PostgreSQL.")
    @functools.wraps(command)
    def wrapper(data_dir: Path | None, database_url: str | None, **kwargs: Any) -> None:
        options: dict[str, Any] = {"database_url": database_url}
        if data_dir is not None:
            options["data_dir"] = data_dir
        command(Settings(**options), **kwargs)

    return wrapper


def _run(settings: Settings, operation: Callable[[KeyRing], Awaitable[T]]) -> T:
    async def run() -> T:
        try:
            postgres = await open_postgres(settings.database_url, max_size=1) if settings.database_url else None
        except STORE_ERRORS as exc:
            raise click.ClickException(f"the key store is unavailable: {exc}") from exc
        ring = KeyRing(build_key_store(settings, postgres))
        try:
            return await operation(ring)
        except KeyStoreUnavailable as exc:
            raise click.ClickException(exc.message) from exc
        finally:
            await ring.aclose()
            if postgres is not None:
                await postgres.close()

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
    settings: Settings,
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
    issued: IssuedKey = _run(settings, lambda r: r.create(spec))
    click.echo(_describe(issued.record))
    click.echo(issued.key)
    click.echo("Store this key now: it cannot be shown again.", err=True)


@keys.command("revoke")
@_store_options
@click.argument("key_id")
def revoke(settings: Settings, key_id: str) -> None:
    """Revoke a key (gateways stop accepting it within their cache TTL, a few seconds)."""
    record = _run(settings, lambda r: r.revoke(key_id))
    if record is None:
        raise click.ClickException(f"no key '{key_id}'")
    click.echo(_describe(record))


@keys.command("list")
@_store_options
@click.option("--tenant", help="Only this tenant's keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
def list_keys(settings: Settings, tenant: str | None, as_json: bool) -> None:
    """List keys (never their material)."""
    for record in _run(settings, lambda r: r.list(tenant)):
        click.echo(record.model_dump_json() if as_json else _describe(record))
