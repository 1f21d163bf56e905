"""Control messages between the supervisor and its workers: rare, small, JSON over a socketpair.

Admin operations (create or delete a topic, "metadata changed", "I/O worker restarted") are not on the
data path, so they use the simplest reliable channel there is. Each message is a 4-byte big-endian length
and a JSON object; requests carry an `id` that their reply echoes.
"""

from __future__ import annotations

import json
import socket
import struct

MAX_MESSAGE = 16 * 1024 * 1024
_LEN = struct.Struct(">I")


class ChannelClosed(Exception):
    pass


class Channel:
    """One end of a control socketpair. Sends block (messages are small); receives never block."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.setblocking(False)
        self._buf = bytearray()

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        a, b = socket.socketpair()
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj: dict) -> None:
        data = json.dumps(obj, separators=(",", ":")).encode()
        msg = _LEN.pack(len(data)) + data
        self.sock.setblocking(True)
        try:
            self.sock.sendall(msg)
        except OSError as e:
            raise ChannelClosed(str(e)) from None
        finally:
            self.sock.setblocking(False)

    def receive(self) -> list[dict]:
        """Everything that has fully arrived; raises ChannelClosed when the other end is gone."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                raise ChannelClosed(str(e)) from None
            if not chunk:
                if not self._buf:
                    raise ChannelClosed("peer closed")
                break
            self._buf += chunk
        out = []
        while len(self._buf) >= 4:
            (n,) = _LEN.unpack_from(self._buf, 0)
            if n > MAX_MESSAGE:
                raise ChannelClosed(f"control message of {n} bytes")
            if len(self._buf) < 4 + n:
                break
            out.append(json.loads(self._buf[4:4 + n]))
            del self._buf[:4 + n]
        return out

    def close(self) -> None:
        self.sock.close()


class ControlClient:
    """A worker's asynchronous calls to the supervisor: send with an id, run the callback on the reply."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.next_id = 0
        self.waiting: dict[int, object] = {}
        self.on_notice = None  # called with messages that are not replies (e.g. "metadata")

    def call(self, msg: dict, callback) -> None:
        self.next_id += 1
        msg = dict(msg, id=self.next_id)
        self.waiting[self.next_id] = callback
        try:
            self.channel.send(msg)
        except ChannelClosed:
            self.waiting.pop(self.next_id, None)
            callback({"error": "controller unavailable"})

    def on_readable(self) -> None:
        try:
            msgs = self.channel.receive()
        except ChannelClosed:
            waiting, self.waiting = self.waiting, {}
            for cb in waiting.values():
                cb({"error": "controller unavailable"})
            return
        for msg in msgs:
            cb = self.waiting.pop(msg.get("reply_to", -1), None)
            if cb is not None:
                cb(msg)
            elif self.on_notice is not None:
                self.on_notice(msg)
