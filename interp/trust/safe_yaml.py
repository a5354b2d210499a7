"""YAML from untrusted files, bounded and fast: plain data only, built straight from libyaml's event stream.

PyYAML's ``safe_load`` is safe from code execution but not from an alias bomb (a few kilobytes whose aliases
expand to billions of nodes once something walks them), and its pure-Python composer and resolver take tens of
seconds on a manifest of 100,000 checkpoints. Here the parser's events (libyaml when present) are turned into
dicts, lists and scalars directly; an alias reuses its anchor's object and adds that object's expanded size to a
running count, so the document is refused as soon as it would expand past ``max_nodes``. Plain scalars are
resolved as YAML 1.1 does for the types a manifest uses (null, bool, int, float); everything else is a string.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from interp.errors import ManifestError

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"}
_FALSE = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"}
_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_INT_OTHER = re.compile(r"[-+]?(0b[01_]+|0x[0-9a-fA-F_]+|0o?[0-7_]+)")
_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+")
_SPECIAL = {".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"), "-.inf": float("-inf"),
            "-.Inf": float("-inf"), "-.INF": float("-inf"), "+.inf": float("inf"), ".nan": float("nan"),
            ".NaN": float("nan"), ".NAN": float("nan")}
_STR_TAGS = {"tag:yaml.org,2002:str", "!"}


def _scalar(event: yaml.ScalarEvent, where: Path) -> Any:
    value, tag = event.value, event.tag
    if tag in _STR_TAGS or (tag is None and event.style is not None and event.style != ""):
        return value      # quoted or explicitly a string
    if tag is not None and tag != "?":
        kind = tag.rpartition(":")[2]
        if kind not in ("null", "bool", "int", "float"):
            raise ManifestError(f"{where}: YAML tag {tag!r} is not allowed in a manifest (plain data only)")
    if value in _NULL:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if _INT.fullmatch(value):
        return int(value.replace("_", ""))
    if _INT_OTHER.fullmatch(value):
        return int(value.replace("_", ""), 0) if not re.fullmatch(r"[-+]?0[0-7_]+", value) else int(
            value.replace("_", ""), 8)
    if value in _SPECIAL:
        return _SPECIAL[value]
    if _FLOAT.fullmatch(value):
        return float(value.replace("_", ""))
    return value


def load(path: Path, max_bytes: int, max_nodes: int) -> Any:
    """The document in ``path`` as plain Python data; ``ManifestError`` naming the file when it is too large, not
    valid YAML, uses tags, or expands (through aliases) past ``max_nodes`` nodes."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ManifestError(f"{path}: {size / 2**20:.0f} MB, larger than the {max_bytes >> 20} MB a manifest may "
                            f"have")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, "rb") as f:
            return _build(yaml.parse(f, Loader=loader), path, max_nodes)
    except yaml.YAMLError as e:
        raise ManifestError(f"{path}: not valid YAML ({e})") from None
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from None


def _build(events, where: Path, max_nodes: int) -> Any:  # noqa: C901 (one state machine over the event kinds)
    anchors: dict[str, tuple[Any, int]] = {}       # anchor -> (object, expanded node count)
    stack: list[list] = []                         # [container, pending key or _NONE, anchor, count]
    total = 0
    document: Any = None
    none = object()

    def add(value: Any, count: int) -> None:
        nonlocal total, document
        total += count
        if total > max_nodes:
            raise ManifestError(f"{where}: its aliases expand to more than {max_nodes:,} nodes; refused as an "
                                f"alias bomb")
        if not stack:
            document = value
            return
        top = stack[-1]
        top[3] += count
        if isinstance(top[0], list):
            top[0].append(value)
        elif top[1] is none:
            if isinstance(value, (dict, list)):
                raise ManifestError(f"{where}: a mapping key must be a plain value")
            top[1] = value
        else:
            top[0][top[1]] = value
            top[1] = none

    for ev in events:
        if isinstance(ev, yaml.ScalarEvent):
            value = _scalar(ev, where)
            if ev.anchor:
                anchors[ev.anchor] = (value, 1)
            add(value, 1)
        elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if ev.tag not in (None, "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
                raise ManifestError(f"{where}: YAML tag {ev.tag!r} is not allowed in a manifest (plain data only)")
            stack.append([{} if isinstance(ev, yaml.MappingStartEvent) else [], none, ev.anchor, 1])
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            container, _, anchor, count = stack.pop()
            total -= count - 1            # the children were counted as they came: count the container once more
            if anchor:
                anchors[anchor] = (container, count)
            add(container, count)
        elif isinstance(ev, yaml.AliasEvent):
            if ev.anchor not in anchors:
                raise ManifestError(f"{where}: alias *{ev.anchor} refers to an anchor not defined before it")
            add(*anchors[ev.anchor])
    return document
