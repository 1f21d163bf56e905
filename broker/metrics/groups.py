"""Committed offsets of every consumer group, for the lag metrics.

Group state lives in the I/O workers that coordinate the groups, so the supervisor asks for it the way any
client does: ListGroups and OffsetFetch over one connection to its own listener (on a single node every
group's coordinator is this broker). Results are cached for a few seconds so frequent scrapes cost
little; these requests show up in the request metrics like any other client's.
"""

from __future__ import annotations

import threading
import time

from broker.logfmt import Log

log = Log("hpbroker.metrics")

LIST_GROUPS, OFFSET_FETCH = 16, 9
CACHE_S = 5.0


class GroupOffsets:
    def __init__(self, address, inter, timeout: float = 2.0):
        self._address = address  # () -> (host, port) of a listener, read when first needed
        self._inter = inter  # broker.security.interbroker.InterBroker: TLS and login for that listener
        self._timeout = timeout
        self._conn = None
        self._lock = threading.Lock()
        self._rows: list[tuple[str, str, int, int]] = []
        self._at = 0.0

    def rows(self) -> list[tuple[str, str, int, int]]:
        """[(group, topic, partition, committed offset)], at most CACHE_S old."""
        with self._lock:
            if time.monotonic() - self._at >= CACHE_S:
                try:
                    self._rows = self._fetch()
                except Exception as e:  # broker busy or stopping: keep the last answer, retry later
                    log.debug("group offsets unavailable", error=repr(e))
                    self._close()
                self._at = time.monotonic()
            return list(self._rows)

    def _fetch(self) -> list[tuple[str, str, int, int]]:
        if self._conn is None:
            host, port = self._address()
            self._conn = self._inter.connect(host, port, self._timeout)
        reply = self._conn.request(LIST_GROUPS, {})
        rows = []
        for g in reply.get("groups") or ():
            gid = g["group_id"]
            off = self._conn.request(OFFSET_FETCH, {"group_id": gid, "topics": None, "require_stable": False})
            for t in off.get("topics") or ():
                for p in t["partitions"]:
                    if not p["error_code"] and p["committed_offset"] >= 0:
                        rows.append((gid, t["name"], p["partition_index"], p["committed_offset"]))
        return rows

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()
