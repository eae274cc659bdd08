"""Write the convolution animations of lenet_utils.diagrams.ANIMATIONS into book/figures/.

Run from the repository root after changing lenet_utils/diagrams.py or the arithmetic:

    python scripts/make_figures.py          # (re)write the GIFs
    python scripts/make_figures.py --check  # only say whether the committed GIFs are stale

The output is deterministic: re-running it without changes rewrites identical files, so
tests/test_diagrams.py can check that the committed GIFs are up to date. The architecture
figure is not written here: the chapters draw it from the model in a code cell.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's lenet_utils, not an installed copy

from lenet_utils.diagrams import ANIMATIONS, write_animations  # noqa: E402

FIGURES = ROOT / "book" / "figures"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="render into a temporary folder and report GIFs that differ; write nothing",
    )
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            stale = [
                path.name
                for path in write_animations(tmp)
                if not (FIGURES / path.name).exists()
                or (FIGURES / path.name).read_bytes() != path.read_bytes()
            ]
        if stale:
            print(
                f"stale or missing in {FIGURES.relative_to(ROOT)}: {', '.join(stale)}; "
                "run python scripts/make_figures.py and commit the GIFs"
            )
            return 1
        print(f"all {len(ANIMATIONS)} animations are up to date")
        return 0
    for path in write_animations(FIGURES):
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
