"""Names of the HTTP headers the gateway reads and writes: one definition each."""

REQUEST_ID = "x-switchboard-request-id"
TIER = "x-switchboard-tier"
MODEL = "x-switchboard-model"
DEPLOYMENT = "x-switchboard-deployment"
RULE = "x-switchboard-rule"
COST_USD = "x-switchboard-cost-usd"
BASELINE_COST_USD = "x-switchboard-baseline-cost-usd"
FALLBACKS = "x-switchboard-fallbacks"
POLICY_VERSION = "x-switchboard-policy-version"
INTENT = "x-switchboard-intent"
RISK = "x-switchboard-risk"
REASONS = "x-switchboard-reasons"
SIMULATED = "x-switchboard-simulated"
# "frontier->small": the policy's tier, and the best one the caller's key may use, which served instead.
CAPPED = "x-switchboard-capped"
# A hedge ran beside a slow attempt (router/providers/hedge.py): "first" or "hedge" won; the cancelled deployments.
HEDGE_WINNER = "x-switchboard-hedge-winner"
HEDGE_CANCELLED = "x-switchboard-hedge-cancelled"
# The policy recommends handing the call to a human ("recommended"), and why (router/voice/circles.py).
HANDOFF = "x-switchboard-handoff"
HANDOFF_REASON = "x-switchboard-handoff-reason"

# Set by agents.
CALL_ID = "x-call-id"
CALLER_ID = "x-caller-id"
TENANT = "x-tenant"
AGENT = "x-agent"
