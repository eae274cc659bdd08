"""Write the convolution GIFs of scripts/animations.py's ANIMATIONS into book/figures/.

Run from the repository root after changing scripts/animations.py or the arithmetic:

    python scripts/make_figures.py          # (re)write the GIFs
    python scripts/make_figures.py --check  # only say whether the committed GIFs are stale

This is the only code that writes GIF files. The output is deterministic: re-running it
without changes rewrites identical files, so tests/test_figures.py (which imports this
script) can check that the committed GIFs are up to date. The architecture figure is
not written here: the chapters draw it from the model in a code cell.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
import PIL
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from PIL import Image

# Image.Quantize is new in Pillow 9.1; Pillow 9.0 (our oldest) has the plain constant.
MEDIANCUT = getattr(Image, "Quantize", Image).MEDIANCUT

from animations import (
    ANIMATIONS,
    FLAT_COLOURS,
    ConvScene,
    Window,
    conv_alt_text,
    conv_frames,
    conv_title,
)

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["gif_recipe", "main", "write_animations", "write_conv_gif"]

FIGURES = ROOT / "book" / "figures"


def _render(fig: Figure) -> Image.Image:
    """The figure as drawn now, an RGB image."""
    fig.canvas.draw()
    rgba = Image.frombuffer(
        "RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba(), "raw"
    )
    return rgba.convert("RGB")


def _quantize(images: list[Image.Image], colours: int = 64) -> list[Image.Image]:
    """Palette images sharing one palette of ``colours`` entries: the drawing's flat
    colours exactly (so white stays white), then the last frame's antialiasing shades (it
    has every colour the others use). Each pixel takes its nearest palette colour, found
    here in full precision (Pillow's own mapping rounds colours first and turns white
    into light grey); no dithering, so the result depends on the pixels only."""
    fixed = [[round(255 * v) for v in to_rgb(c)] for c in FLAT_COLOURS]
    shades = images[-1].quantize(colors=colours - len(fixed), method=MEDIANCUT)
    extra = np.array(shades.getpalette()[: 3 * (colours - len(fixed))]).reshape(-1, 3)
    palette = np.concatenate([np.array(fixed), extra]).astype(np.int64)
    out = []
    for im in images:
        rgb = np.asarray(im, dtype=np.int64)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        unique, inverse = np.unique(packed, return_inverse=True)
        cols = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], axis=1)
        dist = ((cols[:, None, :] - palette[None, :, :]) ** 2).sum(-1)
        index = dist.argmin(1).astype(np.uint8)[inverse].reshape(packed.shape)
        frame = Image.fromarray(index, mode="P")
        frame.putpalette(palette.astype(np.uint8).flatten().tolist())
        out.append(frame)
    return out


def write_conv_gif(
    path: str | Path, window: Window, *, fps: float = 3, pause_s: float = 2.5
) -> str:
    """Write the animation of ``window`` as a GIF (Pillow) and return its alt text.

    Frames last ``1 / fps`` seconds, the last one ``pause_s``. The file is deterministic:
    one palette shared by all frames, no dithering, and a comment that records the
    configuration, the window positions, the title and the library versions (see
    :func:`gif_recipe`), so a test can tell a stale GIF from a fresh one.
    """
    scene = ConvScene(window)
    images = []
    for step in range(len(scene.frames)):
        scene.show(step)
        images.append(_render(scene.fig))
    frames = _quantize(images)
    durations = [round(1000 / fps)] * (len(frames) - 1) + [round(1000 * pause_s)]
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=0,
        optimize=False,
        disposal=1,
        comment=json.dumps(gif_recipe(window), sort_keys=True).encode(),
    )
    return conv_alt_text(window)


def gif_recipe(window: Window) -> dict:
    """What a GIF is drawn from: config, title, alt text, window positions and the
    versions of the libraries that render it (stored in the GIF's comment)."""
    return {
        "config": window._asdict(),
        "title": conv_title(window),
        "alt": conv_alt_text(window),
        "frames": [
            [list(f.output_cell), [list(c) for c in f.input_cells]]
            for f in conv_frames(window)
        ],
        "matplotlib": matplotlib.__version__,
        "pillow": PIL.__version__,
    }


def write_animations(
    folder: str | Path, names: Sequence[str] | None = None
) -> list[Path]:
    """Write the GIFs of :data:`ANIMATIONS` (or only ``names``) into ``folder``, each
    as ``<name>.gif``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or ANIMATIONS:
        path = folder / f"{name}.gif"
        write_conv_gif(path, ANIMATIONS[name])
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the GIFs, or with ``--check`` only report the stale ones (exit status 1)."""
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
