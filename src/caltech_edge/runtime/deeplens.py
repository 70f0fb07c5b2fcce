"""The DeepLens/Greengrass Lambda on top of the runtime (``infinite_infer_run`` style).

``examples/deeplens_lambda/lambda_function.py`` (and the ``lambda_function.py`` inside the
package zip) only imports this module and calls :func:`infinite_infer_run`. Configuration
comes from the Lambda's environment variables (the Greengrass group sets them):

=================  ==========================================================  =============================
variable           meaning                                                     default
=================  ==========================================================  =============================
MODEL_PATH         artifact (.xml, .onnx, -symbol.json)                        first model in /opt/awscam/artifacts
BACKEND            force a backend                                             from the suffix
SOURCE             ``awscam``, camera index, video, folder, URL                ``awscam`` if importable, else 0
THING_NAME         device name in payloads and the default topic               AWS_IOT_THING_NAME or hostname
TOPIC              MQTT topic                                                  ``$aws/things/<thing>/infer``
MQTT_HOST/PORT     broker outside Greengrass (with TLS_CA/TLS_CERT/TLS_KEY)    (Greengrass publishes)
BUFFER_DIR         outbox + sequence state                                     /tmp/caltech-edge
STREAM             project stream FIFO/file                                    /tmp/results.mjpeg
CAPTURE_DIR        low-confidence frames for retraining                        (off)
EVERY, SMOOTH, MIN_CONFIDENCE, PUBLISH, INTERVAL, TOP_K, MAX_FRAMES            see ``caltech-edge infer``
=================  ==========================================================  =============================

On a DeepLens (``awscam`` importable) an MXNet model is optimized with ``mo.optimize`` and
run through ``awscam.Model`` on the GPU; everywhere else the library's backends run it.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import ConfigError
from .state import ensure_dir

log = logging.getLogger(__name__)

ARTIFACTS = Path("/opt/awscam/artifacts")


def _importable(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def config_from_env(env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The Lambda's settings from environment variables (see the module docstring)."""
    env = dict(os.environ if env is None else env)
    thing = env.get("THING_NAME") or env.get("AWS_IOT_THING_NAME") or socket.gethostname()
    model = env.get("MODEL_PATH", "")
    if not model and ARTIFACTS.is_dir():
        found = sorted(ARTIFACTS.glob("*.xml")) + sorted(ARTIFACTS.glob("*-symbol.json"))
        model = str(found[0]) if found else ""
    if not model:
        raise ConfigError("set MODEL_PATH to the model artifact (.xml, .onnx or -symbol.json)")

    def num(key: str, default: Any, kind: Any = int) -> Any:
        try:
            return kind(env[key]) if env.get(key) else default
        except ValueError:
            raise ConfigError(
                "{}={!r} is not a valid {}".format(key, env[key], kind.__name__)
            ) from None

    return {
        "model": model,
        "backend": env.get("BACKEND") or None,
        "source": env.get("SOURCE") or ("awscam" if _importable("awscam") else "0"),
        "thing": thing,
        "topic": env.get("TOPIC") or "$aws/things/{}/infer".format(thing),
        "mqtt_host": env.get("MQTT_HOST") or None,
        "mqtt_port": num("MQTT_PORT", 0),
        "tls": [env.get("TLS_CA"), env.get("TLS_CERT"), env.get("TLS_KEY")],
        "buffer_dir": env.get("BUFFER_DIR") or "/tmp/caltech-edge",
        "stream": env.get("STREAM", "/tmp/results.mjpeg"),
        "capture_dir": env.get("CAPTURE_DIR") or None,
        "every": num("EVERY", 1),
        "smooth": num("SMOOTH", 1),
        "min_confidence": num("MIN_CONFIDENCE", 0.0, float),
        "publish": env.get("PUBLISH") or "every",
        "interval": num("INTERVAL", 0.0, float),
        "top_k": num("TOP_K", 5),
        "max_frames": num("MAX_FRAMES", None),
    }


class AwscamRuntime:
    """``awscam.Model`` behind the :class:`~caltech_edge.runtime.base.Runtime` protocol.

    Only on a DeepLens: the IR runs on its GPU (FP16). ``mo.optimize`` turns the MXNet
    files the model import unpacked into that IR first.
    """

    name = "awscam"

    def __init__(self, path: str, card: Any) -> None:
        import awscam  # type: ignore

        if path.endswith("-symbol.json"):
            import mo  # type: ignore

            stem = Path(path).name[: -len("-symbol.json")]
            size = card.preprocess.image_size
            error, path = mo.optimize(stem, size, size)
            if error:
                raise ConfigError("mo.optimize failed for {} (error {})".format(stem, error))
        self.card = card
        self.input_name = card.input_name
        self._model = awscam.Model(path, {"GPU": 1})

    def infer(self, batch: np.ndarray) -> np.ndarray:
        outs = []  # type: List[np.ndarray]
        for chw in np.asarray(batch, dtype=np.float32):
            result = self._model.doInference(np.ascontiguousarray(chw.transpose(1, 2, 0)))
            outs.append(np.asarray(next(iter(result.values()))).reshape(-1))
        return np.stack(outs)


def _load(cfg: Dict[str, Any]) -> Any:
    from ..card import card_for
    from .predictor import EdgeModel, load_model

    if cfg["backend"] is None and _importable("awscam"):
        card = card_for(cfg["model"])
        return EdgeModel(AwscamRuntime(cfg["model"], card), path=cfg["model"])
    return load_model(cfg["model"], backend=cfg["backend"])


def _publishers(cfg: Dict[str, Any], buffer: Any) -> List[Any]:
    """MQTT through ``buffer`` (the outbox) when a broker is configured, else Greengrass/stdout."""
    from .publish import GreengrassPublisher, MqttPublisher, StreamPublisher, TlsConfig

    if buffer is not None:
        ca, cert, key = cfg["tls"]
        tls = TlsConfig(ca, cert, key) if ca else None
        return [
            MqttPublisher(
                cfg["mqtt_host"],
                cfg["mqtt_port"] or (8883 if tls else 1883),
                topic=cfg["topic"],
                buffer=buffer,
                client_id=cfg["thing"],
                tls=tls,
            )
        ]
    if _importable("greengrasssdk"):
        return [GreengrassPublisher(cfg["topic"])]
    return [StreamPublisher()]


def infinite_infer_run(env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run the device loop until the source ends (never, on a camera) or MAX_FRAMES."""
    from .buffer import open_state
    from .capture import RetrainCapture
    from .interpret import InterpretConfig
    from .loop import run
    from .publish import close_all
    from .sources import open_source
    from .stream import MjpegStream

    cfg = config_from_env(env)
    model = _load(cfg)
    state = ensure_dir(Path(cfg["buffer_dir"]), "BUFFER_DIR")
    buffer, sequencer = open_state(state, outbox=bool(cfg["mqtt_host"]))
    publishers = _publishers(cfg, buffer)
    stream = (
        MjpegStream(cfg["stream"], make_fifo=not _is_file(cfg["stream"])) if cfg["stream"] else None
    )
    capture = RetrainCapture(cfg["capture_dir"]) if cfg["capture_dir"] else None
    source = open_source(cfg["source"])
    interpret = InterpretConfig(
        every=cfg["every"],
        smooth=cfg["smooth"],
        min_confidence=cfg["min_confidence"],
        publish=cfg["publish"],
        interval_s=cfg["interval"],
        top_k=cfg["top_k"],
    )
    try:
        return run(
            source,
            model,
            publishers=publishers,
            interpret=interpret,
            sequencer=sequencer,
            device=cfg["thing"],
            stream=stream,
            capture=capture,
            max_frames=cfg["max_frames"],
        )
    finally:
        close_all(publishers, timeout=30.0)
        if stream is not None:
            stream.close()
        sequencer.close()
        if buffer is not None:
            buffer.close()


def _is_file(path: str) -> bool:
    """A stream target that already exists as a regular file (or has a file suffix) stays a file."""
    p = Path(path)
    return (p.exists() and p.is_file()) or p.suffix.lower() in (".mjpg", ".jpgs")


def function_handler(event: Any, context: Any) -> None:
    """Greengrass calls this for messages addressed to the Lambda; the work is in the loop."""
    return None
