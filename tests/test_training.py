"""The fit/evaluate loop and predict, on small learnable tensors (tests/fakedata.py)."""

import matplotlib

matplotlib.use("Agg")

import contextlib

import pytest
import torch
from fakedata import learnable
from torch import nn

from lenet_utils import plots, training
from lenet_utils.pipeline import TensorLoader
from lenet_utils.models import LeNet5, count_parameters
from lenet_utils.checkpoints import load_checkpoint
from lenet_utils.training import accuracy, evaluate, fit, predict
from lenet_utils.training import sgd_one_cycle


def toy_data(n=256, classes=10, seed=0):
    """Learnable data (fakedata.learnable), standardised floats (n, 1, 28, 28)."""
    images, labels = learnable(n, classes, seed=seed, noise=10)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    return (x - x.mean()) / x.std(), torch.from_numpy(labels)


def loaders(classes=10):
    x, y = toy_data(classes=classes)
    return TensorLoader(x, y, 32, shuffle=True), TensorLoader(x, y, 64)


def train_cpu(model, train, test, opt, epochs, **kw):
    """``fit`` on the CPU, printing one line per epoch."""
    kw = {"device": torch.device("cpu"), "progress": False, **kw}
    return fit(model, train, test, epochs=epochs, optimizer=opt, **kw)


def make(classes=10, lr=0.05):
    torch.manual_seed(0)
    model = LeNet5(input_size=28, num_classes=classes)
    return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def test_accuracy_counts_topk():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.15], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    assert accuracy(logits, labels, (1, 2, 3)).tolist() == [1, 2, 3]


def test_fit_learns_and_records_history():
    train, test = loaders()
    model, opt = make()
    before = evaluate(model, test, torch.device("cpu"))["top1"]
    history = train_cpu(model, train, test, opt, 6)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4, 5, 6]
    assert history.last["test_top1"] > max(before, 90.0)
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert "test_top5" not in history.last  # 10 classes: top-1 only
    assert history.train_seconds > 0 and list(history.frame().index) == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]


def test_top5_is_its_own_figure_for_more_than_ten_classes():
    """Scores built so that top-1 and top-5 differ: the right class is first for 2 of 8
    images, within the top five for 6 of them, and ranked last for the other 2."""
    labels = torch.arange(8) % 20
    logits = torch.arange(20.0).repeat(8, 1)  # class 19 scores highest, class 0 lowest
    for i, rank in enumerate([0, 0, 1, 2, 3, 4, 19, 19]):  # where the label sits
        label, other = int(labels[i]), 19 - rank
        logits[i, [label, other]] = logits[i, [other, label]].clone()
    loader = TensorLoader(logits, labels, 4)

    class Scores(nn.Module):  # returns its input: the logits above
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x + 0 * self.p

    out = evaluate(Scores(), loader, torch.device("cpu"))
    assert out["top1"] == pytest.approx(25.0) and out["top5"] == pytest.approx(75.0)
    train, test = loaders(classes=20)
    model, opt = make(classes=20)
    history = train_cpu(model, train, test, opt, 1)
    assert {"test_top1", "test_top5"} <= set(history.last)


def test_checkpoint_resume_continues_where_it_stopped(tmp_path):
    ckpt = tmp_path / "run.pt"
    train, test = loaders()
    model, opt = make()
    train_cpu(model, train, test, opt, 2, checkpoint=ckpt)
    assert ckpt.exists() and not list(tmp_path.glob("*.tmp"))
    # A new process: fresh model and optimizer, same checkpoint: it resumes after epoch 2.
    model2, opt2 = make()
    history = train_cpu(model2, train, test, opt2, 4, checkpoint=ckpt)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4]
    restored, _ = make()
    assert len(load_checkpoint(ckpt, restored).epochs) == 4
    for a, b in zip(restored.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)


def test_predict_and_confusion_matrix():
    _, test = loaders()
    model, _ = make()
    preds, labels = predict(model, test)
    assert preds.shape == labels.shape == (256,)
    cm = plots.confusion_matrix(preds, labels, 10)
    assert cm.sum() == 256 and cm.trace() == (preds == labels).sum()
    assert torch.equal(cm.sum(1), torch.bincount(labels, minlength=10))


def test_batchnorm_variant_adds_two_parameters_per_channel():
    assert count_parameters(LeNet5(batchnorm=True)) == 61_706 + 2 * (6 + 16 + 120 + 84)
    model = LeNet5(batchnorm=True).eval()
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert isinstance(model.features.bn3, nn.BatchNorm2d)


def test_sgd_one_cycle_peaks_at_lr_and_ends_near_zero():
    opt, sched = sgd_one_cycle(LeNet5(), lr=0.1, epochs=2, steps_per_epoch=10)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.1) and lrs[0] < 0.01 and lrs[-1] < 1e-3
    assert opt.defaults["nesterov"] and opt.defaults["weight_decay"] == 5e-4


def test_fit_reports_train_and_test_loss_with_the_same_criterion():
    """Regression: the test loss must use fit's loss_fn, not plain cross-entropy."""
    x, y = toy_data(n=64)
    loader = TensorLoader(x, y, 64)

    def doubled(logits, labels, reduction="mean"):
        return 2 * nn.functional.cross_entropy(logits, labels, reduction=reduction)

    model, opt = make(
        lr=0.0
    )  # lr 0: the weights do not move, so train and test loss must agree
    history = train_cpu(model, loader, loader, opt, 1, loss_fn=doubled)
    expected = evaluate(model, loader, torch.device("cpu"), loss_fn=doubled)["loss"]
    assert history.last["test_loss"] == pytest.approx(expected)
    assert history.last["train_loss"] == pytest.approx(expected, rel=1e-5)


def test_flip_tta_averages_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = LeNet5(input_size=28).eval()
    x = torch.randn(8, 1, 28, 28)
    y = torch.arange(8) % 10
    loader = TensorLoader(x, y, 8)
    probs = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
    expected_top1 = 100.0 * (probs.argmax(1) == y).float().mean().item()
    expected_loss = nn.functional.nll_loss(probs.log(), y).item()
    out = evaluate(model, loader, torch.device("cpu"), flip_tta=True)
    assert out["top1"] == pytest.approx(expected_top1) and out["loss"] == pytest.approx(
        expected_loss, rel=1e-5
    )
    # A mirror-symmetric input gives the same answer with and without TTA.
    sym = torch.cat([x[..., :14], x[..., :14].flip(-1)], dim=-1)
    sym_loader = TensorLoader(sym, y, 8)
    assert evaluate(model, sym_loader, torch.device("cpu"), flip_tta=True)[
        "loss"
    ] == pytest.approx(
        evaluate(model, sym_loader, torch.device("cpu"))["loss"], rel=1e-5
    )


def test_sgd_without_the_schedule_trains_at_the_given_rate():
    opt, sched = sgd_one_cycle(
        LeNet5(), lr=0.1, epochs=2, steps_per_epoch=10, one_cycle=False
    )
    assert sched is None and opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("amp", [False, True])
def test_predict_gives_the_models_classes_computed_in_float32_on_the_cpu(amp):
    """On the CPU mixed precision is off (bf16 trains LeNet-5 badly there): the logits
    are float32 and the classes those of a plain forward pass."""
    x, y = toy_data(n=64)
    model, _ = make()
    dtypes = []
    model.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    preds, labels = predict(model, TensorLoader(x, y, 16), amp=amp)
    with torch.no_grad():
        want = model(x).argmax(1)
    assert preds.dtype == torch.int64 and torch.equal(preds, want)
    assert torch.equal(labels, y) and set(dtypes) == {torch.float32}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_predict_with_amp_runs_in_half_precision_on_a_gpu():
    x, y = toy_data(n=512)
    model, _ = make()
    model.cuda()
    dtypes = []
    model.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    loader = TensorLoader(x.cuda(), y.cuda(), 128)
    full, labels = predict(model, loader, amp=False)
    assert set(dtypes) == {torch.float32} and labels.device.type == "cpu"
    with torch.no_grad():
        assert torch.equal(full, model(x.cuda()).argmax(1).cpu())
    dtypes.clear()
    half, _ = predict(model, loader, amp=True)
    assert set(dtypes) <= {torch.bfloat16, torch.float16} and dtypes
    assert half.dtype == torch.int64 and (half == full).float().mean() > 0.95


def test_predict_refuses_empty_batches():
    model, _ = make()
    with pytest.raises(ValueError, match="predict: the batches were empty"):
        predict(model, [])


def test_a_diverging_loss_stops_fit_and_names_epoch_and_step(tmp_path):
    train, test = loaders()
    model, opt = make(lr=1e6)
    with pytest.raises(FloatingPointError) as err:
        train_cpu(model, train, test, opt, 3, checkpoint=tmp_path / "run.pt")
    message = str(err.value)
    assert "the loss became NaN or infinite at step" in message
    assert "of epoch 1" in message and "lower the learning rate" in message
    assert "batch held NaN" not in message
    assert not (tmp_path / "run.pt").exists()  # nothing saved from a diverged epoch


def test_a_finite_but_exploded_loss_stops_fit_too():
    """--lr 1000 reached a loss of 4.7e12, finite: an epoch's mean loss over 1,000 times
    the first epoch's is divergence too, and nothing is recorded or saved."""
    train, test = loaders()  # 8 training steps an epoch
    model, opt = make()
    steps = []

    def exploding(logits, labels, reduction="mean"):
        loss = nn.functional.cross_entropy(logits, labels, reduction=reduction)
        if torch.is_grad_enabled():  # a training step, not the evaluation
            steps.append(1)
        scale = 1e6 if len(steps) > 8 else 1.0  # epoch 2's values explode...
        return loss + loss.detach() * (scale - 1)  # ...but not its gradients

    with pytest.raises(FloatingPointError, match="exploded in epoch 2 .*lower the"):
        train_cpu(model, train, test, opt, 3, loss_fn=exploding)


def test_one_nan_pixel_is_named_as_the_cause():
    x, y = toy_data(n=64)
    x[37, 0, 5, 5] = float("nan")  # batch 3 of 4
    model, opt = make()
    with pytest.raises(FloatingPointError, match="step 3 of epoch 1, and that batch "
                       "held NaN or infinite values: check the data"):  # fmt: skip
        train_cpu(model, TensorLoader(x, y, 16), TensorLoader(x, y, 64), opt, 1)


def test_labels_outside_the_classes_are_refused_before_training():
    x, y = toy_data(n=64)
    y[9] = 10
    model, opt = make()
    loader = TensorLoader(x, y, 16)
    with pytest.raises(ValueError, match="label 10 is outside 0 … 9: the model has 10"):
        train_cpu(model, loader, loader, opt, 1)


def test_a_resume_with_another_learning_rate_is_refused(tmp_path):
    ckpt = tmp_path / "run.pt"
    train, test = loaders()
    model, opt = make(lr=0.05)
    train_cpu(model, train, test, opt, 1, checkpoint=ckpt, settings={"seed": 0})
    model2, opt2 = make(lr=0.1)
    with pytest.raises(ValueError, match=r"saved with lr 0.05 \(now 0.1\)"):
        train_cpu(model2, train, test, opt2, 2, checkpoint=ckpt, settings={"seed": 0})
    model3, opt3 = make(lr=0.05)
    with pytest.raises(ValueError, match=r"saved with seed 0 \(now 1\)"):
        train_cpu(model3, train, test, opt3, 2, checkpoint=ckpt, settings={"seed": 1})
    history = train_cpu(model3, train, test, opt3, 2, checkpoint=ckpt,
                        settings={"seed": 0})  # fmt: skip
    assert len(history.epochs) == 2


def test_a_checkpoint_path_that_is_a_folder_is_refused_before_training(tmp_path):
    train, test = loaders()
    model, opt = make()
    with pytest.raises(OSError, match="is a folder"):
        train_cpu(model, train, test, opt, 1, checkpoint=tmp_path)


def test_fit_prints_one_line_per_epoch_without_bars(capsys):
    train, test = loaders()
    model, opt = make()
    train_cpu(model, train, test, opt, 2)
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch  1/2", "epoch  2/2"]
    assert "\r" not in out.out and out.err == ""  # no progress-bar redraws


# The precision rule, on faked devices: (compute capability, what fit and the ladder run).
DEVICES = {"H100-like": ((9, 0), "bf16"), "A100-like": ((8, 0), "bf16"),
           "T4-like": ((7, 5), "fp16"), "V100-like": ((7, 0), "fp16")}  # fmt: skip


@pytest.mark.parametrize("name", DEVICES)
def test_the_precision_rule_follows_the_gpus_capability(name, monkeypatch):
    capability, want = DEVICES[name]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    cuda = torch.device("cuda")
    assert training.precision(cuda) == want
    assert training.precision(cuda, amp=False) == "fp32"  # amp off: fp32 everywhere


def test_the_cpu_trains_in_fp32_whatever_it_could_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    assert training.precision(torch.device("cpu")) == "fp32"
    assert training.precision(torch.device("mps")) == "fp32"


@pytest.mark.parametrize("chosen", ["bf16", "fp16", "fp32"])
def test_the_gradient_scaler_is_on_for_fp16_only(chosen, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU, faked
    assert training.grad_scaler(chosen).is_enabled() == (chosen == "fp16")


def test_autocast_runs_in_the_chosen_precision():
    cpu, x = torch.device("cpu"), torch.ones(4, 4)
    with training.autocast(cpu, "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with training.autocast(cpu, "fp32"):
        assert (x @ x).dtype == torch.float32


def test_fit_trains_in_the_rules_precision_with_its_scaler(monkeypatch):
    """fit asks the rule (faked: fp16 on the CPU) and steps through its scaler."""
    asked, scalers = [], []

    def rule(device, amp=True):
        asked.append(device.type)
        return "fp16" if amp else "fp32"

    def scaler(chosen):
        scalers.append(chosen)
        return real_scaler("fp32")  # off: the CPU cannot scale fp16 gradients

    real_scaler = training.grad_scaler
    monkeypatch.setattr(training, "precision", rule)
    monkeypatch.setattr(training, "grad_scaler", scaler)
    monkeypatch.setattr(training, "autocast", lambda d, c: contextlib.nullcontext())
    train, test = loaders()
    model, opt = make()
    train_cpu(model, train, test, opt, 1)
    assert scalers == ["fp16"] and set(asked) == {"cpu"}
