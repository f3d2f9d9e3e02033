"""Logs: JSON lines for machines, plain text for people, and the ids that tie lines together.

`configure(format)` sets up the root logger once per process: `json` writes one JSON object a
line (`time`, `level`, `logger`, `message`, the bound ids, `error` with the traceback), `text`
a readable line; `auto` (the default, `STOCKHUB_LOG_FORMAT`) picks text when the log stream
(stderr) is a terminal, JSON otherwise (systemd, containers, files).

`bind(request_id=…, upload_id=…, store_id=…, worker_id=…)` adds ids to every line logged in the
current context (a request, a worker's job, an FTP connection's thread) until the returned
token is given to `unbind`; `bound(...)` is the same as a `with` block. Ids never hold secrets.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime

import orjson

_context: ContextVar[dict] = ContextVar("stockhub_log_context", default={})
_configured: str | None = None


def bind(**ids) -> Token:
    return _context.set(_context.get() | {k: v for k, v in ids.items() if v is not None})


def unbind(token: Token) -> None:
    _context.reset(token)


@contextmanager
def bound(**ids) -> Iterator[None]:
    token = bind(**ids)
    try:
        yield
    finally:
        unbind(token)


def current(name: str) -> str | None:
    return _context.get().get(name)


class _WithContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.stockhub_ids = _context.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "stockhub_ids", {}),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        try:  # a line per request: the json module costs ten times the CPU
            return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # what orjson cannot write (an integer past 64 bits): the line still goes out
            return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = getattr(record, "stockhub_ids", {}) | getattr(record, "fields", {})
        if ids:
            first, newline, rest = text.partition("\n")
            text = first + " [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]" + newline + rest
        return text


def chosen_format(setting: str, stream=None) -> str:
    if setting in ("json", "text"):
        return setting
    stream = stream or sys.stderr
    return "text" if getattr(stream, "isatty", lambda: False)() else "json"


def configure(setting: str = "auto", level: str = "INFO") -> str:
    """Send every log line (stockhub's, uvicorn's, pyftpdlib's) to stderr in the chosen format; returns it."""
    global _configured
    chosen = chosen_format(setting)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(_WithContext())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "pyftpdlib"):  # through the root handler, not their own
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # api/ops.py logs each request, with its id
    _configured = chosen
    return chosen
