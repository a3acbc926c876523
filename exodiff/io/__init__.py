"""Run files: the only package that touches files (DESIGN §5).

One job per module:

- layout.py: the HDF5/H5MD layout and the names, units and chunks it uses;
- writer.py: :class:`RunWriter`, which writes a run crash-safely;
- reader.py: :func:`open_run` and :class:`Run`, which read one;
- summary.py: the summary ``exodiff info`` shows;
- recovery.py: what a killed writer leaves (superblock status flags) and the
  lock that tells a live writer (:class:`RunLock`);
- checkpoint.py: the full state at one step beside the run file (resume).

The names below are the package's public interface.
"""
from .checkpoint import checkpoint_path, read_checkpoint, remove_checkpoint, write_checkpoint
from .layout import COMPRESSIONS, LENGTH_UNIT, MILESTONE_NAMES, TIME_UNIT
from .reader import Cells, Run, open_run
from .recovery import RunLock, check_not_in_use, clear_status_flags
from .writer import RunWriter

__all__ = ["COMPRESSIONS", "Cells", "LENGTH_UNIT", "MILESTONE_NAMES", "Run", "RunLock", "RunWriter",
           "TIME_UNIT", "check_not_in_use", "checkpoint_path", "clear_status_flags",
           "open_run", "read_checkpoint", "remove_checkpoint", "write_checkpoint"]
