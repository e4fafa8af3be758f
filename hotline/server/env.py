"""One declaration per environment variable, and everything derived from it.

A settings dataclass declares each variable on its field with :func:`var`: the variable's name,
its help line, whether it is a secret, how its text is parsed and how the value is checked (the
shape of pydantic-settings' ``Field(alias=..., description=...)`` plus a validator, without the
dependency). From those rows derive:

* :func:`from_env`: the settings read from an environment mapping (blank means unset);
* :func:`check`, run by the class's ``__post_init__``: blank secrets become None, enum fields
  given as text become members, every value is checked, so ``Settings(port=0)`` fails as
  ``PORT=0`` does and ``Settings(...)`` built in code obeys the same rules as the environment;
* :func:`secrets` (what the logs redact) and :func:`describe` (what the logs may show);
* :func:`variables`: every variable by name, which the README's tables are checked against
  (``tests/test_readme.py``, both ways).

A field holding a nested settings class is declared with :func:`group`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from hotline.errors import ConfigError

__all__ = [
    "Choice",
    "Table",
    "Var",
    "check",
    "describe",
    "flag",
    "from_env",
    "group",
    "integer",
    "items",
    "lower",
    "non_empty",
    "number",
    "secrets",
    "text",
    "var",
    "variables",
    "whole",
    "within",
]

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")

_VAR = "hotline.var"
_GROUP = "hotline.group"


class Table(enum.Enum):
    """Where the README documents a variable."""

    USER = "user"  # the configuration table: what a deployment sets
    STANDIN = "standin"  # stand-in and test knobs: the local voice, tests, benchmarks


# ------------------------------------------------------------------------------ parsers
# A parser takes the stripped, non-empty text of a variable. It raises ValueError with what the
# value must be ("must be an integer"); from_env names the variable and quotes the text.


def text(raw: str) -> str:
    return raw


def lower(raw: str) -> str:
    return raw.lower()


def integer(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("must be an integer") from None


def number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def flag(raw: str) -> bool:
    word = raw.lower()
    if word not in ("0", "1", "true", "false", "yes", "no"):
        raise ValueError("must be 0 or 1")
    return word in ("1", "true", "yes")


def items(raw: str) -> tuple[str, ...]:
    """Comma-separated, blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


class Choice(Generic[E]):
    """An enum member by its value, case-insensitively."""

    def __init__(self, enum_type: type[E]) -> None:
        self.enum = enum_type

    def __call__(self, raw: str) -> E:
        try:
            return self.enum(raw.lower())
        except ValueError:
            names = ", ".join(str(m.value) for m in self.enum)
            raise ValueError(f"must be one of {names}") from None


# ------------------------------------------------------------------------------- checks
# A check takes the variable's name and a set value; it returns the value (normalised, if it
# normalises) or raises ConfigError naming the variable.

Check = Callable[[str, Any], Any]


def within(low: float, high: float, unit: str = "") -> Check:
    """A number within ``low..high`` (inclusive)."""

    def shown(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    def check(name: str, value: float) -> float:
        if not low <= value <= high:
            raise ConfigError(
                f"{name} must be within {shown(low)}..{shown(high)}{' ' + unit if unit else ''}, "
                f"got {value!r}"
            )
        return value

    return check


def non_empty(name: str, value: str) -> str:
    if not value:
        raise ConfigError(f"{name} must not be empty")
    return value


# ---------------------------------------------------------------------------- the rows


def whole(value: str) -> str | None:
    return value


@dataclass(frozen=True)
class Var:
    """One environment variable.

    Attributes:
        env: its name.
        help: one line on what it does (the README says more).
        parse: text -> value (see the parsers above).
        check: ``(env, value) -> value``, run on every set value, from the environment or not.
        secret: kept out of ``repr()`` and :func:`describe`; blank means unset.
        redact: the part of a secret the logs must never show (default: all of it).
        table: which README table documents it.
        fallback: a second variable read when this one is unset; its ``parse`` gives this
            one's value (``RAILWAY_PUBLIC_DOMAIN`` -> ``https://<domain>``).
    """

    env: str
    help: str
    parse: Callable[[str], Any] = text
    check: Check | None = None
    secret: bool = False
    redact: Callable[[str], str | None] = whole
    table: Table = Table.USER
    fallback: Var | None = None

    def read(self, env: Mapping[str, str]) -> Any:
        """This variable's value in ``env`` (or its fallback's); None when unset or blank.

        Raises:
            ConfigError: the text does not parse (the message names the variable).
        """
        for row in (self, self.fallback):
            if row is None:
                continue
            raw = env.get(row.env)
            if raw is not None and raw.strip():
                return row.parse_text(raw.strip())
        return None

    def parse_text(self, raw: str) -> Any:
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{self.env} {exc}, got {raw!r}") from None


def var(
    env: str,
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any] = text,
    check: Check | None = None,
    secret: bool = False,
    redact: Callable[[str], str | None] = whole,
    table: Table = Table.USER,
    fallback: Var | None = None,
) -> Any:
    """A dataclass field read from the environment variable ``env`` (see :class:`Var`)."""
    row = Var(env, help, parse, check, secret, redact, table, fallback)
    return field(default=default, repr=not secret, metadata={_VAR: row})


def group(settings_type: Callable[[], T]) -> Any:
    """A dataclass field holding a nested settings class (its variables count as ours)."""
    return field(default_factory=settings_type, metadata={_GROUP: settings_type})


# ------------------------------------------------------------------------ derivations


def _rows(settings_type: Any) -> Iterator[tuple[str, Var | None, Any]]:
    """(field name, its row or None, its nested settings type or None) for every field."""
    for f in fields(settings_type):
        yield f.name, f.metadata.get(_VAR), f.metadata.get(_GROUP)


def variables(settings_type: type) -> dict[str, Var]:
    """Every variable the settings read, by name (fallbacks and nested settings included)."""
    out: dict[str, Var] = {}
    for _, row, nested in _rows(settings_type):
        if nested is not None:
            out.update(variables(nested))
        elif row is not None:
            out[row.env] = row
            if row.fallback is not None:
                out[row.fallback.env] = row.fallback
    return out


def from_env(settings_type: Callable[..., T], env: Mapping[str, str]) -> T:
    """The settings ``env`` sets; what it leaves unset (or blank) keeps its default.

    Raises:
        ConfigError: a value is malformed or out of range (the message names the variable).
    """
    kwargs: dict[str, Any] = {}
    for name, row, nested in _rows(settings_type):
        if nested is not None:
            kwargs[name] = from_env(nested, env)
        elif row is not None and (value := row.read(env)) is not None:
            kwargs[name] = value
    return settings_type(**kwargs)


def check(settings: Any) -> None:
    """Blank secrets to None, text to enum members, then every row's check (``__post_init__``).

    Raises:
        ConfigError: a value is out of range or malformed (the message names the variable).
    """
    for name, row, _ in _rows(settings):
        if row is None:
            continue
        value = getattr(settings, name)
        if row.secret and isinstance(value, str) and not value.strip():
            value = None
        if isinstance(row.parse, Choice) and value is not None:
            if not isinstance(value, row.parse.enum):
                value = row.parse_text(str(value))
        if row.check is not None and value is not None:
            value = row.check(row.env, value)
        object.__setattr__(settings, name, value)


def secrets(settings: Any) -> list[str]:
    """Every secret set, as the logs must never show it."""
    out: list[str] = []
    for name, row, nested in _rows(settings):
        value = getattr(settings, name)
        if nested is not None:
            out += secrets(value)
        elif row is not None and row.secret and value and (hidden := row.redact(value)):
            out.append(hidden)
    return out


def describe(settings: Any) -> dict[str, object]:
    """Every field for the logs: secrets as ``set``/``unset``, enums as their value."""
    out: dict[str, object] = {}
    for name, row, nested in _rows(settings):
        value = getattr(settings, name)
        if nested is not None:
            value = describe(value)
        elif row is not None and row.secret:
            value = "set" if value else "unset"
        elif isinstance(value, enum.Enum):
            value = value.value
        out[name] = value
    return out
