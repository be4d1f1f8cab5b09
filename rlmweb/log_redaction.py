"""Secrets in URL paths never reach the logs.

A share link (`/s/<token>/…`, `/ws/share/<token>/`) and an invite (`/teams/join/<token>/`) grant
access to whoever holds the path, and access logs (uvicorn's, Django's "Not Found: …") print paths.
`RedactTokens` replaces those path segments with `[redacted]` in every log record it filters: it is
on the console handler of LOGGING, and `install()` (called by rlmweb.asgi, once the server has
configured its own loggers) adds it to uvicorn's access and error loggers.
"""

import logging
import re

# /s/runs/… and /s/links/… are the owner's management pages (ids, not tokens).
TOKEN_PATH = re.compile(r"(/s/(?!runs/|links/)|/ws/share/|/teams/join/)[^/?#\s\"']+")
REDACTED = r"\1[redacted]"


def redact(text: str) -> str:
    return TOKEN_PATH.sub(REDACTED, text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "django.request", "django.server"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
