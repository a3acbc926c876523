"""``python tests/faults.py ARGS...``: ``exodiff ARGS...`` with fault
injection, for tests that kill a run at one exact point (test_resume.py).

It listens to exodiff's probes (exodiff/probes.py) and, steered by the
environment, acts there:

- ``EXODIFF_TEST_KILL_AT="POINT:INDEX"``: SIGKILL this process, as a power
  cut would stop it, at probe POINT with that index: ``snapshot:K`` while
  writing snapshot frame K (values and milestones written, the frame not yet
  complete); ``chunk:S`` after the first chunk of steps that reaches step S
  or beyond (state advanced, its frames not yet written); ``checkpoint:K``
  after writing this process' K-th checkpoint (1, 2, ...) but before it
  replaces the previous one;
- ``EXODIFF_TEST_TRACE=FILE``: append "snapshot S" to FILE once the snapshot
  at step S is complete, so a test that kills the process knows what was
  finished before the kill.
"""
import os
import signal
import sys


def kill_at(spec):
    """A probe listener that SIGKILLs the process at ``spec`` ("POINT:INDEX")."""
    point, _, at = spec.partition(":")
    at = int(at)

    def listener(reached, index):
        if reached == point and (index == at or (point == "chunk" and index >= at)):
            os.kill(os.getpid(), signal.SIGKILL)
    return listener


def trace_to(path):
    """A probe listener that logs each completed snapshot to ``path``."""
    def listener(reached, index):
        if reached == "snapshot done":
            with open(path, "a") as fh:
                fh.write(f"snapshot {index}\n")
    return listener


def main(argv):
    from exodiff import probes
    from exodiff.cli import main as exodiff_main
    if os.environ.get("EXODIFF_TEST_KILL_AT"):
        probes.listen(kill_at(os.environ["EXODIFF_TEST_KILL_AT"]))
    if os.environ.get("EXODIFF_TEST_TRACE"):
        probes.listen(trace_to(os.environ["EXODIFF_TEST_TRACE"]))
    return exodiff_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
