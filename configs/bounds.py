"""Bounds declared beside each config field, and the one checker that enforces them.

    go_on_prob: float = bounded(0.4, ge=0, le=1)
    kind: str = one_of(("bundled", "files"), "bundled")

A bound is field metadata; `Section.__post_init__` checks every declared bound of the section,
then its `check()`, the rules that relate several fields. A message names the full dotted key
and the value: `task.warm_start.go_on_prob must be in [0, 1], got 1.5`. Each section knows its
place (`section`); one used in several places (placement, vllm, an OpenAI endpoint) names its
own, and the loader, which walks the merged tree before building it, names where it sits
(`rollout.placement.per_node`). A numeric bound or a choice of a list or dict holds for each of
its elements or values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

BOUND = "bound"


def require(condition: bool, message: str) -> None:
    """A rule relating several fields; the message names the keys."""
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class Bound:
    """What a field's value may be; None = no bound of that kind."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    options: tuple | None = None
    # The value itself (a string, after stripping, or a list) may not be empty.
    nonempty: bool = False

    def describe(self, listed: bool = False) -> str:
        """e.g. `in [0, 1]`, `>= 1`, `one of 'bundled', 'files'`; `listed`: of a list's elements."""
        if self.options is not None and listed:
            return f"a {'non-empty ' if self.nonempty else ''}list of " + ", ".join(repr(o) for o in self.options)
        parts = ["non-empty"] if self.nonempty else []
        low, opening = (self.ge, "[") if self.ge is not None else (self.gt, "(")
        high, closing = (self.le, "]") if self.le is not None else (self.lt, ")")
        if low is not None and high is not None:
            parts.append(f"in {opening}{_number(low)}, {_number(high)}{closing}")
        elif low is not None:
            parts.append(f"{'>=' if opening == '[' else '>'} {_number(low)}")
        elif high is not None:
            parts.append(f"{'<=' if closing == ']' else '<'} {_number(high)}")
        if self.options is not None:
            parts.append("one of " + ", ".join(repr(o) for o in self.options))
        return ", ".join(parts)

    def violation(self, value: Any) -> str | None:
        """Why `value` is out of bounds (`must be ...`), or None."""
        if value is None:
            return None
        empty = self.nonempty and not (value.strip() if isinstance(value, str) else len(value))
        if empty or not all(self._holds(x) for x in _elements(value)):
            return f"must be {self.describe(listed=_is_list(value))}, got {_shown(value)}"
        return None

    def _holds(self, x: Any) -> bool:
        if self.options is not None:
            return x in self.options
        return (
            (self.ge is None or x >= self.ge)
            and (self.gt is None or x > self.gt)
            and (self.le is None or x <= self.le)
            and (self.lt is None or x < self.lt)
        )


def bounded(
    default: Any = MISSING,
    *,
    default_factory: Any = MISSING,
    ge=None,
    gt=None,
    le=None,
    lt=None,
    nonempty: bool = False,
) -> Any:
    """A field whose value (or each element) must lie within the given limits."""
    bound = Bound(ge=ge, gt=gt, le=le, lt=lt, nonempty=nonempty)
    return field(default=default, default_factory=default_factory, metadata={BOUND: bound})


def one_of(options: tuple, default: Any = MISSING, *, default_factory: Any = MISSING, nonempty: bool = False) -> Any:
    """A field whose value (or each element of a list) must be one of `options`."""
    bound = Bound(options=tuple(options), nonempty=nonempty)
    return field(default=default, default_factory=default_factory, metadata={BOUND: bound})


def bound_of(f) -> Bound | None:
    return f.metadata.get(BOUND)


def check_bounds(section: type, values: Any, path: str) -> None:
    """Raise ValueError, naming `path.field`, for the first of `section`'s declared bounds that
    `values` (the section, or a mapping-like node holding its fields) breaks."""
    for f in fields(section):
        bound = bound_of(f)
        if bound is None:
            continue
        why = bound.violation(getattr(values, f.name))
        if why:
            raise ValueError(f"{dotted(path, f.name)} {why}")


def dotted(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class Section:
    """A config section: its declared bounds checked on construction, then `check()`."""

    # The section's dotted key in the run's config ("" at the top).
    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_bounds(type(self), self, self.section)
        self.check()

    def check(self) -> None:
        """Rules relating several fields (`require`); none by default."""


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _elements(value: Any) -> list:
    if isinstance(value, Mapping):
        return list(value.values())
    return list(value) if _is_list(value) else [value]


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else str(x)


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return repr(dict(value))
    return repr(list(value)) if _is_list(value) else repr(value)
