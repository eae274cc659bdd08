"""The chapters' figures: titled, labelled, one colour per run, what was asked shown."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from lenet_utils import plots  # noqa: E402
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
