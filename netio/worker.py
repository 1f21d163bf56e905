"""The network worker process: accepts connections, frames requests, dispatches, writes responses.

One per core. Each worker owns the connections it accepted (its own SO_REUSEPORT listening socket, bound by
the supervisor before fork so a restarted worker inherits it and no queued connection is lost); a worker
holding more connections than another passes a new one over before reading it (netio/handoff.py). Requests are
decoded here; what a request needs from a partition owner travels through shared-memory rings, everything
else (ApiVersions, Metadata, Fetch from segment files) is answered in this process.

Bad input costs only its connection: an oversized size prefix or a malformed frame closes that connection
with a logged reason; the worker goes on serving everyone else. Nothing a peer does may end the worker:
accept errors back off instead of spinning or raising, and a handler bug closes only its connection.
"""

from __future__ import annotations

import errno
import os
import resource
import selectors
import signal
import socket
import time
from typing import Callable, Protocol

from broker.config import TLS_LISTENERS
from broker.logfmt import Log
from broker.metrics import PROC, now_us
from broker.metrics.block import STAGE
from broker.shm import layout as _ml
from netio.codec import CodecError, ErrorCode, UnknownApi, UnsupportedVersion
from netio.connection import Connection, Slot
from netio.tls import TLSSocket

log = Log("hpbroker.net")

# A connection with this many responses still owed stops being read until they drain (backpressure).
MAX_INFLIGHT_PER_CONNECTION = 64
# ...or with this many bytes queued for the socket.
MAX_QUEUED_OUT_BYTES = 64 * 1024 * 1024
READ_CHUNK = 256 * 1024
API_VERSIONS_KEY = 18
PRODUCE_KEY = 0
_QUEUE = STAGE["queue"]
# Out of descriptors: stop accepting for this long (the backlog keeps the connections) rather than spin
# on a listening socket that stays readable.
ACCEPT_BACKOFF_S = 0.1
# accept() errors that concern only the connection being accepted (it was reset while queued).
_PER_CONNECTION_ACCEPT_ERRORS = (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.ENOPROTOOPT,
                                 errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP,
                                 errno.ENETUNREACH)


class Dispatcher(Protocol):
    def decode(self, frame: memoryview) -> tuple: ...  # (header, body); raises the codec's errors

    def dispatch(self, conn: Connection, header, body, slot: Slot, frame: memoryview) -> None: ...

    def api_versions_error_body(self) -> dict: ...

    def session(self, listener: str | None): ...  # a new connection's authentication state, or None

    def token(self, conn: Connection, frame: memoryview) -> None: ...  # a bare SASL token (conn.auth.raw)


class Pump(Protocol):
    """What the worker's loop waits on besides sockets, and what runs after every wakeup."""

    def fds(self) -> list[tuple[int, Callable[[], None]]]: ...

    def before_wait(self) -> float: ...  # longest sleep allowed now (0: do not sleep)

    def after_wait(self) -> None: ...

    def look(self) -> bool: ...  # instead of the two above when not sleeping: True if work waits

    def run(self) -> int: ...  # how much it handled (0: nothing)


class NetworkWorker:
    def __init__(self, index: int, listen_socks: list[socket.socket], dispatcher: Dispatcher,
                 max_frame_bytes: int, sndbuf: int = -1, rcvbuf: int = -1,
                 pump: Pump | None = None, arena=None, placement=None, listener_names: list[str] | None = None,
                 tls=None):
        self.index = index
        self.tls = tls  # the server context of the SSL and SASL_SSL listeners (netio/tls.py)
        # The listener a connection came in through, by the local port it was accepted on (a connection
        # handed over from another worker arrives without its listening socket).
        self.listener_of_port = {ls.getsockname()[1]: name for ls, name in zip(listen_socks, listener_names or ())}
        self.placement = placement  # netio.handoff.Placement when there are other network workers, or None
        self.arena = arena  # shared receive buffer for large frames (broker/shm/arena.py), or None
        self.listen_socks = listen_socks
        self.dispatcher = dispatcher
        self.max_frame_bytes = max_frame_bytes
        self.sndbuf = sndbuf
        self.rcvbuf = rcvbuf
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Connection] = {}
        self.next_conn_id = index << 40
        self.stopping = False
        self.draining = False
        self.pump = pump
        self.ring_blocked: set = set()  # connections whose requests wait for room in a ring
        self.paused: set[Connection] = set()  # connections not read because they owe too much
        self.dirty: set[Connection] = set()  # connections with responses finished this pass
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.connections_created = 0
        self.connections_closed = 0
        self._accept_paused_until = 0.0
        self.max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]  # lifted by the supervisor

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _dump_state(self, *_):
        """SIGUSR1: log what every connection is waiting for (diagnosing a stuck client)."""
        for conn in self.conns.values():
            log.warning("connection state", conn=conn.id, peer=conn.peer, paused=conn.paused,
                        owed=[(s.api_key, s.correlation_id, s.done) for s in list(conn.slots)[:8]],
                        slots=len(conn.slots), out_bytes=conn.out_bytes, buffered=conn.reader.buffered,
                        ring_blocked=conn in self.ring_blocked, want_write=conn.want_write)
        if self.pump is not None and hasattr(self.pump, "describe"):
            log.warning("pump state", **self.pump.describe())

    def request_stop(self, *_):
        self.stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, self._dump_state)
        for ls in self.listen_socks:
            ls.setblocking(False)
        for sock, data in self._arrivals():
            self.sel.register(sock, selectors.EVENT_READ, data)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        for fd, callback in (self.pump.fds() if self.pump else ()):
            self.sel.register(fd, selectors.EVENT_READ, ("call", callback))
        log.info("network worker started", worker=self.index, max_fds=self.max_fds)
        drain_deadline = None
        busy = False  # the last pass handled something
        while True:
            if self.stopping and drain_deadline is None:
                drain_deadline = time.monotonic() + 5.0
                self._pause_accepting()
                self.draining = True  # finish what was read; read no new requests (followers keep asking)
                for conn in list(self.conns.values()):
                    self._update_interest(conn)
            if drain_deadline is not None:
                if not any(c.slots or c.has_output() for c in self.conns.values()) or \
                        time.monotonic() > drain_deadline:
                    break
            elif self._accept_paused_until and time.monotonic() >= self._accept_paused_until:
                self._resume_accepting()
            events = self._look_again() if busy else None
            if events is None:
                timeout = 0.1 if drain_deadline or self._accept_paused_until else 1.0
                if self.pump is not None:
                    timeout = min(timeout, self.pump.before_wait())
                try:
                    events = self.sel.select(timeout=timeout)
                finally:
                    if self.pump is not None:
                        self.pump.after_wait()
            busy = bool(events)
            for key, mask in events:
                kind, obj = key.data
                if kind == "conn":
                    if mask & selectors.EVENT_READ:
                        self._on_readable(obj)
                    if mask & selectors.EVENT_WRITE and not obj.closed:
                        obj.flush()
                        self._maybe_close(obj)
                        if not obj.closed and not obj.paused:
                            self._serve_buffered(obj)
                elif kind == "accept":
                    self._accept(obj)
                elif kind == "adopt":
                    self._adopt()
                elif kind == "call":
                    obj()
                else:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
            if self.pump is not None:
                busy = self.pump.run() or busy
            self._flush_dirty()
        for conn in list(self.conns.values()):
            self._close(conn, "broker shutting down")
        log.info("network worker stopped", worker=self.index)

    def _look_again(self) -> list | None:
        """After a pass that did work, more is usually on its way: look without announcing sleep on the
        rings (a pass's cost under load). The events, or None when nothing is there: then wait properly."""
        if self.pump is None:
            return None
        waiting = self.pump.look()
        events = self.sel.select(timeout=0)
        return events if events or waiting else None

    # -- connections --------------------------------------------------------------------------------------

    def _accept(self, ls: socket.socket) -> None:
        for _ in range(64):
            try:
                sock, addr = ls.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _PER_CONNECTION_ACCEPT_ERRORS:
                    continue
                # EMFILE/ENFILE/ENOBUFS/ENOMEM or anything unexpected: the listening socket stays readable,
                # so keep selecting on it and this loop spins. Back off; queued connections wait.
                log.error("accept failed; pausing accepts", worker=self.index, error=e.strerror or repr(e),
                          connections=len(self.conns), pause_s=ACCEPT_BACKOFF_S)
                self._pause_accepting()
                return
            if self.placement is not None and not self.draining and self._hand_off(sock):
                continue
            self._take(sock, addr)

    def _hand_off(self, sock: socket.socket) -> bool:
        """Pass a just-accepted connection to a worker holding fewer connections (netio/handoff.py)."""
        j = self.placement.target(len(self.conns))
        if j is None or not self.placement.send(j, sock):
            return False
        sock.close()
        PROC.scalars[_ml.MS_CONN_HANDED_OFF] += 1
        return True

    def _adopt(self) -> None:
        """Take the connections other workers passed to us; they were accepted but never read."""
        for sock in self.placement.receive():
            self._take(sock)

    def _take(self, sock: socket.socket, addr=None) -> None:
        """Serve `sock` from now on (`addr`: its peer, asked of the socket when not given by accept)."""
        try:
            self._add_connection(sock, sock.getpeername() if addr is None else addr)
        except OSError as e:  # reset between accept (or hand-off) and setup
            log.debug("connection setup failed", worker=self.index, error=e.strerror or repr(e))
            sock.close()

    def _add_connection(self, sock: socket.socket, addr) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A peer that vanishes without FIN/RST (host gone mid-request) is found and its buffers freed.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if self.sndbuf > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        if self.rcvbuf > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
        listener = self.listener_of_port.get(sock.getsockname()[1])
        if listener in TLS_LISTENERS:  # the handshake happens in the first receives
            sock = TLSSocket(sock, self.tls)
        self.next_conn_id += 1
        conn = Connection(sock, self.next_conn_id, peer, self.max_frame_bytes, self._writable_changed, self.arena)
        conn.dirty = self.dirty
        conn.listener = listener
        conn.auth = self.dispatcher.session(listener)
        if conn.auth is not None:  # a client not yet authenticated may send only small requests
            conn.reader.max_frame_bytes = min(self.max_frame_bytes, conn.auth.max_receive)
        self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))
        self.conns[sock.fileno()] = conn
        self.connections_created += 1
        PROC.scalars[_ml.MS_CONN_CREATED] += 1
        PROC.scalars[_ml.MS_CONN_OPEN] += 1
        log.debug("connection opened", conn=conn.id, peer=peer)

    def _pause_accepting(self) -> None:
        if self._accept_paused_until:
            return
        self._accept_paused_until = time.monotonic() + ACCEPT_BACKOFF_S
        for sock, _ in self._arrivals():
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass

    def _resume_accepting(self) -> None:
        self._accept_paused_until = 0.0
        for sock, data in self._arrivals():
            self.sel.register(sock, selectors.EVENT_READ, data)

    def _arrivals(self) -> list[tuple[socket.socket, tuple]]:
        """What new connections arrive on, with their selector data: the listening sockets and, when there
        are other network workers, the hand-off inbox."""
        out = [(ls, ("accept", ls)) for ls in self.listen_socks]
        if self.placement is not None:
            out.append((self.placement.inbox, ("adopt", None)))
        return out

    def _events_for(self, conn: Connection) -> int:
        ev = 0 if conn.paused or self.draining else selectors.EVENT_READ
        if conn.want_write:
            ev |= selectors.EVENT_WRITE
        return ev

    def _update_interest(self, conn: Connection) -> None:
        if conn.closed:
            return
        ev = self._events_for(conn)
        try:
            key = self.sel.get_key(conn.sock)
        except KeyError:
            key = None
        if ev == 0:
            if key is not None:
                self.sel.unregister(conn.sock)
        elif key is None:
            self.sel.register(conn.sock, ev, ("conn", conn))
        elif key.events != ev:
            self.sel.modify(conn.sock, ev, ("conn", conn))

    def _writable_changed(self, conn: Connection) -> None:
        self._apply_backpressure(conn)
        self._update_interest(conn)
        self._maybe_close(conn)

    def _over_limits(self, conn: Connection) -> bool:
        return (len(conn.slots) >= MAX_INFLIGHT_PER_CONNECTION or conn.out_bytes >= MAX_QUEUED_OUT_BYTES
                or conn in self.ring_blocked or (conn.muted_until and self._still_muted(conn)))

    @staticmethod
    def _still_muted(conn: Connection) -> bool:
        if time.monotonic() < conn.muted_until:
            return True
        conn.muted_until = 0.0
        return False

    def _apply_backpressure(self, conn: Connection) -> bool:
        """Pause reading while the connection owes too much; resume once it has drained."""
        over = self._over_limits(conn)
        if over != conn.paused:
            conn.paused = over
            if over:
                self.paused.add(conn)
                PROC.scalars[_ml.MS_PAUSED_READS] += 1
            else:
                self.paused.discard(conn)
            return True
        return False

    def _on_readable(self, conn: Connection) -> None:
        """Receive once; when that left a large frame's body to come (after a large frame the next size
        prefix is received alone, ``FrameReader.read_size``), receive the body at once too: it has usually
        arrived with the prefix, and waiting for the selector to say so costs a pass of the loop."""
        reader = conn.reader
        if conn.tls:
            self._read_tls(conn, reader)
        elif self._read(conn, reader) and self._wants_body_now(conn, reader):
            self._read(conn, reader)

    def _read_tls(self, conn: Connection, reader) -> None:
        """A TLS connection may hold records it has received but not yet decrypted, which no event
        announces: receive until it has nothing, or the connection may not take more now
        (`resume_paused` comes back for what it holds)."""
        while self._read(conn, reader) is not None:
            if conn.closed or conn.paused or self.draining or conn.close_reason is not None:
                return

    def _wants_body_now(self, conn: Connection, reader) -> bool:
        return (not conn.closed and not conn.paused and not self.draining and conn.close_reason is None
                and reader.waiting_large_body())

    def _read(self, conn: Connection, reader) -> bool | None:
        """One receive and the frames it completes. True after a receive into the chunk buffer (a large
        body may be next); False after a receive in place; None when the connection had nothing or closed."""
        direct = reader.direct_buffer() if conn.close_reason is None else None
        try:
            if direct is not None:
                n = conn.sock.recv_into(direct)
                data = None
            else:
                data = conn.sock.recv(reader.read_size(READ_CHUNK))
                n = len(data)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            self._close(conn, f"read failed: {e.strerror or e}")
            return None
        finally:
            if direct is not None:
                direct.release()
        if not n:
            pending = reader.buffered
            self._close(conn, f"closed by peer mid-request with {pending} bytes unframed" if pending
                        else "closed by peer")
            return None
        PROC.scalars[_ml.MS_NET_BYTES_IN] += n
        if conn.close_reason is not None:
            return None  # closing once earlier responses are out: what it sends now is never read
        conn.read_us = now_us()
        if data is None:
            reader.direct_filled(n)
        else:
            reader.feed(data)
        self._serve_buffered(conn)
        return data is not None

    def resume_paused(self, ring_blocked: set | None = None) -> None:
        """Called after completions arrive: connections under their limits read (and frame) again.

        `ring_blocked` are the connections whose requests wait for room in a full ring: they stay paused.
        """
        if ring_blocked is not None:
            self.ring_blocked = ring_blocked
        # Only paused connections can hold complete frames not yet served (a connection under its limits
        # frames everything it receives at once), so idle connections cost nothing here.
        for conn in list(self.paused):
            if self._apply_backpressure(conn):
                self._update_interest(conn)
            if not conn.paused and not conn.closed:
                self._serve_buffered(conn)
                if conn.tls and not conn.paused and not conn.closed and conn.sock.pending():
                    self._read_tls(conn, conn.reader)

    def _serve_buffered(self, conn: Connection) -> None:
        self._drain_buffered_frames(conn)
        if conn.closed:
            return
        if self._apply_backpressure(conn):
            self._update_interest(conn)
        self._maybe_close(conn)

    def _drain_buffered_frames(self, conn: Connection) -> None:
        """Handle the complete frames already received, up to the in-flight limit.

        Frames stay buffered while the connection is over its limits; this runs again whenever it may
        have dropped below them, so frames received during a pause are not left waiting for more input.
        """
        try:
            while not conn.closed and conn.close_reason is None and not self._over_limits(conn):
                frame = conn.reader.next_frame()
                if frame is None:
                    break
                block = conn.reader.take_block()
                if block is None:
                    self._handle_frame(conn, frame)
                else:
                    self._handle_arena_frame(conn, frame, block)
        except CodecError as e:
            self._close(conn, f"bad frame: {e}")
        except Exception as e:  # a handler bug must not take the worker down with it
            log.error("request handling failed", exc_info=True, conn=conn.id, error=repr(e))
            self._close(conn, "internal error")

    def _handle_arena_frame(self, conn: Connection, frame: memoryview, block) -> None:
        """A frame received into the shared arena. Only Produce may pass references to it on (the owner
        reads the records in place); any other request is copied out first, so no handler can keep a view
        of bytes that will be overwritten."""
        try:
            if int.from_bytes(frame[:2], "big", signed=True) == PRODUCE_KEY:
                self.arena.current = block
            else:
                frame = memoryview(bytes(frame))
            self._handle_frame(conn, frame)
        finally:
            self.arena.current = None
            block.release()

    def _handle_frame(self, conn: Connection, frame: memoryview) -> None:
        if conn.auth is not None and conn.auth.raw:  # a SASL token after a v0 handshake: not a request
            self.dispatcher.token(conn, frame)
            return
        try:
            header, body = self.dispatcher.decode(frame)
        except UnsupportedVersion as e:
            h = e.header
            if h.api_key == API_VERSIONS_KEY:
                # Answer with a v0 body so the client can pick a version we speak (KIP-511).
                slot = conn.new_slot(h.api_key, 0, h.correlation_id)
                body = self.dispatcher.api_versions_error_body()
                body["error_code"] = int(ErrorCode.UNSUPPORTED_VERSION)
                slot.reply(body)
                return
            raise CodecError(f"unsupported version {h.api_version} of api {h.api_key}") from None
        except UnknownApi as e:
            raise CodecError(f"unknown api key {e.header.api_key}") from None
        slot = conn.new_slot(header.api_key, header.api_version, header.correlation_id)
        PROC.scalars[_ml.MS_REQUESTS] += 1
        PROC.request(header.api_key)
        PROC.observe(_QUEUE, header.api_key, slot.t_dispatched - slot.t_framed)
        self.dispatcher.dispatch(conn, header, body, slot, frame)

    def _flush_dirty(self) -> None:
        """Write the responses this pass finished: one write per connection, not one per response."""
        while self.dirty:
            conn = self.dirty.pop()
            if not conn.closed:
                conn.flush()
                self._maybe_close(conn)

    def _maybe_close(self, conn: Connection) -> None:
        if conn.close_reason is not None and not conn.closed and not conn.has_output():
            self._close(conn, conn.close_reason)

    def _close(self, conn: Connection, reason: str) -> None:
        if conn.closed:
            return
        if conn in self.dirty:  # responses finished before the reason to close still go out (best effort)
            self.dirty.discard(conn)
            conn.flush()
        conn.closed = True
        self.paused.discard(conn)
        conn.release_files()
        conn.reader.close()
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        self.conns.pop(conn.sock.fileno(), None)
        try:
            conn.sock.close()
        except OSError:
            pass
        self.connections_closed += 1
        PROC.scalars[_ml.MS_CONN_CLOSED] += 1
        PROC.scalars[_ml.MS_CONN_OPEN] -= 1
        level = log.debug if reason in ("closed by peer", "broker shutting down") else log.warning
        level("connection closed", conn=conn.id, peer=conn.peer, reason=reason)
