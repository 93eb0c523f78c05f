"""PNG text chunks that make every saved image reproducible.

Two chunks, written with Pillow's ``PngInfo``:

- ``parameters``: the AUTOMATIC1111 format (prompt, ``Negative prompt:`` line, then
  ``Steps: .., Sampler: .., CFG scale: .., Seed: .., Size: WxH, Model: ..``), so the
  image reads back in A1111, ComfyUI and the many tools that parse it;
- ``genmagic``: the full request as JSON plus which image of the run this is.

:func:`read_metadata` returns the ``genmagic`` chunk (or, for an image made elsewhere,
what the ``parameters`` chunk says), and ``%%imagine --from image.png`` re-runs it.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Collection, Mapping
from contextlib import suppress
from typing import Any

from .errors import OptionError

FORMAT_VERSION = 1

# diffusers scheduler class → the sampler name AUTOMATIC1111 shows for it.
A1111_SAMPLERS = {
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",
    "LMSDiscreteScheduler": "LMS",
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE",
    "DPMSolverSDEScheduler": "DPM++ SDE",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
    "DDPMScheduler": "DDPM",
}
_SCHEDULERS = {v: k for k, v in reversed(list(A1111_SAMPLERS.items()))}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def parameters_text(
    request_data: Mapping[str, Any], *, seed: int, size: tuple[int, int], sampler: str = ""
) -> str:
    """The AUTOMATIC1111 ``parameters`` text of one image."""
    options = request_data.get("options", {})
    lines = [str(request_data.get("prompt", ""))]
    if options.get("negative"):
        lines.append(f"Negative prompt: {options['negative']}")
    fields = [
        f"Steps: {options.get('steps')}",
        f"Sampler: {A1111_SAMPLERS.get(sampler, sampler) or 'default'}",
        f"CFG scale: {_num(float(options.get('guidance', 0)))}",
        f"Seed: {seed}",
        f"Size: {size[0]}x{size[1]}",
        f"Model hash: {str(request_data.get('fingerprint', request_data.get('revision', '')) or '')[:10]}",
        f"Model: {request_data.get('model', '')}",
    ]
    if request_data.get("inputs", {}).get("init"):
        fields.append(f"Denoising strength: {_num(float(options.get('strength', 0.75)))}")
    loras = options.get("lora") or []
    if loras:
        fields.append("Lora: " + json.dumps(list(loras)))
    lines.append(", ".join(f.replace("\n", " ") for f in fields))
    return "\n".join(lines)


def png_bytes(image: Any, metadata: Mapping[str, Any] | None = None) -> bytes:
    """``image`` as PNG bytes, with the ``parameters`` and ``genmagic`` chunks when given."""
    from PIL.PngImagePlugin import PngInfo

    info = None
    if metadata is not None:
        info = PngInfo()
        info.add_text("parameters", str(metadata["parameters"]))
        body = {k: v for k, v in metadata.items() if k != "parameters"}
        info.add_text("genmagic", json.dumps(body, ensure_ascii=False, sort_keys=True))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def image_metadata(
    request_data: Mapping[str, Any],
    *,
    index: int,
    seed: int,
    size: tuple[int, int],
    sampler: str = "",
    sources: Mapping[str, str] | None = None,
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the two chunks of image ``index`` of a run hold."""
    return {
        "parameters": parameters_text(request_data, seed=seed, size=size, sampler=sampler),
        "version": FORMAT_VERSION,
        "request": dict(request_data),
        "index": index,
        "seed": seed,
        "size": list(size),
        "sampler": sampler,
        "sources": dict(sources or {}),
        "device": (info or {}).get("device"),
        "dtype": (info or {}).get("dtype"),
    }


# A generation record is a prompt and a few options: far below this. Longer text is not
# one, and it is refused before it is parsed (Pillow itself reads up to 64 MiB of text).
MAX_TEXT_CHARS = 256 * 1024


def _is_record(data: Any) -> bool:
    """The genmagic chunk's shape: a request table, tables where tables are expected (values are
    checked later)."""
    if not isinstance(data, dict) or not isinstance(data.get("sources") or {}, dict):
        return False
    request = data.get("request")
    return isinstance(request, dict) and all(isinstance(request.get(k) or {}, dict) for k in ("options", "inputs"))


def read_metadata(path: str | os.PathLike[str], cell: str | None = None) -> dict[str, Any]:
    """The generation parameters stored in a PNG (by genmagic, or AUTOMATIC1111's text).

    Returns ``{"request": {...}, "index", "seed", "size", "parameters", ...}``; the request
    re-runs with ``%%imagine --from PATH`` or ``genmagic imagine --from PATH``. The file is
    untrusted input: a chunk over :data:`MAX_TEXT_CHARS`, or one of the wrong shape, is a
    one-line :class:`OptionError`. A comparison grid (:func:`grid_metadata`) holds one record per
    cell: ``cell="X,Y"`` picks one (:func:`grid_cell`).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            text = dict(getattr(im, "text", {}) or {})
    except FileNotFoundError:
        raise OptionError(f"--from {path}: no such file; pass the path of a PNG saved by genmagic") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise OptionError(f"--from {path}: cannot read it as an image ({err}); pass a PNG saved by genmagic") from None
    for key in ("genmagic", "parameters"):
        if len(text.get(key, "")) > MAX_TEXT_CHARS:
            raise OptionError(
                f"--from {path}: its {key!r} text chunk holds {len(text[key]):,} characters, over the "
                f"{MAX_TEXT_CHARS:,} a generation record can have; the file is not a genmagic or A1111 image"
            )
    if "genmagic" in text:
        try:
            data = json.loads(text["genmagic"])
        except ValueError:
            raise OptionError(f"--from {path}: its genmagic chunk is not valid JSON; the file was altered") from None
        if isinstance(data, dict) and "grid" in data:
            data = grid_cell(data["grid"], cell, str(path))
        elif cell is not None:
            raise OptionError(f"--cell {cell}: {path} is a single image, not a comparison grid; drop --cell")
        if not _is_record(data):
            raise OptionError(
                f"--from {path}: its genmagic chunk is JSON but not a request record; the file was altered"
            )
        data["parameters"] = text.get("parameters", "")
        return data
    if cell is not None:
        raise OptionError(f"--cell {cell}: {path} is not a comparison grid saved by genmagic; drop --cell")
    if "parameters" in text:
        try:
            return parse_parameters(text["parameters"])
        except OptionError as err:
            raise OptionError(f"--from {path}: {err}") from None
    raise OptionError(
        f"--from {path}: the image carries no generation parameters; pass a PNG saved by genmagic or AUTOMATIC1111"
    )


# --------------------------------------------------------------------------- what --from may take

# The machine's choices, never the file's.
MACHINE_OPTIONS = frozenset({"device", "dtype"})
_TRUST_FLAGS = ("trust_remote_code", "allow_pickle")


def _needs_naming(flag: str, value: str, why: str) -> OptionError:
    return OptionError(f"this image was made with {flag} {value}; pass {flag} {value} yourself to re-run it ({why})")


def safe_options_from_png(
    meta: Mapping[str, Any],
    *,
    known: Collection[str],
    given: Collection[str] = (),
    model: str | None = None,
    resolve: Callable[[str], Any] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """The option values and the model that ``--from`` takes from a PNG's metadata.

    A PNG is untrusted input: it gives the prompt, the generation options (checked like
    typed ones by the caller), the seed (``num`` 1) and the model name, but never

    - the device or dtype (:data:`MACHINE_OPTIONS`: they belong to this machine);
    - files to read: a stored ``--lora`` path is refused unless ``given`` names ``lora``
      (``--init``/``--mask`` paths: see :func:`stored_input_sources`);
    - a model whose registry entry sets ``trust_remote_code`` or ``allow_pickle``, unless the
      user names the model (``model``). ``resolve(name)`` returns that entry (a ModelSpec).

    Anything else is an :class:`OptionError` that says what to pass.
    """
    stored = meta.get("request") or {}
    values = stored.get("options") or {}
    if not isinstance(values, Mapping):
        raise OptionError("the image's stored options are not a table; the file was altered")
    values = {k: v for k, v in values.items() if k in known and k not in MACHINE_OPTIONS}
    if values.get("lora") and "lora" not in given:
        loras = values["lora"] if isinstance(values["lora"], (list, tuple)) else [values["lora"]]
        raise _needs_naming("--lora", " --lora ".join(map(str, loras)), "a PNG does not choose files to read")
    if meta.get("seed") is not None:
        try:
            values["seed"] = int(meta["seed"])
        except (TypeError, ValueError):
            raise OptionError(f"the image's stored seed {meta['seed']!r} is not a number; the file was altered") from None
    values["num"] = 1
    stored_model = str(stored.get("model") or "") or None
    if model is None and stored_model and resolve is not None:
        spec = resolve(stored_model)
        flags = [name for name in _TRUST_FLAGS if getattr(spec, name, False)]
        if flags:
            raise _needs_naming(
                "-m", stored_model, f"its registry entry sets {' and '.join(flags)}, and a PNG may not pick such a model"
            )
    return values, model or stored_model


def stored_input_sources(meta: Mapping[str, Any], namespace: Mapping[str, Any] | None) -> dict[str, str]:
    """The recorded ``--init``/``--mask`` sources that ``--from`` may reload by itself:
    notebook variables that hold an image now (their digest is checked afterwards), never a
    path: a PNG does not choose files to open."""
    sources = meta.get("sources") or {}
    if not isinstance(sources, Mapping) or namespace is None:
        return {}
    return {
        name: source
        for name, source in sources.items()
        if isinstance(source, str) and source.isidentifier() and source in namespace
        and not isinstance(namespace[source], (str, os.PathLike))
    }


_KEY = re.compile(r"[\w \-/]+")


def _closing_quote(line: str, start: int) -> int:
    """Index of the first unescaped ``"`` at or after ``start``, or -1."""
    pos = start
    while (pos := line.find('"', pos)) >= 0:
        backslashes = 0
        while pos - backslashes - 1 >= start and line[pos - backslashes - 1] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return pos
        pos += 1
    return -1


def parameter_fields(line: str) -> dict[str, str]:
    """``Key: value, Key: "quoted, value", ...`` → a dict, in one left-to-right pass.

    The cursor only moves forward, and each character is looked at a bounded number of
    times (a regex with a ``[^,]*`` tail, as A1111 uses, is quadratic on hostile text).
    """
    fields: dict[str, str] = {}
    pos, end = 0, len(line)
    while pos < end:
        colon = line.find(":", pos)
        if colon < 0:
            break
        key = line[max(pos, line.rfind(",", pos, colon) + 1): colon].strip()
        start = colon + 1
        while start < end and line[start] == " ":
            start += 1
        # An opening quote follows a space or colon, so a search that finds no closing quote
        # ran to the end at most once: no later value starts with an unescaped quote.
        close = _closing_quote(line, start + 1) if start < end and line[start] == '"' else -1
        if close >= 0:
            try:
                value = str(json.loads(line[start: close + 1]))
            except ValueError:
                value = line[start + 1: close]
            comma = line.find(",", close + 1)
        else:
            comma = line.find(",", start)
            value = line[start: comma if comma >= 0 else end].strip()
        if _KEY.fullmatch(key):
            fields[key] = value
        pos = comma + 1 if comma >= 0 else end
    return fields


def parse_parameters(text: str) -> dict[str, Any]:
    """Read AUTOMATIC1111's ``parameters`` text into the same shape as the genmagic chunk."""
    lines = text.strip("\n").split("\n")
    last = lines[-1] if lines and "Steps:" in lines[-1] else ""
    body = lines[:-1] if last else lines
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in body:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    fields = parameter_fields(last)
    options: dict[str, Any] = {}
    if negative_lines:
        options["negative"] = "\n".join(negative_lines)
    with suppress(KeyError, ValueError, TypeError):
        options["steps"] = int(fields["Steps"])
    with suppress(KeyError, ValueError, TypeError):
        options["guidance"] = float(fields["CFG scale"])
    seed = None
    if "Seed" in fields:
        try:
            seed = options["seed"] = int(fields["Seed"])
        except ValueError:
            raise OptionError(
                f"its A1111 parameters field Seed: {fields['Seed']!r} is not an integer seed; the file was altered"
            ) from None
    size = None
    with suppress(KeyError, ValueError, TypeError):
        w, h = (int(v) for v in fields["Size"].lower().split("x"))
        options["width"], options["height"] = w, h
        size = [w, h]
    with suppress(KeyError, ValueError, TypeError):
        options["strength"] = float(fields["Denoising strength"])
    sampler = fields.get("Sampler", "")
    if sampler in _SCHEDULERS:
        options["scheduler"] = _SCHEDULERS[sampler]
    request = {"kind": "image", "prompt": "\n".join(prompt_lines), "model": fields.get("Model", ""), "options": options}
    return {
        "parameters": text,
        "version": 0,
        "request": request,
        "index": 0,
        "seed": seed,
        "size": size,
        "sampler": sampler,
        "sources": {},
    }



# --------------------------------------------------------------------------- comparison grids


def grid_metadata(axes: list[tuple[str, list[str]]], cells: list[dict[str, Any]], parameters: str) -> dict[str, Any]:
    """The chunks of a comparison grid PNG: ``parameters`` (cell 1,1's, for other tools) and the
    axes (name, value labels: x first) with each cell's record (:func:`image_metadata` without its
    ``parameters``), row by row."""
    columns = len(axes[0][1]) if axes else 1
    return {
        "parameters": parameters,
        "version": FORMAT_VERSION,
        "grid": {
            "axes": [{"name": name, "values": list(values)} for name, values in axes],
            "columns": columns,
            "rows": len(cells) // max(1, columns),
            "cells": [{k: v for k, v in c.items() if k != "parameters"} for c in cells],
        },
    }


def _grid_size(grid: Any) -> tuple[int, int, list[Any]]:
    if not isinstance(grid, dict):
        raise OptionError("its comparison grid record is not a table; the file was altered")
    cells, columns, rows = grid.get("cells"), grid.get("columns"), grid.get("rows")
    if not (isinstance(cells, list) and isinstance(columns, int) and isinstance(rows, int)
            and columns >= 1 and rows >= 1 and len(cells) == columns * rows):
        raise OptionError("its comparison grid record does not add up (columns x rows != cells); the file was altered")
    return columns, rows, cells


def grid_cell(grid: Any, cell: str | None, path: str = "") -> dict[str, Any]:
    """The record of one cell of a comparison grid: ``cell`` is ``"X,Y"`` (column, row, from 1),
    or ``"X"`` when the grid has one row. An untrusted file: the shape is checked here, the
    record like any other afterwards."""
    try:
        columns, rows, cells = _grid_size(grid)
    except OptionError as err:
        raise OptionError(f"--from {path}: {err}") from None
    shape = f"{columns} column{'s' if columns > 1 else ''} and {rows} row{'s' if rows > 1 else ''}"
    example = "2,1" if rows > 1 or columns < 2 else "2"
    if cell is None:
        raise OptionError(f"--from {path}: this PNG is a comparison grid of {shape}; pick the cell to re-run "
                          f"with --cell X,Y (from 1,1), e.g. --cell {example if columns > 1 else '1,2'}")
    parts = cell.replace(" ", "").split(",")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1 and rows == 1:
        numbers.append(1)
    if len(numbers) != 2:
        raise OptionError(f"--cell {cell}: give the column and the row, X,Y counted from 1; the grid has {shape}")
    x, y = numbers
    if not (1 <= x <= columns and 1 <= y <= rows):
        raise OptionError(f"--cell {cell}: out of range; the grid has {shape}: X from 1 to {columns}, "
                          f"Y from 1 to {rows}")
    record = cells[(y - 1) * columns + (x - 1)]
    if not isinstance(record, dict):
        raise OptionError(f"--from {path}: cell {x},{y} is not a table; the file was altered")
    return dict(record)
