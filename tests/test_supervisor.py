"""`trackway up`'s supervisor and its one-stack-per-home rule, with real processes and real signals.

The supervisor runs in a process of its own (as under `make up`), its children are
small Python programs that say which signals they got, and the test signals the
supervisor as a terminal's Ctrl-C or `trackway down` would. Airflow itself runs
under it in tests/test_stack.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from collector_helpers import clean_env, free_port, wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
TRACKWAY = str(Path(sys.executable).parent / "trackway")

# A child: prints its pid, says every SIGTERM it gets; "exit-on-term" exits 0 on the first, "ignore" never does,
# "die" exits 3 by itself, "orphan" starts a grandchild that outlives it.
CHILD = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    mode, pids = sys.argv[1], sys.argv[2]
    with open(pids, "a") as f:
        f.write(f"{os.getpid()}\\n")
    if mode == "orphan":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(pids, "a") as f:
            f.write(f"{grandchild.pid}\\n")
    def term(signum, frame):
        print("got SIGTERM", flush=True)
        if mode != "ignore":
            sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    print(f"hello from {mode}", flush=True)
    if mode == "die":
        time.sleep(0.5)
        sys.exit(3)
    while True:
        time.sleep(0.1)
    """
)

# The supervisor under test, as `trackway up` drives it: start, wait, exit with wait()'s code.
RUNNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from trackway.stack.supervisor import Supervisor
    child, pids, stop_seconds, *modes = sys.argv[1:]
    supervisor = Supervisor(log_path=Path(pids).parent / "stack.log", stop_seconds=float(stop_seconds))
    supervisor.install_signal_handlers()
    for n, mode in enumerate(modes):
        supervisor.start(f"{mode}-{n}", [sys.executable, child, mode, pids], {})
    code = supervisor.wait()
    supervisor.close()
    sys.exit(code)
    """
)


def _supervise(tmp_path: Path, *modes: str, stop_seconds: float = 30) -> tuple[subprocess.Popen, Path, Path]:
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "runner.py").write_text(RUNNER)
    pids, out = tmp_path / "pids", tmp_path / "out"
    with open(out, "wb") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(tmp_path / "runner.py"),
                str(tmp_path / "child.py"),
                str(pids),
                str(stop_seconds),
                *modes,
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=clean_env(PYTHONPATH=str(REPO_ROOT / "include")),
        )
    wait_for(lambda: out.exists() and out.read_text().count("hello from") == len(modes), "the children to start", 30)
    return proc, pids, out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie is gone, only not reaped yet


def test_ctrl_c_stops_every_child_with_one_sigterm_and_prefixes_their_lines(tmp_path):
    proc, pids, out = _supervise(tmp_path, "exit-on-term", "exit-on-term")
    proc.send_signal(signal.SIGINT)  # what the terminal sends on Ctrl-C (the children have sessions of their own)
    assert proc.wait(timeout=60) == 0
    text = out.read_text()
    assert "exit-on-term-0 | hello from exit-on-term" in text and "exit-on-term-1 | hello from exit-on-term" in text
    assert text.count("got SIGTERM") == 2  # exactly one each: the collector reads a second as "give up uploads"
    assert "supervisor" in text and "stopping (SIGINT)" in text
    assert "exit-on-term-0 stopped (exit code 0)" in text
    assert not any(_alive(int(p)) for p in pids.read_text().split())
    assert "hello from exit-on-term" in (tmp_path / "stack.log").read_text()


def test_a_child_that_dies_is_reported_and_the_others_are_stopped(tmp_path):
    proc, pids, out = _supervise(tmp_path, "exit-on-term", "die")
    assert proc.wait(timeout=60) == 1
    text = out.read_text()
    assert "die-1 exited with code 3: stopping the stack" in text
    assert "exit-on-term-0 stopped (exit code 0)" in text
    assert not any(_alive(int(p)) for p in pids.read_text().split())


def test_what_ignores_sigterm_is_killed_after_the_grace_period_with_what_it_left(tmp_path):
    proc, pids, out = _supervise(tmp_path, "ignore", "orphan", stop_seconds=2)
    proc.send_signal(signal.SIGTERM)  # what `trackway down` sends
    assert proc.wait(timeout=60) == 0
    text = out.read_text()
    assert "killing ignore-0 (not stopped after SIGTERM)" in text
    # The orphan's grandchild was in its process group: killed with it, not left running.
    wait_for(lambda: not any(_alive(int(p)) for p in pids.read_text().split()), "every process to be gone", 10)


def test_one_stack_per_home_and_a_taken_port_is_named(tmp_path):
    home = tmp_path / "home"
    env = clean_env(TRACKWAY_HOME=str(home), TRACKWAY_COLLECTOR_PORT=str(free_port()))
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["TRACKWAY_AIRFLOW_PORT"] = str(taken.getsockname()[1])
        result = subprocess.run([TRACKWAY, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"port {env['TRACKWAY_AIRFLOW_PORT']} on 127.0.0.1 is in use" in result.stderr
    assert "Set TRACKWAY_AIRFLOW_PORT to a free port" in result.stderr
    assert not (home / "airflow" / "airflow.db").exists()  # refused before anything ran
    assert not (home / "stack" / "up.pid").exists()

    # The lock, not the pid file, says "running": a held lock refuses a second stack and the demo.
    from trackway.config import load_settings
    from trackway.stack.state import StackRunning, hold_home, running_stack

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRACKWAY_HOME", str(home))
        settings = load_settings()
        with hold_home(settings):
            with pytest.raises(StackRunning, match="already running for TRACKWAY_HOME"), hold_home(settings):
                pass
            assert running_stack(settings) is not None
            demo = subprocess.run([TRACKWAY, "demo"], env=env, capture_output=True, text=True, timeout=120)
            assert demo.returncode == 1 and "a stack is running" in demo.stderr
        assert running_stack(settings) is None
        (home / "stack" / "up.pid").write_text("999999\n")  # stale: its process is gone, the lock with it
        down = subprocess.run([TRACKWAY, "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0 and "no stack is running" in down.stdout


def test_every_port_of_the_stack_is_checked_and_the_defaults_differ(tmp_path):
    """The collector's admin listener too: it and Airflow's UI both defaulted to 8081, and `make up` runs both."""
    from trackway.config import load_settings
    from trackway.stack.processes import stack_environment
    from trackway.stack.up import stack_ports

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith(("TRACKWAY_", "AIRFLOW"))]:
            mp.delenv(key)
        mp.setenv("TRACKWAY_HOME", str(tmp_path / "defaults"))
        settings = load_settings()
        ports = [(port, setting) for _, port, setting in stack_ports(settings, stack_environment(settings, {}))]
    assert ports == [
        (8080, "TRACKWAY_COLLECTOR_PORT"),
        (8082, "TRACKWAY_COLLECTOR_ADMIN_PORT"),
        (8081, "TRACKWAY_AIRFLOW_PORT"),
    ]
    # The task runners' and the triggerer's log servers get free ports, never the same one twice.
    env_ports = stack_environment(settings, {})
    log_ports = {env_ports[f"AIRFLOW__LOGGING__{k}_LOG_SERVER_PORT"] for k in ("WORKER", "TRIGGER")}
    assert len(log_ports) == 2

    env = clean_env(TRACKWAY_HOME=str(tmp_path / "home"), TRACKWAY_COLLECTOR_PORT=str(free_port()))
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        admin_taken = {**env, "TRACKWAY_COLLECTOR_ADMIN_PORT": port, "TRACKWAY_AIRFLOW_PORT": str(free_port())}
        result = subprocess.run([TRACKWAY, "up"], env=admin_taken, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Set TRACKWAY_COLLECTOR_ADMIN_PORT to a free port" in result.stderr
    # Two settings on one free port: each would bind alone, the second process would fail later.
    same = {**env, "TRACKWAY_COLLECTOR_ADMIN_PORT": port, "TRACKWAY_AIRFLOW_PORT": port}
    result = subprocess.run([TRACKWAY, "up"], env=same, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"TRACKWAY_COLLECTOR_ADMIN_PORT and TRACKWAY_AIRFLOW_PORT are both {port}" in result.stderr
    assert not (tmp_path / "home" / "airflow" / "airflow.db").exists()  # refused before anything ran


def test_the_stack_runs_the_commands_compose_runs():
    """Same DAGs everywhere: each process of `trackway up` is the compose service of its name, same command.

    The collector too: no flags in either, its settings (where it listens) come from the environment. airflow-init
    runs `airflow db migrate` first and then makes the FAB admin (the stack uses the simple auth manager); the
    image's build runs dbt-compile's command (include/docker/Dockerfile).
    """
    import shlex

    from trackway.stack.processes import PREPARE, stack_processes

    services = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())["services"]
    processes = stack_processes({"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"})
    assert [p.name for p in processes] == [
        "collector",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    ]
    for process in processes:
        assert tuple(services[process.name]["command"]) == process.command, process.name
    where = ("TRACKWAY_COLLECTOR_HOST", "TRACKWAY_COLLECTOR_PORT", "TRACKWAY_COLLECTOR_ADMIN_HOST")
    where += ("TRACKWAY_COLLECTOR_ADMIN_PORT",)
    assert set(where) <= set(services["collector"]["environment"])  # settings, as the stack passes them
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    migrate, compile_ = PREPARE
    init_script = [line for line in services["airflow-init"]["command"][-1].splitlines() if line.strip()]
    assert tuple(shlex.split(init_script[0])) == migrate.command
    dockerfile = (REPO_ROOT / "include/docker/Dockerfile").read_text()
    assert f" {' '.join(compile_.command)}\n" in dockerfile
    celery = stack_processes({"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"})
    assert celery[-1].command == ("airflow", "celery", "worker")


def test_up_print_shows_the_processes_and_settings_without_secrets(tmp_path):
    env = clean_env(
        TRACKWAY_HOME=str(tmp_path / "home"),
        TRACKWAY_AIRFLOW_PORT="18181",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow:s3cret-pw@db:5432/airflow",
    )
    env = {k: v for k, v in env.items() if k == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" or not k.startswith("AIRFLOW")}
    result = subprocess.run([TRACKWAY, "up", "--print"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "airflow-scheduler: airflow scheduler" in result.stdout and "collector: trackway collect" in result.stdout
    assert f"AIRFLOW_HOME={tmp_path / 'home' / 'airflow'}" in result.stdout
    assert "AIRFLOW__API__PORT=18181" in result.stdout
    ports = ("TRACKWAY_COLLECTOR_PORT=8080", "TRACKWAY_COLLECTOR_ADMIN_PORT=8082", "TRACKWAY_AIRFLOW_PORT=18181")
    assert all(f"\n{line}\n" in result.stdout for line in ports), result.stdout
    assert "TRACKWAY_HEALTH_COLLECTOR_METRICS_URL=http://127.0.0.1:8082/metrics" in result.stdout
    assert "AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:18181/execution/" in result.stdout
    assert "s3cret-pw" not in result.stdout and "airflow:***@db:5432" in result.stdout
    assert not (tmp_path / "home" / "stack").exists()
