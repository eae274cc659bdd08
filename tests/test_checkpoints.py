"""Checkpoints: saved whole, loaded as weights only, refused with the reason when they
cannot be resumed from."""

import pytest
import torch
from test_training import loaders, make, train_cpu

from lenet_utils.checkpoints import History, load_checkpoint, save_checkpoint


def test_corrupt_checkpoint_is_reported(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    model, _ = make()
    with pytest.raises(ValueError, match="bad.pt could not be loaded.*delete it"):
        load_checkpoint(bad, model)


def test_checkpoints_load_as_weights_only(tmp_path, monkeypatch):
    """Resuming never unpickles code: load_checkpoint asks torch for weights_only."""
    ckpt = tmp_path / "run.pt"
    train, test = loaders()
    model, opt = make()
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.05, total_steps=2 * len(train))
    train_cpu(model, train, test, opt, 1, scheduler=sched, checkpoint=ckpt)
    seen = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: seen.append(k) or real(*a, **k))
    model2, opt2 = make()
    sched2 = torch.optim.lr_scheduler.OneCycleLR(opt2, 0.05, total_steps=2 * len(train))
    assert len(load_checkpoint(ckpt, model2, opt2, sched2).epochs) == 1
    assert seen and all(k.get("weights_only") is True for k in seen)
    assert sched2.state_dict()["last_epoch"] == sched.state_dict()["last_epoch"]


def test_an_incomplete_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "run.pt"
    model, opt = make()
    save_checkpoint(ckpt, model, opt, None, History())
    state = torch.load(ckpt, weights_only=True)
    del state["rng"]
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match="not a complete checkpoint.*no 'rng'"):
        load_checkpoint(ckpt, model)
