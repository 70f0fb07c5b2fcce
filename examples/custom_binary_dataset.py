"""Your own two-class dataset ("hot dog" / "not hot dog"): folders in, classifier out.

Any folder tree with one sub-folder per class works:

    my_data/hot_dog/*.jpg
    my_data/not_hot_dog/*.jpg

    python examples/custom_binary_dataset.py --data my_data --weights imagenet

Without --data it generates a small, clearly SYNTHETIC stand-in (sausage-in-a-bun
drawings vs. other food-coloured shapes) so the example runs anywhere in a minute.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from caltech_edge.config import TrainConfig
from caltech_edge.train import evaluate, train


def generate(root: Path, *, per_class: int = 60, size: int = 64, seed: int = 0) -> Path:
    """Write ``root/hot_dog`` and ``root/not_hot_dog`` JPEGs (synthetic, seeded)."""
    rng = np.random.default_rng(seed)
    for name in ("hot_dog", "not_hot_dog"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
        for name in ("hot_dog", "not_hot_dog"):
            img = rng.integers(90, 200, (size, size, 3), dtype=np.uint8)  # table noise (BGR)
            img = cv2.GaussianBlur(img, (5, 5), 0)
            c = (
                int(rng.integers(size // 3, 2 * size // 3)),
                int(rng.integers(size // 3, 2 * size // 3)),
            )
            angle = float(rng.uniform(0, 180))
            length = int(size * rng.uniform(0.28, 0.4))
            if name == "hot_dog":  # bun, then a longer, thinner sausage on it
                cv2.ellipse(img, c, (length, length // 3), angle, 0, 360, (90, 180, 230), -1)
                cv2.ellipse(
                    img, c, (int(length * 1.15), length // 6), angle, 0, 360, (40, 60, 170), -1
                )
            else:  # round or square things in similar colours
                colour = tuple(int(v) for v in rng.integers(30, 230, 3))
                if rng.random() < 0.5:
                    cv2.circle(img, c, length // 2 + 4, colour, -1)
                else:
                    half = length // 2 + 2
                    cv2.rectangle(
                        img, (c[0] - half, c[1] - half), (c[0] + half, c[1] + half), colour, -1
                    )
            cv2.imwrite(str(root / name / f"{name}_{i:04d}.jpg"), img)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder with one sub-folder per class")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--weights", default="none", help="imagenet | none | PATH")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--train-per-class", type=int, default=45)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hotdog_"))
    data = args.data
    if data is None:
        data = generate(work / "SYNTHETIC-hotdog")
        print(f"no --data given: generated a SYNTHETIC two-class dataset in {data}")
    out = args.out or work / "run"
    config = TrainConfig(
        arch=args.arch,
        weights=args.weights,
        epochs=args.epochs,
        image_size=args.image_size,
        batch_size=8,
        learning_rate=0.02,
        scheduler="cosine",
        train_per_class=args.train_per_class,
        val_per_class=3,
    )
    run = train(config, data=data, out=out)
    result = evaluate(run, data=data)
    print(json.dumps({k: result[k] for k in ("top1", "images")}, indent=2))
    print(f"per class: { {k: v['accuracy'] for k, v in result['per_class'].items()} }")
    print(f"run directory (card.json, model.pt, plots/): {run.root}")
    print(f"next: caltech-edge export {run.root} --out {run.root / 'export'}")


if __name__ == "__main__":
    main()
