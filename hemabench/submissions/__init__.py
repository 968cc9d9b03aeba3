"""Submissions: the folder layout, ``submit`` (copy a run in), ``validate`` (what CI checks) and ``check``
(regression checks on the committed reference results)."""

from hemabench.submissions.check import EPSILON, against_base, missing_references, rerun
from hemabench.submissions.layout import Problem
from hemabench.submissions.submit import submit
from hemabench.submissions.validate import validate_paths

__all__ = ["EPSILON", "Problem", "against_base", "missing_references", "rerun", "submit", "validate_paths"]
