"""Deployment jobs in the shape of AWS IoT Jobs: a job document and per-device topics.

The document says what to run and how to check it (artifact URL, sha256, size, the hash
results will carry, a card summary). It is published retained, QoS 1, to
``$aws/things/<thing>/jobs/notify-next`` (or a group's topic), so a device that is offline
gets it when it reconnects; the device reports ``IN_PROGRESS`` / ``SUCCEEDED`` / ``FAILED``
to ``$aws/things/<thing>/jobs/<jobId>/update``, as the AWS IoT Jobs MQTT API does.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Optional

from .._io import sha256_file as file_sha256
from ..card import ModelCard
from ..runtime.payload import now_iso
from ..runtime.predictor import artifact_hash
from .artifact import ARCHIVE_SUFFIX

JOB_SCHEMA_VERSION = 1
STATUSES = ("QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED")
TERMINAL = ("SUCCEEDED", "FAILED")


def notify_topic(thing: str) -> str:
    return f"$aws/things/{thing}/jobs/notify-next"


def group_topic(group: str) -> str:
    return f"caltech-edge/groups/{group}/jobs/notify-next"


def update_topic(thing: str, job_id: str) -> str:
    return f"$aws/things/{thing}/jobs/{job_id}/update"


def update_filter(thing: str = "+") -> str:
    """Subscription for every status update of ``thing`` (``+``: all devices)."""
    return f"$aws/things/{thing}/jobs/+/update"


def card_summary(card: ModelCard) -> Dict[str, Any]:
    """What the device compares with its running model before it accepts the new one."""
    return {
        "name": card.name,
        "version": str(card.version),
        "arch": card.arch,
        "format": card.format,
        "precision": card.precision,
        "num_classes": card.num_classes,
        "class_names": list(card.class_names),
        "preprocess": card.preprocess.to_dict(),
    }


def make_job(
    shipped: Path,
    entry: str,
    model_path: Path,
    card: ModelCard,
    *,
    url: str,
    job_id: Optional[str] = None,
) -> Dict[str, Any]:
    """The job document for ``shipped`` (the file devices download), served at ``url``."""
    return {
        "schema_version": JOB_SCHEMA_VERSION,
        "operation": "caltech-edge.deploy-model",
        "jobId": job_id
        or "deploy-{}-{}".format(time.strftime("%Y%m%dT%H%M%S"), uuid.uuid4().hex[:8]),
        "created": now_iso(),
        "artifact": {
            "url": url,
            "sha256": file_sha256(shipped),
            "size": shipped.stat().st_size,
            "entry": entry,
            "archive": shipped.name.endswith(ARCHIVE_SUFFIX),
            "model_hash": artifact_hash(model_path),
        },
        "card": card_summary(card),
    }


def notification(job: Dict[str, Any]) -> bytes:
    """The ``notify-next`` message body (``execution.jobDocument`` as AWS IoT Jobs sends it)."""
    body = {
        "timestamp": int(time.time()),
        "execution": {"jobId": job["jobId"], "status": "QUEUED", "jobDocument": job},
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def status_update(thing: str, job_id: str, status: str, **details: Any) -> bytes:
    body = {
        "thingName": thing,
        "jobId": job_id,
        "status": status,
        "statusDetails": {k: v for k, v in details.items() if v is not None},
        "timestamp": now_iso(),
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
