"""``trackway up``: check, lock, prepare, start, watch until ready, print where everything is; ``trackway down``."""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
import urllib.request
from pathlib import Path

from trackway.config import Settings
from trackway.config.registry import StackSection
from trackway.orchestration.airflow_env import lineage_path, prepare_folders
from trackway.stack.processes import (
    PREPARE,
    argv,
    collector_admin_url,
    display_host,
    stack_environment,
    stack_processes,
)
from trackway.stack.state import StackInfo, hold_home, stop_stack, write_info
from trackway.stack.supervisor import Supervisor

READY_TIMEOUT_SECONDS = 600
_SIMPLE_AUTH = "SimpleAuthManager"


class PortInUse(RuntimeError):
    """A port the stack needs is taken; the message names the setting that moves it."""


def check_port(host: str, port: int, setting: str) -> None:
    """PortInUse unless something could listen on ``host:port`` now (as the servers do: SO_REUSEADDR)."""
    family, kind, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise PortInUse(
                f"port {port} on {host or '*'} is in use ({exc.strerror}): another stack or program listens there. "
                f"Set {setting} to a free port (two stacks need two TRACKWAY_HOMEs and two sets of ports)"
            ) from None


def stack_ports(settings: Settings, env: dict[str, str]) -> list[tuple[str, int, str]]:
    """(host, port, the setting that moves it) of every port the stack listens on.

    PortInUse when two of them are the same port: the check below binds each in turn and
    releases it, so it would pass, and the second process to start would fail later.
    """
    ports = [
        (settings.collector_host, settings.collector_port, "TRACKWAY_COLLECTOR_PORT"),
        (settings.collector_admin_host, settings.collector_admin_port, "TRACKWAY_COLLECTOR_ADMIN_PORT"),
        (env["AIRFLOW__API__HOST"], int(env["AIRFLOW__API__PORT"]), "TRACKWAY_AIRFLOW_PORT"),
    ]
    seen: dict[int, str] = {}
    for _, port, setting in ports:
        if port in seen:
            raise PortInUse(
                f"{seen[port]} and {setting} are both {port}: the stack runs both, set one of them to another port"
            )
        seen[port] = setting
    return ports


def airflow_login(env: dict[str, str]) -> tuple[str, str, Path] | None:
    """The simple auth manager's first user and password, created here if it has none yet (file mode 0600).

    Airflow would generate the password itself on the API server's first start and
    print it among the logs; made here, `trackway up` can show it with the URLs.
    None for another auth manager (FAB: its own users) or when everyone is admin.
    """
    if not env.get("AIRFLOW__CORE__AUTH_MANAGER", _SIMPLE_AUTH).endswith(_SIMPLE_AUTH):
        return None
    if env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "").lower() == "true":
        return None
    users = [
        u.split(":")[0].strip() for u in env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin").split(",")
    ]
    users = [u for u in users if u]
    if not users:
        return None
    path = Path(
        env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
        or Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    )
    passwords = json.loads(path.read_text() or "{}") if path.exists() else {}
    missing = [u for u in users if u not in passwords]
    if missing:
        passwords.update({u: secrets.token_urlsafe(12) for u in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(passwords) + "\n")
    return users[0], passwords[users[0]], path


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 (our own loopback servers)
        return json.loads(response.read() or b"{}")


def airflow_healthy(airflow_url: str) -> bool:
    """Airflow's database, scheduler, DAG processor and triggerer all report healthy."""
    try:
        health = _get_json(f"{airflow_url}/api/v2/monitor/health")
    except (OSError, ValueError):
        return False
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all((health.get(part) or {}).get("status") == "healthy" for part in parts)


def collector_healthy(collector_url: str) -> bool:
    try:
        _get_json(f"{collector_url}/health")
    except (OSError, ValueError):
        return False
    return True


def _write_key_line(settings: Settings) -> str:
    if settings.write_keys_are_demo:
        key = next(iter(settings.write_keys))
        return f"write key {key} (the demo key: loopback only; set TRACKWAY_WRITE_KEYS for your own)"
    sources = ", ".join(sorted(set(settings.write_keys.values())))
    return f"write keys of TRACKWAY_WRITE_KEYS / TRACKWAY_WRITE_KEYS_FILE for {sources} (not printed)"


def _schedule_line(env: dict[str, str]) -> str:
    if env.get("TRACKWAY_PIPELINE_MODE") == "micro_batch":
        return (
            "  Pipeline    micro-batches: the collector uploads every few seconds, events_microbatch loads each new "
            "object and events_transform builds analytics.events and sessions after it (TRACKWAY_PIPELINE_MODE)."
        )
    return "  Pipeline    events_load runs every hour (now too, for the last complete hour); events_transform after each load."


def banner(
    settings: Settings,
    env: dict[str, str],
    collector_url: str,
    airflow_url: str,
    login: tuple[str, str, Path] | None,
    seconds: float,
) -> list[str]:
    if login:
        user, password, path = login
        who = f"login {user} / {password}  (Airflow's simple auth manager, for local use only; in {path})"
    else:
        who = f"log in with your auth manager's users ({env.get('AIRFLOW__CORE__AUTH_MANAGER')})"
    lineage = lineage_path(env)
    key = "trackway-demo-key" if settings.write_keys_are_demo else "YOUR-KEY"
    return [
        "",
        f"Trackway is up in {seconds:.0f}s (TRACKWAY_HOME={settings.home}):",
        f"  Collector   {collector_url}   {_write_key_line(settings)}",
        f"  Metrics     {collector_admin_url(settings)}/metrics   (the collector's admin listener; /health beside it)",
        f"  Airflow     {airflow_url}   {who}",
        f'  Warehouse   {settings.warehouse.display_url}   (trackway query "SELECT count(*) FROM analytics.events")',
        f"  Lineage     {lineage or env.get('AIRFLOW__OPENLINEAGE__TRANSPORT', 'off')}",
        f"  Logs        {settings.home / 'logs' / 'stack.log'}; task logs in {env['AIRFLOW__LOGGING__BASE_LOG_FOLDER']}",
        _schedule_line(env),
        f"  Try it      curl -u {key}: -H 'Content-Type: application/json' "
        f'-d \'{{"type":"track","event":"Hello","userId":"u-1"}}\' {collector_url}/v1/track',
        "  Stop        Ctrl-C here, or `make down` (trackway down) from another shell",
        "",
    ]


def up(settings: Settings) -> int:
    """Run the stack in the foreground until Ctrl-C, SIGTERM or `trackway down`; 1 if a process died."""
    started = time.monotonic()
    settings.check("stack")  # every setting a process of the stack reads, before anything starts
    env = stack_environment(settings)
    stack = settings.section(StackSection)
    collector_host = settings.collector_host
    api_host, api_port = env["AIRFLOW__API__HOST"], int(env["AIRFLOW__API__PORT"])
    collector_url = f"http://{display_host(collector_host)}:{settings.collector_port}"
    airflow_url = f"http://{display_host(api_host)}:{api_port}"
    processes = stack_processes(env)
    prepare_folders(env)
    with hold_home(settings):
        for host, port, setting in stack_ports(settings, env):
            check_port(host, port, setting)
        login = airflow_login(env)
        names = tuple(p.name for p in (*PREPARE, *processes))
        supervisor = Supervisor(
            log_path=settings.home / "logs" / "stack.log", stop_seconds=stack.stack_stop_seconds, names=names
        )
        supervisor.install_signal_handlers()
        write_info(
            StackInfo(
                pid=os.getpid(),
                home=str(settings.home),
                started_at=time.time(),
                collector_url=collector_url,
                airflow_url=airflow_url,
                airflow_passwords_file=str(login[2]) if login else None,
            )
        )
        try:
            for step in PREPARE:
                supervisor.say(f"{step.name}: {' '.join(step.command)} ({step.what})")
                code = supervisor.run(step.name, argv(step, env), env)
                if supervisor.stopping:
                    return 0
                if code != 0:
                    supervisor.say(f"{step.name} failed (exit code {code}): nothing started; see its lines above")
                    return 1
            for process in processes:
                supervisor.start(process.name, argv(process, env), env)

            def watch() -> None:
                deadline = time.monotonic() + READY_TIMEOUT_SECONDS
                while not supervisor.stopping and time.monotonic() < deadline:
                    if collector_healthy(collector_url) and airflow_healthy(airflow_url):
                        supervisor.say("ready: the collector answers and Airflow reports every component healthy")
                        supervisor.announce(
                            banner(settings, env, collector_url, airflow_url, login, time.monotonic() - started)
                        )
                        return
                    time.sleep(1)
                if not supervisor.stopping:
                    supervisor.say(f"not ready after {READY_TIMEOUT_SECONDS}s: see the lines above")

            threading.Thread(target=watch, daemon=True).start()
            return supervisor.wait()
        finally:
            supervisor.close()


def down(settings: Settings) -> str:
    """Stop the stack of this TRACKWAY_HOME (its supervisor stops every process); what happened."""
    stack = settings.section(StackSection)
    return stop_stack(settings, timeout=stack.stack_stop_seconds + 30)
