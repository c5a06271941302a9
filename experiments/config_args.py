"""The one parser of config-file arguments: `--config=experiments/FILE.py:key=value,key=value`.

Every experiment config's `get_config(arg)` declares its arguments with their defaults, and this
parser turns the string after the colon into a dict typed like those defaults:

    args = config_args.parse(arg, task="rte", seeds=25, runlocal=False)

* `key=value` pairs separated by commas; a bare `key` means True (for a bool argument only).
* Values are converted to the default's type: int, float, bool (true/false/1/0/yes/no), str.
  A tuple default takes several values joined by "+" (`arm=devlin+mosbach`).
* An unknown key, a missing value or a value of the wrong type fails at once, naming the key and
  listing the valid keys with their defaults: a misspelt `sourc=tsv` never silently runs with the
  default source.

Settings that are not config-file arguments go through ml_collections' own flags
(`--config.optimizer.learning_rate=3e-5`), which are strict in the same way.
"""

from __future__ import annotations

from typing import Any

_TRUE = ("1", "true", "yes", "y", "on")
_FALSE = ("0", "false", "no", "n", "off")


class ConfigArgumentError(ValueError):
    """A config-file argument that is unknown or of the wrong type."""


def _valid_keys(defaults: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_show(value)}" for key, value in sorted(defaults.items()))


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "+".join(str(v) for v in value)
    return str(value)


def _convert(key: str, raw: str, default: Any, defaults: dict[str, Any]) -> Any:
    def fail(expected: str):
        raise ConfigArgumentError(
            f"config argument {key}={raw!r}: expected {expected}; valid arguments (with their "
            f"defaults): {_valid_keys(defaults)}")

    if isinstance(default, bool):
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        fail("true or false")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            fail("an integer")
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            fail("a number")
    if isinstance(default, tuple):
        values = tuple(v for v in raw.split("+") if v)
        if not values:
            fail("one or more values joined by '+'")
        return values
    if default is None or isinstance(default, str):
        return raw
    raise TypeError(f"config argument {key}: unsupported default type {type(default).__name__}")


def parse(arg: str | None, **defaults: Any) -> dict[str, Any]:
    """`"key=value,flag"` -> {key: typed value} over `defaults` (see the module docstring)."""
    values = dict(defaults)
    seen = set()
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, has_value, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if key not in defaults:
            raise ConfigArgumentError(
                f"unknown config argument {key!r} (in {arg!r}); valid arguments (with their "
                f"defaults): {_valid_keys(defaults)}")
        if key in seen:
            raise ConfigArgumentError(f"config argument {key!r} is given twice (in {arg!r})")
        seen.add(key)
        if not has_value:
            if not isinstance(defaults[key], bool):
                raise ConfigArgumentError(
                    f"config argument {key!r} needs a value ({key}=...); only true/false "
                    f"arguments may stand alone. Valid arguments: {_valid_keys(defaults)}")
            values[key] = True
            continue
        values[key] = _convert(key, raw, defaults[key], defaults)
    return values
