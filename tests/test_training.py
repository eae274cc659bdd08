"""The fit/evaluate loop, checkpoints, the results record and the plots, on tiny real tensors."""

import json

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from lenet_utils import plots
from lenet_utils.data import TensorLoader
from lenet_utils.models import LeNet5, count_parameters
from lenet_utils.training import (
    History,
    accuracy,
    evaluate,
    fit,
    load_checkpoint,
    predict,
    record_result,
    results_dir,
)


def toy_data(n=256, classes=10, seed=0):
    """Learnable data: each class is a fixed random 28x28 pattern plus noise."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(classes, 1, 28, 28, generator=g)
    labels = torch.arange(n) % classes
    images = protos[labels] + 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    return images, labels


def loaders(classes=10):
    x, y = toy_data(classes=classes)
    return TensorLoader(x, y, 32, shuffle=True), TensorLoader(x, y, 64)


def make(classes=10, lr=0.05):
    torch.manual_seed(0)
    model = LeNet5(input_size=28, num_classes=classes)
    return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def test_accuracy_counts_topk():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.15], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    assert accuracy(logits, labels, (1, 2, 3)) == [1, 2, 3]


def test_fit_learns_and_records_history():
    train, test = loaders()
    model, opt = make()
    before = evaluate(model, test, torch.device("cpu"))["top1"]
    history = fit(
        model,
        train,
        test,
        epochs=6,
        optimizer=opt,
        device=torch.device("cpu"),
        progress=False,
    )
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


def test_top5_reported_for_more_than_ten_classes():
    train, test = loaders(classes=20)
    model, opt = make(classes=20)
    history = fit(
        model,
        train,
        test,
        epochs=1,
        optimizer=opt,
        device=torch.device("cpu"),
        progress=False,
    )
    assert history.last["test_top5"] >= history.last["test_top1"]


def test_checkpoint_resume_continues_where_it_stopped(tmp_path):
    ckpt = tmp_path / "run.pt"
    train, test = loaders()
    model, opt = make()
    fit(
        model,
        train,
        test,
        epochs=2,
        optimizer=opt,
        device=torch.device("cpu"),
        checkpoint=ckpt,
        progress=False,
    )
    assert ckpt.exists() and not list(tmp_path.glob("*.tmp"))
    # A new process: fresh model and optimizer, same checkpoint: it resumes after epoch 2.
    model2, opt2 = make()
    history = fit(
        model2,
        train,
        test,
        epochs=4,
        optimizer=opt2,
        device=torch.device("cpu"),
        checkpoint=ckpt,
        progress=False,
    )
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4]
    restored, _ = make()
    assert len(load_checkpoint(ckpt, restored).epochs) == 4
    for a, b in zip(restored.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)


def test_corrupt_checkpoint_is_reported(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    model, _ = make()
    with pytest.raises(ValueError, match="bad.pt could not be loaded.*delete it"):
        load_checkpoint(bad, model)


def test_predict_and_confusion_matrix():
    _, test = loaders()
    model, _ = make()
    preds, labels = predict(model, test)
    assert preds.shape == labels.shape == (256,)
    cm = plots.confusion_matrix(preds, labels, 10)
    assert cm.sum() == 256 and cm.trace() == (preds == labels).sum()
    assert torch.equal(cm.sum(1), torch.bincount(labels, minlength=10))


def test_record_result_only_for_full_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("LENET_BUDGET", "smoke")
    kwargs = dict(
        chapter="MNIST",
        dataset="MNIST",
        model="modern LeNet-5",
        params=61706,
        epochs=3,
        top1=99.123,
        top5=None,
        train_seconds=12.34,
        device=torch.device("cpu"),
        extra={"target": "top-1 >= 99.3%", "met": False},
    )
    assert record_result(**kwargs) is None and not list(tmp_path.iterdir())
    monkeypatch.setenv("LENET_BUDGET", "full")
    path = record_result(**kwargs)
    record = json.loads(path.read_text())
    assert path.name == "mnist__mnist__modern-lenet-5.json"
    for key in (
        "chapter",
        "dataset",
        "model",
        "params",
        "epochs",
        "top1",
        "top5",
        "train_seconds",
        "device",
        "torch",
        "commit",
        "date",
    ):
        assert key in record
    assert (
        record["top1"] == 99.12
        and record["device"].startswith("CPU")
        and record["met"] is False
    )
    assert results_dir() == tmp_path


def test_plots_have_titles_and_labels():
    history = History(
        [
            {
                "epoch": i,
                "lr": 0.1,
                "train_loss": 1 / i,
                "train_top1": 50 + i,
                "test_loss": 1.2 / i,
                "test_top1": 48 + i,
                "seconds": 1.0,
            }
            for i in range(1, 4)
        ]
    )
    fig = plots.plot_history({"run": history}, title="Curves")
    assert fig._suptitle.get_text() == "Curves"
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch", "epoch"]
    x, y = toy_data(n=20)
    preds = (y + (torch.arange(20) % 3 == 0).long()) % 10
    fig = plots.show_misclassified(
        x, y, preds, [str(i) for i in range(10)], title="Errors", n=4
    )
    assert "4 shown" in fig._suptitle.get_text()
    fig = plots.plot_confusion(
        plots.confusion_matrix(preds, y, 10), [str(i) for i in range(10)], title="CM"
    )
    assert fig.axes[0].get_ylabel() == "true class"
    fig = plots.show_filters(LeNet5().features.C1.weight, title="C1 kernels")
    assert fig._suptitle.get_text().startswith("C1 kernels")
    matplotlib.pyplot.close("all")


def test_batchnorm_variant_adds_two_parameters_per_channel():
    assert count_parameters(LeNet5(batchnorm=True)) == 61_706 + 2 * (6 + 16 + 120 + 84)
    model = LeNet5(batchnorm=True).eval()
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert isinstance(model.features.bn3, nn.BatchNorm2d)


def test_tensor_loaders_normalise_and_augment_only_training():
    from lenet_utils.data import TensorData, tensor_loaders

    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    data = TensorData(images, torch.arange(40) % 4, ["a", "b", "c", "d"], "generated")
    stats = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    train, test = tensor_loaders(
        data,
        data,
        stats,
        "cpu",
        batch_size=16,
        padding=2,
        flip=True,
        eval_batch_size=40,
    )
    x, y = next(iter(test))
    assert torch.allclose(x, (images.float() / 255 - 0.5) / 0.25) and torch.equal(
        y, data.labels
    )
    assert len(train) == 3 and sum(len(b) for b, _ in train) == 40
    batches = torch.cat([b for b, _ in train])
    assert not torch.allclose(
        batches.sort(0).values, x.sort(0).values
    )  # shifted/flipped, not just reordered


def test_sgd_one_cycle_peaks_at_lr_and_ends_near_zero():
    from lenet_utils.training import sgd_one_cycle

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
    history = fit(
        model,
        loader,
        loader,
        epochs=1,
        optimizer=opt,
        loss_fn=doubled,
        device=torch.device("cpu"),
        progress=False,
    )
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
