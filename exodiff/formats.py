"""How numbers and messages read to a user: one formatter per kind of number
(times, byte sizes, counts) and one for exception messages."""


def format_time(t):
    """``7200 s (2 h)``: seconds, with a larger unit when it reads better."""
    t = float(t)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(t) >= size:
            return f"{t:g} s ({t / size:.3g} {unit})"
    return f"{t:g} s"


def one_line(exc):
    """An exception's message on one line (HDF5 errors span several)."""
    return " ".join(str(exc).split())
