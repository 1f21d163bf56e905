"""Moving a just-accepted connection to the network worker with the fewest connections.

SO_REUSEPORT spreads connections by a hash of the peer's address, so two busy clients land on the same
worker about half the time while another worker idles; with one long-lived connection per client that
imbalance lasts for the whole session. The kernel keeps doing the accepting (no shared accept lock, a
restarted worker inherits its queue); right after accept a worker that holds more connections than another
passes the descriptor over a Unix datagram socket (SCM_RIGHTS) and forgets it. The receiver adopts it
like one of its own accepts. A connection is moved at most once and never after it sent a byte to us.

Load is read from the other workers' metrics blocks (open-connection gauge); a worker that has not yet
adopted the last connection we passed it gets no other until it does.
"""

from __future__ import annotations

import os
import socket

from broker.logfmt import Log
from broker.shm import layout as L

log = Log("hpbroker.net")

MESSAGE = b"c"


def create_pairs(n: int) -> list[tuple[socket.socket, socket.socket]]:
    """One (inbox, sender) pair per network worker, made by the supervisor before it forks.

    The supervisor keeps every end for its lifetime, so descriptors queued for a worker that dies wait in
    the kernel until its successor (which inherits the inbox) adopts them.
    """
    pairs = []
    for _ in range(n):
        inbox, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        inbox.setblocking(False)
        sender.setblocking(False)
        pairs.append((inbox, sender))
    return pairs


class Placement:
    """One network worker's side: its inbox, the other workers' senders, and their load."""

    @classmethod
    def for_worker(cls, pairs: list[tuple[socket.socket, socket.socket]], index: int, metrics) -> "Placement":
        """Network worker `index`'s side of the supervisor's `create_pairs`; in the worker (after fork) it
        closes the ends that are not its own: the other inboxes and its own sender."""
        for j, (inbox, sender) in enumerate(pairs):
            (sender if j == index else inbox).close()
        return cls(index, pairs[index][0], {j: pair[1] for j, pair in enumerate(pairs) if j != index}, metrics)

    def __init__(self, index: int, inbox: socket.socket, senders: dict[int, socket.socket], metrics):
        self.index = index
        self.inbox = inbox
        self.senders = senders  # worker index -> sending end of that worker's inbox
        self._blocks = {j: metrics.block(j) for j in senders}
        # j -> j's connections-created counter when we last handed it one: until that counter moves, j has
        # not adopted it, its gauge does not show it, and we send j nothing more (so a burst of accepts in
        # several workers cannot all pile onto one worker that is slow to run).
        self._sent_at: dict[int, int] = {}

    def _load(self, j: int) -> int | None:
        """Connections worker j holds; None when it is not running or has not taken our last one yet."""
        b = self._blocks[j]
        pid = b.pid
        if pid <= 0:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        if self._sent_at.get(j, -1) == int(b.scalars[L.MS_CONN_CREATED]):
            return None
        return int(b.scalars[L.MS_CONN_OPEN])

    def target(self, mine: int) -> int | None:
        """The worker with the fewest connections if it has fewer than `mine` (ours, before this one)."""
        best, best_load = None, mine
        for j in self.senders:
            load = self._load(j)
            if load is not None and load < best_load:
                best, best_load = j, load
        return best

    def send(self, j: int, sock: socket.socket) -> bool:
        """Pass `sock` to worker j; False (and `sock` still ours) when its inbox cannot take it now."""
        created = int(self._blocks[j].scalars[L.MS_CONN_CREATED])  # before sending: j may adopt it at once
        try:
            socket.send_fds(self.senders[j], [MESSAGE], [sock.fileno()])
        except OSError as e:
            log.debug("connection hand-off failed; keeping it", worker=self.index, to=j, error=e.strerror or repr(e))
            return False
        self._sent_at[j] = created
        return True

    def receive(self) -> list[socket.socket]:
        """Connections other workers passed to us (non-blocking; empty when none wait)."""
        socks = []
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self.inbox, len(MESSAGE), 1)
            except (BlockingIOError, InterruptedError):
                return socks
            if not msg and not fds:
                return socks
            for fd in fds:
                socks.append(socket.socket(fileno=fd))
