"""LeNet-5 (1998): the paper's parameter and connection counts, pinned layer by layer."""

import pytest
import torch

from lenet_utils import arithmetic as ar
from lenet_utils import tables as tb
from lenet_utils.lenet1998 import (
    DIGIT_BITMAPS,
    LeNet1998,
    ScaledTanh,
    SparseConv2d,
    Subsampling,
    digit_prototypes,
    input_1998,
    rbf_map_loss,
)
from lenet_utils.models import C3_TABLE, count_parameters

PAPER = ar.PAPER_1998  # the paper's printed (parameters, connections) per layer


@pytest.fixture(scope="module")
def rows():
    return {r.layer: r for r in tb.layer_table(LeNet1998(), (1, 1, 32, 32))}


@pytest.mark.parametrize("layer", list(PAPER))
def test_each_layer_has_the_papers_parameters_and_connections(rows, layer):
    assert (rows[layer].params, rows[layer].connections) == PAPER[layer]


def test_total_is_exactly_60000_trainable_parameters(rows):
    assert count_parameters(LeNet1998()) == 60_000
    assert rows["output"].params == 0  # the RBF prototypes are fixed
    assert [r for r in rows] == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]


def test_shapes_through_the_network(rows):
    assert rows["S2"].output_shape == (1, 6, 14, 14)
    assert rows["C3"].output_shape == (1, 16, 10, 10)
    assert rows["C5"].output_shape == (1, 120, 1, 1)
    assert rows["output"].output_shape == (1, 10)


def test_c3_connects_exactly_the_table():
    c3 = SparseConv2d(C3_TABLE, 6, 5)
    torch.nn.init.normal_(c3.weight)
    dense = c3.dense_weight()
    nonzero = dense.abs().sum((2, 3)) != 0  # (16 out, 6 in)
    for j, inputs in enumerate(C3_TABLE):
        assert set(nonzero[j].nonzero().flatten().tolist()) == set(inputs)
    assert int(nonzero.sum()) == 60
    # Output map j does not change when an S2 map outside its table changes.
    x = torch.randn(1, 6, 14, 14)
    y = c3(x)
    x2 = x.clone()
    x2[:, 3] += 10  # S2 map 3 feeds C3 maps 1, 2, 3 but not map 0
    y2 = c3(x2)
    assert torch.allclose(y[:, 0], y2[:, 0]) and not torch.allclose(y[:, 1], y2[:, 1])


def test_sparse_c3_has_no_links_outside_the_table():
    """Each C3 map's output must not depend on the S2 maps outside its row of Table I: the
    gradient of map j with respect to S2 map i is zero unless i is in the table. A dense
    C3 (every map reading all six) fails this."""
    c3 = SparseConv2d(C3_TABLE, 6, 5)
    torch.nn.init.normal_(c3.weight)
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    out = c3(x)
    for j, inputs in enumerate(C3_TABLE):
        (grad,) = torch.autograd.grad(out[0, j].sum(), x, retain_graph=True)
        reached = {i for i in range(6) if grad[0, i].abs().sum() > 0}
        assert reached == set(inputs), f"C3 map {j} reads {reached}, not {inputs}"
    assert count_parameters(c3) == 1_516 and c3.weight.shape == (60, 5, 5)


def test_masked_kernel_positions_get_no_gradient():
    """Gradient descent can only move the 60 kernels of the table: the dense weight's
    other 36 kernels stay exactly zero after a training step."""
    c3 = SparseConv2d(C3_TABLE, 6, 5)
    torch.nn.init.normal_(c3.weight)
    opt = torch.optim.SGD(c3.parameters(), lr=1.0)
    c3(torch.randn(2, 6, 14, 14)).pow(2).sum().backward()
    assert c3.weight.grad.abs().sum() > 0
    opt.step()
    dense = c3.dense_weight().detach()
    links = torch.zeros(16, 6, dtype=torch.bool)
    for j, inputs in enumerate(C3_TABLE):
        links[j, list(inputs)] = True
    assert dense[~links].abs().sum() == 0 and dense[links].abs().sum() > 0


def test_subsampling_is_sum_times_coefficient_plus_bias():
    s = Subsampling(2)
    with torch.no_grad():
        s.coefficient.copy_(torch.tensor([0.5, -2.0]))
        s.bias.copy_(torch.tensor([1.0, 0.0]))
    x = torch.arange(32, dtype=torch.float32).view(1, 2, 4, 4)
    out = s(x).detach()
    assert out[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 4 + 5) * 0.5 + 1)
    assert out[0, 1, 1, 1].item() == pytest.approx((26 + 27 + 30 + 31) * -2.0)


def test_scaled_tanh_constants():
    f = ScaledTanh()
    assert f(torch.tensor(1.0)).item() == pytest.approx(
        1.0, abs=2e-4
    )  # f(1) = 1 by design
    assert f(torch.tensor(100.0)).item() == pytest.approx(1.7159)


def test_rbf_output_is_negative_squared_distance_to_bitmaps():
    protos = digit_prototypes()
    assert protos.shape == (10, 84) and set(protos.unique().tolist()) == {-1.0, 1.0}
    assert all(len(b) == 12 and all(len(r) == 7 for r in b) for b in DIGIT_BITMAPS)
    assert len({tuple(p.tolist()) for p in protos}) == 10  # ten different bitmaps
    model = LeNet1998()
    rbf = model.classifier.output
    scores = rbf(protos[[3, 7]])
    assert (
        scores.argmax(1).tolist() == [3, 7] and scores[0, 3] == 0 and scores[1, 7] == 0
    )
    # Fixed, not trained: not among the model's parameters, and unchanged by a step.
    assert not any(p is rbf.prototypes for p in model.parameters())
    assert count_parameters(model) == 60_000
    before = rbf.prototypes.clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    x = input_1998(torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8))
    rbf_map_loss(model(x), torch.arange(4)).backward()
    opt.step()
    assert torch.equal(rbf.prototypes, before)


def test_input_scaling_background_and_foreground():
    digits = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    digits[:, :, 10:18, 10:18] = 255
    x = input_1998(digits)
    assert x.shape == (2, 1, 32, 32)
    assert x.min().item() == pytest.approx(-0.1) and x.max().item() == pytest.approx(
        1.175
    )
    assert x[0, 0, 0, 0].item() == pytest.approx(-0.1)  # the added border is background
    with pytest.raises(ValueError, match="expects uint8"):
        input_1998(digits.float())


def test_map_loss_is_cross_entropy_with_a_rubbish_class():
    scores = -torch.tensor([[1.0, 5.0, 9.0], [4.0, 0.5, 3.0]])
    labels = torch.tensor([0, 1])
    y = -scores
    expected = torch.stack(
        [
            y[i, labels[i]]
            + torch.log(torch.exp(torch.tensor(-2.0)) + torch.exp(-y[i]).sum())
            for i in range(2)
        ]
    ).mean()
    assert rbf_map_loss(scores, labels, j=2.0).item() == pytest.approx(
        expected.item(), rel=1e-6
    )


def test_initialisation_follows_fan_in_rule():
    """Every weight and bias uniform in +-2.4 / fan-in: within the bound, and filling it
    (an all-zero or too narrow initialisation fails), for every layer and every C3 map."""
    torch.manual_seed(0)
    model = LeNet1998()
    f = model.features

    def fills(values: torch.Tensor, fan_in: int, what: str) -> None:
        bound = 2.4 / fan_in
        top = values.abs().max().item()
        assert 0.5 * bound <= top <= bound, (
            f"{what}: max |w| {top:.4g}, bound {bound:.4g}"
        )

    for name, layer, fan_in in (
        ("C1", f.C1, 25),
        ("C5", f.C5, 400),
        ("F6", model.classifier.F6, 120),
    ):
        fills(layer.weight, fan_in, f"{name}.weight")
        fills(layer.bias, fan_in, f"{name}.bias")
    for name, layer in (("S2", f.S2), ("S4", f.S4)):
        fills(layer.coefficient, 4, f"{name}.coefficient")
        fills(layer.bias, 4, f"{name}.bias")
    c3 = f.C3
    for j, inputs in enumerate(C3_TABLE):  # map j reads len(inputs) maps: 25 each
        fills(c3.weight[c3.out_index == j], 25 * len(inputs), f"C3 map {j}")
    biases = torch.tensor([2.4 / (25 * len(t)) for t in C3_TABLE])
    assert (c3.bias.abs() <= biases).all() and c3.bias.abs().max() > 0


def test_wrong_input_is_explained():
    with pytest.raises(
        ValueError,
        match=r"expects a batch of shape \(N, 1, 32, 32\), got \(2, 1, 28, 28\).*input_1998",
    ):
        LeNet1998()(torch.zeros(2, 1, 28, 28))
