"""Per-user rate limits over a fixed window, kept in the Django cache."""

import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError


class RateLimited(ValidationError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, code="rate_limited")
        self.retry_after = retry_after


def rate_limit_hit(user_id: int, action: str) -> None:
    """Count one `action` by the user; raise RateLimited past the configured limit."""
    limit, window = settings.RATE_LIMITS[action]
    now = int(time.time())
    bucket = now // window
    key = f"ratelimit:{action}:{user_id}:{bucket}"
    cache.add(key, 0, timeout=window + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 5)
        count = 1
    if count > limit:
        retry_after = (bucket + 1) * window - now
        raise RateLimited(
            f"Too many {action} requests: at most {limit} per {window} s. Try again in {retry_after} s.",
            retry_after,
        )
