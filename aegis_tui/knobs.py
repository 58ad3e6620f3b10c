"""Settings declared once: each field's default, range, help and the one check that reads them.

A settings dataclass declares its fields with ``knob(...)`` (a value) or ``table(...)`` (a
nested settings dataclass) and calls ``check_fields(self)`` in ``__post_init__``. Then the
same range check and the same one-line message serve every way a value arrives: a
``config.toml`` table, a command-line override, the training worker's JSON, a checkpoint,
or a constructor call in code. ``merge`` applies a (possibly partial, possibly nested)
mapping of overrides to an instance, rejecting unknown keys with a suggestion.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from typing import Any, ClassVar, Protocol, TypeVar

SPEC = "aegis_knob"


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range; the message names the key."""


@dataclass(frozen=True, slots=True)
class Spec:
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    # A custom parser ``(key, value) -> value`` for values a range cannot describe.
    check: Callable[[str, Any], Any] | None = None
    # Why a user cannot set it ("" = settable): fixed by the code, or derived from another key.
    fixed: str = ""
    table: type | None = None  # the settings class of a nested table


class Settings(Protocol):
    """A dataclass whose fields are knobs and tables; ``TABLE`` prefixes its messages."""

    TABLE: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]


S = TypeVar("S", bound=Settings)


def knob(default: Any, help: str, *, low: float | None = None, high: float | None = None,
         choices: tuple[str, ...] | None = None, check: Callable[[str, Any], Any] | None = None,
         fixed: str = "") -> Any:
    """A setting with its default, help and allowed values (a range, choices, or ``check``)."""
    spec = Spec(help=help, low=low, high=high, choices=choices, check=check, fixed=fixed)
    if isinstance(default, list | dict | set):
        raise TypeError("knob defaults must be immutable (use a tuple)")
    return field(default=default, metadata={SPEC: spec})


def table(cls: type, help: str) -> Any:
    """A nested settings table (a TOML ``[section]``), defaulting to ``cls()``."""
    return field(default_factory=cls, metadata={SPEC: Spec(help=help, table=cls)})


def spec_of(f: Field[Any]) -> Spec:
    spec = f.metadata.get(SPEC)
    if not isinstance(spec, Spec):
        raise TypeError(f"{f.name} is not declared with knob() or table()")
    return spec


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise TypeError(f"{f.name} has no default")


def suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def show(x: float) -> str:
    """A bound as a person writes it: ``1000``, ``2147483647``, ``0.01``, ``1e-08``."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _number(key: str, value: Any, kind: type) -> int | float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got a boolean")
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{key}: must be finite, got {value!r}")
    return value


def check_value(key: str, spec: Spec, kind: type, value: Any) -> Any:
    """``value`` normalised for a field of type ``kind``; ``ConfigError`` naming ``key``."""
    if spec.check is not None:
        return spec.check(key, value)
    if spec.choices is not None:
        if value not in spec.choices:
            raise ConfigError(f"{key}: must be one of {', '.join(spec.choices)}, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value.strip()
    number = _number(key, value, kind)
    low, high = spec.low, spec.high
    if (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            bounds = f"between {show(low)} and {show(high)}"
        elif low is not None:
            bounds = f"at least {show(low)}"
        else:
            bounds = f"at most {show(high or 0)}"
        raise ConfigError(f"{key}: must be {bounds}, got {value!r}")
    return number


def lookup(cls: type, key: str) -> tuple[Spec, type]:
    """The declaration of a dotted knob ``key`` of ``cls`` and its value's type."""
    *tables, name = key.split(".")
    for part in tables:
        table_cls = spec_of(_field(cls, part)).table
        if table_cls is None:
            raise KeyError(key)
        cls = table_cls
    f = _field(cls, name)
    return spec_of(f), type(_default(f))


def _field(cls: type, name: str) -> Field[Any]:
    found = next((f for f in fields(cls) if f.name == name), None)
    if found is None:
        raise KeyError(name)
    return found


def value_at(obj: Any, key: str) -> Any:
    """The value of a dotted ``key`` (``"imitation.model.d_model"``) of a settings object."""
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def parse_text(key: str, spec: Spec, kind: type, text: str) -> Any:
    """A command-line string for ``key``, read as its kind and checked like any other value."""
    if kind not in (int, float) or spec.check is not None or spec.choices is not None:
        return check_value(key, spec, kind, text)
    try:
        number = int(text) if kind is int else float(text)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{key}: expected {expected}, got {text!r}") from None
    return check_value(key, spec, kind, number)


def check_fields(obj: Any) -> None:
    """Check and normalise every knob of a frozen settings dataclass, in place.

    Call it from ``__post_init__``: each field is checked against its own ``knob``
    declaration (the kind is its default's type), so no second list of bounds exists.
    """
    prefix = f"{obj.TABLE}." if getattr(obj, "TABLE", "") else ""
    for f in fields(obj):
        spec = spec_of(f)
        value = getattr(obj, f.name)
        if spec.table is not None:
            if not isinstance(value, spec.table):
                raise ConfigError(f"{prefix}{f.name}: must be a table of settings")
            continue
        normal = check_value(prefix + f.name, spec, type(_default(f)), value)
        if normal is not value:
            object.__setattr__(obj, f.name, normal)


def merge(obj: S, overrides: Mapping[str, Any], prefix: str = "", *,
          internal: bool = False) -> S:
    """``obj`` with ``overrides`` applied: nested mappings update nested tables in part.

    ``internal`` (the worker's JSON, a checkpoint) may also carry the fixed fields, which a
    user's file or flag may not set.
    """
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{prefix.rstrip('.')}: must be a table of settings")
    by_name = {f.name: f for f in fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        f = by_name.get(key)
        if f is None:
            raise ConfigError(f"{prefix}{key}: unknown setting{suggest(key, list(by_name))}")
        spec = spec_of(f)
        if spec.fixed and not internal:
            raise ConfigError(f"{prefix}{key}: cannot be set ({spec.fixed})")
        if spec.table is None and isinstance(value, Mapping):
            raise ConfigError(f"{prefix}{key}: is a setting, not a table")
        if spec.table is not None and not isinstance(value, spec.table):
            value = merge(getattr(obj, key), value, f"{prefix}{key}.", internal=internal)
        changes[key] = value
    try:
        return replace(obj, **changes)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix.rstrip('.') or 'settings'}: {exc}") from None


def build(cls: type[S], data: Any, what: str) -> S:
    """``cls`` from a mapping (JSON, a checkpoint): unknown keys and bad values are one line."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} must be a map")
    return merge(cls(), dict(data), internal=True)


def as_dict(obj: Any, *, settable_only: bool = False) -> dict[str, Any]:
    """A settings dataclass as plain data (nested tables as dicts, tuples as lists);
    ``settable_only`` leaves out the fixed fields, so ``merge`` takes the result back."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        if settable_only and spec_of(f).fixed:
            continue
        value = getattr(obj, f.name)
        if is_dataclass(value):
            value = as_dict(value, settable_only=settable_only)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


@dataclass(frozen=True, slots=True)
class KnobDoc:
    key: str  # dotted: "imitation.epochs"
    default: Any
    help: str
    allowed: str  # "1-1000", "auto, cpu, cuda", "" when a check says it


def describe(cls: type, prefix: str = "") -> Iterator[KnobDoc]:
    """Every settable knob of ``cls`` and its tables, in declaration order (the README's
    table, ``aegis-tui config``)."""
    for f in fields(cls):
        spec = spec_of(f)
        if spec.fixed:
            continue
        if spec.table is not None:
            yield from describe(spec.table, f"{prefix}{f.name}.")
            continue
        if spec.choices is not None:
            allowed = ", ".join(spec.choices)
        elif spec.low is not None and spec.high is not None:
            allowed = f"{show(spec.low)} to {show(spec.high)}"
        elif spec.low is not None:
            allowed = f">= {show(spec.low)}"
        elif spec.high is not None:
            allowed = f"<= {show(spec.high)}"
        else:
            allowed = ""
        yield KnobDoc(key=prefix + f.name, default=_default(f), help=spec.help, allowed=allowed)
