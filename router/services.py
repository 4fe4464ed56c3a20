"""Everything a running gateway holds, built once at start-up and closed at shutdown (no module singletons)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router.accounting.budgets import BudgetEnforcer, BudgetPolicy, InProcessBudgets, RedisBudgets, SpendSource
from router.auth import Authenticator, build_authenticator
from router.classification import GatewayClassifier
from router.config import SIMULATOR_API_BASE, GatewayConfig, LoadedConfig, load_config
from router.db import open_postgres, record_policy_version
from router.gateway import Budgets, Gateway
from router.keys import import_legacy_keys, import_legacy_keys_until_done
from router.metrics import Metrics
from router.policy.store import PolicyStore, Vocabulary
from router.providers.base import Provider
from router.providers.chain import FallbackChain
from router.providers.health import BreakerState, DeploymentHealth
from router.providers.litellm_provider import LiteLLMProvider
from router.providers.openai_compatible import OpenAICompatibleProvider
from router.recorder import Recorder, build_recorder
from router.redisclient import DEGRADE_POLICY, SharedRedis
from router.settings import Settings
from router.state import InProcessState, RedisState, StateStore

if TYPE_CHECKING:
    import asyncpg

    from router.simulator import SimulatorServer

logger = logging.getLogger("switchboard")

# Redis is on the hot path: a slow Redis must degrade the gateway, never stall it.
REDIS_TIMEOUT_SECONDS = 1.0


@dataclass
class Services:
    settings: Settings
    loaded: LoadedConfig
    policies: PolicyStore
    gateway: Gateway
    auth: Authenticator
    metrics: Metrics
    recorder: Recorder
    closers: list[Any] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    simulator: SimulatorServer | None = None
    redis: SharedRedis | None = None

    @property
    def simulated(self) -> bool:
        return self.simulator is not None

    def degraded(self) -> list[str]:
        """Components running in a fallback mode; the gateway still serves."""
        problems = []
        ledger = self.recorder.ledger
        if not ledger.healthy:
            problems.append(f"ledger: sink unavailable, {ledger.spooled_batches} batches spooled locally")
        if self.redis is not None and self.redis.down:
            problems.append(
                f"redis: unreachable for {self.redis.down_for_s:.0f} s; "
                + "; ".join(f"{role}: {policy}" for role, policy in DEGRADE_POLICY.items())
            )
        budgets = self.gateway.budgets
        if budgets is not None and budgets.enforcer.degraded and not (self.redis and self.redis.down):
            problems.append("budgets: settlements waiting to be replayed to redis")
        if self.auth.keys.degraded:
            problems.append("keys: store unavailable, answering 503 to lookups not cached in the last 5 s")
        return problems

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for closer in reversed(self.closers):
            await closer()
        if self.simulator is not None:
            self.simulator.stop()


def build_state(settings: Settings, redis: SharedRedis | None) -> StateStore:
    if redis is None:
        return InProcessState(call_ttl_seconds=settings.call_ttl_seconds)
    return RedisState(redis, call_ttl_seconds=settings.call_ttl_seconds)


def build_budgets(config: GatewayConfig, spend: SpendSource, redis: SharedRedis | None) -> Budgets | None:
    if config.budgets is None:
        return None
    policy = BudgetPolicy(config.budgets)
    enforcer: BudgetEnforcer = (
        RedisBudgets(redis, policy, spend=spend) if redis is not None else InProcessBudgets(policy, spend)
    )
    return Budgets(policy, enforcer)


async def publish_budgets(budgets: Budgets, config: GatewayConfig, metrics: Metrics, interval: float = 5.0) -> None:
    """Keep the remaining-budget gauge of every configured tenant and agent fresh."""
    assert config.budgets is not None
    while True:
        for tenant, tenant_budget in config.budgets.tenants.items():
            # The tenant's own budgets once, then each agent's own (remaining() repeats the tenant's for agents).
            for agent, kind in ((None, "tenant"), *((agent, "agent") for agent in tenant_budget.agents)):
                try:
                    statuses = await budgets.enforcer.remaining(tenant, agent)
                except Exception:
                    logger.exception("could not read the budgets of %s", tenant)
                    continue
                for status in statuses:
                    if status.kind != kind or status.hard_usd is None or status.remaining_usd is None:
                        continue
                    labels = (status.kind, tenant, agent or "", status.window)
                    metrics.budget_remaining.labels(*labels).set(status.remaining_usd)
                    metrics.budget_limit.labels(*labels).set(status.hard_usd)
        await asyncio.sleep(interval)


def _as_async(function: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        function()

    return call


def _publish_policy(
    metrics: Metrics, policies: PolicyStore, postgres: asyncpg.Pool | None, writes: set[asyncio.Task[None]]
) -> None:
    """The active version to the metrics and, on PostgreSQL, to the policy version history (in the background)."""
    shadow = policies.shadow.version if policies.shadow else None
    metrics.publish_policy(policies.active.version, shadow)
    if postgres is not None:
        task = asyncio.get_running_loop().create_task(
            record_policy_version(postgres, policies.active.version, shadow, str(policies.active.path))
        )
        writes.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(lambda done: _forget_history_write(done, writes))


def _forget_history_write(task: asyncio.Task[None], writes: set[asyncio.Task[None]]) -> None:
    writes.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("could not record the policy version history: %s", task.exception())


def _start_simulator(loaded: LoadedConfig) -> SimulatorServer:
    from router.simulator import SimulatorServer, SimulatorSettings

    section = loaded.config.simulator
    settings = (
        SimulatorSettings.from_yaml(section.config if section.config.is_absolute() else loaded.folder / section.config)
        if section.config
        else SimulatorSettings.default()
    )
    server = SimulatorServer(settings)
    server.start()
    logger.warning(
        "SIMULATOR MODE: deployments with api_base 'simulator' are answered by the built-in local provider "
        "simulator at %s, not by a real model provider. Set SWITCHBOARD_CONFIG to use real providers.",
        server.base_url,
    )
    return server


async def build_services(settings: Settings) -> Services:
    loaded = load_config(settings.config)
    config = loaded.config
    simulator = None
    if config.simulator.embedded or any(d.is_simulated for d in config.deployments):
        simulator = await asyncio.to_thread(_start_simulator, loaded)
    fast_bases = {SIMULATOR_API_BASE: f"{simulator.base_url}/v1"} if simulator else {}
    litellm_bases = {SIMULATOR_API_BASE: simulator.base_url} if simulator else {}
    openai_compatible = OpenAICompatibleProvider(fast_bases)
    litellm = LiteLLMProvider(litellm_bases, serves=[d.name for d in config.deployments if not d.uses_fast_path])
    providers: dict[str, Provider] = {
        d.name: openai_compatible if d.uses_fast_path else litellm for d in config.deployments
    }
    classifier = await GatewayClassifier.load(settings.classifier_model) if settings.classifier == "on" else None
    policies = PolicyStore(
        loaded.policy_path(settings.policy),
        config,
        vocabulary=classifier.vocabulary if classifier else Vocabulary(),
        shadow_path=loaded.shadow_policy_path(),
        catalog_loader=classifier.catalog_loader(config.tiers) if classifier else None,
    )
    metrics = Metrics(label_values=settings.metrics_label_values, labelled_agents=settings.metrics_agents)
    postgres = await open_postgres(settings.database_url) if settings.database_url else None
    recorder = await build_recorder(settings, config, metrics, postgres)
    history_writes: set[asyncio.Task[None]] = set()
    policies.on_change = lambda loaded: _publish_policy(metrics, policies, postgres, history_writes)
    _publish_policy(metrics, policies, postgres, history_writes)
    # The one Redis client (one pool) of this process, shared by call state, budgets and rate limits.
    redis = (
        SharedRedis(settings.redis_url, timeout_s=REDIS_TIMEOUT_SECONDS, on_change=metrics.redis_up.set)
        if settings.redis_url
        else None
    )
    if redis is not None:
        await redis.connect()
    state = build_state(settings, redis)
    for deployment in config.deployments:
        metrics.circuit_open.labels(deployment.name).set(0)
    health = DeploymentHealth(
        config.breaker, lambda name, breaker: metrics.circuit_open.labels(name).set(breaker == BreakerState.OPEN)
    )
    budgets = build_budgets(config, recorder.ledger.sink, redis)
    if budgets is not None:
        await budgets.enforcer.rebuild()  # before the first reservation: a restart grants no fresh budget
    auth = build_authenticator(settings, redis, require_keys=settings.require_keys, postgres=postgres)
    # Keys older gateways kept only in Redis join the system of record before the first request is served.
    legacy_keys_imported = redis is None or await import_legacy_keys(redis, auth.keys.store)
    gateway = Gateway(
        config,
        policies,
        FallbackChain(config, providers, health),
        recorder,
        state,
        budgets=budgets,
        rate_limit=auth.limiter,
        classifier=classifier,
    )
    services = Services(
        settings=settings,
        loaded=loaded,
        policies=policies,
        gateway=gateway,
        auth=auth,
        metrics=metrics,
        recorder=recorder,
        closers=[openai_compatible.aclose, litellm.aclose, recorder.ledger.aclose, state.aclose, auth.aclose]
        + ([budgets.enforcer.aclose] if budgets else [])
        + ([classifier.aclose] if classifier else [])
        + ([recorder.traffic.aclose] if recorder.traffic else []),
        simulator=simulator,
        redis=redis,
    )
    if redis is not None:
        services.closers.insert(0, redis.aclose)  # after everything that uses it
        services.tasks.append(asyncio.create_task(redis.watch()))
    if redis is not None and not legacy_keys_imported:
        services.tasks.append(asyncio.create_task(import_legacy_keys_until_done(redis, auth.keys.store)))
    if postgres is not None:
        services.closers.insert(0, postgres.close)  # closed last, after everything that uses it
    services.tasks.append(asyncio.create_task(recorder.calls.run()))
    if budgets is not None:
        services.tasks.append(asyncio.create_task(publish_budgets(budgets, config, metrics)))
    services.closers.insert(0, _as_async(recorder.calls.finish_all))
    if settings.watch_policy:
        services.tasks.append(asyncio.create_task(policies.watch()))
    logger.info("policy %s active (%s)", policies.active.version, policies.active.path)
    return services
