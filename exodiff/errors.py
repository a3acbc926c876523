"""Exceptions that the CLI turns into exit codes (DESIGN §4)."""


class InputError(Exception):
    """Bad input: config, argument or unreadable file.  The CLI prints
    ``Error: <message>`` on one line and exits with code 2, having written
    nothing.  The message names the key or file, the value and what was
    expected."""


class ConfigError(InputError):
    """A config value is wrong; ``key`` is the dotted path (``cells.radius``)."""

    def __init__(self, key, message):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped at a step boundary on SIGINT (Ctrl-C) or SIGTERM after
    saving what ``exodiff run --resume`` needs.  The CLI exits with
    128 + ``signum`` (130 for Ctrl-C)."""

    def __init__(self, path, step, n_steps, time, signum):
        self.path, self.step, self.n_steps, self.time, self.signum = path, step, n_steps, time, signum
        super().__init__(f"{path}: interrupted at step {step} of {n_steps} (t = {time:g} s)")
