"""Helpers for the course "LeNet-5, from the paper to the GPU".

Modules, one job each:

* :mod:`lenet_utils.arithmetic`: output sizes, parameters, connections, MACs, layer tables;
* :mod:`lenet_utils.models`: LeNet-5 with the paper's layer names;
* :mod:`lenet_utils.data`: datasets from one data root, with clear errors;
* :mod:`lenet_utils.training`: the fit/evaluate loop, checkpoints and the results record;
* :mod:`lenet_utils.plots`: the figures the chapters draw;
* :mod:`lenet_utils.bench`: the fast-training benchmark (``python -m lenet_utils.bench``);
* :mod:`lenet_utils.config`: data root, smoke/full budget, seeding, device and hardware line.
"""

from .config import (
    budget,
    data_root,
    device_name,
    get_device,
    hardware_line,
    is_smoke,
    seed_everything,
    setup,
)
from .models import LeNet5, count_parameters

__version__ = "0.1.0"

__all__ = [
    "LeNet5",
    "budget",
    "count_parameters",
    "data_root",
    "device_name",
    "get_device",
    "hardware_line",
    "is_smoke",
    "seed_everything",
    "setup",
]
