"""Storage errors, each carrying the Kafka error code the request handler answers with.

The log never lets an ``OSError`` escape: every disk failure becomes a ``StorageError``
(KAFKA_STORAGE_ERROR) so a producer gets an error, never an acknowledgement, and the process stays up.
Validation failures map to the codes Kafka's ``LogValidator`` uses, so clients react the same way.
"""

from __future__ import annotations

import errno as _errno

KAFKA_STORAGE_ERROR = 56


class LogError(Exception):
    """Base of every storage-layer error; ``error_code`` is the Kafka error code to send."""

    error_code = -1  # UNKNOWN_SERVER_ERROR


class OffsetOutOfRange(LogError):
    """Fetch/lookup offset below the log start offset or above the log end offset."""

    error_code = 1

    def __init__(self, offset: int, log_start: int, log_end: int):
        super().__init__(f"offset {offset} outside [{log_start}, {log_end}]")
        self.offset, self.log_start, self.log_end = offset, log_start, log_end


class CorruptRecord(LogError):
    """A batch failed its CRC-32C check, or its records cannot be read (CORRUPT_MESSAGE)."""

    error_code = 2


class RecordTooLarge(LogError):
    """A produced batch exceeds max.message.bytes (MESSAGE_TOO_LARGE)."""

    error_code = 10


class InvalidRecord(LogError):
    """Framing, magic, record count or offsets of a produced batch are wrong (INVALID_RECORD)."""

    error_code = 87


class InvalidTopic(LogError):
    """Topic name is empty, too long, `.`/`..`, or uses characters outside [a-zA-Z0-9._-]."""

    error_code = 17


class TopicAlreadyExists(LogError):
    error_code = 36


class UnknownTopicOrPartition(LogError):
    error_code = 3


class InvalidPartitions(LogError):
    error_code = 37


class InvalidConfig(LogError):
    """A per-topic config key is unknown or its value is out of range (INVALID_CONFIG)."""

    error_code = 40


# Errors that mean "the disk is full": the directory stays online and the write can succeed later.
SPACE_ERRNOS = frozenset({_errno.ENOSPC, _errno.EDQUOT})


class StorageError(LogError):
    """A disk operation failed; nothing from the failed append is visible.

    ``errno`` is the OS error number (``None`` when the log was already offline). ``offline`` is true when the
    failure took the log directory offline (anything but a full disk).
    """

    error_code = KAFKA_STORAGE_ERROR

    def __init__(self, message: str, errno: int | None = None, offline: bool = False):
        super().__init__(message)
        self.errno = errno
        self.offline = offline

    @classmethod
    def from_os_error(cls, what: str, exc: OSError) -> "StorageError":
        offline = exc.errno not in SPACE_ERRNOS
        return cls(f"{what}: {exc.strerror or exc}", exc.errno, offline)
