"""A tree seeded with every kind of bad file real image folders contain: the usable ones
load as RGB, the bad ones are skipped with the right reason and reported once."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from caltech_edge.data.datasets import ImageDataset, open_dataset
from caltech_edge.data.imageio import ImageDecodeError, load_image, probe
from caltech_edge.data.report import check_dataset
from caltech_edge.errors import DatasetError

RED_RGB = (200, 30, 40)


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _solid(color=RED_RGB, h=40, w=56) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = color
    return img


def _bomb_jpeg() -> bytes:
    """A small valid JPEG whose SOF header claims 30000 x 30000 pixels."""
    data = bytearray(_jpeg(_solid()))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (30000).to_bytes(2, "big") * 2
    return bytes(data)


def _undecodable_jpeg() -> bytes:
    """Header, size and end marker are fine (passes the scan), the decoder refuses it."""
    data = bytearray(_jpeg(_solid()))
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 7  # sample precision 7 bits: libjpeg raises a fatal error
    return bytes(data)


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_tree")
    good, odd = root / "good", root / "odd"
    (good / "nested" / "deeper").mkdir(parents=True)
    odd.mkdir()
    (good / "rgb.jpg").write_bytes(_jpeg(_solid()))
    (good / "nested" / "deeper" / "inner.jpg").write_bytes(_jpeg(_solid((10, 200, 10))))
    _, gray = cv2.imencode(".jpg", np.full((30, 30), 128, np.uint8))
    (good / "gray.jpg").write_bytes(gray.tobytes())
    buf = io.BytesIO()
    Image.fromarray(_solid()).convert("CMYK").save(buf, format="JPEG", quality=95)
    (good / "cmyk.jpg").write_bytes(buf.getvalue())
    rgba = np.dstack([_solid(), np.full((40, 56), 7, np.uint8)])
    (odd / "alpha.png").write_bytes(
        cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))[1].tobytes()
    )
    (odd / "noext").write_bytes(_jpeg(_solid((0, 0, 250))))
    (odd / "notes.txt").write_text("not an image\n")
    (odd / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    (odd / "empty.jpg").write_bytes(b"")
    full = _jpeg(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (odd / "truncated.jpg").write_bytes(full[: len(full) * 6 // 10])
    (odd / "bomb.jpg").write_bytes(_bomb_jpeg())
    (odd / "undecodable.jpg").write_bytes(_undecodable_jpeg())
    (root / "README.txt").write_text("stray file at the root\n")
    return root


EXPECTED_SKIPS = {
    "notes.txt": "not an image",
    ".DS_Store": "not an image (a hidden/system file)",
    "empty.jpg": "empty file",
    "truncated.jpg": "truncated JPEG",
    "bomb.jpg": "too large: 30000x30000",
    "README.txt": "not inside a class folder",
}


def test_bad_files_skipped_with_reasons_and_reported_once(bad_tree, caplog):
    with caplog.at_level(logging.WARNING):
        ds = open_dataset(bad_tree)
    assert ds.classes == ("good", "odd")
    names = sorted(s.path.name for s in ds.samples)
    assert names == sorted(
        ["rgb.jpg", "inner.jpg", "gray.jpg", "cmyk.jpg", "alpha.png", "noext", "undecodable.jpg"]
    )
    reasons = {s.path.name: s.reason for s in ds.skipped}
    assert set(reasons) == set(EXPECTED_SKIPS)
    for name, expected in EXPECTED_SKIPS.items():
        assert reasons[name].startswith(expected), (name, reasons[name])
    summaries = [r for r in caplog.records if "skipped 6 file(s)" in r.getMessage()]
    assert len(summaries) == 1  # one summary, not one line per file
    assert "truncated.jpg" in summaries[0].getMessage()


def test_usable_kinds_decode_to_rgb(bad_tree):
    for rel in ("good/gray.jpg", "good/cmyk.jpg", "odd/alpha.png", "odd/noext"):
        img = load_image(bad_tree / rel)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, rel
    gray = load_image(bad_tree / "good/gray.jpg")
    assert np.array_equal(gray[..., 0], gray[..., 1]) and abs(int(gray[0, 0, 0]) - 128) <= 2
    cmyk = load_image(bad_tree / "good/cmyk.jpg").reshape(-1, 3).mean(0)
    np.testing.assert_allclose(cmyk, RED_RGB, atol=12)  # colours right, not inverted
    assert tuple(load_image(bad_tree / "odd/alpha.png")[0, 0]) == RED_RGB
    noext = load_image(bad_tree / "odd/noext")[5, 5]
    assert noext[2] > 200 and noext[0] < 40  # blue in RGB order


def test_decode_failure_mid_epoch_substitutes_same_class_once(bad_tree, caplog):
    ds = open_dataset(bad_tree)
    index = next(i for i, s in enumerate(ds.samples) if s.path.name == "undecodable.jpg")
    before = len(ds.skipped)
    with caplog.at_level(logging.WARNING):
        img, label = ds[index]
        img2, label2 = ds[index]
    assert label == label2 == ds.classes.index("odd")
    assert img.shape[2] == 3 and np.array_equal(img, img2)
    assert len(ds.skipped) == before + 1 and ds.skipped[-1].path.name == "undecodable.jpg"
    assert sum("undecodable.jpg" in r.getMessage() for r in caplog.records) == 1
    report = check_dataset(ds, progress=False)
    assert report["images"] == 6 and report["per_class"] == {"good": 4, "odd": 2}
    assert {s["path"].rsplit("/", 1)[-1] for s in report["skipped"]} == {
        *EXPECTED_SKIPS,
        "undecodable.jpg",
    }


def test_class_with_no_decodable_image_raises(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(_undecodable_jpeg())
    ds = ImageDataset(tmp_path)
    with pytest.raises(DatasetError, match="no image of class 'a' can be decoded"):
        ds[0]


def test_load_image_errors_are_typed_with_reasons(bad_tree, tmp_path):
    with pytest.raises(ImageDecodeError, match="truncated JPEG") as info:
        load_image(bad_tree / "odd/truncated.jpg")
    assert isinstance(info.value, DatasetError) and info.value.path.endswith("truncated.jpg")
    with pytest.raises(ImageDecodeError, match="decompression-bomb"):
        load_image(bad_tree / "odd/bomb.jpg")
    with pytest.raises(ImageDecodeError, match="decoder failed"):
        load_image(bad_tree / "odd/undecodable.jpg")
    with pytest.raises(ImageDecodeError, match="unreadable"):
        load_image(tmp_path / "missing.jpg")
    # a real image over a (lowered) pixel limit is refused the same way
    assert probe(bad_tree / "good/rgb.jpg", max_pixels=1000).startswith("too large: 56x40")
    assert probe(bad_tree / "good/rgb.jpg") is None


def test_truncated_png_detected(tmp_path):
    png = cv2.imencode(".png", _solid())[1].tobytes()
    (tmp_path / "t.png").write_bytes(png[:-20])
    assert probe(tmp_path / "t.png").startswith("truncated PNG")


def test_hidden_folders_and_empty_root(tmp_path, bad_tree):
    shutil.copytree(bad_tree / "good", tmp_path / "tree" / "cls")
    (tmp_path / "tree" / "cls" / ".thumbs").mkdir()
    (tmp_path / "tree" / "cls" / ".thumbs" / "t.jpg").write_bytes(_jpeg(_solid()))
    ds = open_dataset(tmp_path / "tree")
    assert len(ds) == 4 and [s.reason for s in ds.skipped] == ["inside a hidden folder"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders"):
        open_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(tmp_path / "nope")
