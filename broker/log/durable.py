"""Making a file or a directory entry durable through a descriptor opened for that alone: what holds no
descriptor between writes (a closed segment, an index, a directory) still needs one to be synced."""

from __future__ import annotations

import os


def fdatasync_path(path: str | os.PathLike) -> None:
    """fdatasync the file at ``path``; raises OSError (gone, EIO) like ``os.fdatasync``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory, so the names created, renamed or removed in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
