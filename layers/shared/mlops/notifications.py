"""Messages to people (SNS): failed training, a model awaiting approval, a failed deployment."""

from __future__ import annotations

import json
from typing import Any

from mlops.clients import client
from mlops.observability import logger
from mlops.settings import get_settings

# SNS caps subjects at 100 characters; a longer one fails the publish.
_SUBJECT_MAX = 100


def notify(subject: str, message: str, **attributes: Any) -> str | None:
    """Publish to NOTIFICATION_TOPIC_ARN; returns the message id (None when no topic is set).

    ``attributes`` (run_id, dataset, …) travel as a JSON block after the text so a subscriber
    that parses messages gets them without scraping prose.
    """
    topic = get_settings().notification_topic_arn
    if not topic:
        logger.warning(
            "no NOTIFICATION_TOPIC_ARN; notification not sent", extra={"subject": subject}
        )
        return None
    body = message
    if attributes:
        body += "\n\n" + json.dumps(attributes, indent=2, sort_keys=True, default=str)
    response = client("sns").publish(TopicArn=topic, Subject=subject[:_SUBJECT_MAX], Message=body)
    logger.info("notification sent", extra={"subject": subject, "topic": topic})
    return str(response["MessageId"])
