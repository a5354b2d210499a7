"""Validated option dataclasses: one set of checks for the CLI, the Python API and a config read back from JSON.

An options class is a frozen dataclass deriving from ``Options``; each field may carry bounds or choices through
``option(...)``. Construction checks every field against its annotation (int, float, bool, str, Path, tuples of
them, ``Literal``, ``X | None``) and its bounds, rejects NaN, and raises one ``ConfigError`` that names the option
and what would be valid. ``from_overrides`` turns ``--set key=value`` strings into typed values first.

    >>> @dataclass(frozen=True)
    ... class Demo(Options):
    ...     mass: float = option(0.9, gt=0, le=1)
    >>> Demo(mass=2.0)
    Traceback (most recent call last):
    ...
    interp.errors.ConfigError: Demo.mass = 2.0: must be <= 1 (valid: 0 < mass <= 1)
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from interp.errors import ConfigError, suggest


def option(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None, choices: tuple | None = None,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with bounds (``ge``/``gt``/``le``/``lt``) or allowed values (``choices``)."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices).items() if v is not None}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Options:
    """Base of every options dataclass: validates on construction (see the module doc)."""

    label: ClassVar[str] = ""   # how errors name the owner, e.g. "analyzer 'task-allocation'"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_type(getattr(self, f.name), hints[f.name], self._where(f.name))
            _check_bounds(value, f.metadata, self._where(f.name), f.name)
            object.__setattr__(self, f.name, value)

    @classmethod
    def _where(cls, name: str) -> str:
        return f"{cls.label} option {name}" if cls.label else f"{cls.__name__}.{name}"

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any]) -> Options:
        """An instance from typed values or strings (``--set key=value``); unknown keys list the valid ones."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        typed = {}
        for k, v in overrides.items():
            if k not in fields:
                owner = cls.label or cls.__name__
                raise ConfigError(f"{owner} has no option {k!r}; valid: {sorted(fields)}." + suggest(k, fields))
            typed[k] = parse(v, hints[k], cls._where(k)) if isinstance(v, str) else v
        return cls(**typed)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin is tuple:
        return "a list of " + _describe(get_args(tp)[0])
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path",
            type(None): "none"}.get(tp, getattr(tp, "__name__", str(tp)))


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """``value`` as ``tp`` (ints widen to float, lists to tuples, strings to Path), or ``ConfigError``."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for arm in get_args(tp):
            try:
                return _check_type(value, arm, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} = {value!r}: expected {_describe(tp)}")
    if origin is Literal:
        if value in get_args(tp) and type(value) in {type(a) for a in get_args(tp)}:
            return value
        raise ConfigError(f"{where} = {value!r}: must be {_describe(tp)}")
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise ConfigError(f"{where} = {value!r}: expected {_describe(tp)}")
        arms = get_args(tp)
        item = arms[0] if len(arms) == 2 and arms[1] is Ellipsis else None
        if item is None:
            if len(arms) != len(value):
                raise ConfigError(f"{where} = {value!r}: expected {len(arms)} values")
            return tuple(_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, arms)))
        return tuple(_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, list) or tp in (dict, list, Any):
        return value
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isnan(value):
                raise ConfigError(f"{where} = nan: must be a number, not NaN")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where} = {value!r}: expected {_describe(tp)}")


def _check_bounds(value: Any, meta: Any, where: str, name: str) -> None:
    if value is None or not meta:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{where} = {value!r}: must be one of {list(meta['choices'])}")
    rules = [(k, meta[k]) for k in ("ge", "gt", "le", "lt") if k in meta]
    if not rules or not isinstance(value, (int, float)):
        return
    ok = {"ge": value >= meta.get("ge", 0), "gt": value > meta.get("gt", 0), "le": value <= meta.get("le", 0),
          "lt": value < meta.get("lt", 0)}
    sym = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    for k, bound in rules:
        if not ok[k]:
            lo = [f"{_num(meta[b])} {'<=' if b == 'ge' else '<'}" for b in ("ge", "gt") if b in meta]
            hi = [f"{'<=' if b == 'le' else '<'} {_num(meta[b])}" for b in ("le", "lt") if b in meta]
            valid = " ".join(lo + [name] + hi)
            raise ConfigError(f"{where} = {value!r}: must be {sym[k]} {_num(bound)} (valid: {valid})")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def parse(text: str, tp: Any, where: str) -> Any:
    """A ``--set`` string as ``tp``: numbers, true/false, comma lists or JSON lists, ``none``."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        arms = get_args(tp)
        if text.lower() in ("none", "null") and type(None) in arms:
            return None
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return _check_type(parse(text, arm, where), arm, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} = {text!r}: expected {_describe(tp)}")
    try:
        if tp is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if origin is tuple:
            items = json.loads(text) if text.startswith("[") else [t for t in text.split(",") if t != ""]
            item = get_args(tp)[0]
            return tuple(parse(v, item, where) if isinstance(v, str) else v for v in items)
        if origin is Literal:
            for a in get_args(tp):
                if str(a) == text:
                    return a
            return text
        if tp in (dict, list) or origin in (dict, list):
            return json.loads(text)
    except (ValueError, json.JSONDecodeError):
        raise ConfigError(f"{where} = {text!r}: expected {_describe(tp)}") from None
    return text
