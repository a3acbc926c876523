"""The version of exodiff (written into every run file and checkpoint)."""
__version__ = "0.5.2"
