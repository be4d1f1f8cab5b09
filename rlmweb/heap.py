"""Keeping the garbage collector off the objects a server process loads once at startup.

Django, litellm, pydantic and Celery leave several hundred thousand long-lived objects; every
full collection walks all of them again, and a page that builds a thousand model instances
triggers such collections: the runs page took 650 ms instead of 220 ms under the test client.
`gc.freeze()` moves everything alive at the end of startup to a permanent generation that
collections skip (objects freed later are still freed by reference counting).
"""

import gc


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections; returns how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
