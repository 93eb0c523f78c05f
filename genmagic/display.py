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
from collections.abc import Callable, Collection, Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
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
    """Markdown as safe HTML, CommonMark but for one thing: a Python dunder name (``__init__``,
    ``__init__.py``) stays as written, where CommonMark would make it a bold "init"."""
    md = _markdown()
    env: dict[str, Any] = {}
    tokens = md.parse(text, env)
    for token in tokens:
        if token.type == "inline" and token.children:
            token.children = _dunders_as_written(token.children)
    return sanitize_html(md.renderer.render(tokens, md.options, env))


_DUNDER_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _dunders_as_written(children: list[Any]) -> list[Any]:
    """Inline tokens with each ``__name__`` bold (``__`` around one lowercase identifier) back as its text."""
    out: list[Any] = []
    i = 0
    while i < len(children):
        token = children[i]
        inner = children[i + 1: i + 3]
        if (token.type == "strong_open" and token.markup == "__" and len(inner) == 2 and inner[0].type == "text"
                and inner[1].type == "strong_close" and _DUNDER_NAME.fullmatch(inner[0].content)):
            inner[0].content = f"__{inner[0].content}__"
            out.append(inner[0])
            i += 3
        else:
            out.append(token)
            i += 1
    return out


_FENCE = re.compile(r"^\s*```[\w-]*[ \t]*\n(.*?)(\n\s*```\s*)?$", re.S)


def strip_fence(text: str) -> str:
    """The code inside a fenced block; a fence not closed yet (streaming, or cut by
    --max-new-tokens) counts too."""
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


# --------------------------------------------------------------------------- colours

# JupyterLab's theme variables (light, dark, high contrast), with fallbacks for the classic
# notebook, nbviewer and GitHub, which do not define them.
MUTED = "var(--jp-ui-font-color2, #616161)"  # footers, captions
WARN = "var(--jp-warn-color0, #b35a00)"  # the mark of a run that failed or was interrupted
STRONG = "var(--jp-ui-font-color1, #212121)"  # the text of that note


def note_html(text: str, color: str = MUTED) -> str:
    """A small line under an output: a footer, or (``WARN``) a status that needs attention, shown
    in the strong text colour behind a warning-coloured mark (the warning colours are too light
    for small text on a light theme)."""
    if color == WARN:
        return (f'<div class="genmagic-note" style="color: {STRONG}; font-size: 0.85em; margin-top: 4px">'
                f'<span style="color: {WARN}">⚠</span> {html.escape(text)}</div>')
    return f'<div class="genmagic-note" style="color: {color}; font-size: 0.85em; margin-top: 4px">{html.escape(text)}</div>'


# --------------------------------------------------------------------------- results


_LINK_TARGET = (  # a URL, an absolute or relative path, an anchor, a document's file name
    r"(?:https?://|ftp://|mailto:|www\.|\.{0,2}/|#)[^)\s]*"
    r"|[\w.-]+/[^)\s]*"
    r"|[\w-]+\.(?:md|html?|txt|pdf|png|jpe?g|gif|svg|webp|ipynb|rst)(?:#[^)\s]*)?"
)
_MARKDOWN_SIGNS = [
    re.compile(r"^ {0,3}#{1,6} \S", re.M),  # a heading
    re.compile(r"^ {0,3}(```|~~~)", re.M),  # a code fence
    re.compile(r"^ {0,3}([-*+]|\d{1,3}[.)]) \S.*\n {0,3}([-*+]|\d{1,3}[.)]) \S", re.M),  # two list items in a row
    re.compile(r"(?<![*\w])\*\*(?=[^\s*])[^\n]*?(?<=[^\s*])\*\*(?![*\w])"),  # **bold**, not a**2 nor **kwargs
    # __bold__ around more than one identifier (__init__, __init__.py are names, not bold)
    re.compile(r"(?<!\w)__(?!\w+__(?!\w))(?=[^\s_])[^\n]*?[^\s_]__(?!\w)"),
    re.compile(r"(?<![*\w])\*[^\s*][^*\n]*?(?<=[^\s*])\*(?![*\w])"),  # *emphasis*, not 2 * 3 nor a*b*c
    re.compile(r"(?<!\w)_[^\s_][^_\n]*?(?<=[^\s_])_(?!\w)"),  # _emphasis_, not snake_case nor _private
    re.compile(r"`[^`\n]+`"),  # inline code
    re.compile(rf"(?<![\w\])])\[[^\]\n]+\]\((?:{_LINK_TARGET})\)"),  # a link, not handlers[name](event)
    re.compile(r"^ {0,3}\|?[^\n|]*\|[^\n]*\n {0,3}\|? *:?-{3,}:? *(\| *:?-{3,}:? *)*\|? *$", re.M),  # a table
]


def looks_like_markdown(text: str) -> bool:
    """Whether ``text`` uses markdown on purpose: a heading, a fence, a list, bold or emphasis,
    inline code, a link or a table. Conservative: a tab, a single ``-`` line or plain line
    breaks do not count (markdown would turn them into a code block or one paragraph)."""
    return any(sign.search(text) for sign in _MARKDOWN_SIGNS)


def resolve_format(text: str, fmt: str) -> str:
    """``auto`` becomes ``markdown`` or ``text`` for this output; other formats stay."""
    if fmt != "auto":
        return fmt
    return "markdown" if looks_like_markdown(text) else "text"


def _plain_html(text: str) -> str:
    """Text as the model wrote it: line breaks and spaces kept, in the notebook's own font."""
    return f'<div class="genmagic-text" style="white-space: pre-wrap; overflow-wrap: anywhere">{html.escape(text)}</div>'


def render_text(text: str, fmt: str, live: bool = False) -> str:
    """One output as HTML. ``live``: a partial output while it streams, shown in the style
    the finished one will have (JSON is pretty-printed only at the end)."""
    fmt = resolve_format(text, fmt)
    if fmt == "markdown":
        return markdown_html(text)
    if fmt == "html":
        return sanitize_html(text)
    if fmt == "json":
        try:
            shown = text if live else json.dumps(parse_json(text), indent=2, ensure_ascii=False)
        except OutputFormatError:
            shown = text
        return f"<pre>{html.escape(shown)}</pre>"
    if fmt == "code":
        return f"<pre><code>{html.escape(strip_fence(text))}</code></pre>"
    return _plain_html(text)


def text_body_html(texts: Sequence[str], fmt: str, seeds: Sequence[int | None] = (), live: bool = False) -> str:
    """The outputs of a text run: one, or ``-n`` side by side headed by their number and seed."""
    if len(texts) == 1:
        return render_text(texts[0], fmt, live)
    cells = []
    for i, t in enumerate(texts):
        seed = seeds[i] if i < len(seeds) else None
        label = f' <small style="color: {MUTED}">seed {seed}</small>' if seed is not None else ""
        cells.append(
            f'<td style="vertical-align: top; text-align: left; width: {100 // len(texts)}%">'
            f"<div><b>#{i + 1}</b>{label}</div>{render_text(t, fmt, live)}</td>"
        )
    return f'<table style="width: 100%; table-layout: fixed"><tr>{"".join(cells)}</tr></table>'


def text_plain(texts: Sequence[str]) -> str:
    return texts[0] if len(texts) == 1 else "\n\n".join(f"--- #{i + 1} ---\n{t}" for i, t in enumerate(texts))


def sample_seeds(seed: int | None, num: int) -> list[int | None]:
    """The seed of each of ``num`` samples: ``seed + i`` (none when decoding is greedy)."""
    return [None if seed is None else seed + i for i in range(num)]


def text_footer(result: TextResult) -> str:
    req = result.request
    parts = [req.model]
    if result.info.get("preset"):  # the prompt sent is result.request.prompt
        parts.append(str(result.info["preset"]))
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


def withheld_text(reason: str, status: str = "blocked") -> str:
    what = "held for review" if status == "review" else "rejected" if status == "rejected" else "withheld"
    return f"[{what} by a safety check: {reason}]"


def safety_line(result: Any) -> str:
    """The safety verdicts of a result in one line ('' when there are none to show)."""
    from .safety.labels import summary

    return summary(result.verdicts)


def text_result_bundle(result: TextResult) -> dict[str, Any]:
    texts = [withheld_text(result.withheld[i][1], result.status) if i in result.withheld else t
             for i, t in enumerate(result.texts)] or [""]
    fmt = "text" if result.withheld else result.format
    body = text_body_html(texts, fmt, sample_seeds(result.request.seed, len(texts)))
    safety = safety_line(result)
    notes = note_html(text_footer(result)) + (note_html("safety: " + safety, WARN) if safety else "")
    # No text/markdown: a frontend would render the raw, unsanitized markdown.
    plain = text_plain(texts) + (f"\n[safety: {safety}]" if safety else "")
    return {"text/plain": plain, "text/html": body + notes}


# --------------------------------------------------------------------------- image results


DISPLAY_MIN = 192  # small images are shown enlarged (nearest neighbour) to at least this many pixels


def _image_footer(result: ImageResult) -> str:
    req = result.request
    opts = req.options
    parts = [req.model]
    if result.info.get("preset"):
        parts.append(str(result.info["preset"]))
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
    if result.withheld:
        parts.append(f"{len(result.withheld)} withheld (blurred)")
    flagged = sum(1 for i, f in enumerate(result.nsfw) if f and i not in result.withheld)
    if flagged:
        parts.append(f"{flagged} flagged by the model's safety checker")
    if result.history_id:
        parts.append(f"history #{result.history_id}")
    return " · ".join(parts)


def image_caption(result: ImageResult, index: int) -> str:
    """``seed N``, and why the image is blurred and how to see it, or that it was flagged."""
    caption = f"seed {result.seeds[index]}" if index < len(result.seeds) else f"image {index + 1}"
    if index in result.withheld:
        from .safety.labels import category_name

        verdict = result.withheld_verdict(index)
        why = category_name(verdict.category) if verdict is not None else result.withheld[index][1]
        return f"{caption} · withheld: {why} · reveal: result.reveal({index})"
    if index < len(result.nsfw) and result.nsfw[index]:
        return f"{caption} · flagged"
    return caption


def image_result_bundle(result: ImageResult) -> dict[str, Any]:
    captions = [image_caption(result, i) for i in range(len(result.images))]
    safety = safety_line(result)
    note = note_html("safety: " + safety, WARN) if safety else ""
    plain = repr(result) + (f"\n[safety: {safety}]" if safety else "")
    return {"text/plain": plain, "text/html": grid_html(result.images, captions, _image_footer(result)) + note}


def display_png(image: Any) -> bytes:
    """PNG bytes for showing ``image`` inline: small images enlarged with nearest neighbour."""
    from PIL import Image

    scale = max(1, -(-DISPLAY_MIN // max(1, max(image.size))))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return png_bytes(image)


def grid_html(
    images: list[Any], captions: list[str], note: str = "", note_color: str = MUTED, enlarge: bool = True
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
            f'<figcaption style="font-size: 0.85em; color: {MUTED}">{caption}</figcaption></figure>'
        )
    footer = note_html(note, note_color) if note else ""
    return f'<div class="genmagic-images">{"".join(cells)}</div>{footer}'


# --------------------------------------------------------------------------- tables


def table_bundle(headers: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "") -> dict[str, str]:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    text = [line, "  ".join("-" * w for w in widths)]
    text += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return {"text/plain": "\n".join(text + ([note] if note else [])), "text/html": table + (note_html(note) if note else "")}


class Table:
    """A small table with a text and an HTML repr (``%genmagic models`` / ``history``);
    ``note`` is a line under it (a legend)."""

    def __init__(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "") -> None:
        self.headers = list(headers)
        self.rows = [list(r) for r in rows]
        self.note = note

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return table_bundle(self.headers, self.rows, self.note)

    def __repr__(self) -> str:
        return table_bundle(self.headers, self.rows, self.note)["text/plain"]

    def __len__(self) -> int:
        return len(self.rows)


DEFAULT_MARK = "*"
DEFAULT_LEGEND = "* the default model of its kind (used when -m is not given)"


def short_path(source: str) -> str:
    """A model source for a table: ``<genmagic>/models/tiny-text`` inside the package,
    ``~/...`` under the home folder, anything else (hub ids, other paths) as it is."""
    path = Path(source)
    if not path.is_absolute():
        return source
    for base, name in ((Path(__file__).parent, "<genmagic>"), (Path.home(), "~")):
        if path.is_relative_to(base):
            return f"{name}/{path.relative_to(base).as_posix()}"
    return source


def source_cell(spec: Any) -> str:
    """A registry entry's source for the models table: short path, its adapters, and a mark
    when no backend could read it (a typo or a folder not copied yet: the error comes at use)."""
    text = short_path(spec.source)
    if spec.adapters:
        text += " +" + ",".join(map(short_path, spec.adapters))
    return text if spec.backend else text + " (not found)"


def models_table(specs: Sequence[Any], defaults: Mapping[str, str], models: Any = None) -> Table:
    """``%genmagic models`` / ``genmagic models``: one row per registry entry (``*`` marks the
    default of its kind); with ``models`` (the loaded-model cache) also whether each is loaded
    and its memory (once per loaded model), plus the loaded models no entry names."""
    headers = ["alias", "kind", "backend", "source", "from"]
    memory = models.memory_by_alias(specs) if models is not None else {}
    rows = []
    for spec in sorted(specs, key=lambda s: (s.kind, s.alias)):
        row = [spec.alias + (DEFAULT_MARK if defaults.get(spec.kind) == spec.alias else ""), spec.kind, spec.backend,
               source_cell(spec), spec.origin]
        if models is not None:
            row += ["yes" if models.is_loaded(spec) else "no", memory.get(spec.alias, "")]
        rows.append(row)
    if models is not None:
        headers += ["loaded", "memory"]
        known = {(s.source, s.adapters) for s in specs}
        for loaded in models.loaded():
            spec = loaded.spec
            if (spec.source, spec.adapters) not in known:
                rows.append([spec.alias, spec.kind, spec.backend, source_cell(spec), spec.origin, "yes",
                             f"{loaded.nbytes / 2**20:.1f} MB"])
    return Table(headers, rows, DEFAULT_LEGEND)


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
