"""The device runtime: imports with numpy, OpenCV and one backend only (no torch, no mxnet).

Python 3.8-compatible source: it runs on older device images. The public names below are
imported lazily, so ``import caltech_edge.runtime`` costs nothing until one is used.
"""

from __future__ import annotations

from .._registry import lazy_getattr

_LAZY = {
    "load_model": "caltech_edge.runtime.predictor",
    "EdgeModel": "caltech_edge.runtime.predictor",
    "open_runtime": "caltech_edge.runtime.backends",
    "open_source": "caltech_edge.runtime.sources",
    "InterpretConfig": "caltech_edge.runtime.interpret",
    "Interpreter": "caltech_edge.runtime.interpret",
    "run": "caltech_edge.runtime.loop",
    "DiskBuffer": "caltech_edge.runtime.buffer",
    "Sequencer": "caltech_edge.runtime.buffer",
    "MqttPublisher": "caltech_edge.runtime.publish",
    "FilePublisher": "caltech_edge.runtime.publish",
    "StreamPublisher": "caltech_edge.runtime.publish",
    "GreengrassPublisher": "caltech_edge.runtime.publish",
    "TlsConfig": "caltech_edge.runtime.publish",
    "MjpegStream": "caltech_edge.runtime.stream",
    "RetrainCapture": "caltech_edge.runtime.capture",
    "make_server": "caltech_edge.runtime.serve",
    "validate_payload": "caltech_edge.runtime.payload",
    "PAYLOAD_SCHEMA": "caltech_edge.runtime.payload",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
