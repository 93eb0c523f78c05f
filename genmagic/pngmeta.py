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
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from .errors import OptionError
from .request import stored_fingerprint

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
        f"Model hash: {stored_fingerprint(request_data)[:10]}",
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


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The generation parameters stored in a PNG (by genmagic, or AUTOMATIC1111's text).

    Returns ``{"request": {...}, "index", "seed", "size", "parameters", ...}``; the request
    re-runs with ``%%imagine --from PATH`` or ``genmagic imagine --from PATH``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            text = dict(getattr(im, "text", {}) or {})
    except FileNotFoundError:
        raise OptionError(f"--from {path}: no such file; pass the path of a PNG saved by genmagic") from None
    except (UnidentifiedImageError, OSError) as err:
        raise OptionError(f"--from {path}: cannot read it as an image ({err}); pass a PNG saved by genmagic") from None
    if "genmagic" in text:
        try:
            data: dict[str, Any] = json.loads(text["genmagic"])
        except ValueError:
            raise OptionError(f"--from {path}: its genmagic chunk is not valid JSON; the file was altered") from None
        data["parameters"] = text.get("parameters", "")
        return data
    if "parameters" in text:
        return parse_parameters(text["parameters"])
    raise OptionError(
        f"--from {path}: the image carries no generation parameters; pass a PNG saved by genmagic or AUTOMATIC1111"
    )


_FIELD = re.compile(r'\s*([\w \-/]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


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
    fields = {m.group(1).strip(): m.group(2).strip().strip('"') for m in _FIELD.finditer(last)}
    options: dict[str, Any] = {}
    if negative_lines:
        options["negative"] = "\n".join(negative_lines)
    with suppress(KeyError, ValueError, TypeError):
        options["steps"] = int(fields["Steps"])
    with suppress(KeyError, ValueError, TypeError):
        options["guidance"] = float(fields["CFG scale"])
    seed = None
    with suppress(KeyError, ValueError, TypeError):
        seed = int(fields["Seed"])
        options["seed"] = seed
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

