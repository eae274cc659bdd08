"""Helpers for the course "LeNet-5, from the paper to the GPU".

Modules, one job each:

* :mod:`lenet_utils.config`: every setting (data root, budget, paths), seeding, the device;
* :mod:`lenet_utils.files`: writes that are whole or nothing, and say clearly why they failed;
* :mod:`lenet_utils.arithmetic`: output sizes, parameters, connections and MACs, PyTorch's rules;
* :mod:`lenet_utils.tables`: those figures for one layer, or for every layer of a model;
* :mod:`lenet_utils.models`: LeNet-5 (modern and classic) with the paper's layer names;
* :mod:`lenet_utils.lenet1998`: LeNet-5 (1998), the paper's network, faithfully;
* :mod:`lenet_utils.storage`: dataset files, errors, decoding and downloads;
* :mod:`lenet_utils.cache`: decoded datasets kept as ``.pt`` files or one memory-mapped file;
* :mod:`lenet_utils.readers`: one reader per dataset format, files to ``uint8`` tensors;
* :mod:`lenet_utils.pipeline`: batches on the device: normalisation, augmentation, loaders;
* :mod:`lenet_utils.training`: ``train_one_epoch``, ``evaluate``, ``fit``;
* :mod:`lenet_utils.checkpoints`: a run's history, saved and resumed exactly;
* :mod:`lenet_utils.records`: the results records every full run writes;
* :mod:`lenet_utils.plots`: the figures the chapters draw;
* :mod:`lenet_utils.architecture`: the paper's Fig. 2, drawn from a model;
* :mod:`lenet_utils.bench`: the fast-training ladder (``python -m lenet_utils.bench``);
* :mod:`lenet_utils.distributed`: one process per GPU under ``torchrun`` (DDP);
* :mod:`lenet_utils.train`: the command line (``python -m lenet_utils.train``)."""

from .config import budget, data_root, device_name, get_device, is_smoke
from .config import seed_everything, setup
from .models import LeNet5, count_parameters
from .pipeline import hold_out, make_loaders
from .readers import load_idx, load_imagefolder, load_tensors
from .training import evaluate, fit, sgd_one_cycle

__version__ = "0.1.0"

# What a student needs to train, in one place: load, split, batch, build, fit, evaluate.
__all__ = [
    "LeNet5", "budget", "count_parameters", "data_root", "device_name", "evaluate",
    "fit", "get_device", "hold_out", "is_smoke", "load_idx", "load_imagefolder",
    "load_tensors", "make_loaders", "seed_everything", "setup", "sgd_one_cycle",
]  # fmt: skip
