"""A comparison grid as one PIL image: cells with the x labels above, the y labels beside
and a caption under each cell (its seed, or why it is withheld or missing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PAD = 6
BACKGROUND = "white"
INK = (33, 33, 33)
MUTED = (97, 97, 97)
EMPTY = (224, 224, 224)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font has one size
        return ImageFont.load_default()


def _width(draw: Any, text: str, font: Any) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if _width(draw, text, font) <= width:
        return text
    while text and _width(draw, text + "…", font) > width:
        text = text[:-1]
    return text + "…"


def labelled_grid(
    images: Sequence[Any],
    columns: int,
    column_labels: Sequence[str],
    row_labels: Sequence[str],
    notes: Sequence[str] = (),
    cell_size: int = 128,
) -> Any:
    """``images`` row by row (None: an empty grey cell), small ones enlarged (nearest) to ``cell_size``."""
    from PIL import Image, ImageDraw

    font, small = _font(14), _font(11)
    present = [im for im in images if im is not None]
    width = max([im.width for im in present] or [cell_size])
    height = max([im.height for im in present] or [cell_size])
    scale = max(1, -(-cell_size // max(width, height)))
    cw, ch = width * scale, height * scale
    rows = -(-len(images) // max(1, columns))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = probe.textbbox((0, 0), "Ag", font=font)[3] + PAD
    note_line = probe.textbbox((0, 0), "Ag", font=small)[3] + PAD // 2 if any(notes) else 0
    top = line if any(column_labels) else 0
    left = (max(_width(probe, label, font) for label in row_labels) + 2 * PAD) if any(row_labels) else 0
    left = min(left, 3 * cw)
    sheet = Image.new("RGB", (left + columns * (cw + PAD) + PAD, top + rows * (ch + note_line + PAD) + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for x, label in enumerate(column_labels[:columns]):
        text = _fit(draw, label, font, cw)
        draw.text((left + PAD + x * (cw + PAD) + (cw - _width(draw, text, font)) // 2, PAD // 2), text, fill=INK, font=font)
    for index, image in enumerate(images):
        x, y = index % columns, index // columns
        px, py = left + PAD + x * (cw + PAD), top + PAD + y * (ch + note_line + PAD)
        if image is None:
            draw.rectangle((px, py, px + cw - 1, py + ch - 1), fill=EMPTY)
        else:
            tile = image.convert("RGB")
            if tile.size != (cw, ch):
                tile = tile.resize((tile.width * scale, tile.height * scale), Image.Resampling.NEAREST)
            sheet.paste(tile, (px, py))
        if index < len(notes) and notes[index]:
            text = _fit(draw, notes[index], small, cw)
            draw.text((px, py + ch + 1), text, fill=MUTED, font=small)
    for y, label in enumerate(row_labels[:rows]):
        if label:
            text = _fit(draw, label, font, left - PAD)
            draw.text((PAD, top + PAD + y * (ch + note_line + PAD) + ch // 2 - line // 2), text, fill=INK, font=font)
    return sheet
