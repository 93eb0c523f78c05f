"""``--over``: one run per item of a list / pandas Series, or per row of a DataFrame.

Shared by ``%%generate --over VAR`` / ``%%imagine --over VAR``, :func:`genmagic.generate_many`
and ``genmagic generate --over FILE``::

    rows_of(data)  → one mapping per row: {"item": value} (list, Series) or the row's columns
    fill(template, row, namespace) per row  → prompts   ({column}, {row[any name]}, {item}, variables)
    the modality's build_request per row    → Engine.run_many (screening, cache, batches, history)
    BatchResult: every row's Result; .value is a list (list input), a Series on the input's index,
    or the DataFrame with --out-column (one column per key when every output is a JSON object)

A row that fails (blocked, an error, -f json that does not parse) gets a missing value and its
reason in ``BatchResult.errors`` (and a Series' / DataFrame's ``attrs["genmagic_errors"]``); the
others are kept. Re-running the same cell serves the finished rows from the cache.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import ChainMap
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import OptionError, PromptError
from .prompt import _PLACEHOLDER, interpolate

if TYPE_CHECKING:
    from .engine import Engine
    from .options import Controls, Options
    from .results import Result


def is_table(data: Any) -> bool:
    """A pandas DataFrame (without importing pandas)."""
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns") and hasattr(data, "itertuples")


def _is_series(data: Any) -> bool:
    return type(data).__name__ == "Series" and hasattr(data, "index") and hasattr(data, "to_list")


def rows_of(data: Any, name: str = "--over") -> list[dict[str, Any]]:
    """One mapping per row: a DataFrame row's columns (and ``row``: the whole row, for column
    names that are not identifiers), or ``{"item": value}``."""
    if is_table(data):
        columns = [str(c) for c in data.columns]
        out = []
        for values in data.itertuples(index=False, name=None):
            row = dict(zip(columns, values, strict=True))
            out.append({**row, "row": row})
        return out
    if _is_series(data):
        return [{"item": value} for value in data.to_list()]
    if isinstance(data, (list, tuple)):
        return [{"item": value} for value in data]
    raise OptionError(
        f"{name} is a {type(data).__name__}: --over takes a list, a pandas Series or a DataFrame"
        + (f"; e.g. list({name})" if hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)) else "")
    )


def check_template(template: str, rows: Sequence[Mapping[str, Any]], namespace: Mapping[str, Any] | None,
                   name: str) -> None:
    """Every ``{placeholder}`` names a column (``item``) or a notebook variable, else a one-line
    error naming what exists."""
    if not rows:
        return
    known = set(rows[0]) | set(namespace or {})
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) is None:
            continue
        base = match.group(1).split(".")[0].split("[")[0]
        key = match.group(1)[len(base) + 1:-1] if base == "row" and match.group(1).startswith("row[") else None
        if key is not None and key not in rows[0].get("row", {}):
            base = f"row[{key}]"  # {row[any name]}: that name must be a column
        if base not in known:
            fields = [k for k in rows[0] if k != "row"]
            what = "columns" if "item" not in rows[0] else "placeholder"
            raise PromptError(
                f"unknown placeholder {{{base}}} in the prompt: the rows of {name} have the {what} "
                f"{', '.join(fields)}" + (" ({row[NAME]} for any column name)" if what == "columns" else "")
                + "; notebook variables fill the rest"
            )


def fill(template: str, row: Mapping[str, Any], namespace: Mapping[str, Any] | None) -> str:
    """The row's prompt; an empty cell (NaN, None, pd.NA) fills in as empty text, never as "nan"."""
    values = {name: "" if _missing(value) else value for name, value in row.items() if name != "row"}
    if "row" in row:
        values["row"] = {name: value for name, value in values.items() if name in row["row"]}
    return interpolate(template, ChainMap(values, dict(namespace or {})))


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' missing values, without importing pandas


SHOWN = 50  # rows (or images) a BatchResult shows


class BatchResult:
    """Every row's result of a ``--over`` run, in the input's order.

    ``results``: the per-row :class:`~genmagic.results.Result` (status, history id, timings);
    ``value``: what the magic returns (list, Series, DataFrame: a JSON object's key that is already
    an input column gets ``_output`` appended); ``errors``: row label → reason
    for the rows that have no output; ``history_ids``: the history row of every row (None when
    it did not run)."""

    def __init__(self, data: Any, prompts: list[str], results: list[Result], fmt: str = "auto",
                 out_column: str | None = None, inplace: bool = False) -> None:
        self.data = data
        self.prompts = prompts
        self.results = results
        self.format = fmt
        self.labels = list(data.index) if (is_table(data) or _is_series(data)) else list(range(len(results)))
        self.outputs = [_output(r, fmt) for r in results]
        self.errors = {label: _reason(r) for label, r in zip(self.labels, results, strict=True) if not _has_output(r)}
        self.history_ids = [r.history_id for r in results]
        self.seconds = 0.0  # the whole run, set by run_over
        self.value = self._value(out_column, inplace)

    @property
    def interrupted(self) -> bool:
        return any(r.status == "interrupted" for r in self.results)

    def _value(self, out_column: str | None, inplace: bool) -> Any:
        data = self.data
        if not (is_table(data) or _is_series(data)):
            return list(self.outputs)
        import pandas as pd

        if is_table(data) and (out_column is not None or _all_objects(self.outputs)):
            frame = data if inplace else data.copy()
            if _all_objects(self.outputs):  # a JSON object (or --schema instance) per row: one column per field
                rows = [_fields(o) for o in self.outputs]
                keys = list(dict.fromkeys(k for o in rows if o is not None for k in o))
                for key in keys:
                    column = f"{out_column}_{key}" if out_column else str(key)
                    if column in data.columns:  # never over an input column
                        column += "_output"
                    frame[column] = pd.Series([o.get(key) if o is not None else None for o in rows],
                                              index=frame.index, dtype=object)
            else:
                frame[out_column] = pd.Series(self.outputs, index=frame.index, dtype=object)
            frame.attrs["genmagic_errors"] = dict(self.errors)
            frame.attrs["genmagic_history"] = list(self.history_ids)
            return frame
        series = pd.Series(self.outputs, index=data.index, dtype=object,
                           name=getattr(data, "name", None) if _is_series(data) else None)
        series.attrs["genmagic_errors"] = dict(self.errors)
        series.attrs["genmagic_history"] = list(self.history_ids)
        return series

    def summary(self) -> str:
        """One line: how many rows failed and why (the first few), or nothing when none did."""
        if not self.errors:
            return ""
        total = len(self.results)
        failed = {label: why for label, why in self.errors.items() if why != NOT_RUN}
        not_run = len(self.errors) - len(failed)
        head = f"{len(self.errors)} of {total} rows have no output"
        if not_run:
            resumable = all(r.request.seed_given or r.request.options.deterministic()  # type: ignore[attr-defined]
                            for r in self.results)
            head += f" ({not_run} not run: interrupted; " + (
                "run it again to resume, finished rows come from the cache)" if resumable else
                "the rows had random seeds, so a re-run runs them all again: give --seed N (or --temperature 0) "
                "to make the rows resumable)")
        if not failed:
            return head
        shown = "; ".join(f"row {label}: {why}" for label, why in list(failed.items())[:3])
        more = f"; … {len(failed) - 3} more" if len(failed) > 3 else ""
        return f"{head}: {shown}{more}"

    def __len__(self) -> int:
        return len(self.results)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """A table of the rows (label, history id, prompt, output or why there is none); images as a
        grid captioned with each row's label and prompt."""
        from .display import grid_html, shorten, table_bundle

        note = self.summary() or f"{len(self.results)} rows"
        images = [(label, prompt, out) for label, prompt, out in zip(self.labels, self.prompts, self.outputs, strict=True)
                  if out is not None and not isinstance(out, (str, dict, list))][:SHOWN]
        rows = [[label, f"#{r.history_id}" if r.history_id else "", shorten(prompt, 40),
                 shorten(out if isinstance(out, str) else str(out), 60) if out is not None else f"<{_reason(r)}>"]
                for label, prompt, r, out in list(zip(self.labels, self.prompts, self.results, self.outputs,
                                                      strict=True))[:SHOWN]]
        if len(self.results) > SHOWN:
            note = f"the first {SHOWN} of {len(self.results)} rows" + ("; " + self.summary() if self.errors else "")
        bundle = table_bundle(["row", "history", "prompt", "output"], rows, note)
        if images:
            bundle["text/html"] = grid_html([img for *_, img in images],
                                            [f"{label}: {shorten(prompt, 30)}" for label, prompt, _ in images], note)
        return bundle

    def __repr__(self) -> str:
        return self._repr_mimebundle_()["text/plain"]


def _has_output(result: Result) -> bool:
    return result.ok and not result.withheld


def _output(result: Result, fmt: str) -> Any:
    """A row's value: its text (a list of texts with ``-n``), parsed JSON with ``-f json``, its image
    (a list with ``-n``); None when it has no output."""
    if not _has_output(result):
        return None
    images = getattr(result, "images", None)
    if images is not None:
        return images[0] if len(images) == 1 else list(images)
    if fmt == "json":  # the parsed value: a pydantic / dataclass instance with such a --schema
        return result.value  # type: ignore[attr-defined]
    texts = result.texts  # type: ignore[attr-defined]
    return texts[0] if len(texts) == 1 else list(texts)


def _fields(output: Any) -> dict[str, Any] | None:
    """A row's value as fields: a JSON object, a pydantic instance, a dataclass instance; else None."""
    if isinstance(output, dict):
        return output
    if callable(getattr(output, "model_dump", None)):
        return dict(output.model_dump(mode="json"))  # enums as their values, nested models as dicts
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return dataclasses.asdict(output)
    return None


def _all_objects(outputs: list[Any]) -> bool:
    present = [o for o in outputs if o is not None]
    return bool(present) and all(_fields(o) is not None for o in present)


NOT_RUN = "not run"


def _reason(result: Result) -> str:
    if result.status == "interrupted":
        return NOT_RUN if result.history_id is None else f"interrupted (the partial output is in history #{result.history_id})"
    if result.status == "ok" and result.withheld:
        return "withheld by a safety check"
    if result.status == "review":
        return f"held for review (history #{result.history_id})"
    return f"{result.status}: {result.error}" if result.error else result.status


class _Progress:
    """Rows done / total, rows per second and the ETA: ``tqdm.auto`` (a widget in a notebook, a
    line on stderr in a terminal), updated in place."""

    def __init__(self, total: int, label: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=label, unit="row", file=sys.stderr, leave=True, dynamic_ncols=True)
        self.failed = 0

    def __call__(self, index: int, result: Result) -> None:
        if not result.ok:
            self.failed += 1
            self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_over(
    engine: Engine,
    kind: str,
    template: str,
    data: Any,
    options: Options,
    controls: Controls,
    *,
    model: str | None = None,
    namespace: Mapping[str, Any] | None = None,
    given: Collection[str] | None = None,
    where: Mapping[str, Any] | None = None,
    name: str = "--over",
    progress: bool = True,
    schema: Any = None,
) -> BatchResult:
    """Build one request per row and run them all (:meth:`Engine.run_many`)."""
    model = model or controls.model
    if controls.inplace and not controls.out_column:
        raise OptionError("--inplace needs --out-column NAME (the column it adds to the DataFrame)")
    if getattr(options, "chat", False):
        raise OptionError("--chat continues one conversation; it cannot be combined with --over (one run per row)")
    if controls.out_column is not None and is_table(data) and controls.out_column in data.columns:
        raise OptionError(f"--out-column {controls.out_column}: {name} already has that column (an input); "
                          "name a new one")
    if controls.out_column is not None and not is_table(data):
        raise OptionError(f"--out-column needs a DataFrame for --over, but {name} is a {type(data).__name__}; "
                          "leave --out-column out to get a list or Series")
    rows = rows_of(data, name)
    check_template(template, rows, namespace, name)
    prompts = [fill(template, row, namespace) for row in rows]
    fmt = "json" if getattr(controls, "schema", None) is not None or schema is not None else getattr(controls, "format", "auto")
    if kind == "text":
        from . import text_run

        # every row is built as a single run is: --tone, -f json / --schema (a constrained decode in-process)
        requests, finish = text_run.prepare_many(engine, prompts, options, controls, model=model, given=given,  # type: ignore[arg-type]
                                                 schema=schema, namespace=namespace)
    else:
        from . import image_run, presets

        if getattr(controls, "from_image", None):
            raise OptionError("--over cannot be combined with --from (one stored request); pass the prompts instead")
        shared = {}  # --init / --mask: the same image for every row
        for flag in ("init", "mask"):
            source = getattr(controls, flag, None)
            if source is not None:
                shared[flag] = image_run.to_pil(image_run.resolve_image(source, f"--{flag}", namespace), f"--{flag}",
                                                 flag)
        requests = []
        preset = None
        for prompt in prompts:  # --style, as a single run applies it
            sent, row_options, row_given, preset = presets.apply("image", getattr(controls, "style", None), prompt,
                                                                 options, given, engine.registry)
            requests.append(image_run.build_request(engine, sent, row_options, model, given=row_given,  # type: ignore[arg-type]
                                                    **shared))
        finish = presets.noted(preset)
    bar = _Progress(len(requests), f"{kind} over {name}") if progress and requests else None
    started = time.perf_counter()
    try:
        results = engine.run_many(
            requests, progress=bar, cache=controls.cache, finish=finish, safety=controls.safety,
            concurrency=controls.concurrency, batch_size=controls.batch_size, **dict(where or {}),
        )
    finally:
        if bar is not None:
            bar.close()
    save = getattr(controls, "save", None)
    for result in results if save else ():  # %%imagine --save DIR: every row's PNG, with its parameters
        if result.ok and getattr(result, "images", None):
            result.info["saved"] = [str(p) for p in result.save(save)]  # type: ignore[attr-defined]
    batch = BatchResult(data, prompts, results, fmt, controls.out_column, controls.inplace)
    batch.seconds = time.perf_counter() - started
    return batch


def over_in_notebook(
    engine: Engine,
    kind: str,
    template: str,
    options: Options,
    controls: Controls,
    *,
    namespace: dict[str, Any],
    model: str | None,
    given: Collection[str],
    where: Mapping[str, Any],
) -> BatchResult:
    """``%%generate --over VAR`` / ``%%imagine --over VAR``: VAR from the notebook, the failed rows
    summed up on stderr. The magic binds ``--out`` to the returned :class:`BatchResult` and returns
    its ``value``."""
    name = controls.over or ""
    if not name.isidentifier():
        raise OptionError(f"--over needs the name of a notebook variable, got {name!r}; e.g. --over df")
    if name not in namespace:
        raise OptionError(f"--over {name}: there is no variable {name!r}; define it first (a list, a pandas "
                          "Series or a DataFrame)")
    batch = run_over(engine, kind, template, namespace[name], options, controls, model=model,
                     namespace=namespace if controls.interpolate else {}, given=given, where=where, name=name)
    if batch.summary():
        print(f"genmagic: {batch.summary()}", file=sys.stderr)
    return batch


def default_template(data: Any, column: str | None) -> str:
    """The prompt when none is given: the item itself, or ``column`` of each row."""
    if column is None:
        if is_table(data):
            columns = ", ".join(str(c) for c in data.columns)
            raise OptionError(f"a DataFrame needs a prompt with {{column}} placeholders or a column to use as the "
                              f"prompt; its columns: {columns}; e.g. column='{next(iter(data.columns), 'text')}'")
        return "{item}"
    if not is_table(data):
        raise OptionError(f"column={column!r} needs a DataFrame, got {type(data).__name__}")
    if column not in [str(c) for c in data.columns]:
        raise OptionError(f"there is no column {column!r}; the columns are {', '.join(str(c) for c in data.columns)}")
    return f"{{{column}}}" if column.isidentifier() and column != "row" else f"{{row[{column}]}}"


def run_api(kind: str, data: Any, prompt: str | None, model: str | None, column: str | None,
            kwargs: Mapping[str, Any], progress: bool) -> Any:
    """:func:`genmagic.generate_many` / :func:`genmagic.imagine_many`: ``kwargs`` are the modality's
    options and controls (``seed=1``, ``out_column="summary"``, ``batch_size=16``...); returns the
    value the magic returns."""
    from .engine import default_engine
    from .options import ImageControls, ImageOptions, TextControls, TextOptions, check_value, split_kwargs

    options_class, controls_class = (TextOptions, TextControls) if kind == "text" else (ImageOptions, ImageControls)
    kwargs = dict(kwargs)
    schema = kwargs.pop("schema", None) if kind == "text" else None  # a class or a dict, as in genmagic.generate
    values, control_values = split_kwargs(kwargs, options_class, controls_class)
    if "over" in control_values:
        raise OptionError("over= is the magic's --over; pass the data as the first argument")
    fields = {f.name: f for f in controls_class.option_fields()}
    for name, value in control_values.items():
        check_value(fields[name], value)
    controls = controls_class(model=model, **control_values)
    template = prompt if prompt is not None else default_template(data, column)
    batch = run_over(default_engine(), kind, template, data, options_class(**values), controls, model=model,
                     namespace={}, given=set(values), name="data", progress=progress, schema=schema)
    if batch.summary():
        print(f"genmagic: {batch.summary()}", file=sys.stderr)
    return batch.value


class _Kept:
    """A row placeholder met while the magic line is read: written back as it was (``{name}``,
    ``{row[a b]}``, ``{name:>8}``), to be filled per row."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __getattr__(self, name: str) -> _Kept:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Kept(f"{self.path}.{name}")

    def __getitem__(self, key: Any) -> _Kept:
        return _Kept(f"{self.path}[{key}]")

    def __format__(self, spec: str) -> str:
        return "{" + self.path + (":" + spec if spec else "") + "}"


def line_namespace(line: str, namespace: Mapping[str, Any]) -> Mapping[str, Any]:
    """The namespace the magic line's words are filled from: with ``--over VAR``, VAR's row
    placeholders stay as written (the rows fill them), the notebook's variables fill the rest."""
    import shlex

    try:
        words = shlex.split(line)
    except ValueError:
        return namespace  # the line's own reading reports it
    name = next((w.partition("=")[2] or (words[i + 1] if i + 1 < len(words) else "")
                 for i, w in enumerate(words) if w == "--over" or w.startswith("--over=")), None)
    if not name or name not in namespace:
        return namespace
    data = namespace[name]
    if is_table(data):
        names = {str(c) for c in data.columns} | {"row"}
    elif _is_series(data) or isinstance(data, (list, tuple)):
        names = {"item"}
    else:
        return namespace  # --over reports it
    return ChainMap({n: _Kept(n) for n in names}, namespace)  # type: ignore[arg-type]
