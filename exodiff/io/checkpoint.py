"""Checkpoints: the full state of a run at one step, beside its run file.

Resume (``exodiff run --resume``): the state at a step ``s`` fully determines
the rest of a run (counter-based random numbers), so a run continues from the
latest step whose full state is on disk:

- the last complete snapshot, when snapshots hold the whole pool with
  positions (``output.positions = "all"``); the milestones as of that step
  are the stored ones with every time after it set back to NaN (they are
  first-event times, rewritten at each snapshot);
- else the checkpoint file ``PATH.checkpoint`` (:func:`write_checkpoint`):
  the full state of every vesicle at one step, written at each snapshot of a
  run whose snapshots are sampled or hold no positions, and on Ctrl-C at the
  step reached.  It is written as ``PATH.checkpoint.part``, synced, then
  renamed, so it is always whole; the run file is synced before, so every
  frame up to the checkpoint's step is on disk when the checkpoint is.  A
  completed run deletes it; a fresh run replaces any stale one;
- else step 0 (the initial state is rebuilt from the config).

:meth:`exodiff.io.writer.RunWriter.reopen` then cuts every series back to
that step and goes on appending.
"""
import os
from pathlib import Path

import h5py
import numpy as np

from .. import probes
from ..errors import InputError
from ..formats import one_line
from .layout import text

CHECKPOINT_SUFFIX = ".checkpoint"
CHECKPOINT_FORMAT = "exodiff checkpoint 1"


def checkpoint_path(path):
    """The checkpoint file of the run file ``path``: ``PATH.checkpoint``."""
    return Path(os.fspath(path) + CHECKPOINT_SUFFIX)


def write_checkpoint(path, *, step, time, arrays, attrs, index=0):
    """Save the full state of the run written to ``path`` at ``step``
    (time [s]) as ``PATH.checkpoint``: ``arrays`` name -> array, ``attrs``
    name -> str or number (what the state belongs to: config, version).

    Atomic: written as ``.part``, synced to disk, renamed over the previous
    one, directory synced; a kill at any moment leaves the old or the new
    checkpoint, whole.  ``index`` numbers the call for the ``"checkpoint"`` probe
    (exodiff/probes.py)."""
    final = checkpoint_path(path)
    tmp = final.with_name(final.name + ".part")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CHECKPOINT_FORMAT
            f.attrs["step"] = np.int64(step)
            f.attrs["time"] = float(time)
            for key, value in attrs.items():
                f.attrs[key] = value
            for key, a in arrays.items():
                f.create_dataset(key, data=np.asarray(a))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        probes.reach("checkpoint", index)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_checkpoint(path):
    """The checkpoint of the run file ``path`` as a dict (``step``, ``time``,
    ``attrs``, ``arrays``), or None when there is none.  InputError, naming
    the reason, when it exists but cannot be read."""
    ck = checkpoint_path(path)
    if not ck.exists():
        return None
    try:
        with h5py.File(ck, "r") as f:
            attrs = {k: (text(v) if isinstance(v, (str, bytes)) else v) for k, v in f.attrs.items()}
            if attrs.get("format") != CHECKPOINT_FORMAT:
                raise InputError(f"{ck}: not an exodiff checkpoint")
            arrays = {k: f[k][()] for k in f}
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{ck}: unreadable checkpoint ({one_line(e)})") from None
    attrs.pop("format")
    return {"step": int(attrs.pop("step")), "time": float(attrs.pop("time")),
            "attrs": attrs, "arrays": arrays}


def remove_checkpoint(path):
    """Delete the checkpoint of the run file ``path`` (and a partial one)."""
    ck = checkpoint_path(path)
    for p in (ck, ck.with_name(ck.name + ".part")):
        p.unlink(missing_ok=True)
