"""Two costs of running many dbt commands in one process, removed (issue 20 §6, §7).

Cosmos's ``InvocationMode.DBT_RUNNER`` runs each task's dbt inside the Airflow process. One process runs
every task of a run under ``airflow dags test`` (the demo), and a pytest worker runs hundreds. Two library
costs then grow with the process:

* dbt-common names each behavior flag's source with ``inspect.stack()`` and ``inspect.getmodule`` per frame
  (``dbt_common.behavior_flags.BehaviorFlagRendered._default_source``), on every adapter registration, so
  once per dbt command. Each ``getmodule`` miss walks all of ``sys.modules``.
* Cosmos calls ``gc.collect()`` after every dbt command (``cosmos.dbt.runner._cleanup_dbt_adapters``),
  a full scan of a heap that only grows.

The flag's source is read from the frames' globals instead (the same answer: the first calling module
that is not behavior_flags itself; it only names the module in a behavior-change warning). After Cosmos's
collect, what survived is frozen, so the next command's collect scans only what that command made.
Reference counting still frees everything; only cycles made before a freeze stay. In a task process of
its own, the usual production case, both costs were small (13 ms a flag, about 0.1 s a collect).
"""

from __future__ import annotations

import gc
import sys
from typing import Any

_APPLIED: dict[str, Any] = {}


def _default_source() -> str:
    from dbt_common import behavior_flags

    frame: Any = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name and name != behavior_flags.__name__ and name in sys.modules:
            return str(name)
        frame = frame.f_back
    return "Unknown"


def speed_up_in_process_dbt() -> None:
    """Install both changes once per process; a dbt-common or Cosmos without these functions is left alone."""
    if _APPLIED:
        return
    from dbt_common import behavior_flags

    rendered = getattr(behavior_flags, "BehaviorFlagRendered", None)
    if rendered is not None and hasattr(rendered, "_default_source"):
        _APPLIED["flag_source"] = rendered._default_source
        rendered._default_source = staticmethod(_default_source)

    import airflow  # noqa: F401  (before Cosmos, which cannot be imported first: a circular import in it)
    from cosmos.dbt import runner

    cleanup = getattr(runner, "_cleanup_dbt_adapters", None)
    if cleanup is not None:
        _APPLIED["cleanup"] = cleanup

        def cleanup_then_freeze() -> None:
            cleanup()
            gc.freeze()

        runner._cleanup_dbt_adapters = cleanup_then_freeze
    _APPLIED.setdefault("done", True)
