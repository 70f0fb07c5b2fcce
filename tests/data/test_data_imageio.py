"""The one decoder: header size and EXIF orientation for every format, limits before decoding.

References are independent: Pillow's ``.size`` and ``ImageOps.exif_transpose`` for what
the header says and how a photo is shown upright; the hostile files come from
:mod:`caltech_edge.data.bombs` and are valid images at a small size.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from caltech_edge.data.bombs import png_bomb, tiff_bomb
from caltech_edge.data.datasets import ImageDataset
from caltech_edge.data.imageheader import read_header, sniff
from caltech_edge.data.imageio import (
    ImageDecodeError,
    ImageTooLargeError,
    decode_image,
    load_image,
    probe,
)
from caltech_edge.data.transforms import PreprocessSpec, preprocess, resize_shorter
from caltech_edge.runtime.sources import FolderSource, open_source

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 255, (30, 50, 3), dtype=np.uint8)  # asymmetric: a wrong turn shows

# (Pillow format, save kwargs): WebP in its three containers (lossy VP8, lossless VP8L and
# extended VP8X, which an EXIF block forces)
FORMATS = {
    "jpeg": ("JPEG", {"quality": 95}),
    "png": ("PNG", {}),
    "gif": ("GIF", {}),
    "bmp": ("BMP", {}),
    "webp-lossy": ("WEBP", {"quality": 90}),
    "webp-lossless": ("WEBP", {"lossless": True}),
    "tiff": ("TIFF", {"compression": "tiff_adobe_deflate"}),
}


def _encode(fmt: str, array: np.ndarray = PIXELS, orientation: int = 0) -> bytes:
    name, kwargs = FORMATS[fmt]
    image = Image.fromarray(array)
    if orientation:
        exif = image.getexif()
        exif[0x0112] = orientation
        kwargs = dict(kwargs, exif=exif.tobytes())
    buf = io.BytesIO()
    image.save(buf, name, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_header_size_matches_pillow_and_the_decode(fmt):
    data = _encode(fmt, RNG.integers(0, 255, (37, 53, 3), dtype=np.uint8))
    header = read_header(sniff(data[:64]), io.BytesIO(data), data[:64])
    assert (header.width, header.height) == Image.open(io.BytesIO(data)).size == (53, 37)
    assert decode_image(data).shape == (37, 53, 3)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_pixel_limit_is_read_from_the_header_of_every_format(fmt, tmp_path):
    """probe() decodes nothing, so a refusal here can only come from the header."""
    path = tmp_path / f"image.{fmt}"
    path.write_bytes(_encode(fmt))
    assert probe(path) is None
    reason = probe(path, max_pixels=1000)
    assert reason is not None and "1,500 pixels exceeds the limit of 1,000" in reason
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_pixels=1000)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp-lossless", "tiff"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow(fmt, orientation):
    data = _encode(fmt, orientation=orientation)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    got = decode_image(data)
    assert got.shape == upright.shape
    tolerance = 4 if fmt == "jpeg" else 0  # two libjpeg builds may round differently
    assert np.abs(got.astype(int) - upright).max() <= tolerance
    bgr = decode_image(data, order="BGR")
    assert np.array_equal(bgr[..., ::-1], got)


def test_aspect_ratio_bombs_refused_from_the_header_everywhere(tmp_path):
    """The 1.5 KB 60000x8 and 7 KB 300000x8 PNGs: valid files, refused by the scan of a
    training set, by load_image and by the infer folder source (which goes on)."""
    small = png_bomb(40, 8)
    assert decode_image(small).shape == (8, 40, 3)  # the builder makes real PNGs
    classes = tmp_path / "data"
    for name in ("001.a", "002.b"):
        (classes / name).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(
                str(classes / name / f"{i}.jpg"), RNG.integers(0, 255, (40, 40, 3), np.uint8)
            )
    (classes / "001.a" / "wide.png").write_bytes(png_bomb(60000, 8))
    (classes / "002.b" / "wider.png").write_bytes(png_bomb(300000, 8))
    for bomb in ("001.a/wide.png", "002.b/wider.png"):
        assert "aspect ratio" in probe(classes / bomb)
        with pytest.raises(ImageTooLargeError, match="exceeds 20:1"):
            load_image(classes / bomb)
    ds = ImageDataset(classes)
    assert len(ds) == 4 and {Path(s.path).name for s in ds.skipped} == {"wide.png", "wider.png"}
    assert all("aspect ratio" in s.reason for s in ds.skipped)
    source = FolderSource(classes)
    assert len(list(source)) == 4 and source.bad == {"too_large": 2}


def test_tiff_decompression_bomb_refused_before_decoding(tmp_path):
    """A deflate TIFF claiming 3000x3000 with a limit of 1 Mpx: the header says so
    (the old code decoded it fully first; a 12000x12000 one peaked at 907 MB)."""
    assert decode_image(tiff_bomb(64, 48)).shape == (48, 64, 3)
    path = tmp_path / "bomb.tif"
    path.write_bytes(tiff_bomb(3000, 3000))
    assert path.stat().st_size < 50_000
    assert "9,000,000 pixels" in probe(path, max_pixels=1_000_000)


def test_post_resize_bound_for_arrays_that_skip_the_decoder():
    spec = PreprocessSpec(image_size=32)
    assert preprocess(np.zeros((8, 150, 3), np.uint8), spec).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="crop it first"):
        resize_shorter(np.zeros((8, 60000, 3), np.uint8), 256)


def test_gif_decodes_and_still_image_source_uses_the_decoder(tmp_path):
    gif = _encode("gif")
    assert decode_image(gif).shape == (30, 50, 3)
    path = tmp_path / "still.jpg"
    path.write_bytes(_encode("jpeg", orientation=6))
    source = open_source(path)
    frames = [frame for _, frame in source]
    assert isinstance(source, FolderSource) and len(frames) == 1
    assert frames[0].shape == (50, 30, 3)  # upright, from the EXIF tag
    assert np.array_equal(frames[0], load_image(path, order="BGR"))


def test_pillow_fallback_decodes_gif_or_names_the_fix():
    """For OpenCV builds without a GIF reader the fallback gives the same pixels."""
    from caltech_edge.data.imageio import _pillow_decode

    gif = _encode("gif")
    assert np.array_equal(_pillow_decode(gif, "gif", "x.gif", "RGB"), decode_image(gif))
    with pytest.raises(ImageDecodeError, match="corrupt GIF"):
        _pillow_decode(gif[:20], "gif", "x.gif", "RGB")


def test_without_pillow_an_unreadable_gif_says_convert_it(monkeypatch):
    """What a user of an OpenCV build without a GIF reader and without Pillow is told."""
    import sys

    from caltech_edge.data.imageio import _pillow_decode

    gif = _encode("gif")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImageDecodeError, match=r"GIF not supported by this OpenCV build.*convert"):
        _pillow_decode(gif, "gif", "x.gif", "RGB")


def test_camera_frames_longer_than_the_aspect_bound_are_bad_frames():
    from caltech_edge.runtime.frames import BadFrameError, check_frame, frame_problem

    assert frame_problem(np.zeros((480, 640, 3), np.uint8)) is None
    assert "aspect" in frame_problem(np.zeros((8, 4000, 3), np.uint8))
    with pytest.raises(BadFrameError, match="aspect 4000x8"):
        check_frame(np.zeros((8, 4000, 3), np.uint8))
