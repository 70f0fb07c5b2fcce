"""DeepLens / Greengrass Lambda: the caltech-edge device loop (infinite_infer_run style).

Configured through environment variables (MODEL_PATH, TOPIC, SOURCE, MQTT_HOST, ...);
see caltech_edge/runtime/deeplens.py. Greengrass runs this as a long-lived function: the
loop starts at import, and function_handler is the (unused) message entry point.
"""

import logging
import os

from caltech_edge.runtime.deeplens import function_handler, infinite_infer_run

logging.basicConfig(level=logging.INFO)

__all__ = ["function_handler", "infinite_infer_run"]

if os.environ.get("CALTECH_EDGE_NO_AUTORUN") != "1":
    infinite_infer_run()
