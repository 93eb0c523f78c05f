"""Showing runs: live streaming into a cell or a terminal, sanitized markdown/HTML, tables.

Everything the model wrote is treated as untrusted: markdown is rendered to HTML and
HTML is cleaned with nh3 (no scripts, no event handlers, no ``javascript:`` URLs)
before it reaches the notebook.
"""

from __future__ import annotations

import fnmatch
import functools
import html
import json
import os
import re
import sys
import time
from collections.abc import Callable, Collection, Sequence
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import OutputFormatError
from .request import Event

if TYPE_CHECKING:
    from .request import TextResult


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


# --------------------------------------------------------------------------- live sinks


def in_kernel() -> bool:
    """True inside a Jupyter kernel (display updates work), False in a terminal."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class StreamSink:
    """Writes token events to a text stream as they come (the CLI, terminal IPython)."""

    cancelled = False

    def __init__(self, stream: Any = None, num: int = 1) -> None:
        self.stream = stream or sys.stdout
        self.num = num
        self.current = -1

    def emit(self, event: Event) -> None:
        if event.type == "token":
            if self.num > 1 and event.index != self.current:
                self.stream.write(("\n" if self.current >= 0 else "") + f"--- #{event.index + 1} ---\n")
                self.current = event.index
            self.stream.write(event.data)
            self.stream.flush()
        elif event.type == "status":
            sys.stderr.write(f"{event.data}\n")

    def close(self, success: bool, note: str = "") -> None:
        if note:
            self.stream.write(f"\n[{note}]")
        self.stream.write("\n")
        self.stream.flush()


class LiveView:
    """One display in the cell: shown on the first update, then updated in place."""

    def __init__(self) -> None:
        from IPython.display import DisplayHandle

        self.handle = DisplayHandle()
        self.shown = False

    def show(self, bundle: dict[str, Any]) -> None:
        if self.shown:
            self.handle.update(bundle, raw=True)
        else:
            self.handle.display(bundle, raw=True)
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.handle.update({"text/plain": ""}, raw=True)


class CellTextSink:
    """Streams tokens into a cell with a display handle, updated at most every ``interval`` s.

    The live view is cleared when the run succeeds (the result object is then shown as the
    cell's value) and kept when it fails or is interrupted, so partial output is never lost.
    """

    cancelled = False

    def __init__(self, num: int = 1, interval: float = 0.05) -> None:
        self.texts = [""] * num
        self.interval = interval
        self.last = 0.0
        self.view = LiveView()

    def emit(self, event: Event) -> None:
        if event.type != "token":
            return
        self.texts[event.index] += event.data
        now = time.monotonic()
        if now - self.last >= self.interval:
            self._update()
            self.last = now

    def _bundle(self, note: str = "") -> dict[str, str]:
        if len(self.texts) == 1:
            plain = self.texts[0]
            body = f'<pre style="white-space: pre-wrap">{html.escape(plain)}</pre>'
        else:
            plain = "\n\n".join(f"--- #{i + 1} ---\n{t}" for i, t in enumerate(self.texts))
            cells = "".join(
                f'<td style="vertical-align: top; text-align: left"><b>#{i + 1}</b>'
                f'<pre style="white-space: pre-wrap">{html.escape(t)}</pre></td>'
                for i, t in enumerate(self.texts)
            )
            body = f'<table style="width: 100%; table-layout: fixed"><tr>{cells}</tr></table>'
        if note:
            plain += f"\n[{note}]"
            body += f'<div style="color: #c60">{html.escape(note)}</div>'
        return {"text/plain": plain, "text/html": body}

    def _update(self, note: str = "") -> None:
        self.view.show(self._bundle(note))

    def close(self, success: bool, note: str = "") -> None:
        if success:
            self.view.clear()
        elif self.view.shown or any(self.texts):
            self._update(note)


def live_text_sink(num: int, stream: bool) -> Any:
    from .request import NullSink

    if not stream:
        return NullSink()
    return CellTextSink(num) if in_kernel() else StreamSink(num=num)
