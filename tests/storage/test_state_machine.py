"""Hypothesis state machine: appends, rolls, truncations, clean restarts, crashes, and damage to the active
segment (flipped byte, torn tail, garbage after the end), checked against an in-memory model of what the log
must hold: every acknowledged batch survives a crash; damage loses exactly the damaged batch and what follows."""

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from broker.log import PartitionLog
from .storage_helpers import batch, read_all, small_config

CONFIG = small_config(segment_bytes=2500, index_interval_bytes=300, segment_index_bytes=240)


class LogMachine(RuleBasedStateMachine):
    config = CONFIG

    @initialize()
    def start(self):
        # tmpfs when there is one: the machine fsyncs on every restart, and disk contention is not under test
        self.root = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.dir = os.path.join(self.root, "m-0")
        self.log = PartitionLog.open(self.dir, self.config)
        self.model: list[tuple[int, bytes]] = []  # (base offset, bytes from magic on)
        self.next_offset = 0

    def teardown(self):
        if hasattr(self, "log"):
            self.log.close(clean=False)
            shutil.rmtree(self.root, ignore_errors=True)

    # --- operations ---
    @rule(n=st.integers(1, 6), size=st.integers(0, 300), tag=st.integers(0, 250))
    def append(self, n, size, tag):
        raw = batch(n, value_size=size, ts=1000 + self.next_offset, tag=tag)
        r = self.log.append(raw)
        assert r.base_offset == self.next_offset
        self.model.append((r.base_offset, raw[16:]))
        self.next_offset += n

    @rule()
    def roll(self):
        self.log.roll()

    @rule(fraction=st.floats(0, 1))
    def truncate_to(self, fraction):
        target = int(self.next_offset * fraction)
        self.log.truncate_to(target)
        self._keep(lambda b, raw: b + _records(raw) <= target)

    @rule()
    def clean_restart(self):
        self.log.close()
        self.log = PartitionLog.open(self.dir, self.config)
        self._check_contents()

    @rule()
    def crash(self):
        self.log.close(clean=False)
        self.log = PartitionLog.open(self.dir, self.config, recover=True)
        self._check_contents()

    @rule(which=st.floats(0, 1), where=st.floats(0, 1))
    def flip_byte_then_crash(self, which, where):
        batches = self._active_batches()
        if not batches:
            return
        i = min(int(which * len(batches)), len(batches) - 1)
        pos, base, raw = batches[i]
        size = len(raw) + 16
        at = pos + 21 + min(int(where * (size - 21)), size - 22)  # a CRC-covered byte
        self.log.close(clean=False)
        with open(self._active_path(), "r+b") as f:
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0x5A]))
        self.log = PartitionLog.open(self.dir, self.config, recover=True)
        self._keep(lambda b, raw: b < base)
        self._check_contents()

    @rule(where=st.floats(0, 1))
    def torn_tail_then_crash(self, where):
        batches = self._active_batches()
        if not batches:
            return
        end = batches[-1][0] + len(batches[-1][2]) + 16
        cut = int(where * end)
        self.log.close(clean=False)
        os.truncate(self._active_path(), cut)
        self.log = PartitionLog.open(self.dir, self.config, recover=True)
        lost = {base for pos, base, raw in batches if pos + len(raw) + 16 > cut}
        self._keep(lambda b, raw: b not in lost)
        self._check_contents()

    @rule(junk=st.binary(min_size=1, max_size=200))
    def garbage_after_end_then_crash(self, junk):
        batches = self._active_batches()
        end = batches[-1][0] + len(batches[-1][2]) + 16 if batches else 0
        self.log.close(clean=False)
        with open(self._active_path(), "r+b") as f:
            f.seek(end)
            f.write(b"\x01" + junk)
        self.log = PartitionLog.open(self.dir, self.config, recover=True)
        self._check_contents()

    # --- model helpers ---
    def _active_path(self):
        return self.log.active_segment.log_path

    def _active_batches(self):
        base = self.log.active_segment.base_offset
        out, pos = [], 0
        for b, raw in self.model:
            if b >= base:
                out.append((pos, b, raw))
                pos += len(raw) + 16
        return out

    def _keep(self, predicate):
        """Drop the batches failing ``predicate`` (always a suffix); the log end moves to the first dropped."""
        kept = [(b, raw) for b, raw in self.model if predicate(b, raw)]
        if len(kept) < len(self.model):
            assert self.model[: len(kept)] == kept
            self.next_offset = self.model[len(kept)][0]
        self.model = kept

    def _check_contents(self):
        assert read_all(self.log) == self.model

    @invariant()
    def offsets_agree(self):
        if hasattr(self, "log"):
            assert self.log.log_end_offset == self.next_offset
            assert self.log.high_watermark == self.log.log_end_offset


def _records(raw_from_magic: bytes) -> int:
    return int.from_bytes(raw_from_magic[57 - 16: 61 - 16], "big")


class SparseLogMachine(LogMachine):
    """Same rules with segments allocated in steps (log.preallocate=false)."""

    config = small_config(segment_bytes=2500, index_interval_bytes=300, segment_index_bytes=240, preallocate=False)


SETTINGS = settings(max_examples=30, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TestLogMachine = LogMachine.TestCase
TestLogMachine.settings = SETTINGS
TestSparseLogMachine = SparseLogMachine.TestCase
TestSparseLogMachine.settings = SETTINGS
