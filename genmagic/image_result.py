"""The result of an image run: PIL images, per-image seeds, safety flags, and a grid repr.

Image ``i`` was made with seed ``seeds[i]`` (the request's seed + i) alone, so
``%%imagine --seed {seeds[i]} -n 1`` (same other options) gives the same pixels. In the
history store the images are PNG blobs named by content hash, each carrying its
generation parameters (see :mod:`genmagic.pngmeta`).
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import html
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .pngmeta import image_metadata, png_bytes
from .request import Request, Result

# How --init/--mask were spelled in the run being made (set by genmagic.imagine.run), so the
# PNGs written to history while the engine records the run already carry them.
pending_sources: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("pending_sources", default=None)

DISPLAY_MIN = 192  # small images are shown enlarged (nearest neighbour) to at least this many pixels


@dataclass
class ImageResult(Result):
    images: list[Any] = field(default_factory=list)  # PIL images
    seeds: list[int] = field(default_factory=list)
    nsfw: list[bool] = field(default_factory=list)  # the pipeline's own safety checker, per image
    sources: dict[str, str] = field(default_factory=dict)  # how --init/--mask were given (VAR or PATH)

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = dict(pending_sources.get() or {})

    # -- access
    @property
    def image(self) -> Any:
        return self.images[0] if self.images else None

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.images)

    def __getitem__(self, index: int) -> Any:
        return self.images[index]

    # -- metadata and files
    def metadata(self, index: int) -> dict[str, Any]:
        """What image ``index``'s PNG chunks hold: A1111 ``parameters`` and the full request."""
        image = self.images[index]
        return image_metadata(
            self.request.to_dict(),
            index=index,
            seed=self.seeds[index] if index < len(self.seeds) else (self.request.seed or 0) + index,
            size=image.size,
            sampler=str(self.info.get("scheduler", "")),
            sources=self.sources,
            info=self.info,
        )

    def png(self, index: int = 0) -> bytes:
        """Image ``index`` as PNG bytes with its generation parameters."""
        return png_bytes(self.images[index], self.metadata(index))

    def filenames(self) -> list[str]:
        slug = re.sub(r"[^a-z0-9]+", "-", self.request.prompt.lower()).strip("-")[:40] or "image"
        key = self.request.key()[:8]
        return [f"{slug}-{seed}-{key}.png" for seed in self.seeds[: len(self.images)]]

    def save(self, directory: str | os.PathLike[str] = ".") -> list[Path]:
        """Write every image as a PNG with its parameters into ``directory``; returns the paths.

        Each file is written to a temporary name and renamed, so an error leaves no half file.
        """
        folder = Path(directory).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, name in enumerate(self.filenames()):
            paths.append(write_atomic(folder / name, self.png(index)))
        return paths

    def grid(self, columns: int | None = None) -> Any:
        """All images pasted into one PIL image."""
        from PIL import Image

        if not self.images:
            return None
        cols = columns or min(len(self.images), 4)
        rows = -(-len(self.images) // cols)
        w = max(im.width for im in self.images)
        h = max(im.height for im in self.images)
        sheet = Image.new("RGB", (cols * w, rows * h), "white")
        for i, im in enumerate(self.images):
            sheet.paste(im.convert("RGB"), ((i % cols) * w, (i // cols) * h))
        return sheet

    # -- history store
    def to_record(self, put_blob: Callable[[bytes, str], str]) -> Any:
        return {
            "images": [put_blob(self.png(i), ".png") for i in range(len(self.images))],
            "seeds": list(self.seeds),
            "nsfw": list(self.nsfw),
            "sources": dict(self.sources),
        }

    @classmethod
    def from_record(cls, request: Request, outputs: Any, get_blob: Callable[[str], bytes]) -> ImageResult:
        import io

        from PIL import Image

        images = []
        for name in outputs.get("images", []):
            with Image.open(io.BytesIO(get_blob(name))) as im:
                im.load()
                images.append(im.copy())
        return cls(
            request=request,
            images=images,
            seeds=list(outputs.get("seeds", [])),
            nsfw=list(outputs.get("nsfw", [])),
            sources=dict(outputs.get("sources", {})),
        )

    # -- display
    def footer(self) -> str:
        req = self.request
        opts = req.options
        parts = [req.model]
        if self.images:
            parts.append(f"{self.images[0].width}x{self.images[0].height}")
        parts.append(f"{getattr(opts, 'steps', '?')} steps")
        if self.info.get("scheduler"):
            parts.append(str(self.info["scheduler"]).removesuffix("Scheduler"))
        parts.append(f"CFG {getattr(opts, 'guidance', '?'):g}")
        if "generate" in self.timings and not self.cached:
            parts.append(f"{self.timings['generate']:.1f} s")
        if self.cached:
            parts.append("cached")
        if self.status != "ok":
            parts.append(self.status)
        if any(self.nsfw):
            parts.append(f"{sum(self.nsfw)} flagged by the model's safety checker")
        if self.history_id:
            parts.append(f"history #{self.history_id}")
        return " · ".join(parts)

    def __repr__(self) -> str:
        return (
            f"ImageResult(model={self.request.model!r}, status={self.status!r}, "
            f"seeds={self.seeds!r}, size={self.images[0].size if self.images else None})"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        captions = [f"seed {s}" + (" · flagged" if i < len(self.nsfw) and self.nsfw[i] else "")
                    for i, s in enumerate(self.seeds)]
        note = self.footer()
        return {"text/plain": repr(self), "text/html": grid_html(self.images, captions, note)}


def display_png(image: Any) -> bytes:
    """PNG bytes for showing ``image`` inline: small images enlarged with nearest neighbour."""
    from PIL import Image

    scale = max(1, -(-DISPLAY_MIN // max(1, max(image.size))))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return png_bytes(image)


def grid_html(
    images: list[Any], captions: list[str], note: str = "", note_color: str = "#888", enlarge: bool = True
) -> str:
    """Images side by side with captions. ``enlarge=False`` (live previews) sends the small PNG
    and lets the browser scale it (``image-rendering: pixelated``): cheaper to encode."""
    cells = []
    for i, image in enumerate(images):
        if enlarge:
            data = base64.b64encode(display_png(image)).decode("ascii")
            size = ""
        else:
            data = base64.b64encode(png_bytes(image)).decode("ascii")
            scale = max(1, -(-DISPLAY_MIN // max(1, max(image.size))))
            size = f' width="{image.width * scale}" height="{image.height * scale}"'
        caption = html.escape(captions[i] if i < len(captions) else "")
        cells.append(
            '<figure style="display: inline-block; margin: 0 6px 6px 0; text-align: center">'
            f'<img src="data:image/png;base64,{data}"{size} style="image-rendering: pixelated" alt="{caption}"/>'
            f'<figcaption style="font-size: 0.8em; color: #666">{caption}</figcaption></figure>'
        )
    footer = f'<div style="color: {note_color}; font-size: 0.8em">{html.escape(note)}</div>' if note else ""
    return f'<div class="genmagic-images">{"".join(cells)}</div>{footer}'


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path

