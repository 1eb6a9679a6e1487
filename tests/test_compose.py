"""docker-compose.yaml cannot run here (no Docker engine), so check it statically against the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from trackway.cli import build_parser
from trackway.config import load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
_DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())


def _substitute(value: str) -> str:
    """Apply compose's ${VAR:-default} with the defaults, as a fresh `docker compose up` would."""
    return _DEFAULT.sub(lambda m: m.group(2), str(value))


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
    config_source = (REPO_ROOT / "include" / "trackway" / "config.py").read_text()
    for name, service in compose["services"].items():
        env = {k: _substitute(v) for k, v in (service.get("environment") or {}).items()}
        trackway_vars = {k: v for k, v in env.items() if k.startswith("TRACKWAY_")}
        for key in trackway_vars:
            assert f'"{key}"' in config_source, f"{name} sets {key}, which trackway.config never reads"
        if trackway_vars:
            for key, value in trackway_vars.items():
                monkeypatch.setenv(key, value)
            settings = load_settings()  # raises ConfigError on anything malformed
            assert settings.warehouse.kind == "postgres"
            assert settings.raw_url.startswith("s3://")


def test_collector_command_is_a_valid_cli_call(compose):
    command = compose["services"]["collector"]["command"]
    args = build_parser().parse_args(command[1:])
    assert args.command == "collect" and args.host == "0.0.0.0"
    published = compose["services"]["collector"]["ports"][0]
    assert published.endswith(f":{args.port}")
