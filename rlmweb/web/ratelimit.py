"""Per-user rate limits over a fixed window, kept in the Django cache."""

import time

from django.conf import settings
from django.core.cache import cache

from .errors import RateLimited


def _window(user_id: int, action: str) -> tuple[int, int, str, int]:
    limit, window = settings.RATE_LIMITS[action]
    now = int(time.time())
    bucket = now // window
    return limit, window, f"ratelimit:{action}:{user_id}:{bucket}", (bucket + 1) * window - now


def _refuse(action: str, limit: int, window: int, retry_after: int) -> RateLimited:
    return RateLimited(
        f"Too many {action} requests: at most {limit} per {window} s. Try again in {retry_after} s.",
        retry_after=retry_after,
    )


def rate_limit_check(user_id: int, action: str) -> None:
    """Raise RateLimited if the user has no `action` left in this window; counts nothing."""
    limit, window, key, retry_after = _window(user_id, action)
    if (cache.get(key) or 0) >= limit:
        raise _refuse(action, limit, window, retry_after)


def rate_limit_hit(user_id: int, action: str) -> None:
    """Count one `action` by the user; raise RateLimited past the configured limit."""
    limit, window, key, retry_after = _window(user_id, action)
    cache.add(key, 0, timeout=window + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 5)
        count = 1
    if count > limit:
        raise _refuse(action, limit, window, retry_after)
