"""After a crash: the HDF5 superblock's status flags a killed writer leaves,
and the file lock that tells a live writer from a dead one.

A killed writer leaves the superblock's "open for write" flags set, which
only SWMR readers accept; :func:`clear_status_flags` clears them, as HDF5's
``h5clear -s`` does, so that every tool opens the file.

It may also leave a superblock whose end of allocation (EOA) lags behind
the file: a SWMR flush writes raw data, then the metadata that points at it,
and the superblock with the new EOA last, so a kill between the last two
leaves objects on disk past the recorded EOA.  SWMR readers expect that
(HDF5's H5FD_read skips its EOA check for them); every other reader fails
with "addr overflow", and a writer reopening the file would allocate new
objects over the old ones.  So the repair also raises the EOA to the end of
the file, as ``h5clear --increment=0`` does for a crashed SWMR file.  With a
SIGKILL nothing the process wrote is lost (it is in the page cache), so the
file's end covers every object that any written metadata points at.

A writer holds a shared ``flock`` on ``PATH`` while it writes (:class:`RunLock`);
``--resume`` and ``--overwrite`` take it exclusively first, so they refuse a
file that a live run is still writing (SWMR writers drop HDF5's own lock).
"""
import os
import struct
from pathlib import Path

from ..errors import InputError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; resume trusts the user
    fcntl = None


def clear_status_flags(path):
    """Clear the "open for write" flags that a killed writer leaves in the
    superblock (what HDF5's ``h5clear -s`` does) and raise an end of
    allocation that lags behind the file to its end (``h5clear
    --increment=0``; module docstring), so that non-SWMR readers (plain h5py,
    check_h5md.py, MDAnalysis) open the file and a resumed writer appends
    after everything in it.  Only for a file whose writer is dead.  Returns
    True when flags were cleared."""
    path = Path(path)
    sb = superblock(path)
    if sb["version"] < 2 or sb["flags"] == 0:
        return False  # superblocks before version 2 keep no such flags
    with open(path, "r+b") as fh:
        raw = bytearray(sb["raw"])
        raw[11] = 0
        offset_size = raw[9]
        at = 12 + 2 * offset_size  # the EOA field; addresses are relative to the base
        raw[at: at + offset_size] = max(sb["eoa"], sb["size"] - sb["base"]).to_bytes(offset_size, "little")
        raw[-4:] = struct.pack("<I", _lookup3(bytes(raw[:-4])))
        fh.seek(sb["base"])
        fh.write(raw)
        # A killed writer may have recorded an end of file beyond what reached
        # the disk; non-SWMR readers refuse such a file, so pad it.
        if sb["base"] + sb["eoa"] > sb["size"]:
            fh.truncate(sb["base"] + sb["eoa"])
    return True


def superblock(path):
    """The HDF5 superblock of ``path``: base (byte offset), version, flags
    (status flags, version >= 2), eoa (end-of-file address the library
    recorded, None before version 2), size (of the file now) and raw (the
    version >= 2 superblock's bytes).  InputError when there is none or it
    is cut short."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        base = _find_superblock(fh)
        if base is None:
            raise InputError(f"{path}: not an HDF5 file")
        fh.seek(base)
        head = fh.read(12)
        if len(head) < 12:
            raise InputError(f"{path}: damaged HDF5 file (cut short in its superblock)")
        version, offset_size = head[8], head[9]
        info = {"base": base, "version": version, "flags": 0, "eoa": None, "size": size, "raw": b""}
        if version < 2:
            return info
        if offset_size not in (2, 4, 8):
            raise InputError(f"{path}: damaged HDF5 file (superblock offset size {offset_size})")
        fh.seek(base)
        raw = fh.read(12 + 4 * offset_size + 4)
        if len(raw) < 12 + 4 * offset_size + 4:
            raise InputError(f"{path}: damaged HDF5 file (cut short in its superblock)")
        info.update(flags=head[11], raw=raw,
                    eoa=int.from_bytes(raw[12 + 2 * offset_size: 12 + 3 * offset_size], "little"))
        return info


class RunLock:
    """An advisory ``flock`` on a run file (module docstring):
    shared while a writer writes it, exclusive while ``--resume`` or
    ``--overwrite`` makes sure that no writer is alive.  Raises InputError
    when another process holds it the other way, unless ``wait``.  Where
    flock is missing or unsupported it locks nothing."""

    def __init__(self, path, exclusive, wait=False):
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise InputError(f"{self.path}: cannot open ({e.strerror or e})") from None
        if fcntl is None:
            return
        op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self._fd, op)
        except BlockingIOError:
            self.close()
            raise InputError(f"{self.path}: in use by another process (an exodiff run still "
                             f"writing it, or a program that has it open)") from None
        except OSError:  # a file system without flock: go on unlocked
            pass

    def share(self):
        """Turn an exclusive lock into a shared one."""
        if fcntl is not None and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_SH)
            except OSError:
                pass

    def fsync(self):
        """Write the file's data to the disk (fsync on our descriptor: the
        kernel syncs the file, whoever wrote it)."""
        os.fsync(self._fd)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def check_not_in_use(path):
    """InputError when a live writer (or another resume) holds ``path``."""
    RunLock(path, exclusive=True).close()


_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _find_superblock(fh):
    """Byte offset of the superblock (0, 512, 1024, 2048, ...), or None."""
    end = fh.seek(0, os.SEEK_END)
    offset = 0
    while offset + 8 <= end:
        fh.seek(offset)
        if fh.read(8) == _SIGNATURE:
            return offset
        offset = 512 if offset == 0 else 2 * offset
    return None


def _lookup3(data, initval=0):
    """Bob Jenkins' lookup3 ``hashlittle``, HDF5's metadata checksum
    (H5_checksum_lookup3)."""
    mask = 0xFFFFFFFF

    def rot(x, k):
        return ((x << k) | (x >> (32 - k))) & mask

    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & mask
    i = 0
    while n - i > 12:
        x, y, z = struct.unpack_from("<3I", data, i)
        a, b, c = (a + x) & mask, (b + y) & mask, (c + z) & mask
        a = ((a - c) & mask) ^ rot(c, 4);  c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 6);  a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 8);  b = (b + a) & mask
        a = ((a - c) & mask) ^ rot(c, 16); c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 19); a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 4);  b = (b + a) & mask
        i += 12
    if n == i:
        return c
    # The last 1..12 bytes, zero-padded (adding zero bytes changes nothing).
    x, y, z = struct.unpack("<3I", data[i:].ljust(12, b"\0"))
    a, b, c = (a + x) & mask, (b + y) & mask, (c + z) & mask
    c ^= b; c = (c - rot(b, 14)) & mask
    a ^= c; a = (a - rot(c, 11)) & mask
    b ^= a; b = (b - rot(a, 25)) & mask
    c ^= b; c = (c - rot(b, 16)) & mask
    a ^= c; a = (a - rot(c, 4)) & mask
    b ^= a; b = (b - rot(a, 14)) & mask
    c ^= b; c = (c - rot(b, 24)) & mask
    return c
