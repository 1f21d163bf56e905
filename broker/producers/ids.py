"""Producer ids: unique across network workers and restarts, never reused.

The supervisor owns the durable allocator: it hands out blocks of `BLOCK_SIZE` ids and records the first
id it has not handed out in `producer-id-block` in the first log directory (written to a temporary file,
fsynced, renamed, directory fsynced) before a block is used, so a crash can waste a block but never hand
one out twice. Each network worker takes ids from its current block (`IdPool`) and asks for a new block
when it runs out.
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import Callable

BLOCK_SIZE = 1000
FILE_NAME = "producer-id-block"
CONTROL_OP = "producer_id_block"


class IdFileError(Exception):
    pass


def allocate_block(log_dir: str, size: int = BLOCK_SIZE) -> dict:
    """Reserve the next `size` ids durably; the control reply {"start": first id, "count": size}."""
    path = os.path.join(log_dir, FILE_NAME)
    start = read_next(path)
    _write_next(path, start + size)
    return {"start": start, "count": size}


def read_next(path: str) -> int:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as e:
        raise IdFileError(f"{path} is unreadable: {e}") from None  # guessing could reuse ids
    nxt = data.get("next") if isinstance(data, dict) else None
    if data.get("version") != 1 or not isinstance(nxt, int) or nxt < 0:
        raise IdFileError(f"{path} holds no valid next producer id")
    return nxt


def _write_next(path: str, nxt: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps({"version": 1, "next": nxt}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IdPool:
    """Ids of the current block in one network worker; requests wait while a new block is on its way."""

    def __init__(self, request_block: Callable[[Callable[[dict], None]], None]):
        self.request_block = request_block  # fn(callback(reply)) asking the supervisor for a block
        self.next = 0
        self.end = 0
        self.waiting: deque[Callable[[int | None], None]] = deque()

    def take(self, callback: Callable[[int | None], None]) -> None:
        """callback(producer id), or callback(None) when no block could be had."""
        if self.next < self.end and not self.waiting:
            self.next += 1
            callback(self.next - 1)
            return
        self.waiting.append(callback)
        if len(self.waiting) == 1:
            self.request_block(self._on_block)

    def _on_block(self, reply: dict) -> None:
        start, count = reply.get("start"), reply.get("count")
        if isinstance(start, int) and isinstance(count, int) and count > 0:
            self.next, self.end = start, start + count
        while self.waiting and self.next < self.end:
            self.next += 1
            self.waiting.popleft()(self.next - 1)
        if not self.waiting:
            return
        if not (isinstance(start, int) and isinstance(count, int) and count > 0):
            waiting, self.waiting = self.waiting, deque()
            for cb in waiting:
                cb(None)
            return
        self.request_block(self._on_block)
