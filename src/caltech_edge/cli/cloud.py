"""``caltech-edge cloud`` (rules, uploads, remote inference), ``upload``, ``remote-infer``.

Thin: the work is in ``caltech_edge.cloud``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "cloud",
        help="the cloud process: IoT-SQL rules on device topics (store, republish, handler), "
        "capture uploads, inference over MQTT",
        description="Subscribes with a persistent MQTT 5 session (QoS 1, acknowledged after the "
        "durable write), applies the rules, de-duplicates by (device, seq).",
    )
    p.add_argument("--rules", required=True, help="rules file (YAML or JSON)")
    p.add_argument("--state", required=True, help="folder for cloud.sqlite (store + de-dup ledger)")
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument(
        "--client-id", default="caltech-edge-cloud", help="fixed: the persistent session"
    )
    p.add_argument(
        "--model", help="answer inference requests on caltech-edge/infer/request/# with it"
    )
    p.add_argument("--max-request-bytes", type=int, default=2 * 1024 * 1024)
    p.add_argument("--review-dir", help="accept capture uploads (HTTP PUT) into this folder")
    p.add_argument("--upload-host", default="127.0.0.1")
    p.add_argument("--upload-port", type=int, default=0)
    p.add_argument("--max-upload-bytes", type=int, default=8 * 1024 * 1024)
    p.set_defaults(func=_cloud)

    u = sub.add_parser(
        "upload", help="upload captured frames to the cloud's review area (deleted after ack)"
    )
    u.add_argument("capture_dir")
    u.add_argument("--url", required=True, help="the cloud upload endpoint, e.g. http://host:port")
    u.add_argument("--device", required=True)
    u.set_defaults(func=_upload)

    r = sub.add_parser(
        "remote-infer", help="classify images with the cloud's model over MQTT request/response"
    )
    r.add_argument("images", nargs="+")
    r.add_argument("--device", required=True)
    r.add_argument("--mqtt-host", default="127.0.0.1")
    r.add_argument("--mqtt-port", type=int, default=1883)
    r.add_argument("--mqtt-version", choices=("5", "3.1.1"), default="5")
    r.add_argument("--timeout", type=float, default=30.0)
    r.set_defaults(func=_remote)


def _cloud(args: argparse.Namespace) -> int:
    from ..cloud.remote import RemoteInference
    from ..cloud.rules import load_rules
    from ..cloud.service import CloudService
    from ..cloud.store import CloudStore
    from ..cloud.uploads import UploadServer

    rules = load_rules(Path(args.rules))
    remote = None
    if args.model:
        from ..runtime.predictor import load_model

        remote = RemoteInference(load_model(args.model), max_bytes=args.max_request_bytes)
    store = CloudStore(Path(args.state) / "cloud.sqlite")
    service = CloudService(
        rules,
        store,
        host=args.mqtt_host,
        port=args.mqtt_port,
        client_id=args.client_id,
        remote=remote,
    ).start()
    uploads = None
    if args.review_dir:
        uploads = UploadServer(
            Path(args.review_dir),
            host=args.upload_host,
            port=args.upload_port,
            max_bytes=args.max_upload_bytes,
            sink=service.ingest,
        ).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.set())
    ready = service.wait_ready(30)
    print(
        json.dumps(
            {
                "ready": ready,
                "rules": [r.name for r in rules],
                "upload_url": uploads.url if uploads else None,
            }
        ),
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if uploads is not None:
            uploads.close()
        service.idle(10)
        service.close()
        print(json.dumps(service.stats()), file=sys.stderr, flush=True)
        store.close()
    return 0


def _upload(args: argparse.Namespace) -> int:
    from ..cloud.uploads import upload_captures
    from ._common import print_json

    counts = upload_captures(Path(args.capture_dir), args.url, device=args.device)
    print_json(counts)
    return 1 if counts["failed"] else 0


def _remote(args: argparse.Namespace) -> int:
    from ..cloud.remote import remote_predict
    from ..errors import CaltechEdgeError

    for image in args.images:
        try:
            data = Path(image).read_bytes()
        except OSError as exc:
            raise CaltechEdgeError(f"cannot read image {image}: {exc}") from exc
        body = remote_predict(
            data,
            host=args.mqtt_host,
            port=args.mqtt_port,
            device=args.device,
            timeout=args.timeout,
            mqtt5=args.mqtt_version == "5",
        )
        print(json.dumps(dict(body, image=image)))
    return 0
