"""One real phone-style photo (a Caltech-256 JPEG tagged EXIF Orientation=6) through every
entry point: training, calibration, export verification, the infer folder and still
sources and serve all see the same upright pixels, hence the same top-1.

Before, training ignored the tag while serve and the folder source applied it: on 107
such photos the two gave the same top-1 for only 19.
"""

from __future__ import annotations

import http.client
import json
import threading

import numpy as np
import pytest
from PIL import Image, ImageOps

from caltech_edge.card import ModelCard
from caltech_edge.data.calibration import CalibrationReader
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.imageio import load_image
from caltech_edge.data.transforms import PreprocessSpec, preprocess
from caltech_edge.runtime import load_model
from caltech_edge.runtime.serve import make_server
from caltech_edge.runtime.sources import open_source


@pytest.fixture(scope="module")
def rotated(sample_root, tmp_path_factory):
    """A dataset of one class holding two copies of a real JPEG written with Orientation=6."""
    source = sorted(sample_root.glob("*/*.jpg"))[7]
    image = Image.open(source)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display": how phones store portrait shots
    root = tmp_path_factory.mktemp("exif") / "data"
    (root / "001.photo").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        image.save(root / "001.photo" / name, "JPEG", quality=95, exif=exif.tobytes())
    return root / "001.photo" / "a.jpg"


def test_rotated_photo_gives_the_same_pixels_and_top1_everywhere(rotated, edge_onnx):
    model = load_model(edge_onnx)
    spec: PreprocessSpec = model.spec
    upright = np.asarray(ImageOps.exif_transpose(Image.open(rotated)).convert("RGB"))
    stored = np.asarray(Image.open(rotated).convert("RGB"))
    assert upright.shape != stored.shape  # a landscape photo stored for portrait display

    rgb = load_image(rotated)
    assert rgb.shape == upright.shape and np.abs(rgb.astype(int) - upright).max() <= 4
    reference = preprocess(rgb, spec)
    inputs = {}

    # training and evaluation: ImageDataset -> loader (the torch Dataset wraps the same call)
    from caltech_edge.data.torchdata import TorchImageDataset

    ds = open_dataset(rotated.parents[1])
    index = next(i for i, s in enumerate(ds.samples) if s.path.name == "a.jpg")
    inputs["training"] = TorchImageDataset(ds, [index], spec)[0][0].numpy()
    # calibration for int8 quantization
    reader = CalibrationReader.from_dataset(rotated.parents[1], spec=spec, calib_size=1, warn=False)
    inputs["calibration"] = next(iter(reader))[0]
    # export verification
    from caltech_edge.export.verify import load_images

    card = ModelCard(arch="resnet18", class_names=["001.photo"], preprocess=spec)
    inputs["verification"] = load_images(card, data=rotated.parents[1], limit=2).batch[0]
    # infer: the folder source and a still-image source (frames are BGR)
    for name, src in (("infer folder", rotated.parent), ("infer still", rotated)):
        frame = next(iter(open_source(src)))[1]
        inputs[name] = model.preprocess(frame)
    for name, x in inputs.items():
        assert np.array_equal(x, reference), name

    # serve: the HTTP path ends in the same top-1 (and the same probabilities)
    expected = model.predict(load_image(rotated, order="BGR"), top_k=3)["predictions"]
    srv = make_server(model, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection(*srv.server_address, timeout=30)
        conn.request("POST", "/invocations", rotated.read_bytes(), {"Content-Type": "image/jpeg"})
        served = json.loads(conn.getresponse().read())["predictions"]
    finally:
        srv.shutdown()
    assert [p["index"] for p in served] == [p["index"] for p in expected]
    assert np.allclose([p["probability"] for p in served], [p["probability"] for p in expected])
