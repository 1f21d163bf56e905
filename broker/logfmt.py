"""Structured log lines: `time level component message key=value ...`, or one JSON object per line.

Every line names what it concerns (worker, connection, partition) through `key=value` fields so that
operators can grep and machines can parse without a log-shipping agent knowing our formats.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time


_CONTEXT: dict = {}


def set_context(**fields) -> None:
    """Fields every later line of this process carries: a worker names its role and index once."""
    _CONTEXT.clear()
    _CONTEXT.update(fields)


def _fields(record: logging.LogRecord) -> dict:
    fields = getattr(record, "fields", None) or {}
    return {**_CONTEXT, **fields} if _CONTEXT else fields


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = _fields(record)
        kv = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        line = f"{ts}.{int(record.msecs):03d}Z {record.levelname:<5} {record.name} pid={record.process} " \
               f"{record.getMessage()}"
        if kv:
            line += " " + kv
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        obj.update(_fields(record))
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, default=str)


def _quote(v: object) -> str:
    s = str(v)
    if not s or any(c in s for c in ' "='):
        return json.dumps(s)
    return s


def setup_logging(level: str = "INFO", fmt: str = "text", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("HPBROKER_LOG_LEVEL", level).upper())


class Log:
    """A logger that takes fields as keyword arguments: `log.info("closed", conn=3, reason="eof")`."""

    __slots__ = ("_logger",)

    def __init__(self, name: str):
        self._logger = logging.getLogger(name)

    def _log(self, level: int, msg: str, exc_info=None, **fields) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, exc_info=exc_info, extra={"fields": fields})

    def debug(self, msg: str, **fields) -> None:
        self._log(logging.DEBUG, msg, **fields)

    def info(self, msg: str, **fields) -> None:
        self._log(logging.INFO, msg, **fields)

    def warning(self, msg: str, **fields) -> None:
        self._log(logging.WARNING, msg, **fields)

    def error(self, msg: str, exc_info=None, **fields) -> None:
        self._log(logging.ERROR, msg, exc_info=exc_info, **fields)
