"""Checkpoints: saved whole, loaded as weights only, refused with the reason when they
cannot be resumed from."""

import pytest
import torch
from test_training import loaders, make, train_cpu

from lenet_utils.checkpoints import History, load_checkpoint, save_checkpoint
from lenet_utils.models import LeNet5
from lenet_utils.training import sgd_one_cycle


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


def checkpoint(tmp_path, model, epochs=2):
    optimizer, scheduler = sgd_one_cycle(
        model, lr=0.1, epochs=epochs, steps_per_epoch=3
    )
    path = tmp_path / "run.pt"
    save_checkpoint(path, model, optimizer, scheduler, History([{"epoch": 1}]))
    return path


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    path = checkpoint(tmp_path, LeNet5("modern", input_size=28))
    other = LeNet5("modern", in_channels=3, batchnorm=True)
    with pytest.raises(ValueError, match="saved from another model") as err:
        load_checkpoint(path, other)
    assert "input=(1, 28, 28)" in str(err.value) and "batchnorm=True" in str(err.value)
    same = LeNet5("modern", input_size=28)
    assert load_checkpoint(path, same).epochs == [{"epoch": 1}]


def test_a_checkpoint_of_another_schedule_is_refused(tmp_path):
    path = checkpoint(tmp_path, LeNet5("modern", input_size=28), epochs=2)
    model = LeNet5("modern", input_size=28)
    optimizer, scheduler = sgd_one_cycle(model, lr=0.1, epochs=3, steps_per_epoch=3)
    with pytest.raises(ValueError, match="schedule of 6 steps, but this run's has 9"):
        load_checkpoint(path, model, optimizer, scheduler)
