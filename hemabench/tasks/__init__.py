"""Registered tasks; importing this package registers them all."""

from hemabench.tasks import aml_mil, blood_shift, breakhis, cell, label_efficiency, robustness, transfer  # noqa: F401
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput

__all__ = ["TASKS", "Predictions", "Task", "TaskInput"]
