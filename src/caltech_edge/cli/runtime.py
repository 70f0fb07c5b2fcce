"""``caltech-edge infer`` and ``serve`` (in ``_serve``): the device side of the CLI.

Thin: argument parsing and wiring only; the work is in ``caltech_edge.runtime``.
``caltech-edge package`` lives in ``cli/package.py``: this module ships inside the device
bundles, which run models and do not build packages.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from ._serve import register_serve  # beside this module in every bundle

    _register_infer(sub)
    register_serve(sub, _model_args)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="artifact: .onnx, .xml (OpenVINO IR), MXNet -symbol.json or its folder, .tflite, "
        ".pte (ExecuTorch), .mlpackage (Core ML, macOS)",
    )
    # No argparse choices: the backend registry validates the name (with a did-you-mean),
    # and building the parser must not import the runtime (`--help` stays instant).
    p.add_argument(
        "--backend",
        help="force a runtime backend (onnxruntime, openvino, litert, executorch, ...; "
        "default: from the artifact's suffix)",
    )
    p.add_argument(
        "--precision-hint",
        choices=("f32", "bf16", "f16"),
        help="OpenVINO inference precision (default: device default)",
    )
    p.add_argument("--threads", type=int, help="intra-op threads (default: all usable cores)")


def _register_infer(sub: Any) -> None:
    p = sub.add_parser(
        "infer",
        help="run a model on a camera/video/folder/URL and publish results (MQTT, file, stdout)",
        description="The device loop: frames -> model -> interpretation -> MQTT (buffered on "
        "disk, nothing lost), project stream, retraining capture.",
    )
    _model_args(p)
    p.add_argument(
        "--source",
        required=True,
        help="camera index, video file, image folder, rtsp:// or http:// URL, or 'awscam'",
    )
    p.add_argument(
        "--device",
        default=socket.gethostname(),
        help="device/thing name in payloads (default: hostname)",
    )
    p.add_argument("--max-frames", type=int, help="stop after N good frames")
    p.add_argument("--rate", type=float, help="read at most this many frames per second")
    p.add_argument(
        "--fast-preprocess",
        choices=("linear", "area"),
        help="crop the kept square before resizing (~4x cheaper on camera frames, near-identical pixels)",
    )
    p.add_argument(
        "--fused",
        action="store_true",
        help="OpenVINO IR only: preprocessing compiled into the graph (fast device path)",
    )
    p.add_argument(
        "--prefetch",
        action="store_true",
        help="preprocess the next frame while the model runs (more frames/s, +1 frame latency)",
    )
    _add_interpretation_options(p)
    _add_publishing_options(p)
    from .deploy import add_device_args

    add_device_args(p)
    p.set_defaults(func=_infer)


def _add_interpretation_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("interpretation")
    g.add_argument("--every", type=int, default=1, help="infer on every k-th frame")
    g.add_argument(
        "--smooth", type=int, default=1, help="average probabilities over the last N inferences"
    )
    g.add_argument(
        "--min-confidence", type=float, default=0.0, help="below this, the top result is null"
    )
    g.add_argument(
        "--publish", dest="publish_mode", choices=("every", "change", "interval"), default="every"
    )
    g.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="seconds between publishes ('interval'), heartbeat ('change')",
    )
    g.add_argument("--top-k", type=int, default=5)
    g.add_argument("--roi", help="region of interest 'x,y,w,h' in pixels or fractions")


def _add_publishing_options(p: argparse.ArgumentParser) -> None:
    """Where results go: the MQTT group, then the local outputs group."""
    m = p.add_argument_group("MQTT (AWS IoT Core: port 8883 with --tls-*)")
    m.add_argument("--mqtt-host", help="broker host; without it nothing goes to MQTT")
    m.add_argument("--mqtt-port", type=int, help="default 1883, or 8883 with --tls-ca")
    m.add_argument("--topic", help="default $aws/things/<device>/infer")
    m.add_argument("--client-id", default="", help="MQTT client id (AWS IoT: the thing name)")
    m.add_argument("--tls-ca", help="CA certificate (Amazon root CA)")
    m.add_argument("--tls-cert", help="client certificate")
    m.add_argument("--tls-key", help="client private key")
    m.add_argument("--keepalive", type=int, default=30)
    m.add_argument(
        "--buffer-dir", help="outbox + sequence state (default ~/.caltech-edge/<device>)"
    )
    m.add_argument("--buffer-max-messages", type=int, default=100000)
    m.add_argument("--buffer-max-bytes", type=int, default=64 * 1024 * 1024)
    m.add_argument("--overflow", choices=("drop_oldest", "drop_newest"), default="drop_oldest")
    m.add_argument(
        "--flush-timeout",
        type=float,
        default=30.0,
        help="seconds to wait at the end for undelivered results",
    )
    o = p.add_argument_group("outputs")
    o.add_argument(
        "--json",
        action="store_true",
        help="print each published payload as one JSON line on stdout",
    )
    o.add_argument("--output", help="append payloads as JSON lines to this file")
    o.add_argument(
        "--stream", help="annotated MJPEG to this FIFO or file (DeepLens: /tmp/results.mjpeg)"
    )
    o.add_argument("--capture-dir", help="save low-confidence frames here in the dataset layout")
    o.add_argument("--capture-threshold", type=float, default=0.5)
    o.add_argument(
        "--capture-sample", type=float, default=0.0, help="also keep this fraction of all frames"
    )
    o.add_argument("--capture-max-files", type=int, default=1000)


def _check_paths(args: argparse.Namespace) -> tuple:
    """Foreseeable path mistakes as one-line errors, and the state dir's lock, before the
    (slow) model load: a second process on the same dir is refused at once."""
    from ..errors import ConfigError
    from ..runtime.state import DirLock

    if args.output and Path(args.output).is_dir():
        raise ConfigError(
            f"--output {args.output} is a directory; give a file path for the JSON lines"
        )
    if args.capture_dir and Path(args.capture_dir).exists() and not Path(args.capture_dir).is_dir():
        raise ConfigError(f"--capture-dir {args.capture_dir} is a file; give a directory path")
    state = (
        Path(args.buffer_dir) if args.buffer_dir else Path.home() / ".caltech-edge" / args.device
    )
    return state, DirLock(state)


def _load(args: argparse.Namespace) -> Any:
    from ..runtime.predictor import load_model

    if args.fused:
        from ..runtime.fused import load_fused

        return load_fused(args.model, precision_hint=args.precision_hint, threads=args.threads)
    return load_model(
        args.model,
        backend=args.backend,
        precision_hint=args.precision_hint,
        threads=args.threads,
        fast_preprocess=args.fast_preprocess,
    )


def _publishers(args: argparse.Namespace, state: Path) -> tuple:
    """(publishers, outbox or None, sequencer): the state opens as in every entry point."""
    from ..runtime.buffer import open_state
    from ..runtime.publish import (
        FilePublisher,
        MqttPublisher,
        StreamPublisher,
        TlsConfig,
        check_broker,
        default_topic,
    )

    publishers: list = []
    if args.mqtt_host:
        tls = TlsConfig(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
        port = args.mqtt_port or (8883 if tls else 1883)
        check_broker(args.mqtt_host, port)
    buffer, sequencer = open_state(
        state,
        outbox=bool(args.mqtt_host),
        max_messages=args.buffer_max_messages,
        max_bytes=args.buffer_max_bytes,
        overflow=args.overflow,
    )
    if args.json:
        publishers.append(StreamPublisher(sys.stdout))
    if args.output:
        publishers.append(FilePublisher(args.output))
    if buffer is not None:
        publishers.append(
            MqttPublisher(
                args.mqtt_host,
                port,
                topic=args.topic or default_topic(args.device),
                buffer=buffer,
                client_id=args.client_id,
                tls=tls,
                keepalive=args.keepalive,
            )
        )
    return publishers, buffer, sequencer


def _infer(args: argparse.Namespace) -> int:
    from ..runtime.capture import RetrainCapture
    from ..runtime.frames import parse_roi
    from ..runtime.interpret import InterpretConfig
    from ..runtime.loop import run
    from ..runtime.publish import close_all
    from ..runtime.sources import open_source
    from ..runtime.stream import MjpegStream

    state, lock = _check_paths(args)
    model = _load(args)
    interpret = InterpretConfig(
        every=args.every,
        smooth=args.smooth,
        min_confidence=args.min_confidence,
        publish=args.publish_mode,
        interval_s=args.interval,
        top_k=args.top_k,
    )
    roi = parse_roi(args.roi) if args.roi else None
    publishers, buffer, sequencer = _publishers(args, state)
    from .deploy import attach_agent

    agent = attach_agent(args, model, state)
    model = agent.model if agent is not None else model
    source = open_source(args.source, rate=args.rate)
    stream = MjpegStream(args.stream) if args.stream else None
    capture = (
        RetrainCapture(
            args.capture_dir,
            threshold=args.capture_threshold,
            sample_rate=args.capture_sample,
            max_files=args.capture_max_files,
        )
        if args.capture_dir
        else None
    )
    try:
        stats = run(
            source,
            model,
            publishers=publishers,
            interpret=interpret,
            roi=roi,
            sequencer=sequencer,
            device=args.device,
            stream=stream,
            capture=capture,
            max_frames=args.max_frames,
            prefetch=args.prefetch,
        )
    finally:
        delivered = close_all(publishers, timeout=args.flush_timeout)
        if stream is not None:
            stream.close()
        source.close()
        sequencer.close()
        if agent is not None:
            agent.close()
            stats_deploy = {
                "swaps": agent.model.swaps,
                "rollbacks": agent.model.rollbacks,
                "jobs": agent.history,
            }
    if agent is not None:
        stats["deploy"] = stats_deploy
    status = _summary(stats, publishers, buffer, delivered, state)
    lock.release()
    return status


def _summary(stats: dict, publishers: list, buffer: Any, delivered: bool, state: Path) -> int:
    """Print the run's stats; exit 1 when results were dropped or are still unsent."""
    dropped = buffer.dropped if buffer is not None else 0
    stats["publishers"] = [p.stats() for p in publishers]
    stats["dropped"] = dropped
    stats["delivered_all"] = delivered and dropped == 0
    if buffer is not None:
        buffer.close()
    print(json.dumps(stats), file=sys.stderr)
    status = 0
    if dropped:
        print(
            f"caltech-edge infer: error: {dropped} result(s) were dropped by the outbox "
            f"overflow policy (see the warnings above); raise --buffer-max-messages/--buffer-max-bytes",
            file=sys.stderr,
        )
        status = 1
    if not delivered:
        print(
            f"caltech-edge infer: warning: some results are still in the outbox {state}; they are "
            "sent on the next run",
            file=sys.stderr,
        )
        status = 1
    return status
