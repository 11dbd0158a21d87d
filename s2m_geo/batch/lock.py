"""One batch per output folder: an advisory lock."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from .layout import LOCK_NAME


class FolderLock:
    """An advisory lock on the output folder (one batch per folder at a time)."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # not POSIX (Windows): no lock
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise InputError(
                    f"{self.path.parent}: another s2m-geo batch is writing into this folder; "
                    f"wait for it or choose another output folder"
                ) from None
            try:  # the file may have been removed by the previous holder between open and lock
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self.fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None
