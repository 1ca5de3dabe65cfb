"""S3 "Object ..." events as Amazon S3 sends them to EventBridge, from what moto delivers.

moto 5.2.5 (``moto/s3/notifications.py``, ``_send_event_bridge_message``) builds the event
from AWS's documented example but differs from it in ways a consumer can see:

- ``detail.object.eTag``: AWS's field is ``etag``;
- ``detail.object.version-id`` is ``null`` for an object of an unversioned bucket: the field
  is left out here;
- ``id`` is the same for every event (the UUID of AWS's documentation example): AWS generates
  "a Version 4 UUID ... for every event";
- ``time`` is epoch seconds before an SQS target renders it: AWS sends ``YYYY-MM-DDTHH:MM:SSZ``.

``detail.object.key`` is kept exactly as moto sends it, the key name itself. AWS documents URL
encoding ("red flower.jpg" becomes "red+flower.jpg") only for classic notifications
(``Records[].s3.object.key``), not for the EventBridge event structure; the validate function
reads either form (``mlops.validation.objects.resolve_key``), and docs/DEPLOY.md lists the
question for the first real deploy.

Not corrected, because the delivered event no longer tells: ``reason`` is ``ObjectCreated``
for every creation (AWS names the API: PutObject, POST Object, CopyObject,
CompleteMultipartUpload), and an "Object Deleted" event has no ``deletion-type``.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timezone
from typing import Any

# The id moto gives every event it builds (moto.events.utils._BASE_EVENT_MESSAGE).
MOTO_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"
# Field order of detail.object in AWS's documented events.
_OBJECT_FIELDS = ("key", "size", "etag", "version-id", "sequencer")


def as_aws_s3_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with a moto-built S3 EventBridge event rewritten to AWS's shape.

    Any other event (another source, or no ``detail.object``) comes back unchanged. The
    argument is not modified; calling this on its own result changes nothing more.
    """
    detail = event.get("detail")
    if event.get("source") != "aws.s3" or not isinstance(detail, dict):
        return event
    if not isinstance(detail.get("object"), dict):
        return event
    out = copy.deepcopy(event)
    if out.get("id") == MOTO_EVENT_ID:
        out["id"] = str(uuid.uuid4())
    if isinstance(out.get("time"), int | float) and not isinstance(out.get("time"), bool):
        moment = datetime.fromtimestamp(out["time"], timezone.utc)
        out["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    out["detail"]["object"] = _aws_object(out["detail"]["object"])
    return out


def _aws_object(obj: dict[str, Any]) -> dict[str, Any]:
    fields = dict(obj)
    if "eTag" in fields:
        etag = fields.pop("eTag")
        fields.setdefault("etag", etag)
    if fields.get("version-id") is None:
        fields.pop("version-id", None)
    ordered = {name: fields.pop(name) for name in _OBJECT_FIELDS if name in fields}
    return ordered | fields
