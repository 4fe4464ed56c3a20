"""How each simulated model behaves: latency, answer length, cache hits and fault rates."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

WILDCARD_MODEL = "*"


class ModelBehaviour(BaseModel):
    """The behaviour of one simulated model; every default describes an instant, faultless upstream."""

    # Typos in a YAML file must fail loudly, not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = Field(0, ge=0, description="Delay before the first byte of a stream or of a non-stream answer.")
    tokens_per_second: float | None = Field(
        None,
        gt=0,
        description="Pace of streamed tokens (a non-stream answer also waits for all of them); None: instant.",
    )
    output_tokens: int = Field(24, ge=0, description="Length of a text answer before max_tokens caps it.")
    cached_prompt_ratio: float = Field(0, ge=0, le=1, description="Share of prompt tokens reported as cached.")
    reasoning_tokens: int = Field(0, ge=0, description="Hidden reasoning tokens billed as completion tokens.")
    rate_429: float = Field(0, ge=0, le=1)
    rate_500: float = Field(0, ge=0, le=1)
    rate_timeout: float = Field(0, ge=0, le=1)
    rate_drop: float = Field(0, ge=0, le=1)
    rate_401: float = Field(
        0, ge=0, le=1, description="The provider rejects the key: 401 naming its suffix and the organisation."
    )
    retry_after_seconds: float = Field(1, ge=0, description="Sent as Retry-After with a 429.")
    timeout_hang_seconds: float = Field(30, ge=0, description="How long a timeout fault hangs before answering.")
    drop_after_chunks: int = Field(3, ge=0, description="SSE events a dropped stream sends before it breaks.")
    oversized_event_bytes: int = Field(
        0,
        ge=0,
        description="If set, a stream's event after drop_after_chunks carries this many bytes of content on one line.",
    )
    rate_slow_first_token: float = Field(
        0, ge=0, le=1, description="Requests accepted and then silent for slow_first_token_ms before the answer."
    )
    slow_first_token_ms: float = Field(3000, ge=0, description="The first-token delay of a slow request.")
    rate_stall: float = Field(
        0, ge=0, le=1, description="Streams that go silent for stall_ms after stall_after_chunks events, then go on."
    )
    stall_after_chunks: int = Field(3, ge=1, description="SSE events a stalling stream sends before its silence.")
    stall_ms: float = Field(10_000, ge=0, description="How long a stalling stream stays silent mid-answer.")

    @model_validator(mode="after")
    def _fault_rates_are_exclusive(self) -> ModelBehaviour:
        # One uniform draw per request picks at most one fault, so the rates share a single unit interval.
        total = (
            self.rate_429
            + self.rate_500
            + self.rate_timeout
            + self.rate_drop
            + self.rate_401
            + self.rate_slow_first_token
            + self.rate_stall
        )
        if total > 1 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}; at most one fault applies per request")
        return self


class SimulatorSettings(BaseModel):
    """The simulator's configuration: behaviours by model name, with ``"*"`` for any other name.

    ``SimulatorSettings()`` answers every model instantly; ``default()`` mimics real latencies.
    Without a ``"*"`` entry, unknown model names get a 404 ``model_not_found``, as from a real upstream.
    """

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelBehaviour] = Field(default_factory=lambda: {WILDCARD_MODEL: ModelBehaviour()})
    seed: int | None = Field(None, description="Makes the fault sequence repeatable (restarted by a reset).")
    usage_in_stream: bool = Field(
        True, description="False emulates upstreams that never send usage in OpenAI streams, even if asked."
    )

    def behaviour_for(self, model: str) -> ModelBehaviour | None:
        """The behaviour configured for ``model``, else the ``"*"`` one, else None (unknown model)."""
        behaviour = self.models.get(model)
        return behaviour if behaviour is not None else self.models.get(WILDCARD_MODEL)

    def served_model_names(self) -> list[str]:
        """The configured model names, without the wildcard."""
        return [name for name in self.models if name != WILDCARD_MODEL]

    @classmethod
    def from_yaml(cls, path: str | Path) -> SimulatorSettings:
        """Load settings from a YAML file shaped like this model; an empty file gives the defaults."""
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return cls.model_validate(document)

    @classmethod
    def default(cls) -> SimulatorSettings:
        """Models shaped like the gateway's embedded tiers, with realistic latencies and no faults.

        Tests and benchmarks should pass ``instant()`` (or explicit zero-latency settings) instead.
        """
        return cls(
            models={
                "gpt-4o-mini": ModelBehaviour(ttft_ms=150, tokens_per_second=120, output_tokens=32),
                "gpt-4o": ModelBehaviour(ttft_ms=300, tokens_per_second=80, output_tokens=48, cached_prompt_ratio=0.25),
                "claude-sonnet-4-5": ModelBehaviour(
                    ttft_ms=600, tokens_per_second=60, output_tokens=64, cached_prompt_ratio=0.5
                ),
                WILDCARD_MODEL: ModelBehaviour(ttft_ms=200, tokens_per_second=100),
            }
        )

    @classmethod
    def instant(cls) -> SimulatorSettings:
        """The model names of ``default()``, all instant: the baseline for tests and benchmarks."""
        return cls(models={name: ModelBehaviour() for name in cls.default().models})
