"""One trainer per run folder: an OS file lock on ``<out>/.lock`` held for the run's lifetime.

``fcntl.flock`` is released by the kernel when the holder dies (kill -9 included), so a lock
file left by a killed trainer is simply taken over; the pid written into it only serves the
messages. Where ``fcntl`` is missing (Windows) the lock is a no-op, logged once.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType

from ..errors import RunLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


class RunLock:
    """``with RunLock(out_dir):`` - exclusive use of ``out_dir`` (created if missing)."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:  # pragma: no cover
            log.warning("no fcntl here: %s is not protected against a second trainer",
                        self.out_dir)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                who = f"process {pid}" if pid is not None else "another process"
                raise RunLockedError(
                    f"{self.out_dir} is in use by a running trainer ({who}); wait for it to "
                    "finish, or choose another --out") from None
            except OSError as exc:  # file systems without flock support
                log.warning("could not lock %s (%s); continuing without a lock", self.path, exc)
        old = _read_pid(fd)
        if old is not None and old != os.getpid() and not _pid_alive(old):
            log.info("%s: taking over the lock left by process %d (no longer running)",
                     self.out_dir, old)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # no pid: nobody is running here now
        except OSError:
            pass
        os.close(fd)  # releases the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def is_locked(out_dir: str | os.PathLike) -> bool:
    """Whether a live process holds ``out_dir``'s lock (does not create anything)."""
    path = Path(out_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def refuse_if_locked(out_dir: str | os.PathLike) -> None:
    """RunLockedError when a live trainer holds ``out_dir`` (checked early, before set-up)."""
    if is_locked(out_dir):
        pid = None
        try:
            pid = int((Path(out_dir) / LOCK_FILE).read_text("ascii").split()[0])
        except (OSError, ValueError, IndexError):
            pass
        who = f"process {pid}" if pid is not None else "another process"
        raise RunLockedError(f"{out_dir} is in use by a running trainer ({who}); wait for it "
                             "to finish, or choose another --out")
