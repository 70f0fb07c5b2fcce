"""End to end through the CLI (synth -> check -> split -> batches; lst/rec) and RecordIO
round trips through MXNet's own readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caltech_edge.cli import main
from caltech_edge.data import recordio
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.loader import iter_batches
from caltech_edge.data.splits import Split
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.errors import DatasetError


@pytest.fixture(scope="module")
def cli_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "data"
    assert (
        main(["data", "synth", str(root), "--classes", "3", "--per-class", "6", "--size", "40"])
        == 0
    )
    return root


def test_synth_check_split_batches(cli_root, capsys):
    capsys.readouterr()
    assert main(["data", "check", str(cli_root)]) == 0
    human = capsys.readouterr().out
    assert "SYNTHETIC" in human and "18 usable images" in human
    assert main(["data", "check", str(cli_root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == 3 and report["images"] == 18 and report["synthetic"] is True
    assert list(report["per_class"].values()) == [6, 6, 6] and report["skipped"] == []
    split_path = cli_root.parent / "split.json"
    args = ["data", "split", str(cli_root), "--train-per-class", "3", "--val-per-class", "1"]
    assert main([*args, "--seed", "5", "--out", str(split_path)]) == 0
    ds = open_dataset(cli_root)
    split = Split.load(split_path, dataset=ds)
    assert split.sizes == {"train": 9, "val": 3, "test": 6}
    batches = list(iter_batches(ds, split.train, PreprocessSpec(image_size=32), batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 3, 32, 32), (4, 3, 32, 32), (1, 3, 32, 32)]
    labels = np.concatenate([b[1] for b in batches])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert batches[0][0].dtype == np.float32 and abs(float(batches[0][0].mean())) < 3


def test_cli_errors_exit_2(cli_root, tmp_path, capsys):
    code = main(
        [
            "data",
            "split",
            str(cli_root),
            "--train-per-class",
            "6",
            "--out",
            str(tmp_path / "s.json"),
        ]
    )
    assert code == 2 and "lower --train-per-class" in capsys.readouterr().err
    assert main(["data", "check", str(tmp_path / "missing")]) == 2


def test_lst_and_rec_read_by_mxnet(cli_root, tmp_path, capsys):
    split_path = tmp_path / "split.json"
    main(["data", "split", str(cli_root), "--train-per-class", "2", "--out", str(split_path)])
    lst = tmp_path / "test.lst"
    assert (
        main(
            [
                "data",
                "lst",
                str(cli_root),
                "--split",
                str(split_path),
                "--subset",
                "test",
                "--out",
                str(lst),
            ]
        )
        == 0
    )
    lines = lst.read_text().splitlines()
    assert len(lines) == 12 and lines[0].split("\t")[1] == "0.000000"
    prefix = tmp_path / "rec" / "all"
    args = ["data", "rec", str(cli_root), "--out", str(prefix), "--resize", "32", "--center-crop"]
    assert main([*args, "--no-progress"]) == 0
    ds = open_dataset(cli_root)
    entries = recordio.read_lst(prefix.with_suffix(".lst"))
    assert [(e.index, e.label) for e in entries] == [
        (i, float(t)) for i, t in enumerate(ds.targets)
    ]
    seen = _in_mxnet(_READ_REC, str(prefix))  # MXNet's own reader and iterator
    assert sorted(seen["keys"]) == list(range(len(ds)))
    for key, label, rid, shape in seen["records"]:
        assert label == ds.targets[key] and rid == key
        assert shape == [32, 32, 3]  # decoded by MXNet (BGR)
    assert set(seen["batch_shapes"]) == {"6x3x32x32"}
    assert seen["labels"] == ds.targets
    ours = [(h.label, len(b)) for h, b in recordio.iter_records(str(prefix) + ".rec")]
    assert [label for label, _ in ours] == [float(t) for t in ds.targets]


def test_record_with_magic_word_and_label_arrays(tmp_path):
    magic = recordio.MAGIC.to_bytes(4, "little")
    payloads = [b"abcd" + magic + b"efgh" + magic + b"xyz", magic + b"12", b"plain", b""]
    with recordio.IndexedRecordWriter(tmp_path / "m.idx", tmp_path / "m.rec") as writer:
        for i, payload in enumerate(payloads):
            label = (1.0, 2.5) if i == 1 else float(i)
            writer.write(i, recordio.RecordHeader(0, label, i, 0), payload)
    seen = _in_mxnet(_READ_MAGIC, str(tmp_path / "m"), str(len(payloads)))
    for i, payload in enumerate(payloads):
        label, body = seen[i]
        assert bytes.fromhex(body) == payload
        assert label == ([1.0, 2.5] if i == 1 else i)
    ours = list(recordio.iter_records(tmp_path / "m.rec"))
    assert [b for _, b in ours] == payloads and ours[1][0].label == (1.0, 2.5)


def test_malformed_lst_line(tmp_path):
    (tmp_path / "x.lst").write_text("0\t1.000000\ta.jpg\nzero\tone\n")
    with pytest.raises(DatasetError, match=r"x\.lst:2: malformed"):
        recordio.read_lst(tmp_path / "x.lst")


# MXNet 1.9.1 lives in the isolated mxnet toolchain (numpy < 1.24): these plain MXNet scripts
# run in its interpreter, without caltech_edge, and print what MXNet read as JSON.
_READ_REC = """
import json, sys, mxnet as mx
prefix = sys.argv[1]
reader = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
out = {"keys": list(reader.keys), "records": []}
for key in reader.keys:
    header, img = mx.recordio.unpack_img(reader.read_idx(key))
    out["records"].append([key, float(header.label), int(header.id), list(img.shape)])
reader.close()
it = mx.io.ImageRecordIter(path_imgrec=prefix + ".rec", path_imgidx=prefix + ".idx",
                           data_shape=(3, 32, 32), batch_size=6, shuffle=False)
out["labels"], out["batch_shapes"] = [], []
for batch in it:
    out["batch_shapes"].append("x".join(map(str, batch.data[0].shape)))
    out["labels"] += batch.label[0].asnumpy().astype(int).tolist()
print(json.dumps(out))
"""

_READ_MAGIC = """
import json, sys, numpy as np, mxnet as mx
prefix, count = sys.argv[1], int(sys.argv[2])
reader = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
out = []
for i in range(count):
    header, body = mx.recordio.unpack(reader.read_idx(i))
    out.append([np.asarray(header.label).tolist(), body.hex()])
print(json.dumps(out))
"""


def _in_mxnet(script, *args):
    import json
    import subprocess

    from caltech_edge.toolchains.env import ensure
    from caltech_edge.toolchains.table import get_toolchain

    python = ensure(get_toolchain("mxnet"))  # prepared by `make test`
    done = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
