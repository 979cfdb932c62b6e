"""Structured logs: one line per event, JSON by default, key=value for humans."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        payload.update(_extras(record))
        if record.exc_info and record.exc_info[1] is not None:
            payload["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(payload, default=str, separators=(",", ":"))


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        pairs = " ".join(f"{k}={_kv(v)}" for k, v in _extras(record).items())
        return f"{stamp} {record.levelname.lower()} event={record.getMessage()} {pairs}".rstrip()


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED}


def _kv(value: Any) -> str:
    text = str(value)
    # quoted (and so escaped) when it has spaces, quotes or control characters: one event, one line
    return (
        json.dumps(text)
        if (not text or not text.isprintable() or " " in text or '"' in text)
        else text
    )


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
