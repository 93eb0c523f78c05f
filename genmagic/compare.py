"""``--compare AXIS=V1,V2,...``: the same prompt run over one or two axes, as a labelled grid.

::

    %%imagine --compare seed=1,2,3 --compare steps=10,30
    a red circle

AXIS is any option of the run's kind (``seed``, ``temperature``, ``steps``, ``guidance``,
``scheduler``, ``width``, ...), ``model``, or the preset (``tone`` for text, ``style`` for
images). Values are parsed and checked with that option's type and bounds; they are split at
``,`` (or at ``|`` when a value holds commas: ``negative=blurry, dark|sharp``). The first axis
runs along the columns (x), the second down the rows (y); every other option applies to every
cell. Without ``--seed`` (and no seed axis) one seed is drawn for the whole grid, so the cells
differ only by their axes.

Every cell is built and checked before any runs (a bad value or model fails the whole grid at
once), then run through the modality's run layer (:func:`_run_cells`): each cell is one run in
history with its own request. A cell that a safety check blocks or withholds shows its stand-in
and reason; the other cells still run. An interrupt keeps the finished cells.

The result (:class:`CompareResult`) holds every :class:`Cell` (its values, full request and
result); ``grid[x, y]`` (from 0) or ``grid.at(seed=2, steps=30)`` picks one; images render as one
labelled PIL image (:meth:`CompareResult.grid`), saved by :meth:`CompareResult.save` as a PNG whose
metadata re-runs any cell: ``%%imagine --from grid.png --cell 2,1`` (from 1, like the labels).
"""

from __future__ import annotations

import dataclasses
import difflib
import html
import random
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GenmagicError, OptionError

if TYPE_CHECKING:
    from .engine import Engine
    from .options import Controls, Options
    from .request import Request
    from .results import Result

MAX_AXES = 2
MAX_VALUES = 16  # per axis
MAX_CELLS = 64
# Options that are not an axis: the number of outputs per run (a cell is one output) and a conversation.
NOT_AXES = frozenset({"num", "chat"})
PRESET_AXIS = {"text": "tone", "image": "style"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class Axis:
    """One ``--compare``: the option (or ``model``, ``tone``/``style``), its values and their labels as typed."""

    name: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]


@dataclass
class Cell:
    """One cell of a comparison: ``x``/``y`` from 0, the axis values, the request and the result
    (``None`` when the run never produced one: ``error`` says why, e.g. a blocked prompt)."""

    x: int
    y: int
    values: dict[str, Any]
    request: Request
    result: Result | None = None
    error: str | None = None
    finish: Callable[[Result], None] | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return ", ".join(f"{name}={_label(value)}" for name, value in self.values.items())

    @property
    def status(self) -> str:
        if self.result is not None:
            return self.result.status
        if not self.error:
            return "pending"
        return "interrupted" if self.error == "interrupted" else self.error.partition(":")[0]  # blocked | error

    @property
    def text(self) -> str:
        """The cell's text as shown (a withheld output's stand-in names the reason)."""
        from .display import withheld_text

        result: Any = self.result
        if result is None:
            return f"[{self.error or 'not run'}]"
        if 0 in result.withheld:
            return withheld_text(result.withheld[0][1], result.status)
        return str(result.texts[0]) if result.texts else ""

    @property
    def image(self) -> Any:
        """The cell's image as shown (blurred when withheld), or None."""
        result: Any = self.result
        return result.images[0] if result is not None and getattr(result, "images", None) else None


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "+".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


# --------------------------------------------------------------------------- parsing


def axis_names(kind: str) -> list[str]:
    """What ``--compare`` takes for a run kind: its options, ``model`` and its preset."""
    from .options import options_class

    names = [f.name for f in options_class(kind).option_fields() if f.name not in NOT_AXES]
    return sorted([*names, "model", PRESET_AXIS[kind]])


def _bool(text: str) -> bool:
    if text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    raise OptionError(f"expected true or false, got {text!r}")


def parse_value(kind: str, axis: str, text: str, registry: Any = None) -> Any:
    """One value of an axis, parsed and checked like the option it names."""
    import argparse

    from . import options as opts

    if axis == "model":
        if not text:
            raise OptionError("a model name is empty")
        return text
    if axis == PRESET_AXIS[kind]:
        from .presets import get

        return get(kind, text, registry).name
    fields = {f.name: f for f in opts.options_class(kind).option_fields()}
    f = fields[axis]
    spec: opts.Spec = f.metadata["spec"]
    if spec.repeat:
        return () if text.lower() == "none" else (opts.unescape(text) if spec.escapes else text,)
    if text.lower() == "none" and "None" in str(f.type):
        return None
    if opts._base_type(f.type) is bool:
        return _bool(text)
    try:
        return opts._argparse_type(f)(text)
    except argparse.ArgumentTypeError as err:
        raise OptionError(str(err)) from None


def parse_axes(specs: Sequence[str], kind: str, registry: Any = None) -> list[Axis]:
    """``["seed=1,2", "steps=10,30"]`` → two :class:`Axis`; one-line errors naming the axis and value."""
    if len(specs) > MAX_AXES:
        raise OptionError(f"--compare takes at most {MAX_AXES} axes (columns and rows), got {len(specs)}: "
                          + " ".join(f"--compare {s}" for s in specs))
    valid = axis_names(kind)
    axes: list[Axis] = []
    for spec in specs:
        name, eq, rest = spec.partition("=")
        axis = name.strip().lstrip("-").replace("-", "_")
        if not eq or not axis:
            raise OptionError(f"--compare {spec}: write AXIS=V1,V2,..., e.g. --compare seed=1,2,3")
        if axis not in valid:
            close = difflib.get_close_matches(axis, valid, n=1, cutoff=0.6)
            if axis in PRESET_AXIS.values():  # style for text, tone for images
                close = [PRESET_AXIS[kind]]
            mean = f"did you mean {close[0]}? " if close else ""
            raise OptionError(f"--compare {spec}: {name.strip()!r} is not something to compare for {kind}; "
                              f"{mean}valid axes: {', '.join(valid)}")
        if any(a.name == axis for a in axes):
            raise OptionError(f"--compare {spec}: {axis} is already an axis; give all its values at once: "
                              f"--compare {axis}=V1,V2,...")
        labels = [v.strip() for v in rest.split("|" if "|" in rest else ",")]
        if not rest.strip() or any(not v for v in labels):
            raise OptionError(f"--compare {spec}: an empty value; e.g. --compare {axis}=V1,V2")
        if len(labels) > MAX_VALUES:
            raise OptionError(f"--compare {spec}: {len(labels)} values, over {MAX_VALUES} per axis; compare fewer")
        values = []
        for label in labels:
            try:
                values.append(parse_value(kind, axis, label, registry))
            except OptionError as err:
                raise OptionError(f"--compare {axis}={label}: {err}") from None
        if len(set(map(repr, values))) < len(values):
            raise OptionError(f"--compare {spec}: a value is repeated; give each value once")
        axes.append(Axis(axis, tuple(values), tuple(labels)))
    cells = 1
    for a in axes:
        cells *= len(a.values)
    if cells > MAX_CELLS:
        raise OptionError(f"--compare: {cells} cells, over {MAX_CELLS}; compare fewer values")
    return axes


# --------------------------------------------------------------------------- building and running


def _prepare(kind: str) -> Callable[..., tuple[Request, Callable[[Result], None]]]:
    if kind == "text":
        from .text_run import prepare as prepare_text

        return prepare_text
    from .image_run import prepare as prepare_image

    return prepare_image


def build_cells(
    engine: Engine,
    kind: str,
    axes: Sequence[Axis],
    prompt: str,
    options: Options,
    controls: Controls,
    *,
    model: str | None = None,
    given: Collection[str] | None = None,
    **extra: Any,
) -> list[Cell]:
    """Every cell's request, built and checked before any runs (row by row, x fastest)."""
    preset_axis = PRESET_AXIS[kind]
    given_set = set(given) if given is not None else {f.name for f in type(options).option_fields()}
    for axis in axes:
        if given is not None and axis.name in given_set and axis.name not in ("model", preset_axis):
            raise OptionError(f"--compare {axis.name}=...: --{axis.name.replace('_', '-')} is also given; "
                              "drop one (the axis gives every cell its value)")
    if getattr(options, "num", 1) != 1:
        raise OptionError("-n and --compare: a comparison shows one output per cell; compare seeds instead, "
                          "e.g. --compare seed=1,2,3")
    if getattr(options, "chat", False):
        raise OptionError("--chat and --compare: a comparison is not a conversation turn; drop --chat")
    if getattr(controls, "from_image", None):
        raise OptionError("--from and --compare: re-run the stored image first (--from), then compare from its "
                          "prompt and options")
    if getattr(options, "seed", 0) is None and not any(a.name == "seed" for a in axes):
        # one seed for the grid: the cells differ only by their axes
        options = dataclasses.replace(options, seed=random.SystemRandom().randrange(2**31))  # type: ignore[call-arg]
        given_set.add("seed")
        given = None if given is None else given_set
    xs = axes[0] if axes else Axis("", (None,), ("",))
    ys = axes[1] if len(axes) > 1 else Axis("", (None,), ("",))
    prepare = _prepare(kind)
    cells: list[Cell] = []
    for y, y_value in enumerate(ys.values):
        for x, x_value in enumerate(xs.values):
            values = {a.name: v for a, v in ((xs, x_value), (ys, y_value)) if a.name}
            cell_options, cell_controls, cell_model = options, controls, model
            cell_given = None if given is None else set(given)
            for name, value in values.items():
                if name == "model":
                    cell_model = value
                elif name == preset_axis:
                    cell_controls = dataclasses.replace(cell_controls, **{name: value})
                else:
                    cell_options = dataclasses.replace(cell_options, **{name: value})
                    if cell_given is not None:
                        cell_given.add(name)
            try:
                request, finish = prepare(engine, prompt, cell_options, cell_controls, model=cell_model,
                                          given=cell_given, **extra)
            except GenmagicError as err:
                where = ", ".join(f"{k}={_label(v)}" for k, v in values.items())
                raise type(err)(f"--compare cell {where}: {err}") from None
            cells.append(Cell(x, y, values, request, finish=finish))
    return cells


def _run_cells(
    engine: Engine,
    cells: Sequence[Cell],
    controls: Controls,
    *,
    where: Mapping[str, Any] | None = None,
    progress: Callable[[int, int, Cell], None] | None = None,
) -> str:
    """Run every cell through the run layer (one history row each); ``"ok"``, or ``"interrupted"``
    when an interrupt stopped the grid (the finished cells are kept).

    This is the one place the grid runs: batching cells that share a model and a size
    (``Engine.run_many``) belongs here."""
    finished = 0

    def heard(index: int, result: Result) -> None:
        nonlocal finished
        finished += 1
        if progress is not None:
            progress(finished, len(cells), cells[min(finished, len(cells) - 1)])  # the next, in grid order

    if progress is not None:
        progress(0, len(cells), cells[0])
    # one batch per model and size where the backend batches (images sharing steps and guidance)
    results = engine.run_many([cell.request for cell in cells], progress=heard, cache=controls.cache,
                              finish=[cell.finish for cell in cells], safety=controls.safety,
                              concurrency=controls.concurrency, batch_size=controls.batch_size, **dict(where or {}))
    status = "ok"
    for cell, result in zip(cells, results, strict=True):
        if result.status == "blocked" and not result.withheld:  # the request was blocked: nothing ran
            cell.error = f"blocked: {result.error} (history #{result.history_id})"
        elif result.status == "interrupted" and result.history_id is None:  # not run: Ctrl-C came first
            status = "interrupted"  # the cell stays pending
        elif result.status == "error" and not result._outputs():  # this cell's value does not fit the model
            cell.error = f"error: {result.error}"
        else:
            cell.result = result
            if result.status == "interrupted":
                status = "interrupted"
    if all(cell.error and cell.error.startswith("error:") for cell in cells):
        raise GenmagicError(str(cells[-1].error).removeprefix("error: "))  # every cell failed: the one-line error
    return status


def run(
    engine: Engine,
    kind: str,
    prompt: str,
    options: Options,
    controls: Controls,
    *,
    model: str | None = None,
    given: Collection[str] | None = None,
    where: Mapping[str, Any] | None = None,
    progress: Callable[[int, int, Cell], None] | None = None,
    **extra: Any,
) -> CompareResult:
    """Parse ``controls.compare``, build every cell, run them: the comparison's result."""
    axes = parse_axes(controls.compare, kind, engine.registry)
    cells = build_cells(engine, kind, axes, prompt, options, controls, model=model, given=given, **extra)
    status = _run_cells(engine, cells, controls, where=where, progress=progress)
    fmt = getattr(controls, "format", "auto")
    return CompareResult(kind, prompt, axes, cells, status=status, format=fmt)


# --------------------------------------------------------------------------- the result


@dataclass
class CompareResult:
    """Every cell of a comparison, row by row (x fastest); ``grid[x, y]`` from 0."""

    kind: str
    prompt: str
    axes: list[Axis]
    cells: list[Cell]
    status: str = "ok"  # ok | interrupted
    format: str = "auto"

    @property
    def columns(self) -> int:
        return len(self.axes[0].values) if self.axes else 1

    @property
    def rows(self) -> int:
        return len(self.axes[1].values) if len(self.axes) > 1 else 1

    @property
    def shape(self) -> tuple[int, int]:
        """``(columns, rows)``."""
        return self.columns, self.rows

    @property
    def results(self) -> list[Result | None]:
        return [c.result for c in self.cells]

    @property
    def ok(self) -> bool:
        return self.status == "ok" and all(c.result is not None and c.result.ok for c in self.cells)

    def __len__(self) -> int:
        return len(self.cells)

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cells)

    def __getitem__(self, key: int | tuple[int, int]) -> Cell:
        x, y = (key, 0) if isinstance(key, int) else key
        if not (0 <= x < self.columns and 0 <= y < self.rows):
            raise IndexError(f"cell ({x}, {y}) is outside the grid of {self.columns} columns and {self.rows} rows "
                             "(counted from 0)")
        return self.cells[y * self.columns + x]

    def at(self, **values: Any) -> Cell:
        """The cell with these axis values (a value or its label as typed): ``grid.at(seed=2)``."""
        for cell in self.cells:
            if all(k in cell.values and (cell.values[k] == v or _label(cell.values[k]) == str(v))
                   for k, v in values.items()):
                return cell
        axes = "; ".join(f"{a.name}: {', '.join(a.labels)}" for a in self.axes)
        raise KeyError(f"no cell with {values}; the axes are {axes}")

    def labels(self) -> tuple[list[str], list[str]]:
        """The column and row labels (``"seed=1"``; a single row or column has none)."""
        def of(axis: Axis | None) -> list[str]:
            return [f"{axis.name}={label}" for label in axis.labels] if axis else [""]

        return of(self.axes[0] if self.axes else None), of(self.axes[1] if len(self.axes) > 1 else None)

    # -- images
    def grid(self, cell_size: int = 128) -> Any:
        """Images: one PIL image with the cells and the axis labels (small images enlarged to
        ``cell_size``). Text: the cells' texts as rows of columns."""
        if self.kind == "text":
            return [[self[x, y].text for x in range(self.columns)] for y in range(self.rows)]
        from .gridimage import labelled_grid

        columns, rows = self.labels()
        images = [c.image for c in self.cells]
        notes = [_image_note(c) for c in self.cells]
        return labelled_grid(images, self.columns, columns, rows, notes, cell_size)

    def save(self, path: str | Path) -> Path:
        """Images: the labelled grid as a PNG whose metadata re-runs any cell (``--from PATH --cell X,Y``).
        Text: the labelled blocks as a text file."""
        from .results import write_atomic

        target = Path(path).expanduser()
        if self.kind == "text":
            return write_atomic(target, (self.plain() + "\n").encode("utf-8"))
        from .pngmeta import grid_metadata, png_bytes

        records = []
        for cell in self.cells:
            result: Any = cell.result
            if result is not None and result.images:
                records.append(result.metadata(0))
            else:  # never ran: its request still re-runs it
                records.append({"request": cell.request.to_dict(), "index": 0, "seed": cell.request.seed,
                                "sources": {}, "parameters": ""})
        axes = [(a.name, list(a.labels)) for a in self.axes]
        meta = grid_metadata(axes, records, str(records[0].get("parameters", "")) if records else "")
        return write_atomic(target, png_bytes(self.grid(), meta))

    # -- display
    def plain(self) -> str:
        """Labelled blocks, one per cell."""
        blocks = []
        for cell in self.cells:
            head = f"--- {cell.label or 'cell'} ---"
            body = cell.text if self.kind == "text" else _image_note(cell) or repr(cell.result)
            blocks.append(f"{head}\n{body}")
        return "\n\n".join(blocks)

    def __repr__(self) -> str:
        axes = ", ".join(f"{a.name}={list(a.labels)}" for a in self.axes)
        done = sum(c.result is not None for c in self.cells)
        return (f"CompareResult(kind={self.kind!r}, axes=[{axes}], shape={self.shape}, cells={done}/{len(self.cells)} run, "
                f"status={self.status!r})")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.plain() if self.kind == "text" else repr(self))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": self.plain() if self.kind == "text" else repr(self), "text/html": self.html()}

    def html(self) -> str:
        """A table: the x labels over the columns, the y labels beside the rows."""
        from .display import MUTED, WARN, display_png, note_html, render_text

        columns, rows = self.labels()
        head = "".join(f"<th style='text-align:center'>{html.escape(c)}</th>" for c in columns)
        corner = f"<th>{html.escape(self.axes[1].name) if len(self.axes) > 1 else ''}</th>" if len(self.axes) > 1 else ""
        body = []
        for y in range(self.rows):
            tds = [f"<th style='text-align:right; vertical-align:middle'>{html.escape(rows[y])}</th>"] if len(self.axes) > 1 else []
            for x in range(self.columns):
                cell = self[x, y]
                note = _image_note(cell) if self.kind == "image" else _text_note(cell)
                color = WARN if cell.status != "ok" else MUTED
                caption = f"<div style='font-size:0.85em; color:{color}'>{html.escape(note)}</div>" if note else ""
                if self.kind == "text":
                    fmt = "text" if (cell.result is None or cell.result.withheld) else self.format
                    content = render_text(cell.text, fmt)
                    style = f"vertical-align:top; text-align:left; width:{100 // max(1, self.columns)}%"
                elif cell.image is not None:
                    import base64

                    data = base64.b64encode(display_png(cell.image)).decode("ascii")
                    content = (f'<img src="data:image/png;base64,{data}" style="image-rendering: pixelated" '
                               f'alt="{html.escape(cell.label)}"/>')
                    style = "text-align:center; vertical-align:top"
                else:
                    content = f"<div style='color:{WARN}'>[{html.escape(cell.error or 'not run')}]</div>"
                    style = "text-align:center; vertical-align:middle"
                tds.append(f"<td style='{style}'>{content}{caption}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        table_style = "width:100%; table-layout:fixed" if self.kind == "text" else ""
        table = (f"<table class='genmagic-compare' style='{table_style}'><thead><tr>{corner}{head}</tr></thead>"
                 f"<tbody>{''.join(body)}</tbody></table>")
        footer = f"{self.kind} comparison · {self.columns}×{self.rows} cells"
        ids = [c.result.history_id for c in self.cells if c.result is not None and c.result.history_id]
        if ids:
            footer += f" · history #{min(ids)}–#{max(ids)}" if len(ids) > 1 else f" · history #{ids[0]}"
        if self.status != "ok":
            footer += f" · {self.status}: {sum(c.result is not None for c in self.cells)} of {len(self.cells)} cells done"
        return table + note_html(footer, WARN if self.status != "ok" else MUTED)


def _text_note(cell: Cell) -> str:
    result = cell.result
    if result is None:
        return ""
    parts = [f"seed {result.request.seed}"] if result.request.seed is not None else []
    if result.cached:
        parts.append("cached")
    if result.status != "ok":
        parts.append(result.status)
    return " · ".join(parts)


def _image_note(cell: Cell) -> str:
    """A cell's caption: its seed, and why it is withheld or did not run."""
    result: Any = cell.result
    if result is None:
        return cell.error or "not run"
    parts = [f"seed {result.seeds[0]}"] if result.seeds else []
    if result.withheld:
        parts.append(f"withheld: {result.withheld[min(result.withheld)][1]}")
    elif result.status != "ok":
        parts.append(result.status)
    return " · ".join(parts)


def progress_view(kind: str) -> Callable[[int, int, Cell], None]:
    """``cell k of n`` while a comparison runs: one line updated in place in a notebook, else on stderr."""
    from .display import in_kernel

    if in_kernel():
        from IPython.display import HTML, display

        from .display import MUTED

        handle: Any = None

        def show(done: int, total: int, cell: Cell) -> None:
            nonlocal handle
            text = f"{kind} comparison: cell {done + 1} of {total} ({cell.label})" if done < total else ""
            view = HTML(f"<div style='color:{MUTED}; font-size:0.85em'>{html.escape(text)}</div>" if text else "")
            if handle is None:
                handle = display(view, display_id=True)
            else:
                handle.update(view)

        return show

    import sys

    def line(done: int, total: int, cell: Cell) -> None:
        if done < total:
            print(f"genmagic: cell {done + 1} of {total}: {cell.label}", file=sys.stderr)

    return line


def cli(kind: str, prompt: str, options: Options, controls: Controls, given: Collection[str], output: str | None) -> int:
    """``genmagic generate|imagine ... --compare ...``: text as labelled blocks on stdout; images as
    one labelled grid PNG at ``-o`` (its path on stdout). Exit status: 130 interrupted, 3 when a
    safety check blocked or withheld a cell, else 0."""
    import sys

    from .engine import default_engine

    if kind == "image" and output:
        from .image_run import output_paths

        paths = output_paths(output, 1)  # a wrong -o fails before the run
        if not paths:
            raise OptionError(f"-o {output}: a comparison is one grid PNG; give a file name, e.g. -o grid.png")
        output = paths[0]
    grid = run(default_engine(), kind, prompt, options, controls, model=controls.model, given=given,
               progress=progress_view(kind))
    if kind == "text":
        sys.stdout.write(grid.plain() + "\n")
    elif output:
        import os

        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        print(grid.save(output))
    else:
        print(f"genmagic: {len(grid)} cells in history; pass -o grid.png to write the labelled grid", file=sys.stderr)
    if grid.status == "interrupted":
        print("genmagic: interrupted; the finished cells are kept in history", file=sys.stderr)
        return 130
    failed = [c for c in grid if c.error and c.error.startswith("error:")]
    for cell in failed:
        print(f"genmagic: cell {cell.label}: {cell.error}", file=sys.stderr)
    if failed:
        return 2
    held = [c for c in grid if c.result is None or c.result.withheld or c.result.status in ("blocked", "review")]
    if held:
        print(f"genmagic: {len(held)} cell(s) blocked or withheld by a safety check: "
              + "; ".join(f"{c.label}: {_image_note(c) if kind == 'image' else c.text}" for c in held), file=sys.stderr)
        return 3
    return 0
