"""Registered tasks; importing this package registers them all, then those ``HEMABENCH_PLUGINS`` names."""

from hemabench.tasks import aml_mil, blood_shift, breakhis, cell, label_efficiency, robustness, transfer  # noqa: F401
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput
from hemabench.tasks.plugins import load_plugins

__all__ = ["TASKS", "Predictions", "Task", "TaskInput"]

load_plugins()
