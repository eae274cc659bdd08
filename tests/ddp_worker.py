"""A few DDP steps on generated data, for tests/test_distributed.py.

Run by torchrun, one process per rank (``torchrun --nproc_per_node=2 ddp_worker.py OUT``),
or as a plain script for the single-process reference: each process trains ``EPOCHS``
epochs of a modern LeNet-5 on :func:`data` with the library's own loader, DDP wrapper and
``train_one_epoch``, then saves its parameters and metrics as ``OUT/rank<r>.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from fakedata import learnable  # the script's folder, tests/, is on sys.path

from lenet_utils import distributed
from lenet_utils.models import LeNet5
from lenet_utils.pipeline import TensorLoader, normalize
from lenet_utils.training import evaluate, sgd_one_cycle, train_one_epoch

N, BATCH, EPOCHS = 96, 16, 2  # 16 images per step in all: 12 steps over 2 epochs


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """N learnable 28x28 digits (fakedata.learnable), uint8."""
    images, labels = learnable(N)
    return torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels)


def train(world: int, rank: int) -> dict:
    """``EPOCHS`` epochs with a global batch of ``BATCH``, this rank's share of it."""
    images, labels = data()
    torch.manual_seed(0)
    model = LeNet5("modern", input_size=28)
    tf = lambda x: normalize(x, (0.1,), (0.3,))  # noqa: E731
    loader = TensorLoader(images, labels, BATCH // world, shuffle=True, transform=tf,
                          seed=3, rank=rank, world_size=world)  # fmt: skip
    test = TensorLoader(images[:49], labels[:49], 7, transform=tf, rank=rank,
                        world_size=world, remainder="keep")  # fmt: skip
    optimizer, scheduler = sgd_one_cycle(
        model, lr=0.1, epochs=EPOCHS, steps_per_epoch=len(loader)
    )
    device = torch.device("cpu")
    ddp = distributed.wrap(model, device)
    rows = []
    for epoch in range(EPOCHS):
        loader.set_epoch(epoch)
        rows.append(train_one_epoch(ddp, loader, optimizer, scheduler=scheduler,
                                    device=device, progress=False))  # fmt: skip
    scores = evaluate(ddp, test, device)
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for row in rows:
        row.pop("seconds")
    return {"params": params, "train": rows, "test": scores, "steps": len(loader)}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    distributed.join_process_group(
        "cpu", timeout_s=float(sys.argv[2]) if len(sys.argv) > 2 else 60
    )
    finished = False
    try:
        result = train(distributed.world_size(), distributed.rank())
        torch.save(result, out / f"rank{distributed.rank()}.pt")
        finished = True
    finally:
        distributed.teardown(wait=finished)
