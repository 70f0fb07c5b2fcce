"""The outbox loses nothing and invents nothing: one owner per state dir, counted drops,
unique ids after a lost or damaged state file, gaps announced after kill -9, a full disk
reported as such. Everything against real SQLite files, a real broker and the real CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from runtime_helpers import Subscriber, run_cli

from caltech_edge.errors import ConfigError, StateError
from caltech_edge.runtime.buffer import DiskBuffer, Sequencer, open_state
from caltech_edge.runtime.publish import check_broker

TOPIC = "$aws/things/cam-a/infer"
CLI = [sys.executable, "-c", "import sys; from caltech_edge.cli import main; sys.exit(main())"]


def _infer(model, video, state, *extra, broker=None):
    args = ["infer", "--model", str(model), "--source", str(video), "--device", "cam-a",
            "--buffer-dir", str(state), "--json"]  # fmt: skip
    if broker is not None:
        args += ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port)]
    return [*args, *extra]


def _seqs(proc) -> list:
    return [json.loads(line)["seq"] for line in proc.stdout.splitlines()]


def _stats(proc) -> dict:
    return json.loads(
        next(line for line in reversed(proc.stderr.splitlines()) if line.startswith("{"))
    )


# -- 1. one process per state directory -------------------------------------------------
def test_second_infer_on_the_same_dir_is_refused_naming_the_holder(
    edge_onnx, video, broker, tmp_path
):
    state = tmp_path / "state"
    first = subprocess.Popen(
        CLI + _infer(edge_onnx, video, state, "--rate", "4", "--max-frames", "40", broker=broker),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert first.stdout.readline(), "the first infer produced nothing"
        second = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "3", broker=broker))
        assert second.returncode == 2, second.stderr
        assert f"in use by another process (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr and second.stdout == ""
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    stats = _stats(subprocess.CompletedProcess([], 0, out, err))
    assert stats["publishers"][1]["buffer"]["pending"] == 0
    assert stats["publishers"][1]["buffer"]["pending_bytes"] == 0
    # the lock went with its holder: the dir is usable again and ids continue
    again = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "2", broker=broker))
    assert again.returncode == 0, again.stderr
    assert _seqs(again) == [41, 42]


def test_state_dir_lock_is_per_process_and_released_on_close(tmp_path):
    buf = DiskBuffer(tmp_path / "outbox.sqlite")
    seq = Sequencer(tmp_path / "sequence.sqlite")  # same process: shares the lock
    code = (
        "import sys; from caltech_edge.runtime.buffer import Sequencer\n"
        "try:\n    Sequencer(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e); sys.exit(3)"
    )
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sequence.sqlite")],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert other.returncode == 3 and f"ConfigError state directory {tmp_path}" in other.stdout
    assert f"pid {os.getpid()}" in other.stdout
    seq.close()
    buf.close()
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sequence.sqlite")],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert other.returncode == 0, other.stdout


# -- 2. overflow: a bound too small is an error, every drop is logged and counted -------
def test_buffer_max_bytes_below_one_payload_is_a_config_error(edge_onnx, video, tmp_path):
    with pytest.raises(ConfigError, match="--buffer-max-bytes 800"):
        DiskBuffer(tmp_path / "o.sqlite", max_bytes=800)
    proc = run_cli(*_infer(edge_onnx, video, tmp_path / "s", "--max-frames", "2"),
                   "--mqtt-host", "127.0.0.1", "--buffer-max-bytes", "800")  # fmt: skip
    assert proc.returncode == 2 and "--buffer-max-bytes 800" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_drop_is_logged_counted_and_fails_the_run(edge_onnx, video, broker, tmp_path):
    broker.stop()  # nothing drains the outbox: the policy must drop
    proc = run_cli(*_infer(edge_onnx, video, tmp_path / "s", "--max-frames", "10",
                           "--buffer-max-messages", "3", "--flush-timeout", "1", broker=broker))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("DROPPED the oldest result") == 7
    for seq in range(1, 8):
        assert f"seq={seq} " in proc.stderr
    stats = _stats(proc)
    assert stats["dropped"] == 7 and stats["delivered_all"] is False
    assert stats["publishers"][1]["buffer"]["dropped_oldest"] == 7
    assert "7 result(s) were dropped" in proc.stderr


def test_drop_newest_and_too_large_are_logged(tmp_path, caplog):
    buf = DiskBuffer(tmp_path / "o.sqlite", max_messages=2, max_bytes=4096, overflow="drop_newest")
    with caplog.at_level("WARNING"):
        assert [buf.put(s, "t", b"p" * 10) for s in (1, 2, 3)] == [True, True, False]
        assert buf.put(4, "t", b"x" * 5000) is False
    drops = [r.getMessage() for r in caplog.records if "DROPPED" in r.getMessage()]
    assert len(drops) == 2 and "seq=3" in drops[0] and "seq=4" in drops[1]
    assert buf.dropped == 2 and buf.stats()["dropped_this_run"] == 2
    buf.close()


# -- 3. ids stay unique when the sequence file is lost ----------------------------------
def test_lost_sequence_file_never_reuses_an_id(edge_onnx, video, broker, tmp_path):
    state = tmp_path / "state"
    sub = Subscriber(broker.port, TOPIC, client_id="sub-lost-seq")
    try:
        first = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "4", broker=broker))
        assert first.returncode == 0 and _seqs(first) == [1, 2, 3, 4], first.stderr
        assert sub.wait_for({1, 2, 3, 4}) == {1, 2, 3, 4}
        epoch = json.loads(first.stdout.splitlines()[0])["epoch"]
        (state / "sequence.sqlite").unlink()  # delivered ones are gone from the outbox too
        broker.stop()
        second = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "3",
                                 "--flush-timeout", "0.5", broker=broker))  # fmt: skip
        assert second.returncode == 1 and _seqs(second) == [5, 6, 7], second.stderr
        assert json.loads(second.stdout.splitlines()[0])["epoch"] != epoch  # state was rebuilt
        (state / "sequence.sqlite").unlink()  # now with unsent rows in the outbox
        third = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "2",
                                "--flush-timeout", "0.5", broker=broker))  # fmt: skip
        assert _seqs(third) == [8, 9], third.stderr
        assert _stats(third)["publishers"][1]["buffer"]["pending"] == 5  # nothing overwritten
        broker.start()
        drain = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "1", broker=broker))
        assert drain.returncode == 0, drain.stderr
        assert sub.wait_for(set(range(1, 11))) == set(range(1, 11))
        assert len(sub.seqs()) == len(set(sub.seqs())) or sorted(set(sub.seqs())) == list(
            range(1, 11)
        )
    finally:
        sub.close()


# -- 4. damaged files are quarantined, salvaged, and infer goes on ----------------------
def _fill(path, n=300):
    buf = DiskBuffer(path)
    for seq in range(1, n + 1):
        buf.put(seq, "t", json.dumps({"seq": seq, "pad": "x" * 200}).encode())
    buf.close()
    return n


def _damage(path, kind):
    data = path.read_bytes()
    if kind == "random bytes":
        path.write_bytes(os.urandom(len(data)))
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage mid-page":
        page = 4096 * (len(data) // 4096 // 2)  # a leaf page in the middle of the table
        path.write_bytes(data[:page] + os.urandom(512) + data[page + 512 :])
    elif kind == "directory":
        path.unlink()
        path.mkdir()
        (path / "x").write_text("not a database")


@pytest.mark.parametrize("kind", ["random bytes", "truncated", "garbage mid-page", "directory"])
def test_damaged_outbox_is_quarantined_and_salvaged(tmp_path, kind, caplog):
    path = tmp_path / "outbox.sqlite"
    n = _fill(path)
    _damage(path, kind)
    with caplog.at_level("WARNING"):
        buf = DiskBuffer(path)
    assert buf.quarantined is not None and buf.quarantined.exists()
    assert buf.quarantined.name.startswith("outbox.sqlite.corrupt-")
    assert any("is damaged" in r.getMessage() for r in caplog.records)
    rows = buf.pending(limit=10_000)
    for seq, _, payload in rows:  # whatever was salvaged is intact
        assert json.loads(payload)["seq"] == seq
    if kind == "garbage mid-page":
        assert n // 2 < len(rows) < n  # both sides of the bad page survive
    if kind == "truncated":
        assert len(rows) > 0
    assert len(buf) == len(rows) and buf.high_water >= (max(r[0] for r in rows) if rows else 0)
    assert buf.put(n + 1, "t", b"{}")  # and it works
    buf.close()
    assert len(DiskBuffer(path)) == len(rows) + 1  # the fresh file is healthy


@pytest.mark.parametrize("kind", ["random bytes", "truncated", "directory"])
def test_cli_infer_survives_damaged_state_files(edge_onnx, video, broker, tmp_path, kind):
    state = tmp_path / "state"
    broker.stop()
    first = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "5", "--flush-timeout", "0.5",
                            broker=broker))  # fmt: skip
    assert _seqs(first) == [1, 2, 3, 4, 5]
    _damage(state / "sequence.sqlite", kind)
    _damage(state / "outbox.sqlite", "garbage mid-page" if kind == "directory" else kind)
    broker.start()
    proc = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "3", broker=broker))
    assert "Traceback" not in proc.stderr and proc.returncode == 0, proc.stderr
    assert "moved it aside" in proc.stderr
    aside = [
        p for p in state.glob("sequence.sqlite.corrupt-*") if not p.name.endswith(("-wal", "-shm"))
    ]
    assert len(aside) == 1
    assert min(_seqs(proc)) >= 1 and len(set(_seqs(proc))) == 3


def test_full_disk_is_reported_as_such(tmp_path):
    buf = DiskBuffer(tmp_path / "o.sqlite")
    buf._conn.execute("PRAGMA max_page_count=12")  # SQLite's own SQLITE_FULL path
    with pytest.raises(StateError, match="database or disk is full; free space in"):
        for seq in range(1, 1000):
            buf.put(seq, "t", os.urandom(2000))
    stored = len(buf)
    assert stored == len(buf.pending(limit=10_000)) and buf.nbytes == stored * 2000
    buf.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_cli_full_disk_exits_2_with_the_reason(edge_onnx, video, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("this container cannot mount tmpfs")
    try:
        proc = run_cli(*_infer(edge_onnx, video, mnt, "--max-frames", "40", "--flush-timeout", "0.5"),
                       "--mqtt-host", "127.0.0.1", "--mqtt-port", "1")  # fmt: skip
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    assert proc.returncode == 2, proc.stderr
    assert "database or disk is full" in proc.stderr and "Traceback" not in proc.stderr


# -- 5. kill -9: the id in flight is announced as a gap, never reused ------------------
def test_kill_9_gap_is_announced_in_the_next_payload(edge_onnx, video, tmp_path):
    state = tmp_path / "state"
    proc = subprocess.Popen(CLI + _infer(edge_onnx, video, state, "--rate", "10", "--max-frames", "40"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    seen = [json.loads(proc.stdout.readline())["seq"] for _ in range(5)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    seen += [json.loads(line)["seq"] for line in proc.stdout.read().splitlines()]
    again = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "2"))
    assert again.returncode == 0, again.stderr
    payloads = [json.loads(line) for line in again.stdout.splitlines()]
    first = payloads[0]["seq"]
    gap = payloads[0]["gap"]
    assert gap["last"] == first - 1 and gap["last"] - gap["first"] <= 1
    accounted = set(seen) | set(range(gap["first"], gap["last"] + 1))
    assert accounted >= set(range(1, first)) and first not in seen  # nothing reused
    assert "gap" not in payloads[1]
    clean = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "1"))
    assert "gap" not in json.loads(clean.stdout) and _seqs(clean) == [first + 2]


def test_kill_9_with_the_outbox_leaves_no_gap(edge_onnx, video, broker, tmp_path):
    """With MQTT the id commits with the message, before any other output sees it."""
    state = tmp_path / "state"
    broker.stop()
    proc = subprocess.Popen(
        CLI + _infer(edge_onnx, video, state, "--rate", "10", "--max-frames", "40", broker=broker),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    printed = [json.loads(proc.stdout.readline())["seq"] for _ in range(6)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    printed += [json.loads(line)["seq"] for line in proc.stdout.read().splitlines()]
    again = run_cli(*_infer(edge_onnx, video, state, "--max-frames", "2", "--flush-timeout", "0.5",
                            broker=broker))  # fmt: skip
    payloads = [json.loads(line) for line in again.stdout.splitlines()]
    assert all("gap" not in p for p in payloads), payloads[0]
    first = payloads[0]["seq"]
    buf = DiskBuffer(state / "outbox.sqlite")
    stored = [s for s, _, _ in buf.pending(limit=1000)]
    buf.close()
    assert stored == list(range(1, first + 2))  # contiguous: nothing lost, nothing reused
    assert set(printed) <= set(range(1, first))


def test_gap_is_exact_with_the_outbox(tmp_path):
    """With MQTT the id commits with the message: only an id never stored is a gap."""
    buf = DiskBuffer(tmp_path / "outbox.sqlite")
    seq = Sequencer(tmp_path / "sequence.sqlite")
    for _ in range(3):
        n = seq.next()
        buf.put(n, "t", b"{}")
    seq.next()  # taken, then the process dies before storing it
    seq._conn.close()  # no clean close: simulate kill -9 (the lock goes with the fd)
    seq._conn = None
    seq._dirlock.release()
    buf.close()
    again = Sequencer(tmp_path / "sequence.sqlite")
    assert again.take_gap() == {"first": 4, "last": 4} and again.next() == 5
    assert again.take_gap() is None
    again.close()


_KILLED_RUN = """
import os, signal, sys
from caltech_edge.runtime.buffer import DiskBuffer, Sequencer
buf = DiskBuffer(sys.argv[1] + "/outbox.sqlite")
seq = Sequencer(sys.argv[1] + "/sequence.sqlite", outbox=buf)
for _ in range(150):
    buf.put(seq.next(), "t", b"{}")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("outbox", ["kept", "deleted", "random bytes"])
def test_attached_sequencer_after_kill_9_and_a_lost_outbox(tmp_path, outbox):
    """The id commits with the message; blocks reserved on disk cover losing the outbox."""
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(tmp_path)], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    if outbox != "kept":  # after kill -9 the rows are in the WAL: lose both files
        (tmp_path / "outbox.sqlite-wal").unlink()
        (tmp_path / "outbox.sqlite").unlink()
    if outbox == "random bytes":
        (tmp_path / "outbox.sqlite").write_bytes(os.urandom(8192))
    buf = DiskBuffer(tmp_path / "outbox.sqlite")
    seq = Sequencer(tmp_path / "sequence.sqlite", outbox=buf)
    if outbox == "kept":  # exact: no gap, no skipped id
        assert seq.take_gap() is None and seq.next() == 151
    else:  # ids 1..150 may have been delivered: never again, and said so
        assert seq.take_gap() == {"first": 1, "last": 200} and seq.next() == 201
    seq.close()
    buf.close()


def test_unresolvable_host_and_bad_port_are_config_errors():
    with pytest.raises(ConfigError, match="--mqtt-port 99999"):
        check_broker("127.0.0.1", 99999)
    with pytest.raises(
        ConfigError, match=r"--mqtt-host 'no-such-host\.invalid' cannot be resolved"
    ):
        check_broker("no-such-host.invalid", 1883)
    check_broker("127.0.0.1", 1883)


def test_sqlite_rows_salvaged_match_what_sqlite_still_reads(tmp_path):
    """The salvage reads rows from both ends; a healthy file gives every row."""
    from caltech_edge.runtime.state import salvage_rows

    n = _fill(tmp_path / "outbox.sqlite", 50)
    rows = salvage_rows(tmp_path / "outbox.sqlite", "queue", "seq, topic, payload, size")
    assert [r[0] for r in rows] == list(range(1, n + 1))
    conn = sqlite3.connect(str(tmp_path / "outbox.sqlite"))
    assert conn.execute("SELECT COUNT(*) FROM queue").fetchone()[0] == n
    conn.close()
    time.sleep(0)


# -- every entry point attaches the sequencer to its outbox -------------------------------
def test_open_state_attaches_the_sequencer_to_the_outbox(tmp_path):
    buf, seq = open_state(tmp_path / "a", max_bytes=8192)
    assert seq.outbox is buf and buf.max_bytes == 8192
    buf.put(seq.next(), "t", b"{}")
    seq.close()
    buf.close()
    buf, seq = open_state(tmp_path / "a")  # ids continue above what the outbox stored
    assert seq.next() == 2
    seq.close()
    buf.close()
    none, alone = open_state(tmp_path / "b", outbox=False)
    assert none is None and alone.outbox is None and alone.next() == 1
    alone.close()


@pytest.fixture()
def spy_run(monkeypatch):
    """Record what the real device loop was given (it still runs)."""
    import caltech_edge.runtime.loop as loop

    seen: dict = {}
    real = loop.run

    def run(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "run", run)
    return seen


def _wired_to_outbox(kwargs) -> bool:
    mqtt = [p for p in kwargs["publishers"] if getattr(p, "buffer", None) is not None]
    return len(mqtt) == 1 and kwargs["sequencer"].outbox is mqtt[0].buffer


def test_deeplens_lambda_attaches_the_sequencer_to_its_outbox(
    edge_onnx, video, broker, tmp_path, spy_run
):
    from caltech_edge.runtime.deeplens import infinite_infer_run

    sub = Subscriber(broker.port, "$aws/things/cam-d/infer", client_id="deeplens-sub")
    env = {"MODEL_PATH": str(edge_onnx), "SOURCE": str(video), "MAX_FRAMES": "3",
           "STREAM": "", "BUFFER_DIR": str(tmp_path / "state"), "THING_NAME": "cam-d",
           "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port)}  # fmt: skip
    stats = infinite_infer_run(env)
    assert _wired_to_outbox(spy_run), spy_run
    assert stats["published"] == 3 and sub.wait_for({1, 2, 3}) >= {1, 2, 3}
    sub.close()


def test_quickstart_device_stage_attaches_the_sequencer_to_its_outbox(
    edge_onnx, video, broker, tmp_path, spy_run
):
    from caltech_edge.quickstart import QuickstartConfig, _run_device

    cfg = QuickstartConfig(mqtt_host="127.0.0.1", mqtt_port=broker.port)
    summary = _run_device(edge_onnx, video, tmp_path, cfg)
    assert _wired_to_outbox(spy_run), spy_run
    assert "MQTT" in summary["published_to"] and summary["delivered_all"] is True
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, summary["published"] + 1))
