"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/k8s/) agree with each other and with the app.

Nothing here can start Docker, Compose or Kubernetes (deploy/test-image.sh builds and runs the image); these tests
parse the files and check every reference between them: ports, names, mounted paths, probe routes, environment
variables the settings read, and the configs and policies they ship.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from router.app import create_app
from router.config import GatewayConfig, load_config
from router.policy.store import load_policy
from router.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"


def settings_env_names() -> set[str]:
    """Every environment variable router/settings.py reads."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.update(str(choice) for choice in choices) if choices else names.add(f"{prefix}{name}".upper())
    return names


def app_routes() -> set[str]:
    """The paths the gateway serves, as its OpenAPI document lists them."""
    return set(create_app(Settings()).openapi()["paths"])


class Dockerfile:
    def __init__(self, path: Path) -> None:
        # Continuation lines joined: one instruction per entry.
        text = re.sub(r"\\\n", " ", path.read_text())
        self.instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]

    def final_stage(self) -> list[str]:
        starts = [i for i, line in enumerate(self.instructions) if line.upper().startswith("FROM ")]
        return self.instructions[starts[-1] :]

    def last(self, keyword: str) -> str:
        values = [line.split(None, 1)[1] for line in self.final_stage() if line.upper().startswith(keyword + " ")]
        assert values, f"the final stage has no {keyword}"
        return values[-1]


DOCKERFILE = Dockerfile(REPO / "Dockerfile")


def image_port() -> int:
    return int(DOCKERFILE.last("EXPOSE").split("/")[0])


def image_uid() -> int:
    return int(DOCKERFILE.last("USER").split(":")[0])


def test_the_image_is_multi_stage_non_root_and_serves_with_a_healthcheck() -> None:
    froms = [line for line in DOCKERFILE.instructions if line.upper().startswith("FROM ")]
    assert len(froms) >= 2 and all("debian:bookworm-slim" in line for line in froms)
    assert image_uid() != 0
    assert "/healthz" in DOCKERFILE.last("HEALTHCHECK") and "/healthz" in app_routes()
    assert DOCKERFILE.last("ENTRYPOINT") == '["switchboard", "serve"]'
    environment = " ".join(line for line in DOCKERFILE.final_stage() if line.upper().startswith("ENV "))
    assert "SWITCHBOARD_HOST=0.0.0.0" in environment
    assert f"SWITCHBOARD_PORT={image_port()}" in environment
    # The final stage installs a runtime only; the wheel is built and installed in the builder.
    runs = " ".join(line for line in DOCKERFILE.final_stage() if line.upper().startswith("RUN "))
    assert "pip " not in runs and not re.search(r"\b(gcc|build-essential|python3.11-venv|python3-pip)\b", runs)
    assert "pip install -e" not in " ".join(DOCKERFILE.instructions)


# --- deploy/compose.yaml ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def gateways(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items() if name.startswith("gateway-")}


def interpolated(value: str) -> str:
    """A compose value with its ``${VARIABLE...}`` references filled in (with a placeholder)."""
    return re.sub(r"\$\{[^}]*\}", "placeholder", value)


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def test_compose_runs_two_identical_gateway_replicas_on_the_shared_stores(compose: dict[str, Any]) -> None:
    replicas = gateways(compose)
    assert len(replicas) == 2
    first, second = replicas.values()
    assert first["environment"] == second["environment"] and first["image"] == second["image"]
    assert (DEPLOY / first["build"]["context"] / first["build"]["dockerfile"]).resolve() == REPO / "Dockerfile"
    published = [port for service in replicas.values() for port in service["ports"]]
    assert all(port.endswith(f":{image_port()}") for port in published) and len(set(published)) == 2
    # Every SWITCHBOARD_ variable is one the settings read, and the stores are the compose services.
    environment = first["environment"]
    assert {name for name in environment if name.startswith("SWITCHBOARD_")} <= settings_env_names()
    assert urlsplit(environment["SWITCHBOARD_REDIS_URL"]).hostname in compose["services"]
    database = urlsplit(interpolated(environment["SWITCHBOARD_DATABASE_URL"]))
    postgres = compose["services"]["postgres"]["environment"]
    assert database.hostname == "postgres" and database.port == 5432
    assert database.username == postgres["POSTGRES_USER"] and database.path == f"/{postgres['POSTGRES_DB']}"
    for name, service in compose["services"].items():
        depends = service.get("depends_on", {})
        for dependency, spec in (depends if isinstance(depends, dict) else {key: {} for key in depends}).items():
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"
            if spec.get("condition") == "service_healthy":
                # The gateways' health check is the image's HEALTHCHECK; the others declare theirs.
                assert dependency.startswith("gateway-") or "healthcheck" in compose["services"][dependency]


def test_compose_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name} mounts missing {source} at {target}"


def test_prometheus_scrapes_every_replica_and_loads_the_shipped_rules(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    mounts = bind_mounts(service)
    config_path = next(arg.split("=", 1)[1] for arg in service["command"] if arg.startswith("--config.file="))
    config = yaml.safe_load(mounts[config_path].read_text())
    rules = [mounts[path] for path in config["rule_files"]]
    assert rules == [REPO / "dashboards" / "rules" / "switchboard.rules.yaml"]
    assert yaml.safe_load(rules[0].read_text())["groups"]
    (job,) = config["scrape_configs"]
    assert job.get("metrics_path", "/metrics") in app_routes()
    targets = {target for static in job["static_configs"] for target in static["targets"]}
    assert targets == {f"{name}:{image_port()}" for name in gateways(compose)}


def test_grafana_is_provisioned_with_the_shipped_dashboards_and_both_datasources(compose: dict[str, Any]) -> None:
    service = compose["services"]["grafana"]
    mounts = bind_mounts(service)
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == REPO / "dashboards" / "provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "switchboard.yaml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert {p.name for p in dashboards.glob("*.json")} == {"calls.json", "finance.json", "operations.json"}
    datasources = yaml.safe_load((provisioning / "datasources" / "switchboard.yaml").read_text())["datasources"]
    by_type = {source["type"]: source for source in datasources}
    prometheus = urlsplit(by_type["prometheus"]["url"])
    assert prometheus.hostname in compose["services"] and f":{prometheus.port}" in str(
        compose["services"]["prometheus"]["ports"]
    )
    postgresql = by_type["grafana-postgresql-datasource"]
    host, port = postgresql["url"].split(":")
    assert host in compose["services"] and port == "5432"
    assert postgresql["jsonData"]["database"] == compose["services"]["postgres"]["environment"]["POSTGRES_DB"]
    password_variable = postgresql["secureJsonData"]["password"].lstrip("$")
    assert password_variable in service["environment"]
    # The role Grafana logs in as is the one deploy/postgres/grafana-reader.sql creates, run after the ledger exists.
    reader = compose["services"]["grafana-reader"]
    sql = bind_mounts(reader)["/grafana-reader.sql"].read_text()
    assert f"CREATE ROLE {postgresql['user']} " in sql and f"GRANT SELECT ON ledger TO {postgresql['user']}" in sql
    assert password_variable in reader["environment"]
    assert reader["depends_on"]["gateway-1"]["condition"] == "service_healthy"


# --- deploy/k8s -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """kind -> manifest, for every resource the kustomization lists."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    documents = [yaml.safe_load((K8S / name).read_text()) for name in kustomization["resources"]]
    by_kind = {document["kind"]: document for document in documents}
    assert len(by_kind) == len(documents)
    return by_kind


def container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (gateway,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return gateway


def test_k8s_has_every_resource_and_the_selectors_match(manifests: dict[str, dict[str, Any]]) -> None:
    assert set(manifests) == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment = manifests["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = manifests["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = container(manifests)["ports"]
    assert port["containerPort"] == image_port()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"] and hpa["minReplicas"] >= 2


def test_k8s_probes_resources_and_user(manifests: dict[str, dict[str, Any]]) -> None:
    gateway = container(manifests)
    routes = app_routes()
    port_name = gateway["ports"][0]["name"]
    probes = {kind: gateway[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz" and probes["livenessProbe"]["path"] == "/healthz"
    assert all(probe["path"] in routes and probe["port"] == port_name for probe in probes.values())
    # The HPA's utilisation is relative to the CPU request: without one it cannot scale.
    assert {"cpu", "memory"} <= gateway["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= gateway["resources"]["limits"].keys()
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == image_uid()
    assert pod["securityContext"]["runAsGroup"] == image_uid()
    annotations = manifests["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes and int(annotations["prometheus.io/port"]) == image_port()


def test_k8s_environment_is_read_by_the_settings_or_named_by_the_config(manifests: dict[str, dict[str, Any]]) -> None:
    gateway = container(manifests)
    environment = {variable["name"]: variable for variable in gateway["env"]}
    config = GatewayConfig.model_validate(yaml.safe_load(manifests["ConfigMap"]["data"]["gateway.yaml"]))
    key_variables = {d.api_key_env for d in config.deployments if d.api_key_env}
    assert set(environment) == {n for n in environment if n.startswith("SWITCHBOARD_")} | key_variables
    assert {n for n in environment if n.startswith("SWITCHBOARD_")} <= settings_env_names()
    # Provider keys, the admin key and the database URL (it holds a password) come from Secrets, never inline.
    for name in key_variables | {"SWITCHBOARD_ADMIN_KEY", "SWITCHBOARD_DATABASE_URL"}:
        assert "secretKeyRef" in environment[name].get("valueFrom", {}), name
    # The README's `kubectl create secret` commands create exactly the Secrets and keys the Deployment reads.
    wanted = {
        (v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
        for v in environment.values()
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    readme = (REPO / "README.md").read_text()
    created = {
        (secret, key)
        for secret, literals in re.findall(r"kubectl create secret generic (\S+)((?: +--from-literal=\S+)+)", readme)
        for key in re.findall(r"--from-literal=([^=\s]+)=", literals)
    }
    assert created == wanted


def test_k8s_configmap_holds_a_valid_config_and_the_shipped_default_policy(
    manifests: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    configmap = manifests["ConfigMap"]
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    (mount,) = [m for m in container(manifests)["volumeMounts"] if m["name"] == volume["name"]]
    environment = {v["name"]: v.get("value") for v in container(manifests)["env"]}
    config_path = Path(environment["SWITCHBOARD_CONFIG"])
    assert config_path.parent == Path(mount["mountPath"]) and config_path.name in configmap["data"]
    # The mounted folder, rebuilt here: the config loads and its policy (relative to it) loads against it.
    for name, text in configmap["data"].items():
        (tmp_path / name).write_text(text)
    loaded = load_config(tmp_path / config_path.name)
    policy_path = loaded.policy_path()
    assert policy_path.parent == tmp_path and policy_path.name in configmap["data"]
    load_policy(policy_path, loaded.config)
    assert configmap["data"][policy_path.name] == (REPO / "policies" / "default.yaml").read_text(), (
        "deploy/k8s/configmap.yaml's policy is policies/default.yaml verbatim: copy it over"
    )


# --- the compose stack's own files, run against the real programs -----------------------------------------------


def psql(url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-X", "-q", *arguments], capture_output=True, text=True, timeout=60
    )


@pytest.mark.e2e
def test_grafana_reader_role_reads_the_ledger_and_nothing_else(postgres_url: str) -> None:
    """deploy/postgres/grafana-reader.sql on a real PostgreSQL that the gateway's migrations set up."""
    from router.db import migrate

    migrate(postgres_url)
    script = str(DEPLOY / "postgres" / "grafana-reader.sql")
    for _ in range(2):  # idempotent: the one-shot compose service may run again
        result = psql(postgres_url, "-v", "password=s3cret'quote", "-f", script)
        assert result.returncode == 0, result.stderr
    reader = urlsplit(postgres_url)._replace(netloc=f"grafana_reader@{urlsplit(postgres_url).netloc.split('@')[1]}")
    assert psql(reader.geturl(), "-c", "SELECT count(*) FROM ledger").returncode == 0
    for table in ("api_keys", "policy_versions"):
        denied = psql(reader.geturl(), "-c", f"SELECT count(*) FROM {table}")
        assert denied.returncode != 0 and "permission denied" in denied.stderr
    assert psql(reader.geturl(), "-c", "DELETE FROM ledger").returncode != 0


@pytest.mark.e2e
def test_promtool_accepts_the_compose_prometheus_config(compose: dict[str, Any], tmp_path: Path) -> None:
    """Prometheus' own checker on deploy/prometheus/prometheus.yml, with the mounts laid out as compose does."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool missing: apt-get install prometheus (.ci/run does)")
    mounts = bind_mounts(compose["services"]["prometheus"])
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    config["rule_files"] = [str(mounts[path]) for path in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
