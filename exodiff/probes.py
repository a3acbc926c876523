"""Probes: named points of a run where an observer may act.

The writer and the driver mark the moments that matter for crash safety by
calling :func:`reach`; in normal use nobody listens and a probe costs one
empty loop.  Tests listen (tests/faults.py), for example to SIGKILL the
process at one exact point and prove that a run killed there loses nothing.

Points (``point``, ``index``):

- ``"chunk"``, step S: a chunk of steps reached step S (state advanced, its
  frames not yet written);
- ``"snapshot"``, frame K: snapshot frame K is being written (values and
  milestones written, the frame not yet complete);
- ``"snapshot done"``, step S: the snapshot at step S is complete;
- ``"checkpoint"``, K: this process' K-th checkpoint (1, 2, ...) is written
  and synced but does not yet replace the previous one.
"""

_listeners = []


def listen(listener):
    """Call ``listener(point, index)`` at every probe from now on."""
    _listeners.append(listener)
    return listener


def stop_listening(listener):
    """Undo :func:`listen`."""
    _listeners.remove(listener)


def reach(point, index):
    """Mark that the run reached ``point`` (see the module docstring)."""
    for listener in tuple(_listeners):
        listener(point, index)
