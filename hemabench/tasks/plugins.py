"""Tasks from outside the package: ``HEMABENCH_PLUGINS`` names modules to import with the tasks.

    HEMABENCH_PLUGINS=path/to/my_task.py:other_package.tasks hemabench run --task my-task ...

Each entry (separated by ``os.pathsep``) is a ``.py`` file or an importable module name; it
registers its tasks with ``TASKS.add`` as a built-in task module does (or headline metrics with
``hemabench.results.metrics.register_metric``), and every command (``run``, ``validate``, ``leaderboard
build``, ``list tasks``) then knows them. README "Adding a task" / "Adding a metric" say which
files each needs; ``tests/test_plugins.py`` and ``tests/test_metric_plugin.py`` run one from a
temporary module through run, validate and the leaderboard.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from hemabench.errors import HemabenchError

VARIABLE = "HEMABENCH_PLUGINS"


def plugin_entries() -> list[str]:
    return [entry for entry in os.environ.get(VARIABLE, "").split(os.pathsep) if entry.strip()]


def load_plugins() -> list[str]:
    """Import every module ``HEMABENCH_PLUGINS`` names (once each); returns their module names."""
    return [_load(entry.strip()) for entry in plugin_entries()]


def _load(entry: str) -> str:
    if not entry.endswith(".py"):
        try:
            return importlib.import_module(entry).__name__
        except ImportError as exc:
            raise HemabenchError(f"{VARIABLE}: cannot import module {entry!r}: {exc}") from exc
    path = Path(entry).expanduser().resolve()
    if not path.is_file():
        raise HemabenchError(f"{VARIABLE}: {entry}: no such file")
    name = f"hemabench_plugin_{path.stem}"
    if name in sys.modules:
        return name
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return name
