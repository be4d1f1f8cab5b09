"""Telling progress viewers that an evaluation changed (the websocket consumer reads the rest)."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def group_name(evaluation_id) -> str:
    return f"evaluation.{evaluation_id}"


def publish_progress(evaluation_id) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(evaluation_id), {"type": "evaluation.progress"})
    except Exception:  # viewers poll as well; a lost message must not fail a case
        logger.warning("Could not publish the progress of evaluation %s", evaluation_id, exc_info=True)
