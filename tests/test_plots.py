"""The chapters' figures: titled, labelled, one colour per run, what was asked shown."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from fakedata import learnable  # noqa: E402

from lenet_utils import plots  # noqa: E402
from lenet_utils.models import LeNet5  # noqa: E402
from lenet_utils.training import History  # noqa: E402


def test_feature_maps_show_every_map_with_its_own_caption():
    maps = torch.randn(1, 6, 28, 28)
    fig = plots.show_feature_maps(maps, layer="C1")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 6  # one panel per map, the batch dimension dropped
    assert [ax.get_title() for ax in shown] == [f"C1 map {i}" for i in range(6)]
    assert torch.equal(torch.tensor(shown[2].images[0].get_array()), maps[0, 2])
    assert (
        fig._suptitle.get_text() == "C1: 6 feature maps of 28x28 (each its own scale)"
    )
    assert len(fig.axes) == 6  # 6 maps fill a 6-wide grid: no empty panel left over


def test_signed_feature_maps_are_symmetric_about_zero():
    maps = torch.tensor([[[-1.0, 3.0]], [[0.5, 0.25]]])
    fig = plots.show_feature_maps(maps, layer="S2", symmetric=True, titles=["a", "b"])
    first, second = (ax.images[0] for ax in fig.axes if ax.images)
    assert first.get_clim() == (-3.0, 3.0) and second.get_clim() == (-0.5, 0.5)
    assert first.get_cmap().name == "RdBu_r"
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["a", "b"]
    assert "white zero" in fig._suptitle.get_text()


def history(offset: float) -> History:
    rows = [
        {"epoch": e, "train_loss": 1 / e + offset, "test_loss": 1.2 / e + offset,
         "train_top1": 90.0 + e, "test_top1": 89.0 + e}
        for e in (1, 2, 3)
    ]  # fmt: skip
    return History(rows)


@pytest.mark.parametrize("separate", [False, True])
def test_one_run_keeps_one_colour_in_every_panel(separate):
    runs = {"1998": history(0.5), "modern": history(0.0)}
    labels = {"1998": "MAP loss", "modern": "cross-entropy"} if separate else "loss"
    fig = plots.plot_history(runs, title="T", loss_label=labels)
    colours: dict[str, set] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            run = line.get_label().split(":")[0]
            colours.setdefault(run, set()).add(line.get_color())
    assert len(colours["1998"]) == 1 and len(colours["modern"]) == 1
    assert colours["1998"] != colours["modern"]


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
    images, labels = learnable(20)
    x, y = torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels)
    preds = (y + (torch.arange(20) % 3 == 0).long()) % 10
    fig = plots.show_misclassified(
        x, y, preds, [str(i) for i in range(10)], title="Errors", n=4
    )
    assert "4 of 7 errors" in fig._suptitle.get_text()
    # a test set sorted by class still shows errors of several classes, not just the first
    sorted_labels = torch.arange(40) // 4  # 4 images of each of 10 classes, in order
    wrong = torch.arange(40)  # every image misclassified
    picks = plots.spread_across_classes(wrong, sorted_labels, 10)
    assert sorted(int(sorted_labels[i]) for i in picks) == list(range(10))
    none = plots.show_misclassified(x, y, y, [str(i) for i in range(10)], title="E")
    assert none.axes[0].texts[0].get_text() == "no misclassified images"
    fig = plots.plot_confusion(
        plots.confusion_matrix(preds, y, 10), [str(i) for i in range(10)], title="CM"
    )
    assert fig.axes[0].get_ylabel() == "true class"
    fig = plots.show_filters(LeNet5().features.C1.weight, title="C1 kernels")
    assert fig._suptitle.get_text().startswith("C1 kernels")
    plt.close("all")


def test_readable_table_formats_numbers_for_people():
    import pandas as pd

    frame = pd.DataFrame(
        {"params": [156, 1516], "error %": [0.95, float("nan")], "n": [60000.0, None]},
        index=["C1", "C3"],
    )
    out = plots.readable_table(frame, total=True)
    assert out.loc["C3", "params"] == "1,516" and out.loc["total", "params"] == "1,672"
    assert out.loc["C1", "error %"] == "0.95" and out.loc["C3", "error %"] == "–"
    assert out.loc["C1", "n"] == "60,000" and out.loc["C3", "n"] == "–"
    text = out.to_string()
    assert "nan" not in text.lower() and "None" not in text and ".0 " not in text


def test_runs_with_different_losses_get_separate_axes():
    def history(scale):
        return History([{"epoch": i, "lr": 0.1, "train_loss": scale / i, "train_top1": 90.0,
                         "test_loss": scale / i, "test_top1": 90.0, "seconds": 1.0}
                        for i in (1, 2)])  # fmt: skip

    runs = {"1998": history(20.0), "modern": history(0.02)}
    fig = plots.plot_history(
        runs, title="T", loss_label={"1998": "MAP", "modern": "CE"}
    )
    assert [ax.get_ylabel() for ax in fig.axes] == ["MAP", "CE", "accuracy (%)"]
    fig = plots.plot_history(runs, title="T")
    assert [ax.get_ylabel() for ax in fig.axes] == ["cross-entropy", "accuracy (%)"]
    plt.close("all")
