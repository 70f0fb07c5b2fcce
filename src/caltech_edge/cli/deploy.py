"""``caltech-edge deploy``: push a model to running devices; device flags for ``infer``.

Thin: the work is in ``caltech_edge.deploy``. :func:`add_device_args` and
:func:`attach_agent` are the two hooks ``infer`` calls for ``--accept-deployments``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "deploy",
        help="deploy a model to devices over MQTT (AWS IoT Jobs shape) and wait for their verdicts",
        description="Publishes a job document (artifact URL, sha256, size, card summary) to each "
        "device's $aws/things/<thing>/jobs/notify-next topic; devices running "
        "'infer --accept-deployments' download, check, self-test, swap and report.",
    )
    p.add_argument(
        "artifact", help="model file (.onnx, .xml, -symbol.json) or a folder holding one"
    )
    p.add_argument("--device", action="append", default=[], help="thing name (repeatable)")
    p.add_argument("--group", action="append", default=[], help="device group (repeatable)")
    p.add_argument("--mqtt-host", required=True)
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--url", help="where devices download the artifact (default: served from here)")
    p.add_argument("--serve-host", default="127.0.0.1", help="artifact server bind address")
    p.add_argument("--serve-port", type=int, default=0, help="artifact server port (0: any free)")
    p.add_argument("--wait", type=float, default=600.0, help="seconds to wait for device verdicts")
    p.add_argument("--job-id", help="job id (default: deploy-<time>-<random>)")
    p.set_defaults(func=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    from ..deploy.publisher import deploy
    from ._common import print_json

    out = deploy(
        Path(args.artifact),
        things=args.device,
        groups=args.group,
        host=args.mqtt_host,
        port=args.mqtt_port,
        url=args.url,
        serve_host=args.serve_host,
        serve_port=args.serve_port,
        wait=args.wait,
        job_id=args.job_id,
    )
    print_json(
        {k: out[k] for k in ("statuses", "details", "succeeded")} | {"jobId": out["job"]["jobId"]}
    )
    return 0 if out["succeeded"] or not args.device else 1


def add_device_args(p: argparse.ArgumentParser) -> None:
    """The ``infer`` flags of the device side of deployments."""
    g = p.add_argument_group("deployments (AWS IoT Jobs / Greengrass)")
    g.add_argument(
        "--accept-deployments",
        action="store_true",
        help="receive model deployments on $aws/things/<device>/jobs/notify-next (needs --mqtt-host)",
    )
    g.add_argument(
        "--group",
        dest="deploy_groups",
        action="append",
        default=[],
        help="device group (repeatable)",
    )
    g.add_argument("--max-artifact-bytes", type=int, default=512 * 1024 * 1024)
    g.add_argument(
        "--probation-frames", type=int, default=20, help="results a new model is watched for"
    )
    g.add_argument(
        "--rollback-confidence-ratio",
        type=float,
        default=0.5,
        help="roll back when mean top-1 on probation < this x the previous model's",
    )
    g.add_argument(
        "--rollback-error-rate", type=float, default=0.0, help="tolerated error rate on probation"
    )


def attach_agent(args: argparse.Namespace, model: Any, state: Path) -> Any | None:
    """A started :class:`DeploymentAgent` when ``--accept-deployments`` is given, else None."""
    if not getattr(args, "accept_deployments", False):
        return None
    from ..deploy.agent import AgentConfig, DeploymentAgent
    from ..errors import ConfigError
    from ..runtime.publish import TlsConfig

    tls = TlsConfig(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
    if not args.mqtt_host:
        raise ConfigError("--accept-deployments needs --mqtt-host (jobs arrive over MQTT)")
    if args.fused:
        raise ConfigError("--accept-deployments cannot be combined with --fused")
    config = AgentConfig(
        thing=args.device,
        state_dir=state,
        groups=tuple(args.deploy_groups),
        host=args.mqtt_host,
        port=args.mqtt_port or (8883 if tls else 1883),
        tls=tls,
        max_bytes=args.max_artifact_bytes,
        probation_frames=args.probation_frames,
        collapse_ratio=args.rollback_confidence_ratio,
        max_error_rate=args.rollback_error_rate,
        load_kwargs={
            "precision_hint": args.precision_hint,
            "threads": args.threads,
            "fast_preprocess": args.fast_preprocess,
        },
    )
    return DeploymentAgent(config, model)
