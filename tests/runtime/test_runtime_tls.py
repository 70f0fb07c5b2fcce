"""Mutual TLS as AWS IoT Core requires, against a real Mosquitto TLS listener."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from runtime_helpers import Broker, need_mosquitto

from caltech_edge.errors import ConfigError
from caltech_edge.runtime.buffer import DiskBuffer
from caltech_edge.runtime.publish import MqttPublisher, TlsConfig


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict:
    """A self-signed CA, a server certificate for 127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    for name, extra in (("server", ["-addext", "subjectAltName=IP:127.0.0.1"]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", *extra, cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-copy_extensions", "copy", "-out", f"{name}.crt", cwd=d)  # fmt: skip
    return {k: d / v for k, v in {"ca": "ca.crt", "cert": "server.crt", "key": "server.key",
                                  "client_cert": "client.crt", "client_key": "client.key"}.items()}  # fmt: skip


def test_mutual_tls_publish(pki, tmp_path):
    need_mosquitto()
    (tmp_path / "broker").mkdir()
    broker = Broker(
        tmp_path / "broker", tls={"ca": pki["ca"], "cert": pki["cert"], "key": pki["key"]}
    )
    broker.start()
    try:
        tls = TlsConfig(str(pki["ca"]), str(pki["client_cert"]), str(pki["client_key"]))
        pub = MqttPublisher(
            "127.0.0.1",
            broker.port,
            topic="t/tls",
            buffer=DiskBuffer(tmp_path / "b.sqlite"),
            tls=tls,
        )
        # a client without TLS is refused: the listener really is TLS-only
        import paho.mqtt.client as mqtt

        plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        with pytest.raises(Exception):  # noqa: B017 - any failure: TLS handshake or reset
            plain.connect("127.0.0.1", broker.port, keepalive=5)
            plain.loop(timeout=2.0)
            assert plain.is_connected()
        try:
            for seq in range(1, 6):
                pub.publish({"seq": seq})
            assert pub.flush(timeout=20), pub.stats()
            assert pub.stats()["acked"] == 5 and pub.connects >= 1
        finally:
            pub.close()
    finally:
        broker.stop()


def test_tls_config_names_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="AWS IoT"):
        TlsConfig(str(tmp_path / "AmazonRootCA1.pem"))
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "cert.pem").write_text("x")
    with pytest.raises(ConfigError, match="key"):
        TlsConfig(str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"))
