"""PNG thumbnails of history images, made on first request and cached beside the blobs.

A thumbnail is named by its blob and size (``thumbs/<sha256>-<size>.png``), so it never goes
stale (blobs are content-addressed); sizes are a fixed set, so the cache stays bounded.
"""

from __future__ import annotations

import io
import os
import threading

from ..history import History

SIZES = (64, 128, 256, 512)
MAX_PIXELS = 64_000_000  # a larger (hostile) blob is refused rather than decoded


def thumbnail(history: History, name: str, size: int) -> bytes:
    """The PNG thumbnail (at most ``size`` pixels on its longer side) of image blob ``name``."""
    if size not in SIZES:
        raise ValueError(f"size {size} is not one of {', '.join(map(str, SIZES))}")
    source = history.blob_path(name)  # validates the name (HistoryError) before anything is read
    cache = history.home / "thumbs" / f"{name.split('.')[0]}-{size}.png"
    if cache.is_file() and not cache.is_symlink():
        return cache.read_bytes()
    from PIL import Image

    data = history.get_blob(name)
    with Image.open(io.BytesIO(data)) as image:
        if image.width * image.height > MAX_PIXELS:
            raise ValueError(f"{source.name} is {image.width}x{image.height}, too large to preview")
        image.thumbnail((size, size))
        out = io.BytesIO()
        image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB").save(out, "PNG")
    png = out.getvalue()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(png)
    tmp.replace(cache)
    return png
