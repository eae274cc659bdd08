"""Re-record chapters: run each notebook top to bottom in a fresh kernel at the full budget,
check its outputs as a reader will see them, and only then store them.

    python scripts/record_chapter.py notebooks/04_mnist.ipynb [more notebooks ...]

The run uses ``LENET_BUDGET=full`` and ``LENET_PROGRESS=0`` (one line per epoch, no progress
bars stored). If the stored outputs would show a progress bar, an absolute path of this machine,
a warning, an error or a code line over 88 characters, nothing is written and the problems are
listed: fix the chapter and run it again. ``--budget smoke`` records a quick run for checking
the script itself (never commit those outputs).

Timings are only worth storing from a quiet machine, so the script first checks that nothing
else is running: the 1-minute load average must be under ``QUIET_LOAD`` per core (the load a
test run or a second training puts on the machine is well above it). ``--busy-ok`` records
anyway, for a smoke check. Consecutive prints of a cell are stored as one block of text, so
a per-epoch log reads as one box, not one box per line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from lenet_utils.config import results_dir
from lenet_utils.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]
MAX_LINE = 88
MAX_OUTPUTS = 150  # per notebook: a chapter with more is drowning its reader
QUIET_LOAD = 0.35  # the most 1-minute load average per core of a quiet machine

PROGRESS = re.compile(r"\r|\d+it/s\]|s/it\]|\d%\|")
ABSOLUTE = re.compile(
    r"(?<![\w.~<>-])/(?:work|root|home|tmp|Users|usr|opt|var|private|mnt|srv)/"
    r"|PosixPath\(|WindowsPath\(|[A-Z]:\\\\"
)
WARNING = re.compile(r"[Ww]arning\b|WARNING")
WIDGET = "application/vnd.jupyter.widget-view+json"


def _texts(output: dict) -> list[str]:
    """Every piece of text an output shows a reader (streams, plain text, HTML)."""
    if output.get("output_type") == "stream":
        return ["".join(output.get("text", ""))]
    data = output.get("data", {})
    return [
        "".join(data[k])
        for k in ("text/plain", "text/html", "text/markdown")
        if k in data
    ]


def wide_lines(nb: dict, name: str) -> list[str]:
    """Code lines wider than the book's column: checked before a run too, not after it."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    return [
        f"{name}: code cell {i}, line {n} has {len(line)} characters"
        for i, cell in enumerate(code)
        for n, line in enumerate("".join(cell["source"]).splitlines(), 1)
        if len(line) > MAX_LINE
    ]


def problems(nb: dict, name: str) -> list[str]:
    """What a reader of the rendered book would trip over in ``nb``'s stored outputs."""
    found = wide_lines(nb, name)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    outputs = [(i, o) for i, c in enumerate(code) for o in c.get("outputs", [])]
    for i, out in outputs:
        kind = out.get("output_type")
        if kind == "error":
            found.append(f"{name}: code cell {i} stores an error ({out.get('ename')})")
        if WIDGET in out.get("data", {}):
            found.append(
                f"{name}: code cell {i} stores a widget (a live progress bar?)"
            )
        for text in _texts(out):
            if PROGRESS.search(text):
                found.append(f"{name}: code cell {i} stores progress-bar output")
            match = ABSOLUTE.search(text)
            if match:
                found.append(
                    f"{name}: code cell {i} shows an absolute path: {match[0]}..."
                )
            if (
                kind == "stream"
                and out.get("name") == "stderr"
                and WARNING.search(text)
            ):
                first = text.strip().splitlines()[0][:100]
                found.append(f"{name}: code cell {i} stores a warning: {first}")
    if len(outputs) > MAX_OUTPUTS:
        found.append(f"{name}: {len(outputs)} stored outputs, more than {MAX_OUTPUTS}")
    return found


def busy() -> str | None:
    """Why the machine is not quiet enough to time a chapter, or ``None`` if it is."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= QUIET_LOAD * cores:
        return None
    return (
        f"the machine is busy (load average {load:.2f} on {cores} cores, over "
        f"{QUIET_LOAD * cores:.2f}): stop other work (tests, training) and try again, "
        "or pass --busy-ok for a run whose timings do not matter"
    )


def coalesce_streams(nb: dict) -> None:
    """Merge each cell's consecutive prints to the same stream into one output."""
    for cell in nb["cells"]:
        merged: list[dict] = []
        for out in cell.get("outputs", []):
            last = merged[-1] if merged else None
            if (
                last is not None
                and out.get("output_type") == last.get("output_type") == "stream"
                and out.get("name") == last.get("name")
            ):
                last["text"] = "".join(last["text"]) + "".join(out["text"])
            else:
                merged.append(out)
        if "outputs" in cell:
            cell["outputs"] = merged


def kept_files(folder: Path) -> list[Path]:
    """What a chapter's run keeps in ``folder``: its records, and the weights in models/."""
    return [*folder.glob("*.json"), *folder.glob("models/*.pt")]


def snapshot(folder: Path) -> dict[Path, bytes]:
    """The records in ``folder`` as they are, to put back if a recording is refused."""
    return {p: p.read_bytes() for p in kept_files(folder)}


def restore(folder: Path, before: dict[Path, bytes]) -> int:
    """Undo what a refused run wrote to ``folder``: its new records removed, the records
    it replaced put back. Returns how many records it undid."""
    undone = 0
    for path in kept_files(folder):
        if path not in before:
            path.unlink()
        elif path.read_bytes() != before[path]:
            atomic_write(path, lambda f, old=before[path]: f.write(old))
        else:
            continue
        undone += 1
    return undone


def record(path: Path, budget: str, timeout: int | None) -> list[str]:
    """Execute ``path`` in a fresh kernel; store its outputs if they pass :func:`problems`.
    A refused run leaves nothing behind: the records it wrote are undone."""
    results = results_dir()
    before = snapshot(results)
    found = execute_and_store(path, budget, timeout)
    undone = restore(results, before) if found else 0
    if undone:
        found.append(f"{path.name}: its {undone} records in results/ were undone")
    return found


def execute_and_store(path: Path, budget: str, timeout: int | None) -> list[str]:
    """Run ``path`` top to bottom; store it if its outputs pass, else say what is wrong."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    # Re-recording replaces the chapter's records on purpose (a reader's run never does).
    env = {"LENET_BUDGET": budget, "LENET_PROGRESS": "0", "LENET_REPLACE_RECORDS": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nb = nbformat.read(path, as_version=4)
        # Minutes of training saved: the run would be refused for these lines anyway.
        if too_wide := wide_lines(nb, path.name):
            return too_wide
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            record_timing=False,
        )
        start = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as err:  # nothing is written; the next notebook runs
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # no colour codes
            return [f"{path.name}: a cell failed: {text.splitlines()[-1]}"]
        seconds = time.perf_counter() - start
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    stored = json.loads(nbformat.writes(nb))
    coalesce_streams(stored)
    found = problems(stored, path.name)
    if found:
        return found
    text = json.dumps(stored, indent=1, ensure_ascii=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))  # never half a notebook
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    print(f"recorded {shown} in {seconds / 60:.1f} min ({budget} budget)")
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--budget", choices=("full", "smoke"), default="full")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell")
    parser.add_argument("--busy-ok", action="store_true", help="skip the quiet check")
    args = parser.parse_args(argv)
    reason = None if args.busy_ok else busy()
    if reason:
        print(f"not recorded: {reason}", file=sys.stderr)
        return 1
    failed = False
    for path in args.notebooks:
        found = record(path.resolve(), args.budget, args.timeout)
        if found:
            failed = True
            print("not recorded:\n  " + "\n  ".join(found), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
