"""Shared by the arithmetic, tables and calculator tests: which rule of
``lenet_utils.arithmetic.RULES`` an error message states, random real layers (Hypothesis),
and the "ours vs PyTorch" call that runs one."""

from __future__ import annotations

import itertools
import re
import warnings
from typing import Iterator

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from torch import nn

from lenet_utils import arithmetic as ar
from lenet_utils import tables as tb


def rule_of(message: str) -> str:
    """The name of the ``ar.RULES`` template ``message`` was made from."""
    for rule, template in ar.RULES.items():
        parts = re.split(r"\{\w+\}", template)
        if re.fullmatch(".+?".join(map(re.escape, parts)), message):
            return rule
    raise AssertionError(f"not from a rule: {message}")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny layers run several times faster on one thread than on a pool of them (which
    waits for its threads on every call); restored afterwards for the other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def examples(n: int) -> settings:
    """``n`` examples, the same in every run (for CI), with no example database left
    behind and no per-example deadline (the first torch call of a run is slow)."""
    return settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def values(lo: int, hi: int) -> list:
    """Ints in [lo, hi] and (h, w) pairs of them, about half of each."""
    ints = list(range(lo, hi + 1))
    return ints * len(ints) + list(itertools.product(ints, ints))


def dims(lo: int, hi: int, bad: tuple[int, ...] = ()) -> st.SearchStrategy:
    """One of :func:`values`, or with ``bad`` about one in ten a refused value.

    One ``sampled_from`` per argument: drawing is most of the time these tests take, and
    a single draw is much cheaper than a tuple of draws.
    """
    good = values(lo, hi)
    refused = [*bad, *((lo, b) for b in bad), *((b, hi) for b in bad)]
    if not refused:
        return st.sampled_from(good)
    ratio = 9 * len(refused) / len(good)  # copies of ``good`` for 9 good to 1 refused
    copies, refused_copies = max(1, round(ratio)), max(1, round(1 / ratio))
    return st.sampled_from(good * copies + refused * refused_copies)


def as_pair(v: int | tuple[int, int]) -> tuple[int, int]:
    """An int or a pair as ``(h, w)``."""
    return (v, v) if isinstance(v, int) else tuple(v)


# A drawn geometry is tried as every layer kind (5 configurations an example):
# (kind, ceil_mode); AvgPool2d has no dilation, so it gets 1.
VARIANTS = [
    ("conv", False),
    ("maxpool", False),
    ("maxpool", True),
    ("avgpool", False),
    ("avgpool", True),
]


@st.composite
def geometries(draw: st.DrawFn, *, impossible: bool = True) -> dict:
    """Random arguments for a conv or pooling layer and its input (a dict)."""
    if impossible:  # below 1 (0 for padding), or too big for the pooling padding rule
        kernel = dims(1, 7, (0, -1))
        stride = st.one_of(dims(1, 6, (0, -2)), st.none())
        padding = dims(0, 4, (-1,))
        dilation = dims(1, 3, (0, -1))
    else:
        kernel, stride, padding, dilation = (
            dims(1, 7),
            dims(1, 6),
            dims(0, 3),
            dims(1, 3),
        )
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    return dict(
        size=draw(dims(1, 23)),
        kernel_size=draw(kernel),
        stride=draw(stride) if impossible else draw(st.one_of(stride, st.none())),
        padding=draw(padding),
        dilation=draw(dilation),
        groups=groups,
        in_channels=groups * draw(st.sampled_from([1, 2, 3])),
        out_channels=groups * draw(st.sampled_from([1, 2, 3])),
        bias=draw(st.booleans()),
    )


def variant(geometry: dict, kind: str, ceil_mode: bool) -> dict:
    """``geometry`` as a layer of ``kind``: a configuration :func:`run_real` builds."""
    cfg = dict(geometry, kind=kind, ceil_mode=ceil_mode)
    if kind == "avgpool":
        cfg["dilation"] = 1
    if kind == "conv" and cfg["stride"] is None:
        cfg["stride"] = 1  # nn.Conv2d takes no None; output_size reads None as 1 too
    return cfg


def real_layer(cfg: dict) -> nn.Module:
    """The PyTorch layer of a configuration."""
    geometry = dict(
        stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"]
    )
    if cfg["kind"] == "avgpool":
        return nn.AvgPool2d(cfg["kernel_size"], **geometry)
    if cfg["kind"] == "maxpool":
        return nn.MaxPool2d(cfg["kernel_size"], dilation=cfg["dilation"], **geometry)
    return nn.Conv2d(
        cfg["in_channels"],
        cfg["out_channels"],
        cfg["kernel_size"],
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        groups=cfg["groups"],
        bias=cfg["bias"],
    )


def run_real(cfg: dict) -> tuple[nn.Module | None, torch.Tensor | None]:
    """(layer, output) of the real PyTorch layer, or (None, None) if PyTorch refuses it."""
    h, w = as_pair(cfg["size"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Initializing zero-element tensors"
            layer = real_layer(cfg)
            with torch.no_grad():
                return layer, layer(torch.zeros(1, cfg["in_channels"], h, w))
    except (RuntimeError, ValueError):
        return None, None


def ours(cfg: dict, name: str = "L") -> tb.LayerCounts:
    """What ``lenet_utils`` says of the configuration: :func:`tb.layer_counts`."""
    extra = (
        dict(out_channels=cfg["out_channels"], groups=cfg["groups"], bias=cfg["bias"])
        if cfg["kind"] == "conv"
        else {}
    )
    return tb.layer_counts(
        cfg["in_channels"],
        cfg["size"],
        cfg["kernel_size"],
        cfg["stride"],
        cfg["padding"],
        cfg["dilation"],
        cfg["ceil_mode"],
        kind=cfg["kind"],
        name=name,
        **extra,
    )
