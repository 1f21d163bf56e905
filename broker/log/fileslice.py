"""``FileSlice``: whole record batches located in a segment file, served without copying through Python.

A network worker hands ``(fd, position, length)`` to ``os.sendfile`` for large responses, or takes ``view()``
(a memoryview into the segment's mmap) for small ones; either way the batch bytes never become Python objects.
The fd and mapping belong to the log or reader that produced the slice: use the slice before the next call
that may drop segments (retention, truncation, a reader's re-listing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FileSlice:
    path: str | None
    fd: int
    position: int
    length: int
    first_offset: int
    mapping: object = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, offset: int) -> "FileSlice":
        """Fetch at the end of the log: zero bytes (clients need empty records, never null)."""
        return cls(None, -1, 0, 0, offset)

    def __len__(self) -> int:
        return self.length

    def view(self) -> memoryview:
        if self.length == 0:
            return memoryview(b"")
        return memoryview(self.mapping)[self.position: self.position + self.length]

    def sendfile(self, out_fd: int, already_sent: int = 0) -> int:
        """Send the rest of the slice from ``already_sent``; returns bytes sent by this call (may be partial).
        A slice without a descriptor (of a closed segment in its owner) opens its file for the call."""
        if self.length - already_sent <= 0:
            return 0
        if self.fd >= 0:
            return os.sendfile(out_fd, self.fd, self.position + already_sent, self.length - already_sent)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return os.sendfile(out_fd, fd, self.position + already_sent, self.length - already_sent)
        finally:
            os.close(fd)
