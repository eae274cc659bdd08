"""The committed GIFs of the book (scripts/make_figures.py) match what the code draws."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import PIL
import pytest
from PIL import Image, ImageSequence

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "book" / "figures"
sys.path.insert(0, str(ROOT / "scripts"))
import make_figures  # noqa: E402
from animations import ANIMATIONS  # noqa: E402


def _recipe(path: Path) -> dict:
    with Image.open(path) as im:
        return json.loads(im.info["comment"])


def test_committed_gifs_match_the_code(tmp_path):
    """Same configuration, frames, title and alt text in every environment; the same bytes
    where the rendering libraries are the versions that wrote them (CI pins them)."""
    fresh = {p.name: p for p in make_figures.write_animations(tmp_path)}
    same_libraries = True
    for name in ANIMATIONS:
        file = f"{name}.gif"
        committed = FIGURES / file
        assert committed.exists(), (
            f"{committed} is missing: run python scripts/make_figures.py"
        )
        old, new = _recipe(committed), _recipe(fresh[file])
        libraries = ("matplotlib", "pillow")
        same_libraries &= all(old[k] == new[k] for k in libraries)
        for key in ("config", "title", "alt", "frames"):
            assert old[key] == new[key], (
                f"{file} is stale ({key} changed): run python scripts/make_figures.py"
            )
        assert committed.stat().st_size <= 300 * 1024
        with Image.open(committed) as im:
            durations = [f.info["duration"] for f in ImageSequence.Iterator(im)]
            assert im.size[0] == 520 and len(durations) == len(old["frames"]), name
        # about 3 frames per second (GIF counts in hundredths), then a pause
        assert set(durations[:-1]) == {330} and durations[-1] >= 2000, name
        if same_libraries:
            assert committed.read_bytes() == fresh[file].read_bytes(), (
                f"{file} differs from a fresh render: run python scripts/make_figures.py"
            )
    if not same_libraries:
        pytest.skip(
            f"matplotlib {matplotlib.__version__} / Pillow {PIL.__version__} differ from "
            "the versions that rendered the committed GIFs: recipes checked, bytes not"
        )
