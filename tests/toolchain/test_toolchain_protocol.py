"""The JSON-lines worker protocol with a real worker process (run by the core's interpreter
here, so these tests need no toolchain): results, arrays, errors keeping their class,
output that cannot corrupt replies, and Ctrl-C stopping the child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from caltech_edge.errors import ToolchainError, UnknownNameError
from caltech_edge.toolchains import protocol
from caltech_edge.toolchains.client import Worker

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CALTECH_EDGE_TOOLCHAIN_HOME", str(tmp_path / "home"))
    w = Worker("mxnet", python=sys.executable)
    yield w
    w.close()


def test_arrays_and_paths_round_trip_exactly() -> None:
    arrays = [np.arange(12, dtype=np.float32).reshape(3, 4) / 7, np.array([1, -2], np.int64)]
    back = protocol.loads(protocol.dumps({"a": arrays, "p": Path("/x/y"), "n": np.float32(2)}))
    for got, want in zip(back["a"], arrays):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert back["p"] == "/x/y" and back["n"] == 2.0


def test_calls_return_results_and_reuse_one_process(worker: Worker) -> None:
    first = worker.call("caltech_edge.toolchains.worker:hello")
    second = worker.call("caltech_edge.toolchains.worker:hello")
    assert first["pid"] == second["pid"] == worker.proc.pid
    assert first["numpy"] == np.__version__


def test_library_errors_come_back_as_the_same_class(worker: Worker) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'onnx'"):
        worker.call("caltech_edge.export.formats:get_format", name="onxx")
    assert worker.alive  # an error does not end the worker


def test_other_errors_name_their_type_and_only_package_functions_run(worker: Worker) -> None:
    with pytest.raises(ToolchainError, match="TypeError in toolchain 'mxnet'"):
        worker.call("caltech_edge.toolchains.worker:hello", no_such_argument=1)
    with pytest.raises(ToolchainError, match="only runs caltech_edge functions"):
        worker.call("os:getcwd")


def test_printing_in_the_worker_goes_to_stderr_not_into_the_replies(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALTECH_EDGE_TOOLCHAIN_HOME", str(tmp_path / "home"))
    worker = Worker("mxnet", python=sys.executable)  # started here: it inherits capfd's stderr
    try:
        # the CLI prints to stdout; inside the worker that must reach stderr, unharmed
        assert worker.call("caltech_edge.cli:main", argv=["toolchain", "list"]) == 0
        assert worker.call("caltech_edge.toolchains.worker:hello")["pid"] == worker.proc.pid
    finally:
        worker.close()
    captured = capfd.readouterr()
    assert "mxnet: MXNet 1.9.1" in captured.err and "mxnet: MXNet" not in captured.out


def test_a_dead_worker_is_a_clear_error(worker: Worker) -> None:
    worker.proc.kill()
    worker.proc.wait()
    with pytest.raises(ToolchainError, match=r"worker exited .*toolchain install mxnet --force"):
        worker.call("caltech_edge.toolchains.worker:hello")


def test_ctrl_c_in_the_core_stops_the_child(tmp_path: Path) -> None:
    script = tmp_path / "core.py"
    script.write_text(
        textwrap.dedent("""
        import signal, sys
        # Ctrl-C as in a terminal, even when the suite runs as a background job (a shell
        # starts those with SIGINT ignored, and Python keeps an inherited SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from caltech_edge.toolchains.client import Worker
        w = Worker("mxnet", python=sys.executable)
        print(w.proc.pid, flush=True)
        try:
            w.call("caltech_edge.toolchains.worker:hello", wait=120)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
    """)
    )
    env = dict(os.environ, PYTHONPATH=str(SRC), CALTECH_EDGE_TOOLCHAIN_HOME=str(tmp_path / "h"))
    core = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    child = int(core.stdout.readline())
    time.sleep(1.0)  # let the call start
    core.send_signal(signal.SIGINT)  # only the core, as a supervisor would
    out, _ = core.communicate(timeout=60)
    assert core.returncode == 130 and "interrupted" in out
    deadline = time.time() + 20
    while time.time() < deadline and _alive(child):
        time.sleep(0.2)
    assert not _alive(child), "the worker outlived the interrupted core"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "zombie" in status.read_text())
