"""Text of the files a device bundle carries: launcher, start script, settings, systemd unit.

Kept apart from the assembly code so each template reads as the file it becomes. The
scripts are POSIX ``sh`` (Raspberry Pi OS, JetPack and Mendel all have it) and take every
setting from ``device.env``, whose ``: "${VAR:=default}"`` lines let the environment
(or a systemd ``Environment=``) override any of them without editing the file.
"""

from __future__ import annotations

#: ``bin/caltech-edge``: the CLI's device commands (infer, serve) from the bundled source.
LAUNCHER = '''#!/usr/bin/env python3
"""caltech-edge on the device: `infer` and `serve` from the runtime source in ../runtime."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runtime"))

from caltech_edge.cli import main  # noqa: E402

sys.exit(main(modules=("runtime",)))
'''

INSTALL = """#!/bin/sh
# Install this bundle's Python requirements into ./venv (run once on the device).
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
"${{PYTHON:-python3}}" -m venv "$HERE/venv"
"$HERE/venv/bin/python" -m pip install {pip_flags}-r "$HERE/requirements.txt"
echo "installed; edit $HERE/device.env, then: $HERE/start.sh  (or install {unit})"
"""

DEVICE_ENV = """# caltech-edge {target}: settings read by start.sh. The environment wins over these defaults.
: "${{MODEL:={model}}}"
: "${{BACKEND:={backend}}}"
: "${{SOURCE:=0}}"                     # camera index, video file, image folder, rtsp:// URL
: "${{DEVICE:=$(hostname)}}"           # thing name in payloads and the default topic
: "${{THREADS:={threads}}}"
: "${{TOP_K:=5}}"
: "${{BUFFER_DIR:=$HOME/.caltech-edge}}"  # MQTT outbox: results survive being offline
: "${{MQTT_HOST:=}}"                   # empty: no MQTT; AWS IoT: <prefix>-ats.iot.<region>.amazonaws.com
: "${{MQTT_PORT:=}}"                   # default 1883, or 8883 with TLS
: "${{TOPIC:=}}"                       # default $aws/things/<DEVICE>/infer
: "${{TLS_CA:=}}"
: "${{TLS_CERT:=}}"
: "${{TLS_KEY:=}}"
"""

START = """#!/bin/sh
# caltech-edge {target}: the device loop (`caltech-edge infer`) with the settings of device.env.
# Extra arguments are passed on, e.g. ./start.sh --max-frames 10 --json
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/device.env"
PY="${{PYTHON:-$HERE/venv/bin/python}}"
[ -x "$PY" ] || PY=python3
case "$MODEL" in /*) ;; *) MODEL="$HERE/$MODEL" ;; esac
set -- --model "$MODEL" --backend "$BACKEND" --source "$SOURCE" --device "$DEVICE" \\
  --threads "$THREADS" --top-k "$TOP_K" --buffer-dir "$BUFFER_DIR" "$@"
if [ -n "$MQTT_HOST" ]; then
  set -- "$@" --mqtt-host "$MQTT_HOST"
  [ -z "$MQTT_PORT" ] || set -- "$@" --mqtt-port "$MQTT_PORT"
  [ -z "$TOPIC" ] || set -- "$@" --topic "$TOPIC"
  [ -z "$TLS_CA" ] || set -- "$@" --tls-ca "$TLS_CA" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY"
fi
exec "$PY" "$HERE/bin/caltech-edge" infer "$@"
"""

UNIT = """[Unit]
Description=caltech-edge device loop ({target}: {backend} on {model})
Documentation=https://github.com/caltech-edge/caltech-edge/blob/main/docs/devices.md
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
# Copy the bundle to /opt/caltech-edge (or change these paths), run install.sh there, then
#   sudo cp caltech-edge.service /etc/systemd/system/ && sudo systemctl enable --now caltech-edge
WorkingDirectory=/opt/caltech-edge
ExecStart=/opt/caltech-edge/start.sh
Environment=BUFFER_DIR=/var/lib/caltech-edge
StateDirectory=caltech-edge
DynamicUser=yes
SupplementaryGroups={groups}
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
"""
