"""Quantities with units in config values.

Every config quantity is either a plain number, already in the default unit,
or a string such as ``"50 nm"``, ``"37 degC"`` or ``"0.02 /s"``.  Default units
(DESIGN §4): length µm, time s, diffusion µm²/s, rate 1/s, speed µm/s,
temperature K, viscosity Pa·s, density kg/m³.

Pint is imported only when a string has to be parsed: building its registry
takes a few tenths of a second, which ``import exodiff`` should not pay.
"""
import math
import numbers
import re

from .errors import ConfigError

# Default unit (as the caller passes it) -> (what it measures, example).
# The names appear in error messages: "expected a length like '5 um'".
KINDS = {
    "um": ("length", "5 um"),
    "s": ("time", "1 ms"),
    "um^2/s": ("diffusion coefficient", "4 um^2/s"),
    "1/s": ("rate", "0.02 /s"),
    "um/s": ("speed", "0.5 um/s"),
    "K": ("temperature", "37 degC"),
    "Pa*s": ("viscosity", "0.78 mPa*s"),
    "kg/m^3": ("density", "1.15 g/mL"),
}

# A leading number (decimal, exponent, or inf) followed by the unit text.
_NUMBER = re.compile(
    r"^\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))\s*(.*?)\s*$",
    re.IGNORECASE,
)

_registry = None


def registry():
    """The module's single pint UnitRegistry, created on first use."""
    global _registry
    if _registry is None:
        import pint

        # Parsing pint's definitions file costs ~0.3 s of start-up; pint can
        # keep the parsed registry in the user's cache folder (~0.08 s to
        # load).  Where that folder cannot be used, parse as usual.
        try:
            _registry = pint.UnitRegistry(cache_folder=":auto:")
        except Exception:
            _registry = pint.UnitRegistry()
    return _registry


def describe(value):
    """A value as it would be written in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if "'" not in value else f'"{value}"'
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def bare_number_hint(given):
    """Why a length came out in µm, when it was written without a unit
    (``given`` as written: a number, or a table with a median)."""
    median = given.get("median") if isinstance(given, dict) else given
    if isinstance(median, (int, float)) and not isinstance(median, bool):
        return f"; a number without a unit is in µm (for nanometres write \"{median:g} nm\")"
    return ""


def parse_quantity(value, unit, key, allow_inf=False, kind=None):
    """Convert a config quantity to a float in ``unit``.

    value: a number (taken to be in ``unit``) or a string with units
        ("50 nm", "37 degC", "0.02 /s", "4 um^2/s"); a bare number string
        is also taken to be in ``unit``.
    unit: the default unit, one of KINDS ("um", "s", "um^2/s", "1/s",
        "um/s", "K", "Pa*s", "kg/m^3").
    key: dotted config key, for the error message.
    allow_inf: accept "inf" / TOML ``inf`` (→ math.inf).  NaN never passes.
    kind: overrides the wording of the error ("reactivity" instead of
        "speed").

    Raises ConfigError(key, "expected a <kind> like '<example>', got ...")
    for a wrong dimension, an unknown unit, a non-number or a non-finite
    value where none is allowed.
    """
    name, example = KINDS.get(unit, (unit, f"1 {unit}"))
    name = kind or name

    def fail(finite=""):
        article = "an" if (finite or name)[0] in "aeiou" else "a"
        return ConfigError(key, f"expected {article} {finite}{name} like '{example}', got {describe(value)}")

    # bool is an int subclass; true/false is never a quantity.
    if isinstance(value, bool):
        raise fail()
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        match = _NUMBER.match(value)
        if not match:
            raise fail()
        number, unit_text = float(match.group(1)), match.group(2)
        if not unit_text:
            result = number
        else:
            result = _convert(number, unit_text, unit)
            if result is None:
                raise fail()
    else:
        raise fail()
    if math.isnan(result) or (math.isinf(result) and not allow_inf):
        raise fail("finite ")
    return result


def _convert(number, unit_text, unit):
    """number × unit_text expressed in ``unit``; None if pint can't."""
    ureg = registry()
    # pint rejects a leading "/" ("0.02 /s"), so read it as "1/s".
    if unit_text.startswith("/"):
        unit_text = "1" + unit_text
    try:
        parsed = ureg.Quantity(unit_text)
        if parsed.magnitude == 1:
            # Build from the units alone so offset units (degC) convert
            # as temperatures, not as temperature differences.
            quantity = ureg.Quantity(number, parsed.units)
        else:
            quantity = number * parsed
        value = float(quantity.to(unit.replace("^", "**")).magnitude)
    except Exception:  # pint raises many kinds (undefined, syntax, dimension)
        return None
    # Conversion factors leave round-off (1.007 g/mL → 1006.9999999999998);
    # config values never carry 16 significant digits, so drop it.
    return float(f"{value:.15g}") if math.isfinite(value) else value


def argument(value, unit, name):
    """A time, length or rate argument of the CLI or of an analysis, read as
    config quantities are: a number in ``unit`` (the default unit) or a
    string with units (``"30 min"``, ``"20 um"``); a list or array of them
    gives a list of floats.  None stays None.  ``name`` (``--time``,
    ``time``) labels the ConfigError, an InputError the CLI prints as one
    ``Error:`` line."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or (hasattr(value, "ndim") and value.ndim > 0):
        return [argument(v, unit, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)  # NumPy scalars: plain floats for parse_quantity
    return parse_quantity(value, unit, name)
