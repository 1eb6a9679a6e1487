"""docker-compose.yaml cannot run here (no Docker engine), so check it statically against the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from trackway.cli import build_parser
from trackway.config import load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
_DEFAULT = re.compile(r"\$\{(\w+):-([^${}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())


def _substitute(value: str, env: dict[str, str] | None = None) -> str:
    """Apply compose's ${VAR:-default}, innermost first, from ``env`` or the defaults (a fresh `docker compose up`)."""
    text, env = str(value), env or {}
    while True:
        new = _DEFAULT.sub(lambda m: env.get(m.group(1)) or m.group(2), text)
        if new == text:
            return new
        text = new


def test_services_and_dependencies_exist(compose):
    services = compose["services"]
    assert {"postgres", "minio", "collector", "airflow-scheduler", "airflow-apiserver", "metabase"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}) or {}:
            assert dependency in services, f"{name} depends on unknown service {dependency}"


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
    published = [p.split(":")[0] for s in compose["services"].values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)), published


def test_trackway_environment_is_valid_configuration(compose, monkeypatch):
    from trackway.config import SETTINGS

    registered = {s.name for s in SETTINGS if not s.internal}
    for name, service in compose["services"].items():
        env = {k: _substitute(v) for k, v in (service.get("environment") or {}).items()}
        trackway_vars = {k: v for k, v in env.items() if k.startswith("TRACKWAY_")}
        for key in trackway_vars:
            assert key in registered, f"{name} sets {key}, which the settings registry does not have"
        if trackway_vars:
            for key, value in trackway_vars.items():
                monkeypatch.setenv(key, value)
            settings = load_settings("all")  # raises ConfigError on anything malformed
            assert settings.warehouse.kind == "postgres"
            assert settings.raw_url.startswith("s3://")


def test_collector_command_is_a_valid_cli_call(compose):
    command = compose["services"]["collector"]["command"]
    args = build_parser().parse_args(command[1:])
    assert args.command == "collect" and args.host == "0.0.0.0"
    published = compose["services"]["collector"]["ports"][0]
    assert published.endswith(f":{args.port}")


def _env_file(name: str) -> dict[str, str]:
    pairs = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_gcp_profile_points_the_stack_at_gcs_and_bigquery(compose, monkeypatch):
    """`docker compose --env-file gcp.env --profile gcp up`: same services, gs:// and bigquery:// settings."""
    gcp = _env_file("gcp.env")
    assert [n for n, s in compose["services"].items() if "gcp" in s.get("profiles", [])] == ["gcp-init"]
    for name in ("collector", "airflow-scheduler", "gcp-init"):
        env = {k: _substitute(v, gcp) for k, v in (compose["services"][name].get("environment") or {}).items()}
        for key, value in env.items():
            if key.startswith(("TRACKWAY_", "AIRFLOW_CONN_")):
                monkeypatch.setenv(key, value)
        settings = load_settings()
        assert settings.raw_url.startswith("gs://") and settings.warehouse.kind == "bigquery", name
        assert settings.raw_conn_id == settings.warehouse.conn_id == "trackway_gcp"
        assert env["AIRFLOW_CONN_TRACKWAY_GCP"].startswith("google-cloud-platform://")
    args = build_parser().parse_args(compose["services"]["gcp-init"]["command"][1:])
    assert args.command == "status"
