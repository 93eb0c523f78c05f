"""Blurring a withheld image (no package imports: :mod:`genmagic.results` uses it)."""

from __future__ import annotations

from typing import Any

BLUR_CELLS = 8  # the long side is averaged down to this many cells before it is smoothed back up


def blur(image: Any) -> Any:
    """``image`` (PIL) blurred past recognition at any size: averaged down to about 8 cells on
    its long side (box filter: each cell is the mean colour of its block, so no detail survives),
    scaled back up with a bicubic filter and smoothed with a Gaussian blur of 1/8 of the long side
    (no visible cell edges). Same size and mode as ``image``."""
    from PIL import Image, ImageFilter

    mode = image.mode
    work = image if mode in ("RGB", "RGBA", "L", "LA") else image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
    w, h = work.size
    scale = BLUR_CELLS / max(w, h, 1)
    small = work.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    out = small.resize((w, h), Image.Resampling.BICUBIC)
    out = out.filter(ImageFilter.GaussianBlur(radius=max(w, h) / BLUR_CELLS))
    if out.mode == mode:
        return out
    if mode == "P":  # an adaptive palette without dithering (dithering would add back fine noise)
        return out.quantize(colors=256, dither=Image.Dither.NONE)
    return out.convert(mode)
