"""How chapter 8's fast recipe was chosen: on a validation split, never the test set.

    python scripts/fast_recipe_search.py CONFIGS.json LOG.jsonl

Each config (a JSON list of dicts: batch, epochs, a learning rate or a rule with its base,
label smoothing ``ls``, warm-up share ``pct``, ``bn``, ``seed``) trains LeNet-5 on 55,000
MNIST training digits and scores the 5,000 held out (500 per class, seed 1234) after each
epoch; ``"test": true`` also scores the test set once, at the end of a chosen run. Every
run appends one line to LOG.jsonl. The runs behind ``lenet_utils.bench``'s rule
(``lr_for_batch``: 0.1 x sqrt(B/64), with batch norm) and its ``SPRINT`` are in
``results/choices/08-fast-recipe-validation.jsonl``; single threads on a busy machine, so
their ``img_s`` are no measurement.
"""

import json, math, os, sys, time
import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
from lenet_utils.models import LeNet5, count_parameters
from lenet_utils.pipeline import TensorLoader, hold_out, normalize, random_crop_flip
from lenet_utils.readers import load_tensors
from lenet_utils.training import evaluate

_DATA = {}


def data():
    """55,000 digits to train on and 5,000 held out (lenet_utils' hold_out, seed 1234)."""
    if not _DATA:
        train, val = hold_out(load_tensors("mnist", "train"), per_class=500, seed=1234)
        test = load_tensors("mnist", "test")
        _DATA.update(
            xtr=train.images,
            ytr=train.labels,
            xva=val.images,
            yva=val.labels,
            xte=test.images,
            yte=test.labels,
            mean=train.mean,
            std=train.std,
        )
    return _DATA


def rule_lr(rule, B, base, cap=None):
    r = B / 64
    lr = {"sqrt": base * r**0.5, "linear": base * r, "const": base}[rule]
    return min(lr, cap) if cap else lr


def run(cfg):
    d = data()
    B, E, seed = cfg["batch"], cfg["epochs"], cfg.get("seed", 0)
    lr = cfg.get("lr") or rule_lr(cfg["rule"], B, cfg["base"], cfg.get("cap"))
    torch.manual_seed(seed)
    model = LeNet5("modern", input_size=28, batchnorm=cfg.get("bn", True))
    mean, std = d["mean"], d["std"]
    tf = lambda x: normalize(random_crop_flip(x, padding=2, flip=False), mean, std)
    if cfg.get("noaug"):
        tf = lambda x: normalize(x, mean, std)
    loader = TensorLoader(d["xtr"], d["ytr"], B, shuffle=True, seed=seed, transform=tf)
    ev = lambda x: normalize(x, mean, std)
    val = TensorLoader(d["xva"], d["yva"], 2500, transform=ev)
    test = TensorLoader(d["xte"], d["yte"], 2500, transform=ev)
    opt = torch.optim.SGD(
        model.parameters(),
        lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=cfg.get("wd", 5e-4),
    )
    sched = OneCycleLR(
        opt,
        lr,
        total_steps=E * len(loader),
        pct_start=cfg.get("pct", 0.3),
        div_factor=cfg.get("div", 25.0),
        final_div_factor=cfg.get("fdiv", 1e4),
        anneal_strategy=cfg.get("anneal", "cos"),
    )
    ls = cfg.get("ls", 0.0)
    hist, first99, train_s, diverged = [], None, 0.0, False
    for ep in range(E):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y, label_smoothing=ls)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        train_s += time.perf_counter() - t0
        if not math.isfinite(loss.item()):
            diverged = True
        v = evaluate(model, val, torch.device("cpu"), amp=False)["top1"]
        rec = {"ep": ep + 1, "val": round(v, 2), "loss": round(loss.item(), 4)}
        if cfg.get("test_each"):
            rec["test"] = round(
                evaluate(model, test, torch.device("cpu"), amp=False)["top1"], 2
            )
        hist.append(rec)
        if first99 is None and v >= 99.0:
            first99 = ep + 1
        if diverged:
            break
    out = dict(
        cfg,
        lr=round(lr, 5),
        final_val=hist[-1]["val"],
        first99=first99,
        hist=[h["val"] for h in hist],
        img_s=round(len(d["ytr"]) * len(hist) / train_s),
        params=count_parameters(model),
        diverged=diverged,
    )
    if cfg.get("test_each"):
        out["test_hist"] = [h["test"] for h in hist]
    if cfg.get("test"):
        out["test_acc"] = round(
            evaluate(model, test, torch.device("cpu"), amp=False)["top1"], 2
        )
    return out


if __name__ == "__main__":
    cfgs = json.load(open(sys.argv[1]))
    log = sys.argv[2]
    for cfg in cfgs:
        r = run(cfg)
        print(json.dumps(r), flush=True)
        with open(log, "a") as f:
            f.write(json.dumps(r) + "\n")
