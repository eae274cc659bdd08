"""Chapter 4's recorded LeNet-5 for its page: ``book/_static/digit/lenet5-mnist.js``.

The drawing box on chapter 4's page (``book/_static/digit-demo.js``) runs the modern LeNet-5
that chapter 4 recorded: the seed-0 weights the chapter keeps in
``results/models/04-mnist-modern-lenet-5.pt``, beside that run's record. This script writes
them as float32 (base64: 0.4 MB) with the record they came from (model, seed, test
accuracy, commit) and 50 MNIST test digits for the page's "pick a test image", and
``tests/data/mnist-test-1000.npz``, the first 1,000 test digits the browser check reads.

It refuses weights that do not score the record's test accuracy on MNIST's 10,000 test digits:
the page shows that record's model, or nothing.

    LENET_DATA_ROOT=/path/to/data python scripts/export_digit_model.py
"""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

from lenet_utils import LeNet5, evaluate, load_tensors
from lenet_utils.files import atomic_write
from lenet_utils.pipeline import TensorLoader, normalize
from lenet_utils.readers import STATS

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "results" / "models" / "04-mnist-modern-lenet-5.pt"
RECORD = ROOT / "results" / "04--mnist--modern-lenet-5--cpu.json"
PAGE_MODEL = ROOT / "book" / "_static" / "digit" / "lenet5-mnist.js"
CHECK_SET = ROOT / "tests" / "data" / "mnist-test-1000.npz"
PER_CLASS = 5  # test digits per class for "pick a test image"


def load_model(path: Path = WEIGHTS) -> LeNet5:
    """Chapter 4's modern LeNet-5 (28x28 inputs) with the kept weights."""
    model = LeNet5("modern", input_size=28)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def tensors(model: LeNet5) -> list[tuple[str, torch.Tensor]]:
    """The weights by the paper's layer names (``C1.weight``), in the model's order."""
    return [(name.split(".", 1)[1], t) for name, t in model.state_dict().items()]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def page_model(model: LeNet5, record: dict, images: torch.Tensor, labels: torch.Tensor):
    """The JavaScript file's object: weights, statistics, record and sample digits."""
    parts = tensors(model)
    blob = b"".join(
        t.detach().float().numpy().astype("<f4").tobytes() for _, t in parts
    )
    (mean,), (std,) = STATS["mnist"]
    return {
        "record": {
            "file": f"results/{RECORD.name}", "model": record["model"],
            "seed": record["seed"], "top1": record["top1"], "commit": record["commit"],
            "date": record["date"], "device": record["device"],
        },
        "mean": mean, "std": std,
        "tensors": [[name, list(t.shape)] for name, t in parts],
        "weights": b64(blob),
        "samples": {"images": b64(images.numpy().tobytes()), "labels": labels.tolist()},
    }  # fmt: skip


def samples(test) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``PER_CLASS`` test digits of each class, interleaved 0, 1, ..., 9, 0, ..."""
    picks = [torch.nonzero(test.labels == c)[:PER_CLASS, 0] for c in range(10)]
    order = torch.stack(picks, dim=1).reshape(-1)
    return test.images[order, 0], test.labels[order]


def main() -> int:
    record = json.loads(RECORD.read_text())
    if not WEIGHTS.exists():
        print(
            f"no {WEIGHTS.relative_to(ROOT)}: record chapter 4 first", file=sys.stderr
        )
        return 2
    model, test = load_model(), load_tensors("mnist", "test")
    loader = TensorLoader(
        test.images,
        test.labels,
        1000,
        transform=lambda x: normalize(x, *STATS["mnist"]),
    )
    top1 = round(evaluate(model, loader)["top1"], 2)
    if top1 != record["top1"]:
        print(
            f"{WEIGHTS.name} scores {top1}% on the test digits, its record "
            f"{RECORD.name} says {record['top1']}%: not the recorded model; re-record "
            "chapter 4 (scripts/record_chapter.py notebooks/04_mnist.ipynb)",
            file=sys.stderr,
        )
        return 1
    text = json.dumps(page_model(model, record, *samples(test)), separators=(",", ":"))
    PAGE_MODEL.parent.mkdir(parents=True, exist_ok=True)
    head = f"/* {PAGE_MODEL.name}: written by scripts/export_digit_model.py */\n"
    body = f"{head}window.lenetDigitModel = {text};\n".encode()
    atomic_write(PAGE_MODEL, lambda f: f.write(body))
    check = io.BytesIO()
    np.savez_compressed(
        check, images=test.images[:1000, 0].numpy(), labels=test.labels[:1000].numpy()
    )
    atomic_write(CHECK_SET, lambda f: f.write(check.getvalue()))
    print(f"wrote {PAGE_MODEL.relative_to(ROOT)} ({len(body):,} bytes, test {top1}%)")
    print(f"wrote {CHECK_SET.relative_to(ROOT)} ({len(check.getvalue()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
