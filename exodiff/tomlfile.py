"""TOML in and out: reading config and sweep files, parsing the config text
stored in run files, writing configs back as TOML, and comparing two configs
key by key.  The one place that knows TOML (tomllib, or tomli before Python
3.11)."""
import json
import math
import os
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import InputError
from .formats import one_line

TOMLDecodeError = tomllib.TOMLDecodeError
# A key that differs because one side does not set it.
UNSET = object()


def read_toml(path, what="config"):
    """The table of TOML file `path`; InputError with one line naming the
    file if it cannot be read or parsed (`what`: "config", "sweep", ...)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a {what} file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: cannot read: not UTF-8 text") from None
    try:
        return parse_toml(text)
    except TOMLDecodeError as e:
        raise InputError(f"{path}: invalid TOML: {one_line(e)}") from None


def parse_toml(text):
    """The table of TOML ``text`` (TOMLDecodeError if it is not TOML)."""
    return tomllib.loads(text)


def flatten(table, prefix=""):
    """A nested table as {"dotted.key": value} (empty tables kept as values)."""
    flat = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def differences(a, b):
    """[(dotted key, value in a, value in b)] for every key whose values
    differ between the tables ``a`` and ``b``, in key order; a key that one
    of them does not set has :data:`UNSET` there."""
    a, b = flatten(a), flatten(b)
    return [(key, a.get(key, UNSET), b.get(key, UNSET))
            for key in sorted(set(a) | set(b)) if a.get(key, UNSET) != b.get(key, UNSET)]


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dump_toml(data):
    """Write a config dict as TOML: top-level sections and
    [cell_types.X]/[vesicles.X] as headers, deeper tables inline, arrays on
    one line (a written config looks like a hand-written one)."""
    lines = []
    _dump_table(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(table, path, lines):
    header_children = []
    body = []
    for key, value in table.items():
        as_header = isinstance(value, dict) and (
            not path or (len(path) == 1 and path[0] in ("cell_types", "vesicles")))
        if as_header:
            header_children.append((key, value))
        else:
            body.append(f"{_toml_key(key)} = {toml_value(value)}")
    if path and (body or not header_children):
        lines.append("")
        lines.append("[" + ".".join(_toml_key(k) for k in path) + "]")
    lines.extend(body)
    for key, value in header_children:
        _dump_table(value, path + [key], lines)


def _toml_key(key):
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are all valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if hasattr(value, "isoformat"):  # TOML dates and times
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
