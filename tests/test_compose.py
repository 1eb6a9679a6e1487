"""docker-compose.yaml cannot run here (no Docker engine): render it as compose would (tests/compose_file.py)
and check it against the code, and against production defaults that let someone in: a published port on
every interface, a credential with a default or a literal value, a job with more access than it needs.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from compose_file import (
    ANNOUNCED_COMMANDS,
    ANNOUNCED_SETTINGS,
    REPO_ROOT,
    SENTINEL,
    MissingVariable,
    env_file,
    environment,
    interpolate,
    load,
    render,
    render_fresh,
    required_variables,
)
from trackway.cli import build_parser
from trackway.config import load_settings

# Names that hold a credential: a password, key, token or secret, or a user name that is one (MinIO's root).
CREDENTIAL_NAME = re.compile(r"PASS|SECRET|KEY|TOKEN|CREDENTIAL|ROOT_USER", re.IGNORECASE)
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://(?P<user>[^/\s:@]+):(?P<password>[^/\s@]*)@", re.IGNORECASE)
SHELL_DEFAULT = re.compile(r"\$\{(?P<name>\w+):?[-=](?P<default>[^}]*)\}")
PIPELINE = ("airflow-scheduler", "airflow-dag-processor")  # the containers that run Trackway's tasks


@pytest.fixture(scope="module")
def document() -> dict:
    return load()


@pytest.fixture(scope="module")
def compose(document) -> dict:
    """A first ``docker compose up``: every required variable set, nothing else."""
    return render_fresh(document)


_ONLY_REQUIRED = re.compile("(?:" + re.escape(SENTINEL).replace(re.escape("{}"), r"\w+") + ")*")
# Trackway refuses a write key that is not source:key, so its checks get one.
WRITE_KEYS = {"TRACKWAY_WRITE_KEYS": "web:k1"}


def _only_required(value: str) -> bool:
    """Empty, or nothing but required variables: no default and no literal secret."""
    return _ONLY_REQUIRED.fullmatch(value) is not None


def _strings(node: Any, where: str = "") -> list[tuple[str, str]]:
    if isinstance(node, str):
        return [(where, node)]
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _strings(value, f"{where}.{key}")]
    if isinstance(node, list):
        return [pair for i, value in enumerate(node) for pair in _strings(value, f"{where}[{i}]")]
    return []


def _mounted_secret(service: dict, value: str, compose: dict) -> bool:
    """A path to a secret the service mounts (``/run/secrets/NAME``) whose file is a required variable."""
    name = value.removeprefix("/run/secrets/")
    secret = (compose.get("secrets") or {}).get(name) or {}
    mounted = [s if isinstance(s, str) else s.get("source") for s in service.get("secrets", [])]
    return value.startswith("/run/secrets/") and name in mounted and _only_required(str(secret.get("file", "")))


def credential_problems(compose: dict) -> list[str]:
    """Every credential a fresh ``docker compose up`` would fill from a default or a literal."""
    problems = []
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if _mounted_secret(service, value, compose):
                continue
            json_form = key.startswith("AIRFLOW_CONN_") and value.lstrip().startswith("{")  # Airflow's JSON form
            if json_form and not _only_required(str(json.loads(value).get("password", ""))):
                problems.append(f"{name}: {key} has a password that is a default or a literal")
            if CREDENTIAL_NAME.search(key) and not _only_required(value):
                problems.append(f"{name}: {key} has a default or a literal value")
    for where, text in _strings(compose):
        for match in URL_CREDENTIALS.finditer(text):
            if not _only_required(match["password"]) or not match["password"]:
                problems.append(f"{where}: URL with a password that is a default or a literal")
        for match in SHELL_DEFAULT.finditer(text):
            if CREDENTIAL_NAME.search(match["name"]) and match["default"]:
                problems.append(f"{where}: the shell default of {match['name']} is a credential")
    return problems


def published_ports(service: dict) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each published port, short or long syntax."""
    ports = []
    for spec in service.get("ports", []):
        if isinstance(spec, dict):
            ports.append((str(spec.get("host_ip", "")), str(spec.get("published", "")), str(spec["target"])))
            continue
        parts = str(spec).split("/")[0].split(":")  # as Docker's ParsePortSpec splits it
        host_ip = ":".join(parts[:-2]) if len(parts) > 2 else ""
        host_port = parts[-2] if len(parts) > 1 else ""
        ports.append((host_ip.strip("[]"), host_port, parts[-1]))
    return ports


def exposure_problems(compose: dict) -> list[str]:
    """Every port a fresh ``docker compose up`` would publish on all interfaces (or on anything but loopback)."""
    problems = []
    for name, service in compose["services"].items():
        if service.get("network_mode") == "host":
            problems.append(f"{name}: network_mode host publishes every port it opens")
        for host_ip, host_port, target in published_ports(service):
            try:
                loopback = ipaddress.ip_address(host_ip).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                problems.append(f"{name}: port {host_port or '(random)'}->{target} on {host_ip or 'every interface'}")
    return problems


# --- the checks themselves (they guard the file, so they are tested too) ---

FLAGGED_PORTS = ["8080:8080", "8080", "0.0.0.0:8080:8080", "[::]:8080:8080", "::8080:8080", {"target": 80}]
FLAGGED_PORTS += [{"target": 80, "published": 8080, "host_ip": "0.0.0.0"}, "${TRACKWAY_BIND:-0.0.0.0}:80:80"]
SAFE_PORTS = ["127.0.0.1:8080:8080", "[::1]:8080:8080/tcp", {"target": 80, "published": 8080, "host_ip": "127.0.0.1"}]


@pytest.mark.parametrize("spec", FLAGGED_PORTS, ids=str)
def test_a_port_on_every_interface_is_flagged(spec):
    assert exposure_problems(render_fresh({"services": {"s": {"ports": [spec]}}}))


@pytest.mark.parametrize("spec", SAFE_PORTS, ids=str)
def test_a_loopback_port_is_not_flagged(spec):
    assert exposure_problems(render_fresh({"services": {"s": {"ports": [spec]}}})) == []


FLAGGED_CREDENTIALS = [
    {"environment": {"POSTGRES_PASSWORD": "trackway"}},
    {"environment": ["POSTGRES_PASSWORD=trackway"]},
    {"environment": {"AWS_SECRET_ACCESS_KEY": "${MINIO_ROOT_PASSWORD:-trackway-secret}"}},
    {"environment": {"TRACKWAY_WRITE_KEYS": "${TRACKWAY_WRITE_KEYS:-web:change-me-web-key}"}},
    {"environment": {"MINIO_ROOT_USER": "${MINIO_ROOT_USER-trackway}"}},
    {"environment": {"AIRFLOW__API_AUTH__JWT_SECRET": "web:${S:?set S}"}},
    {"environment": {"DB": "${URL:-postgresql://trackway:${TRACKWAY_DB_PASSWORD:-trackway}@postgres/w}"}},
    {"environment": {"DB": "postgresql://u:p@h/db"}},
    {"command": "sh -c 'mc alias set local http://minio:9000 $${MINIO_ROOT_USER:-trackway} x'"},
    {"environment": {"AIRFLOW_CONN_X": '{"conn_type": "aws", "login": "u", "password": "${P:-minio123}"}'}},
]
SAFE_CREDENTIALS = [
    {"environment": {"POSTGRES_PASSWORD": "${P:?set P}", "GOOGLE_APPLICATION_CREDENTIALS": "${G:-}"}},
    {"environment": {"KEYS": "/run/secrets/k"}, "secrets": ["k"]},
    {"environment": {"AIRFLOW_CONN_X": '{"conn_type": "aws", "login": "u", "password": "${P:?set P}"}'}},
    {"environment": {"DB": "${URL:-postgresql://u:${P:?set P}@h/db}", "POSTGRES_USER": "trackway"}},
    {"command": 'sh -c \'mc alias set local http://minio:9000 "$$MINIO_ROOT_USER" "$$MINIO_ROOT_PASSWORD"\''},
]


# A mounted secret whose file is required is fine; one the service does not mount, or with a default file, is not.
FLAGGED_CREDENTIALS += [
    {"environment": {"KEYS": "/run/secrets/k"}},
    {"environment": {"KEYS": "/run/secrets/other"}, "secrets": ["k"]},
    {"environment": {"KEYS": "/run/secrets/other"}, "secrets": ["other"]},
]
SECRETS = {"k": {"file": "${K:?set K}"}, "other": {"file": "${O:-./keys.json}"}}


@pytest.mark.parametrize("service", FLAGGED_CREDENTIALS, ids=str)
def test_a_credential_with_a_default_or_a_literal_is_flagged(service):
    assert credential_problems(render_fresh({"services": {"s": service}, "secrets": SECRETS}))


@pytest.mark.parametrize("service", SAFE_CREDENTIALS, ids=str)
def test_a_required_credential_is_not_flagged(service):
    assert credential_problems(render_fresh({"services": {"s": service}, "secrets": SECRETS})) == []


def test_interpolation_follows_compose():
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("$$SET ${SET} $SET ${UNSET} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "$SET v v  d  d"
    assert interpolate("${UNSET:-a${SET}b}-${SET:-x}", env) == "avb-v"
    with pytest.raises(MissingVariable, match="EMPTY is missing a value: say why"):
        interpolate("${EMPTY:?say why}", env)
    assert interpolate("${EMPTY?say why}", env) == ""
    assert interpolate("${SET:-${UNSET:?needed}} ${SET:+alt} ${UNSET:+alt}", env) == "v alt "
    assert interpolate("${UNSET:-${EMPTY:-x}-${SET}}/${SET:?needs-no hyphen rule}", env) == "x-v/v"


# --- the file ---


def test_no_published_port_listens_beyond_loopback_by_default(compose):
    assert exposure_problems(compose) == []


def test_no_credential_has_a_default_or_a_literal_value(compose):
    assert credential_problems(compose) == []


def test_a_variable_opens_a_port_and_the_collector_has_its_own(document):
    opened = render_fresh(document, {"TRACKWAY_BIND": "0.0.0.0"})
    assert exposure_problems(opened) and all("collector" not in p for p in exposure_problems(opened))
    collector = render_fresh(document, {"TRACKWAY_COLLECTOR_BIND": "0.0.0.0"})
    assert [p.split(":")[0] for p in exposure_problems(collector)] == ["collector"]


def test_every_required_variable_says_what_to_set(document):
    required = required_variables(document)
    assert len(required) >= 15
    for name in required:
        env = {n: SENTINEL.format(n) for n in required if n != name}
        with pytest.raises(MissingVariable, match=rf"{name} is missing a value: set {name}"):
            render(document, {**env, name: ""})


def test_env_example_lists_every_required_variable_with_an_empty_secret(document):
    example = env_file(REPO_ROOT / ".env.example")
    required = required_variables(document)
    assert required - set(example) == set(), "add them to .env.example"
    used = set(re.findall(r"\$\{(\w+)", (REPO_ROOT / "docker-compose.yaml").read_text()))
    assert set(example) - used == set(), ".env.example names variables the compose file does not use"
    filled = {name for name, value in example.items() if CREDENTIAL_NAME.search(name) and value}
    assert filled == set(), "secrets in .env.example must be empty"
    with pytest.raises(MissingVariable):  # a copy nobody filled in does not start
        render(document, example)


def test_services_and_dependencies_exist(compose):
    services = compose["services"]
    assert {"postgres", "minio", "collector", "airflow-scheduler", "airflow-apiserver"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}) or {}:
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for network in service.get("networks", []):
            assert network in compose["networks"], f"{name} is on undeclared network {network}"


def test_build_context_and_mounted_files_exist(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            dockerfile = REPO_ROOT / build["context"] / build["dockerfile"]
            assert dockerfile.exists(), f"{name}: {dockerfile} missing"
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        assert (REPO_ROOT / source).exists(), f"Dockerfile copies missing {source}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"


def test_published_ports_are_unique(compose):
    published = [port for s in compose["services"].values() for _, port, _ in published_ports(s)]
    assert len(published) == len(set(published)), published


def _trackway_services(compose: dict) -> dict[str, dict[str, str]]:
    """The services that run Trackway code (the others use the image for Airflow alone)."""
    found = {n: environment(s) for n, s in compose["services"].items()}
    found = {n: env for n, env in found.items() if any(key.startswith("TRACKWAY_") for key in env)}
    trackway = {"collector", "gcp-init", "warehouse-init", "airflow-apiserver", "bi-render", "metabase-setup"}
    assert set(found) == {*trackway, *PIPELINE}
    return found


def test_trackway_environment_is_valid_configuration(document, monkeypatch):
    from trackway.config import SETTINGS

    registered = {s.name for s in SETTINGS if not s.internal} | ANNOUNCED_SETTINGS
    for name, env in _trackway_services(render_fresh(document, WRITE_KEYS)).items():
        for key in env:
            if key.startswith("TRACKWAY_"):
                assert key in registered, f"{name} sets {key}, which the settings registry does not have"
        for key in [k for k in os.environ if k.startswith("TRACKWAY_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings("all")  # raises ConfigError on anything malformed
        assert settings.raw_url.startswith("s3://") or "TRACKWAY_RAW_URL" not in env
        if any("WAREHOUSE" in key for key in env):
            assert settings.warehouse.kind == "postgres", name


def test_collector_command_is_a_valid_cli_call_configured_by_settings(compose, monkeypatch):
    """`trackway collect` as `trackway up` runs it, no flags: the settings say where it listens."""
    collector = compose["services"]["collector"]
    args = _trackway_command(collector["command"])
    assert args is not None and args.command == "collect"
    assert (args.host, args.port, args.admin_host, args.admin_port, args.workers) == (None,) * 5
    for key in [k for k in os.environ if k.startswith("TRACKWAY_")]:
        monkeypatch.delenv(key)
    for key, value in {**environment(collector), **WRITE_KEYS}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings("collector")
    assert settings.collector_host == "0.0.0.0"
    assert [(port, target) for _, port, target in published_ports(collector)] == [(str(settings.collector_port),) * 2]


def _trackway_command(argv: list[str]) -> argparse.Namespace | None:
    """``trackway ...`` parsed by the CLI's own parser (None for a command a sibling branch adds)."""
    assert argv[0] == "trackway", argv
    if tuple(argv[1:3]) in ANNOUNCED_COMMANDS:
        return None
    return build_parser().parse_args(argv[1:])


def test_each_job_connects_as_its_own_role(compose):
    """Loader writes raw, dbt writes analytics, the rest reads; only warehouse-init has the superuser's password."""
    roles = {
        "TRACKWAY_LOAD_WAREHOUSE_URL": "trackway_loader",
        "TRACKWAY_TRANSFORM_WAREHOUSE_URL": "trackway_transform",
        "TRACKWAY_READ_WAREHOUSE_URL": "trackway_reader",
        "TRACKWAY_WAREHOUSE_URL": "trackway_reader",  # whatever has no job-specific URL only reads
    }
    passwords = {
        "trackway_loader": "TRACKWAY_LOADER_DB_PASSWORD",
        "trackway_transform": "TRACKWAY_TRANSFORM_DB_PASSWORD",
        "trackway_reader": "TRACKWAY_READER_DB_PASSWORD",
    }
    services = compose["services"]
    init = environment(services["warehouse-init"])
    for name in PIPELINE:
        env = environment(services[name])
        for variable, role in roles.items():
            url = urlparse(env[variable])
            assert (url.username, url.hostname, url.path) == (role, "postgres", "/warehouse"), (name, variable)
            assert url.password == SENTINEL.format(passwords[role])
            assert variable == "TRACKWAY_WAREHOUSE_URL" or init[variable] == env[variable]
    postgres = environment(services["postgres"])
    admin = urlparse(init["TRACKWAY_WAREHOUSE_URL"])
    assert (admin.username, admin.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    holders = {n for n, s in services.items() for _, text in _strings(s) if postgres["POSTGRES_PASSWORD"] in text}
    assert holders == {"postgres", "warehouse-init"}
    script = services["warehouse-init"]["command"][-1]
    grant = re.search(r"postgresql://\*\) exec (trackway [^;]+?) ;;", script)
    assert grant is not None
    args = _trackway_command(shlex.split(grant[1]))
    assert args is not None and (args.command, args.action, args.dry_run) == ("warehouse", "grant", False)
    # Airflow's own database and role, made on PostgreSQL's first start with the password Airflow connects with.
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["postgres"]["volumes"]}
    assert mounts["/docker-entrypoint-initdb.d/10-trackway.sh"] == "./ops/postgres/init.sh"
    init_sql = (REPO_ROOT / "ops/postgres/init.sh").read_text()
    assert "\\getenv airflow_password AIRFLOW_DB_PASSWORD" in init_sql
    assert "CREATE ROLE airflow WITH LOGIN PASSWORD :'airflow_password'" in init_sql
    airflow_db = urlparse(environment(services["airflow-scheduler"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (airflow_db.username, airflow_db.password) == ("airflow", postgres["AIRFLOW_DB_PASSWORD"])


def test_the_collector_can_reach_only_the_object_store_and_write_only_raw(compose):
    services = compose["services"]
    collector = services["collector"]
    env = environment(collector)
    assert not [key for key in env if "WAREHOUSE" in key or key.startswith("AIRFLOW")]
    assert set(collector["networks"]) == {"ingest", "collector-admin"}
    peers = {n for n, s in services.items() if set(s.get("networks", ["default"])) & set(collector["networks"])}
    # MinIO, Prometheus, and the two Airflow containers that read its metrics: never PostgreSQL.
    assert peers == {"collector", "minio", "prometheus", "airflow-scheduler", "airflow-apiserver"}
    assert env["AWS_ACCESS_KEY_ID"] == SENTINEL.format("MINIO_COLLECTOR_ACCESS_KEY")
    for name in (*PIPELINE, "airflow-apiserver"):
        assert environment(services[name])["AWS_ACCESS_KEY_ID"] == SENTINEL.format("MINIO_LOADER_ACCESS_KEY")
    raw = urlparse(env["TRACKWAY_RAW_URL"])
    objects, bucket = f"arn:aws:s3:::{raw.netloc}{raw.path}/*", f"arn:aws:s3:::{raw.netloc}"

    def allowed(policy: str) -> dict[str, set[str]]:
        document = json.loads((REPO_ROOT / "ops/minio" / f"{policy}-policy.json").read_text())
        grants: dict[str, set[str]] = {}
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            for resource in statement["Resource"]:
                grants.setdefault(resource, set()).update(statement["Action"])
        return grants

    assert allowed("trackway-collector") == {
        objects: {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
        # the suppressed subjects it polls and the erasure ledger's copy (hashes only): docs/privacy.md
        objects.replace("/*", "/_privacy/*"): {"s3:GetObject"},
        bucket: {"s3:ListBucket"},  # HeadBucket, the collector's start-up check
    }
    loader = allowed("trackway-loader")
    assert loader == {
        f"arn:aws:s3:::{raw.netloc}/*": {"s3:GetObject"},
        bucket: {"s3:ListBucket", "s3:GetBucketLocation"},
    }
    # The privacy DAG's: rewrite and delete (old versions too) under the raw prefix, nothing else.
    assert allowed("trackway-privacy") == {
        objects: {
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        },
        bucket: {"s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"},
    }
    init = (REPO_ROOT / "ops/minio/init.sh").read_text()
    assert 'grant "$MINIO_COLLECTOR_ACCESS_KEY" "$MINIO_COLLECTOR_SECRET_KEY" trackway-collector' in init
    assert 'grant "$MINIO_LOADER_ACCESS_KEY" "$MINIO_LOADER_SECRET_KEY" trackway-loader' in init
    assert 'grant "$MINIO_PRIVACY_ACCESS_KEY" "$MINIO_PRIVACY_SECRET_KEY" trackway-privacy' in init
    minio_init = environment(services["minio-init"])
    for job in ("COLLECTOR", "LOADER", "PRIVACY"):
        for part in ("ACCESS", "SECRET"):
            assert minio_init[f"MINIO_{job}_{part}_KEY"] == SENTINEL.format(f"MINIO_{job}_{part}_KEY")
    assert f"local/{raw.netloc}" in init


def test_metrics_are_scraped_on_the_admin_listener_never_published(compose):
    import yaml

    collector = compose["services"]["collector"]
    admin_port = environment(collector)["TRACKWAY_COLLECTOR_ADMIN_PORT"]
    assert admin_port not in [target for _, _, target in published_ports(collector)]
    prometheus = compose["services"]["prometheus"]
    config_file = prometheus["command"][0].split("=", 1)[1]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}["/etc/prometheus"]
    config = yaml.safe_load((REPO_ROOT / mounted / Path(config_file).name).read_text())
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == [f"collector:{admin_port}"]
    assert set(prometheus["networks"]) & set(collector["networks"])


def test_privacy_and_health_get_their_secrets_and_the_collectors_metrics(compose):
    """Issues 17 and 18 in compose: one ledger key for the collector, loader and privacy tasks; the keyring a
    mounted secret; the regulations API's token on the collector only; Airflow reads the admin listener."""
    services = compose["services"]
    collector = environment(services["collector"])

    def holders(name: str) -> set[str]:
        return {n for n, s in services.items() if name in environment(s)}

    assert holders("TRACKWAY_PRIVACY_LEDGER_KEY") == {"collector", "gcp-init", *PIPELINE}
    assert {
        environment(services[n])["TRACKWAY_PRIVACY_LEDGER_KEY"] for n in holders("TRACKWAY_PRIVACY_LEDGER_KEY")
    } == {SENTINEL.format("TRACKWAY_PRIVACY_LEDGER_KEY")}
    assert holders("TRACKWAY_PRIVACY_API_TOKEN") == {"collector"}
    assert collector["TRACKWAY_PRIVACY_API_TOKEN"] == SENTINEL.format("TRACKWAY_PRIVACY_API_TOKEN")
    assert holders("TRACKWAY_PSEUDONYM_KEYS") == {"collector"}
    assert _mounted_secret(services["collector"], collector["TRACKWAY_PSEUDONYM_KEYS"], compose)
    assert compose["secrets"]["trackway-pseudonym-keys"] == {"file": SENTINEL.format("TRACKWAY_PSEUDONYM_KEYS_FILE")}
    # The privacy tasks' own object-store user, through a connection of their own (none other has it).
    assert holders("AIRFLOW_CONN_TRACKWAY_PRIVACY_RAW") == {"gcp-init", *PIPELINE}
    for name in PIPELINE:
        env = environment(services[name])
        conn = json.loads(env["AIRFLOW_CONN_" + env["TRACKWAY_PRIVACY_RAW_CONN_ID"].upper()])
        assert (conn["conn_type"], conn["login"], conn["password"]) == (
            "aws",
            SENTINEL.format("MINIO_PRIVACY_ACCESS_KEY"),
            SENTINEL.format("MINIO_PRIVACY_SECRET_KEY"),
        )
        assert env["AWS_ACCESS_KEY_ID"] != conn["login"]  # the loader's user stays the default
    # The health DAG (scheduler) and the Trackway page (API server) read the admin listener, on a network
    # they share with the collector; the admin port is never published.
    admin = (collector["TRACKWAY_COLLECTOR_ADMIN_HOST"], collector["TRACKWAY_COLLECTOR_ADMIN_PORT"])
    assert admin[0] == "0.0.0.0" and admin[1] not in [t for _, _, t in published_ports(services["collector"])]
    assert holders("TRACKWAY_HEALTH_COLLECTOR_METRICS_URL") == {"airflow-apiserver", "gcp-init", *PIPELINE}
    for name in ("airflow-scheduler", "airflow-apiserver"):
        url = urlparse(environment(services[name])["TRACKWAY_HEALTH_COLLECTOR_METRICS_URL"])
        assert (url.scheme, url.hostname, str(url.port), url.path) == ("http", "collector", admin[1], "/metrics")
        assert set(services[name]["networks"]) & set(services["collector"]["networks"]), name


def test_airflow_runs_the_fab_auth_manager_with_shared_keys(compose, tmp_path):
    """Every Airflow container: FAB, the same Fernet, JWT and API keys; airflow-init's commands parse."""
    shared = ("AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET")
    shared += ("AIRFLOW__API__SECRET_KEY", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    airflow = {n: s for n, s in compose["services"].items() if n.startswith("airflow-")}
    assert len(airflow) == 5
    values = {name: tuple(environment(s).get(key) for key in shared) for name, s in airflow.items()}
    assert len(set(values.values())) == 1 and None not in next(iter(values.values())), values
    init = airflow["airflow-init"]
    assert "AIRFLOW_ADMIN_PASSWORD" in environment(init)
    # The API server (the Trackway page) runs no task: it only reads, and holds no job's credentials.
    apiserver = environment(airflow["airflow-apiserver"])
    assert urlparse(apiserver["TRACKWAY_WAREHOUSE_URL"]).username == "trackway_reader"
    assert not [k for k in apiserver if k.endswith("_WAREHOUSE_URL") and k != "TRACKWAY_WAREHOUSE_URL"]
    assert not [k for k in apiserver if "PRIVACY" in k or "PSEUDONYM" in k]
    commands = [shlex.split(line) for line in init["command"][-1].splitlines() if line.strip()]
    commands += [s["command"] for n, s in airflow.items() if n != "airflow-init"]
    expected = ["airflow db migrate", "airflow users create", "airflow users reset-password"]
    assert [" ".join(c[:3]) for c in commands[:3]] == expected
    # Airflow's own parser, with the auth manager the compose file configures (its CLI adds `users`).
    parse = "import json, sys; from airflow.cli.cli_parser import get_parser\n"
    parse += "[get_parser().parse_args(argv[1:]) for argv in json.load(sys.stdin)]"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__AUTH_MANAGER": values["airflow-init"][0]}
    result = subprocess.run(
        [sys.executable, "-c", parse], input=json.dumps(commands), env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_gcp_profile_points_the_stack_at_gcs_and_bigquery(document, monkeypatch):
    """`docker compose --env-file gcp.env --profile gcp up`: same services, gs:// and bigquery:// settings."""
    gcp = env_file(REPO_ROOT / "gcp.env")
    compose = render_fresh(document, {**gcp, **WRITE_KEYS})
    assert [n for n, s in compose["services"].items() if "gcp" in s.get("profiles", [])] == ["gcp-init"]
    for name in ("collector", "airflow-scheduler", "gcp-init"):
        env = environment(compose["services"][name])
        for key in [k for k in os.environ if k.startswith("TRACKWAY_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith(("TRACKWAY_", "AIRFLOW_CONN_")):
                monkeypatch.setenv(key, value)
        settings = load_settings()
        assert settings.raw_url.startswith("gs://"), name
        if name == "collector":
            continue
        assert settings.warehouse.kind == "bigquery", name
        assert {v for k, v in env.items() if "WAREHOUSE_URL" in k} == {gcp["TRACKWAY_WAREHOUSE_URL"], ""}
        assert settings.raw_conn_id == settings.warehouse.conn_id == "trackway_gcp"
        assert env["AIRFLOW_CONN_TRACKWAY_GCP"].startswith("google-cloud-platform://")
    args = _trackway_command(compose["services"]["gcp-init"]["command"])
    assert args is not None and args.command == "status"
    assert not environment(compose["services"]["warehouse-init"])["TRACKWAY_WAREHOUSE_URL"].startswith("postgresql")


def test_object_store_users_can_do_only_their_job(compose, monkeypatch, tmp_path):
    """The MinIO policies (ops/minio/) on a real S3 API that enforces IAM: moto's, in server mode.

    MinIO evaluates the same IAM policy language. moto names HeadBucket an action of its own where S3 and
    MinIO check s3:ListBucket, so the collector's start-up check is not exercised here.
    """
    import boto3
    import moto.settings
    from botocore.exceptions import ClientError
    from moto.core.authorization import ActionAuthenticatorMixin

    from collector_helpers import start_moto
    from trackway.objectstore.s3 import S3ObjectStore

    raw = urlparse(environment(compose["services"]["collector"])["TRACKWAY_RAW_URL"])
    bucket, prefix = raw.netloc, raw.path.strip("/")
    server, endpoint = start_moto()
    try:

        def client(service: str, key: str = "admin", secret: str = "admin"):
            credentials = {"aws_access_key_id": key, "aws_secret_access_key": secret}
            return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **credentials)

        client("s3").create_bucket(Bucket=bucket)
        client("s3").put_object(Bucket=bucket, Key=f"{prefix}/events/dt=2026-12-01/hour=10/old.ndjson.gz", Body=b"x")
        iam, stores, keys = client("iam"), {}, {}
        for job in ("collector", "loader", "privacy"):
            policy = (REPO_ROOT / "ops/minio" / f"trackway-{job}-policy.json").read_text()
            iam.create_user(UserName=job)
            iam.put_user_policy(UserName=job, PolicyName=f"trackway-{job}", PolicyDocument=policy)
            keys[job] = iam.create_access_key(UserName=job)["AccessKey"]
            stores[job] = client("s3", keys[job]["AccessKeyId"], keys[job]["SecretAccessKey"])
        monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # from here on, every call is checked
        monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)

        def denied(call, *args) -> bool:
            try:
                call(*args)
            except ClientError as exc:
                return exc.response["Error"]["Code"] in ("AccessDenied", "403")
            return False

        new, old = "events/dt=2026-12-01/hour=11/new.ndjson.gz", "events/dt=2026-12-01/hour=10/old.ndjson.gz"
        collector = S3ObjectStore(bucket, prefix, client=stores["collector"])
        (tmp_path / "segment").write_bytes(b"acknowledged")
        collector.put_file(new, tmp_path / "segment")  # as the uploader does
        collector.put_bytes("late/pointer.json", b"{}")
        assert denied(collector.read_bytes, old)
        assert denied(collector.delete, old)
        collector.put_bytes("_privacy/subjects.json", b"{}")  # as `trackway privacy` would publish it
        assert collector.read_bytes("_privacy/subjects.json") == b"{}"  # what the collector polls
        assert denied(S3ObjectStore(bucket, "elsewhere", client=stores["collector"]).put_bytes, "x", b"x")

        loader = S3ObjectStore(bucket, prefix, client=stores["loader"])
        assert loader.list("events/") == [old, new]
        assert loader.read_bytes(new) == b"acknowledged" and loader.exists(old)
        assert denied(loader.put_bytes, "events/dt=2026-12-01/hour=12/forged.ndjson.gz", b"x")
        assert denied(loader.delete, old)

        # The privacy tasks: the store privacy_store() opens from the connection compose gives the scheduler.
        from trackway.config import load_settings
        from trackway.orchestration.privacy_tasks import privacy_store

        minio = {"MINIO_PRIVACY_ACCESS_KEY": keys["privacy"]["AccessKeyId"]}
        minio["MINIO_PRIVACY_SECRET_KEY"] = keys["privacy"]["SecretAccessKey"]
        scheduler = environment(render_fresh(load(), {**minio, **WRITE_KEYS})["services"]["airflow-scheduler"])
        for key in [k for k in os.environ if k.startswith(("TRACKWAY_", "AIRFLOW_CONN_", "AWS_"))]:
            monkeypatch.delenv(key)
        for key, value in scheduler.items():
            if key.startswith(("TRACKWAY_", "AIRFLOW_CONN_", "AWS_")):
                monkeypatch.setenv(key, value.replace("http://minio:9000", endpoint))
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # what the loader's read-only user would take
        privacy = privacy_store(load_settings("privacy"))
        assert privacy is not None
        privacy.put_file(old, tmp_path / "segment")  # a rewrite replaces the object
        assert privacy.read_bytes(old) == b"acknowledged" and privacy.list("events/") == [old, new]
        privacy.put_bytes("_privacy/subjects.json", b"{}")  # the subject set it publishes
        privacy.delete(new)
        assert not loader.exists(new)
        assert denied(S3ObjectStore(bucket, "elsewhere", client=privacy.client).put_bytes, "x", b"x")
        assert denied(S3ObjectStore(bucket, "elsewhere", client=privacy.client).read_bytes, "x")
    finally:
        server.stop()


def test_superset_imports_the_same_bundle_and_reads_as_the_reader(compose, monkeypatch, tmp_path):
    """bi-render writes the repository's bundle, superset-init imports it (ops/superset/provision.py, as
    `trackway bi init` does), and the warehouse connection is the read-only role's (docs/bi.md)."""
    from trackway.bi.bundle import render

    services = compose["services"]
    args = _trackway_command(services["bi-render"]["command"])
    assert args is not None and (args.command, args.bi_command) == ("bi", "render")
    init, server = services["superset-init"], services["superset"]
    assert init["command"][-2:] == ["/opt/superset/provision.py", str(args.out)]
    shared = {v.split(":")[0] for v in services["bi-render"]["volumes"]} & {v.split(":")[0] for v in init["volumes"]}
    assert shared == {"bi-bundle"} and init["volumes"][0].endswith(":ro")
    dockerfile = (REPO_ROOT / init["build"]["dockerfile"]).read_text()
    assert "-r requirements-bi.txt" in dockerfile and server["image"] == init["image"]  # the lock `make bi` uses
    assert {"bi-render", "warehouse-init"} <= set(init["depends_on"]) and "superset-init" in server["depends_on"]
    for key, value in environment(services["bi-render"]).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRACKWAY_HOME", str(tmp_path))
    (tmp_path / "manifest.json").write_text('{"nodes": {}}')
    rendered = render(load_settings(), tmp_path / "bundle", tmp_path / "manifest.json")
    assert rendered.database_uri == "postgresql+psycopg2://trackway_reader:XXXXXXXXXX@postgres:5432/warehouse"
    assert rendered.password == environment(init)["SUPERSET_WAREHOUSE_PASSWORD"]
    assert environment(init)["SUPERSET_METADATA_URL"] == environment(server)["SUPERSET_METADATA_URL"]


def test_metabase_is_behind_its_profile_on_loopback_and_set_up_by_trackway(compose, document, monkeypatch):
    """Issue 19 §4: Metabase (--profile metabase) on a pinned image, published on 127.0.0.1 only, its application
    database a role of its own, the warehouse as the reader; metabase-setup closes its wizard with the admin from
    .env (tests/test_bi_metabase.py runs that command against a recorded Metabase)."""
    services = compose["services"]
    profiled = {n for n, s in services.items() if "metabase" in s.get("profiles", [])}
    assert profiled == {"metabase", "metabase-setup"}  # `docker compose up` without the profile starts neither
    metabase, setup = services["metabase"], services["metabase-setup"]
    image, _, tag = metabase["image"].rpartition(":")
    assert image == "metabase/metabase" and re.fullmatch(r"v\d+\.\d+\.\d+(\.\d+)?", tag), metabase["image"]
    assert [(ip, target) for ip, _, target in published_ports(metabase)] == [("127.0.0.1", "3000")]
    assert [p for p in exposure_problems(render_fresh(document, {"TRACKWAY_BIND": "0.0.0.0"})) if "metabase" in p]
    mb = environment(metabase)
    assert (mb["MB_DB_TYPE"], mb["MB_DB_HOST"], mb["MB_DB_DBNAME"], mb["MB_DB_USER"]) == (
        "postgres",
        "postgres",
        "metabase",
        "metabase",
    )
    for key in ("MB_DB_PASS", "MB_ENCRYPTION_SECRET_KEY"):
        assert re.fullmatch(re.escape(SENTINEL).replace(re.escape("{}"), r"\w+"), mb[key]), key
    # Its role and database, made on PostgreSQL's first start with the password Metabase connects with.
    assert environment(services["postgres"])["METABASE_DB_PASSWORD"] == mb["MB_DB_PASS"]
    init_sql = (REPO_ROOT / "ops/postgres/init.sh").read_text()
    assert "\\getenv metabase_password METABASE_DB_PASSWORD" in init_sql
    assert "CREATE ROLE metabase WITH LOGIN PASSWORD :'metabase_password'" in init_sql
    assert "CREATE DATABASE metabase OWNER metabase" in init_sql
    # No default password: `docker compose up` stops without each one (the profile does not change that).
    required = required_variables(document)
    assert {"METABASE_DB_PASSWORD", "METABASE_ENCRYPTION_KEY", "METABASE_ADMIN_PASSWORD"} <= required
    # The one-shot setup: Trackway's command, after Metabase is healthy; the admin from .env, the reader's URL.
    args = _trackway_command(setup["command"])
    assert args is not None and (args.command, args.bi_command) == ("bi", "metabase-setup")
    assert setup["depends_on"]["metabase"]["condition"] == "service_healthy"
    assert "/api/health" in " ".join(metabase["healthcheck"]["test"])
    env = environment(setup)
    assert urlparse(env["TRACKWAY_METABASE_URL"]).hostname == "metabase"
    assert env["TRACKWAY_METABASE_ADMIN_PASSWORD"] == SENTINEL.format("METABASE_ADMIN_PASSWORD")
    reader = urlparse(env["TRACKWAY_READ_WAREHOUSE_URL"])
    assert (reader.username, reader.password) == ("trackway_reader", SENTINEL.format("TRACKWAY_READER_DB_PASSWORD"))
    assert urlparse(env["TRACKWAY_WAREHOUSE_URL"]).password is None  # names the admin, never holds its password
    assert not [
        k
        for k in env
        if k.endswith("_WAREHOUSE_URL") and k not in ("TRACKWAY_WAREHOUSE_URL", "TRACKWAY_READ_WAREHOUSE_URL")
    ]
    for key in [k for k in os.environ if k.startswith("TRACKWAY_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from trackway.bi.metabase import MetabaseSetup

    manifest = REPO_ROOT / "pyproject.toml"  # any file: the setup's checks only ask that the manifest exists
    config = MetabaseSetup.from_settings(load_settings(), manifest)
    assert config.warehouse.user == "trackway_reader" and config.url == "http://metabase:3000"


def test_alert_settings_reach_the_tasks_and_are_off_by_default(document):
    """The DAGs' alerts (webhook, email, Slack connection) pass through to the containers that run the tasks."""
    alerts = ("TRACKWAY_ALERT_WEBHOOK_URL", "TRACKWAY_ALERT_EMAIL", "TRACKWAY_ALERT_SLACK_CONN_ID")
    fresh = render_fresh(document)["services"]
    values = {"TRACKWAY_ALERT_WEBHOOK_URL": "https://hooks.example.com/t", "TRACKWAY_ALERT_EMAIL": "ops@example.com"}
    values["TRACKWAY_ALERT_SLACK_CONN_ID"] = "trackway_slack"
    configured = render_fresh(document, values)["services"]
    for name in PIPELINE:
        assert {key: environment(fresh[name])[key] for key in alerts} == dict.fromkeys(alerts, "")
        assert {key: environment(configured[name])[key] for key in alerts} == values
