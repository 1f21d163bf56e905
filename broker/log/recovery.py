"""Loading a partition directory at startup, as named passes (Kafka's ``LogLoader``).

0. ``finish_interrupted_swap`` - a compaction swap interrupted by a crash is finished from its marker, or
                                 the pass's unfinished output removed (``cleaner``).
1. ``remove_temporary_files``  - ``*.tmp`` checkpoints, ``*.cleaned`` half-written segments and ``*.deleted``
                                 segments whose deletion was pending are removed.
2. ``complete_swaps``          - a ``*.log.swap`` is a finished replacement of a segment: it replaces the
                                 segment of the same base offset; swapped index files are dropped (rebuilt).
3. ``remove_orphan_indexes``   - index files without their ``.log`` are removed.
4. ``open_segments``           - every ``<20 digits>.log`` is opened read-only, in offset order.
5. ``recover_segments``        - after an unclean shutdown every segment that may hold offsets at or above
                                 the recovery point is re-validated (length, magic, record count, CRC-32C,
                                 increasing offsets); the first invalid byte and everything after it,
                                 including later segments, is dropped and the indexes are rebuilt. Segments
                                 below the recovery point (or all of them after a clean shutdown) keep their
                                 data; their end is found by following batch headers from the last index entry,
                                 and an index that is missing or fails its sanity check is rebuilt.
6. ``activate_last_segment``   - the last segment is reallocated and mapped writable (an empty one is created
                                 for an empty directory).

Runs in the partition's writer process before it serves anything; ``LoadReport`` says what each pass did.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .cleaner import finish_interrupted_swap
from .config import LogConfig
from .segment import (CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIMEINDEX_SUFFIX,
                      LogSegment, parse_segment_name, segment_name)


@dataclass
class LoadReport:
    removed_files: list[str] = field(default_factory=list)
    swaps_completed: list[str] = field(default_factory=list)
    recovered_segments: int = 0
    recovered_bytes: int = 0
    rebuilt_indexes: int = 0
    torn_segments: list[int] = field(default_factory=list)
    dropped_segments: list[int] = field(default_factory=list)


def remove_temporary_files(directory: str, report: LoadReport) -> None:
    for name in os.listdir(directory):
        if name.endswith((".tmp", CLEANED_SUFFIX, DELETED_SUFFIX)) or ".cleaned" in name:
            os.unlink(os.path.join(directory, name))
            report.removed_files.append(name)


def complete_swaps(directory: str, report: LoadReport) -> None:
    for name in sorted(os.listdir(directory)):
        if not name.endswith(SWAP_SUFFIX):
            continue
        path = os.path.join(directory, name)
        final = name[: -len(SWAP_SUFFIX)]
        if final.endswith(LOG_SUFFIX) and parse_segment_name(final) is not None:
            stem = os.path.join(directory, final[: -len(LOG_SUFFIX)])
            for suffix in (INDEX_SUFFIX, TIMEINDEX_SUFFIX):
                if os.path.exists(stem + suffix):
                    os.unlink(stem + suffix)
            os.replace(path, os.path.join(directory, final))
            report.swaps_completed.append(final)
        else:
            os.unlink(path)  # a swapped index: rebuilt from the log
            report.removed_files.append(name)


def remove_orphan_indexes(directory: str, report: LoadReport) -> None:
    names = set(os.listdir(directory))
    for name in sorted(names):
        for suffix in (INDEX_SUFFIX, TIMEINDEX_SUFFIX):
            base = parse_segment_name(name, suffix)
            if base is not None and segment_name(base) + LOG_SUFFIX not in names:
                os.unlink(os.path.join(directory, name))
                report.removed_files.append(name)


def open_segments(directory: str, config: LogConfig) -> list[LogSegment]:
    bases = sorted(b for b in (parse_segment_name(n) for n in os.listdir(directory)) if b is not None)
    segments: list[LogSegment] = []
    try:
        for base in bases:
            segments.append(LogSegment.open(directory, base, config))
    except BaseException:
        for seg in segments:
            seg.close()
        raise
    return segments


def recover_segments(segments: list[LogSegment], unclean: bool, recovery_point: int,
                     report: LoadReport) -> list[LogSegment]:
    """Returns the segments that remain, each with its true size and end offset."""
    kept: list[LogSegment] = []
    for i, seg in enumerate(segments):
        next_base = segments[i + 1].base_offset if i + 1 < len(segments) else None
        if kept and seg.base_offset < kept[-1].next_offset:
            _drop(segments[i:], report)  # overlaps the previous segment: not a log we wrote
            break
        must_validate = unclean and (next_base is None or next_base > recovery_point)
        if must_validate:
            report.recovered_segments += 1
            report.recovered_bytes += seg.capacity
            torn = seg.recover()
            report.rebuilt_indexes += 1
        else:
            seg.load_tail()
            torn = False
            if seg.index_missing or not seg.indexes_sane():
                seg.recover()
                report.rebuilt_indexes += 1
        if next_base is not None:
            seg.rest()  # checked: the next segment's check does not find this one's maps still open
        kept.append(seg)
        if torn:
            report.torn_segments.append(seg.base_offset)
        gap = seg.size < seg.capacity and next_base != seg.next_offset
        if (torn or gap) and next_base is not None and must_validate:
            _drop(segments[i + 1:], report)  # data after the first invalid byte is not trusted
            break
    return kept


def _drop(segments: list[LogSegment], report: LoadReport) -> None:
    for seg in segments:
        for p in seg.rename_deleted():
            os.unlink(p)
        report.dropped_segments.append(seg.base_offset)


def load_segments(directory: str, config: LogConfig, unclean: bool, recovery_point: int, start_offset: int,
                  now_ms: int) -> tuple[list[LogSegment], LoadReport]:
    """Run every pass; returns the segments (last one active) and the report."""
    report = LoadReport()
    report.removed_files.extend(finish_interrupted_swap(directory))
    remove_temporary_files(directory, report)
    complete_swaps(directory, report)
    remove_orphan_indexes(directory, report)
    segments = recover_segments(open_segments(directory, config), unclean, recovery_point, report)
    try:
        activate_last_segment(directory, config, segments, start_offset, now_ms)
    except BaseException:
        for seg in segments:
            seg.close()
        raise
    return segments, report


def activate_last_segment(directory: str, config: LogConfig, segments: list[LogSegment], start_offset: int,
                          now_ms: int) -> None:
    if not segments:
        segments.append(LogSegment.create(directory, max(0, start_offset), config, now_ms))
        return
    for seg in segments[:-1]:
        if seg.capacity > seg.size:  # left untrimmed by a crash during a roll
            seg._cut(seg.size)
            seg.rest()  # the cut opened its file again
    segments[-1].make_active()
