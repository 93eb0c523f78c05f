"""Showing results: sanitized markdown/HTML, text results, image grids, tables.

The live views (sinks) are in :mod:`genmagic.sinks`.

Everything the model wrote is treated as untrusted: markdown is rendered to HTML and
HTML is cleaned with nh3 (no scripts, no event handlers, no ``javascript:`` URLs)
before it reaches the notebook.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import html
import json
import os
import re
from collections.abc import Callable, Collection, Sequence
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import OutputFormatError
from .pngmeta import png_bytes

if TYPE_CHECKING:
    from .results import ImageResult, TextResult


# --------------------------------------------------------------------------- sanitizing


# Where a browser fetches a URL by itself: model output must not make it do that (a markdown
# image whose URL carries the notebook variables filled into the prompt is the usual leak).
_FETCHED = frozenset({
    "src", "srcset", "poster", "background", "lowsrc", "dynsrc", "data", "codebase", "archive",
    "longdesc", "xlink:href", "ping", "action", "formaction", "manifest", "imagesrcset", "icon", "usemap",
})
_RASTER = frozenset({"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp", "image/avif", "image/bmp"})
_CSS_FETCH = re.compile(r"url\s*\(|image-set|@import|\\|expression\s*\(", re.I)
_UNSAFE_URL = re.compile(r"[\x00-\x20\\]")  # browsers read a backslash as a slash; parsers differ

configured_image_hosts: frozenset[str] = frozenset()  # set by GenMagics.allowed_image_hosts


def allowed_image_hosts() -> frozenset[str]:
    """Hosts whose images model output may show: ``GenMagics.allowed_image_hosts`` plus the
    comma-separated ``$GENMAGIC_IMAGE_HOSTS`` (``*.example.org`` matches subdomains)."""
    env = os.environ.get("GENMAGIC_IMAGE_HOSTS", "")
    return configured_image_hosts | {h.strip().lower() for h in env.split(",") if h.strip()}


def _http_host(url: str) -> str:
    """The host of an absolute http(s) URL that every parser reads the same way, else ``""``."""
    url = url.strip()
    if _UNSAFE_URL.search(url):
        return ""
    try:
        parts = urlsplit(url)
        return (parts.hostname or "").lower() if parts.scheme.lower() in ("http", "https") else ""
    except ValueError:
        return ""


def image_url_allowed(url: str, hosts: Collection[str] = ()) -> bool:
    """A ``data:`` raster image, or an http(s) URL on one of ``hosts``; nothing else loads."""
    url = url.strip()
    if url.lower().startswith("data:"):
        return url[5:].split(",", 1)[0].split(";", 1)[0].strip().lower() in _RASTER
    host = _http_host(url)
    return bool(host) and any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in hosts)


def _srcset_allowed(value: str, hosts: Collection[str]) -> bool:
    candidates = [c.split()[0] for c in value.split(",") if c.strip()]
    return bool(candidates) and all(image_url_allowed(c, hosts) for c in candidates)


def _attribute_filter(hosts: Collection[str], remote_img: bool) -> Callable[[str, str, str], str | None]:
    """nh3's per-attribute hook: drop every URL the browser would fetch unless it may load.
    With ``remote_img``, an ``<img src>`` on any http(s) host is kept for :class:`_ImagesAsLinks`."""

    def keep(tag: str, attr: str, value: str) -> str | None:
        if attr in ("srcset", "imagesrcset"):
            return value if _srcset_allowed(value, hosts) else None
        if attr in _FETCHED or (attr == "href" and tag not in ("a", "area")):
            if image_url_allowed(value, hosts):
                return value
            if remote_img and tag == "img" and attr == "src" and _http_host(value):
                return value
            return None
        if attr == "href" and value.strip().lower().startswith("data:"):
            return None
        if attr == "style" and _CSS_FETCH.search(value):
            return None
        return value

    return keep


class _ImagesAsLinks(HTMLParser):
    """Re-emits nh3's (well-formed) output unchanged, except that an ``<img>`` that may not
    load becomes a link to it (never fetched unless clicked) or, without a URL, its alt text."""

    def __init__(self, hosts: Collection[str]) -> None:
        super().__init__(convert_charrefs=False)
        self.hosts = hosts
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        src = values.get("src", "")
        if tag != "img" or image_url_allowed(src, self.hosts):
            self.out.append(self.get_starttag_text() or "")
            return
        alt, host = values.get("alt", ""), _http_host(src)
        if host:
            label = html.escape(f"[image: {alt or host}]")
            self.out.append(f'<a href="{html.escape(src)}" title="remote image, not loaded">{label}</a>')
        elif alt:
            self.out.append(html.escape(f"[image: {alt}]"))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")


def sanitize_html(text: str, image_hosts: Collection[str] | None = None) -> str:
    """Model output as HTML that runs nothing and fetches nothing: nh3 removes scripts, event
    handlers and ``javascript:`` URLs; images load only from ``data:`` URLs or the allowed
    hosts (:func:`allowed_image_hosts`), any other image shows as a link that is not fetched;
    ``srcset``, ``poster``, CSS ``url()`` and the like go unless they may load."""
    import nh3

    hosts = allowed_image_hosts() if image_hosts is None else frozenset(image_hosts)
    schemes = {"http", "https", "mailto", "data"}
    cleaned = nh3.clean(text, url_schemes=schemes, attribute_filter=_attribute_filter(hosts, remote_img=True))
    parser = _ImagesAsLinks(hosts)
    parser.feed(cleaned)
    parser.close()
    # The same cleaner once more, now strict: whatever the rewrite did, nothing remote loads.
    return nh3.clean("".join(parser.out), url_schemes=schemes, attribute_filter=_attribute_filter(hosts, remote_img=False))


@functools.cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")


def markdown_html(text: str) -> str:
    return sanitize_html(_markdown().render(text))


_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n\s*```\s*$", re.S)


def strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text.strip()


def parse_json(text: str) -> Any:
    body = strip_fence(text)
    try:
        return json.loads(body)
    except json.JSONDecodeError as err:
        snippet = body[max(0, err.pos - 15): err.pos + 15].replace("\n", "\\n")
        raise OutputFormatError(
            f"the output is not valid JSON: {err.msg} at line {err.lineno} column {err.colno} "
            f"(char {err.pos}, near {snippet!r}); ask for JSON explicitly, raise --max-new-tokens, "
            "or use -f text to see the raw output"
        ) from None


# --------------------------------------------------------------------------- results


def _footer(result: TextResult) -> str:
    req = result.request
    parts = [req.model]
    if req.seed is not None:
        parts.append(f"seed {req.seed}")
    tokens = int(result.timings.get("tokens", 0))
    if tokens:
        parts.append(f"{tokens} tokens")
    rate = result.timings.get("tokens_per_s")
    if rate and not result.cached:
        parts.append(f"{rate:.0f} tok/s")
    if result.cached:
        parts.append("cached")
    if result.status != "ok":
        parts.append(result.status)
    if result.history_id:
        parts.append(f"history #{result.history_id}")
    return " · ".join(parts)


def _render_one(text: str, fmt: str) -> str:
    if fmt == "markdown":
        return markdown_html(text)
    if fmt == "html":
        return sanitize_html(text)
    if fmt == "json":
        try:
            return f"<pre>{html.escape(json.dumps(parse_json(text), indent=2, ensure_ascii=False))}</pre>"
        except OutputFormatError:
            return f"<pre>{html.escape(text)}</pre>"
    if fmt == "code":
        return f"<pre><code>{html.escape(strip_fence(text))}</code></pre>"
    return f'<pre style="white-space: pre-wrap">{html.escape(text)}</pre>'


def text_result_bundle(result: TextResult) -> dict[str, Any]:
    fmt = result.format
    texts = result.texts or [""]
    if len(texts) == 1:
        body = _render_one(texts[0], fmt)
    else:
        cells = "".join(
            f'<td style="vertical-align: top; text-align: left; width: {100 // len(texts)}%">'
            f"<div><b>#{i + 1}</b> <small>seed {(result.request.seed or 0) + i}</small></div>"
            f"{_render_one(t, fmt)}</td>"
            for i, t in enumerate(texts)
        )
        body = f'<table style="width: 100%; table-layout: fixed"><tr>{cells}</tr></table>'
    footer = f'<div style="color: #888; font-size: 0.8em">{html.escape(_footer(result))}</div>'
    plain = texts[0] if len(texts) == 1 else "\n\n".join(f"--- #{i + 1} ---\n{t}" for i, t in enumerate(texts))
    bundle: dict[str, Any] = {"text/plain": plain, "text/html": body + footer}
    # No text/markdown: a frontend would render the raw, unsanitized markdown.
    return bundle


# --------------------------------------------------------------------------- image results


DISPLAY_MIN = 192  # small images are shown enlarged (nearest neighbour) to at least this many pixels


def _image_footer(result: ImageResult) -> str:
    req = result.request
    opts = req.options
    parts = [req.model]
    if result.images:
        parts.append(f"{result.images[0].width}x{result.images[0].height}")
    parts.append(f"{getattr(opts, 'steps', '?')} steps")
    if result.info.get("scheduler"):
        parts.append(str(result.info["scheduler"]).removesuffix("Scheduler"))
    parts.append(f"CFG {getattr(opts, 'guidance', '?'):g}")
    if "generate" in result.timings and not result.cached:
        parts.append(f"{result.timings['generate']:.1f} s")
    if result.cached:
        parts.append("cached")
    if result.status != "ok":
        parts.append(result.status)
    if any(result.nsfw):
        parts.append(f"{sum(result.nsfw)} flagged by the model's safety checker")
    if result.history_id:
        parts.append(f"history #{result.history_id}")
    return " · ".join(parts)


def image_result_bundle(result: ImageResult) -> dict[str, Any]:
    captions = [f"seed {s}" + (" · flagged" if i < len(result.nsfw) and result.nsfw[i] else "")
                for i, s in enumerate(result.seeds)]
    return {"text/plain": repr(result), "text/html": grid_html(result.images, captions, _image_footer(result))}


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


# --------------------------------------------------------------------------- tables


def table_bundle(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, str]:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    text = [line, "  ".join("-" * w for w in widths)]
    text += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells
    )
    return {"text/plain": "\n".join(text), "text/html": f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"}


class Table:
    """A small table with a text and an HTML repr (``%genmagic models`` / ``history``)."""

    def __init__(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.headers = list(headers)
        self.rows = [list(r) for r in rows]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return table_bundle(self.headers, self.rows)

    def __repr__(self) -> str:
        return table_bundle(self.headers, self.rows)["text/plain"]

    def __len__(self) -> int:
        return len(self.rows)


def shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- environment


def in_kernel() -> bool:
    """True inside a Jupyter kernel (display updates work), False in a terminal."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
