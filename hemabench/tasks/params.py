"""A task's parameters, declared once: a small vocabulary of rules, one per parameter.

A task class states ``param_rules``: parameter name -> :class:`Rule`, built from the words
below (a positive integer, a fraction, a list of integers, one of some choices, a mapping
of fields...). ``Task.with_params`` rejects an unknown name, and a value that breaks its
rule, with one line naming the parameter and the problem::

    max_iter must be a positive integer, got 0
    calibration.slice must be a fraction between 0 and 1, got 1.5

What ties two parameters together (``ks`` must include the main metric's k) stays in the
task's ``check_params``, after the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """What a parameter's value must be: ``accepts(value)``, described as ``what`` ("a positive
    integer"); or ``check(name, value)`` giving its own line (a mapping of fields)."""

    what: str
    accepts: Callable[[object], bool] = lambda value: True
    check_fn: Callable[[str, object], str | None] | None = None

    def check(self, name: str, value) -> str | None:
        """One line naming ``name`` and what is wrong with ``value``, or None."""
        if self.check_fn is not None:
            return self.check_fn(name, value)
        return None if self.accepts(value) else f"{name} must be {self.what}, got {value!r}"

    def said(self, what: str) -> Rule:
        """The same rule described in the protocol's words."""
        return Rule(what, self.accepts, self.check_fn)


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(minimum: int | None = None) -> Rule:
    """An integer (not a bool), at least ``minimum`` where given."""
    what = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer of at least {minimum}")
    return Rule(what, lambda v: _int(v) and (minimum is None or v >= minimum))


def positive_int() -> Rule:
    return integer(1)


def fraction() -> Rule:
    """A number strictly between 0 and 1."""
    return Rule("a fraction between 0 and 1", lambda v: _number(v) and 0 < v < 1)


def number(low: float, high: float | None = None, low_open: bool = False, high_open: bool = True) -> Rule:
    """A number in an interval: [low, high) by default; ``high`` None: no upper bound."""
    text = f"{'(' if low_open else '['}{low:g}, {'inf' if high is None else f'{high:g}'}{')' if high_open else ']'}"
    return Rule(f"a number in {text}", lambda v: _number(v) and (v > low if low_open else v >= low) and (
        high is None or (v < high if high_open else v <= high)))


def positive_number(*alternatives) -> Rule:
    """A number above 0, or one of some named ``alternatives`` (a rule's name, e.g. ``"M*K/100"``)."""
    also = "".join(f" or {a!r}" for a in alternatives if a is not None)
    return Rule(f"a positive number{also}",
                lambda v: (v in alternatives) if isinstance(v, str) or v is None else _number(v) and v > 0)


def boolean() -> Rule:
    return Rule("true or false", lambda v: isinstance(v, bool))


def one_of(*choices) -> Rule:
    return Rule(f"one of {', '.join(map(str, choices))}", lambda v: type(v) is type(choices[0]) and v in choices)


def optional(rule: Rule) -> Rule:
    """Null, or what ``rule`` accepts."""
    if rule.check_fn is not None:  # a mapping of fields: its own lines
        return Rule(f"null or {rule.what}", check_fn=lambda name, v: None if v is None else rule.check(name, v))
    return Rule(f"null or {rule.what}", lambda v: v is None or rule.accepts(v))


def int_list(low: int = 1, high: int | None = None, increasing: bool = False) -> Rule:
    """A non-empty list of integers from ``low`` (to ``high``), strictly increasing where asked."""
    span = "positive integers" if low == 1 and high is None else f"integers from {low} to {high}" if high is not None \
        else f"integers of at least {low}"
    return Rule(f"a non-empty{', increasing' if increasing else ''} list of {span}",
                lambda v: isinstance(v, list) and bool(v) and all(_int(x) and x >= low and (high is None or x <= high)
                                                                  for x in v)
                and (not increasing or v == sorted(set(v))))


def choice_list(choices) -> Rule:
    """A non-empty list of some of ``choices``."""
    return Rule(f"a non-empty list of {', '.join(choices)}",
                lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, str) and x in choices for x in v))


def str_list() -> Rule:
    return Rule("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))


def checked(what: str, problem: Callable[[object], str | None]) -> Rule:
    """A rule whose check lives with the code that uses the value: ``problem(value)`` says what is
    wrong in words that follow the parameter's name (e.g. a classifier's unknown keyword)."""
    return Rule(what, check_fn=lambda name, value: (f"{name} {p}" if (p := problem(value)) else None))


def fields(rules: Mapping[str, Rule]) -> Rule:
    """A mapping with exactly these keys, each value checked by its rule (``name.key`` in the line)."""
    keys = ", ".join(sorted(rules))

    def check(name: str, value) -> str | None:
        if not isinstance(value, dict) or set(value) != set(rules):
            return f"{name} must be a mapping with keys {keys}, got {value!r}"
        return next((p for key, rule in rules.items() if (p := rule.check(f"{name}.{key}", value[key]))), None)

    return Rule(f"a mapping with keys {keys}", check_fn=check)


def params_problem(rules: Mapping[str, Rule], params: Mapping) -> str | None:
    """The first parameter that breaks its rule, as one line, or None. Every parameter needs a rule."""
    for name, value in params.items():
        rule = rules.get(name)
        if rule is None:
            return f"{name} has no rule (declare it in the task's param_rules)"
        problem = rule.check(name, value)
        if problem:
            return problem
    return None
