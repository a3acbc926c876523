"""How numbers and messages read to a user: one formatter per kind of number
(times, counts, byte sizes), exception messages on one line, and the
did-you-mean hint of every "unknown key" error."""
import difflib
import math


def format_time(seconds):
    """A time [s] with a readable unit: "1 ms", "30 s", "2 h", "inf"."""
    if math.isinf(seconds):
        return "inf"
    if seconds == 0:
        return "0 s"
    for unit, scale in (("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale or unit == "ns":
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds:g} s"


def format_count(x):
    """1,234,567 — or 1.23e+15 when the digits say nothing more."""
    return f"{x:,.0f}" if x < 1e12 else f"{x:.3g}"


def format_bytes(n):
    """A size in bytes with an SI unit: "512 B", "1.5 GB"."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000.0


def one_line(exc):
    """An exception's message on one line (HDF5 errors span several)."""
    return " ".join(str(exc).split())


def did_you_mean(name, choices):
    """"; did you mean 'x'?" for the choice closest to ``name``, or ""."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""
