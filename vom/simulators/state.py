"""The state of a simulated host, shared by every process of the machine.

It lives in a sidecar file in the simulator state directory, named from a hash of the source file's
real path (never next to the source: the demo's files are tracked in git), and records the stamp of
the source it was made from: once the source changed, the sidecar is stale and the source wins.
Writers hold an exclusive flock on the host's lock file across "reload if changed → change → write";
a sidecar is replaced atomically, so readers take no lock. The libvirt driver's ``test:///`` hosts
(``inventory.drivers.libvirt.connection``, dumped by :func:`vom.simulators.libvirt_node.dump_node`)
and the Hyper-V replay (:mod:`vom.simulators.hyperv_replay`) keep their hosts this way.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

Stamp = tuple[int, int, int]  # a sidecar's (mtime_ns, size, inode): each write is a new file, later


def simulator_state_dir() -> Path:
    """``$VOM_SIMULATOR_STATE_DIR``, else that Django setting (when Django is set up), else
    ``$VOM_VAR_DIR/simulators`` or ``<repo>/var/simulators``."""
    if os.environ.get("VOM_SIMULATOR_STATE_DIR"):
        return Path(os.environ["VOM_SIMULATOR_STATE_DIR"])
    from django.conf import settings  # only read when set up: the simulators run without Django too

    if settings.configured and getattr(settings, "VOM_SIMULATOR_STATE_DIR", None):
        return Path(settings.VOM_SIMULATOR_STATE_DIR)
    return Path(os.environ.get("VOM_VAR_DIR") or Path(__file__).resolve().parents[2] / "var") / "simulators"


def sidecar_paths(kind: str, source: str | Path, suffix: str) -> tuple[Path, Path]:
    """``(sidecar, lock file)`` of the ``kind`` ("libvirt", "hyperv") host of source file ``source``."""
    base = simulator_state_dir() / f"{kind}-{hashlib.sha256(os.path.realpath(source).encode()).hexdigest()[:32]}"
    return base.with_name(base.name + suffix), base.with_name(base.name + ".lock")


def file_stamp(path: str | Path) -> Stamp | None:
    """``(mtime_ns, size, inode)`` of ``path``, None when there is no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


_held = threading.local()


@contextmanager
def host_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_path`` for the block, re-entrant within a thread. Each
    acquisition opens the file anew, so threads exclude each other as processes do."""
    held: set[str] = _held.__dict__.setdefault("paths", set())
    if str(lock_path) in held:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:  # a holder may remove the file (forgetting the host): then lock the path's new one
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if (file_stamp(lock_path) or (0, 0, -1))[2] == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        held.add(str(lock_path))
        try:
            yield
        finally:
            held.discard(str(lock_path))
    finally:
        os.close(fd)  # releases the lock


def write_atomically(path: Path, data: bytes) -> Stamp:
    """Replace ``path`` by a file holding ``data`` (readers see the old or the new file, never half of
    one; the caller holds the lock) and return its stamp. Its mtime is later than the old file's even
    within the file system's clock granularity, so a reader comparing stamps sees every write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        previous = file_stamp(path)
        mtime = max(time.time_ns(), previous[0] + 1 if previous else 0)
        os.utime(tmp, ns=(mtime, mtime))
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def prune_orphan_sidecars(source_of: Callable[[Path], str | None], pattern: str) -> None:
    """Remove the sidecars matching ``pattern`` (and their lock files) whose source file, as
    ``source_of`` reads it from the sidecar, is gone: hosts of finished tests in temporary dirs."""
    for sidecar in simulator_state_dir().glob(pattern):
        source = source_of(sidecar)
        if source and not os.path.exists(source):
            for path in (sidecar, sidecar.with_suffix(".lock")):
                with suppress(FileNotFoundError):
                    os.unlink(path)
