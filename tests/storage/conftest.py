"""Fixtures for storage tests: a partition directory and an opener that closes what it opened."""

from __future__ import annotations

import pytest

from broker.log import LogConfig, PartitionLog
from .storage_helpers import small_config


@pytest.fixture
def part_dir(tmp_path):
    return str(tmp_path / "topic-0")


@pytest.fixture
def open_log(part_dir):
    logs = []

    def opener(config: LogConfig | None = None, recover: bool = False, now: int | None = None) -> PartitionLog:
        log = PartitionLog.open(part_dir, config or small_config(), recover=recover, now=now)
        logs.append(log)
        return log

    yield opener
    for log in logs:
        try:
            log.close(clean=False)
        except Exception:
            pass

