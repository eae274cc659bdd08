"""One process's side of DDP: shards, the global batch, rank helpers, the memory map and
the checks on checkpoints. No process group is started here (see test_distributed.py)."""

import pytest
import torch

from lenet_utils import distributed
from lenet_utils.models import LeNet5
from lenet_utils.training import History, load_checkpoint, save_checkpoint
from lenet_utils.training import sgd_one_cycle


def test_single_process_helpers(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.is_main() and distributed.all_reduce_max(2.5) == 2.5
    t = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, torch.device("cpu")) is model
    assert distributed.unwrap(model) is model
    assert distributed.setup("cpu") == torch.device("cpu")  # alone: no group at all
    assert not distributed.is_distributed()
    with distributed.main_first():
        pass


@pytest.mark.parametrize(
    "env, message",
    [
        ({"RANK": "0"}, "RANK is set, so this looks like one process of a distributed"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "29500"}, "MASTER_ADDR is"),
        (
            {
                "RANK": "2",
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "localhost",
                "MASTER_PORT": "29500",
            },
            "do not fit",
        ),  # fmt: skip
        (
            {
                "RANK": "one",
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "localhost",
                "MASTER_PORT": "29500",
            },
            "not a whole number",
        ),  # fmt: skip
    ],
)
def test_a_partial_rendezvous_says_run_it_under_torchrun(monkeypatch, env, message):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(distributed.LaunchError, match=message) as err:
        distributed.setup("cpu", timeout_s=5)
    assert "run it under torchrun" in str(err.value)
    assert not distributed.is_distributed()


# ---- checkpoints: another model, another schedule ----


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
