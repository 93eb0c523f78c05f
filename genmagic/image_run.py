"""``%%imagine``, ``genmagic imagine`` and ``genmagic.imagine()``: one way to build and run
an image request from parsed options (the same shape as :mod:`genmagic.text_run`).

(This module is not called ``imagine.py``: that name would shadow ``genmagic.imagine()``.)

::

    %%imagine -m tiny-image --steps 30 --guidance 6 --seed 7 -n 4 --negative "blurry"
    a red circle on a blue background

``--init`` / ``--mask`` take a notebook variable (a PIL image, a numpy array, or an
earlier result) or a file path; the image enters the request as an input, hashed into
its key. ``--from image.png`` re-runs the request stored in a PNG's metadata.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from . import options as opts
from .errors import OptionError, PromptError
from .request import run_with_sink, stored_fingerprint
from .results import ImageResult, pending_sources

if TYPE_CHECKING:
    from .engine import Engine
    from .request import Request


# --------------------------------------------------------------------------- inputs


def to_pil(value: Any, flag: str, name: str) -> Any:
    """A PIL image from a PIL image, a numpy array (H×W, H×W×3/4; uint8 or floats in 0..1),
    or an earlier ImageResult; a one-line OptionError otherwise."""
    from PIL import Image

    if isinstance(value, ImageResult):
        if not value.images:
            raise OptionError(f"{flag} {name}: that result holds no image")
        return value.images[0]
    if isinstance(value, Image.Image):
        return value
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        import numpy as np

        array = np.asarray(value)
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise OptionError(
                f"{flag} {name}: an array of shape {tuple(array.shape)} is not an image; pass H×W or H×W×3 (RGB)"
            )
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.dtype != np.uint8:
            if np.issubdtype(array.dtype, np.floating) and array.size and float(np.nanmax(array)) <= 1.0:
                array = array * 255.0
            array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
        return Image.fromarray(array)
    raise OptionError(
        f"{flag} {name}: the variable is a {type(value).__name__}, not an image; "
        "pass a PIL image, a numpy array (H×W×3) or a file path"
    )


def resolve_image(spec: str | Any, flag: str, namespace: Mapping[str, Any] | None = None) -> Any:
    """``--init``/``--mask`` as given (a variable name, a path, or an image object) → PIL image."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(spec, str):
        return to_pil(spec, flag, type(spec).__name__)
    if namespace is not None and spec.isidentifier() and spec in namespace:
        value = namespace[spec]
        if not isinstance(value, (str, os.PathLike)):
            return to_pil(value, flag, spec)
        spec = os.fspath(value)  # a variable holding a path
    path = os.path.expanduser(spec)
    if not os.path.exists(path):
        where = "a variable in the notebook nor a file" if namespace is not None else "a file"
        raise OptionError(f"{flag} {spec}: it is neither {where}; check the name or the path")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError) as err:
        raise OptionError(f"{flag} {spec}: cannot read it as an image ({type(err).__name__}); pass a PNG or JPEG file") from None


def prepare_inputs(init: Any, mask: Any) -> dict[str, Any]:
    """Normalise the init (RGB) and mask (L) images; a mask needs an init of the same size."""
    inputs: dict[str, Any] = {}
    if mask is not None and init is None:
        raise OptionError("--mask needs --init: the image to paint into")
    if init is not None:
        inputs["init"] = init if init.mode == "RGB" else init.convert("RGB")
    if mask is not None:
        mask = mask if mask.mode == "L" else mask.convert("L")
        if mask.size != inputs["init"].size:
            raise OptionError(
                f"--mask is {mask.width}x{mask.height} but --init is {init.width}x{init.height}; "
                "give a mask of the same size as the init image"
            )
        inputs["mask"] = mask
    return inputs


def build_request(
    engine: Engine,
    prompt: str,
    options: opts.ImageOptions,
    model: str | None = None,
    init: Any = None,
    mask: Any = None,
    given: Collection[str] | None = None,
) -> Request:
    """The image request: init/mask images and each LoRA file's content hash enter ``inputs``
    (and so the key), so a changed LoRA file at the same path never serves a stale image."""
    if not prompt.strip():
        raise PromptError("the prompt is empty: write it in the cell below the magic line, or after the options")
    inputs = prepare_inputs(init, mask)
    if options.lora:
        from .backends.diffusers_image import lora_fingerprint, parse_lora

        inputs["lora"] = ",".join(lora_fingerprint(parse_lora(v)[0]) for v in options.lora)
    return engine.request("image", prompt, options, model=model, inputs=inputs, given=given)


def apply_from(
    path: str,
    overrides: Mapping[str, Any],
    prompt: str,
    model: str | None,
    resolve: Callable[[str], Any] | None = None,
    cell: str | None = None,
) -> tuple[str, opts.ImageOptions, str | None, dict[str, Any]]:
    """Options, prompt and model of the image stored in ``path``; ``overrides`` (the options
    the user set explicitly, with their values) win.

    The stored image is reproduced alone: its own seed, ``num`` 1. What a PNG may not choose
    (device, files, a trust_remote_code model): :func:`genmagic.pngmeta.safe_options_from_png`.
    """
    from .pngmeta import read_metadata, safe_options_from_png

    meta = read_metadata(path, cell=cell)  # a comparison grid's cell with cell="X,Y"
    stored = meta.get("request") or {}
    known = opts.field_names([opts.ImageOptions])
    values, model = safe_options_from_png(meta, known=known, given=overrides, model=model, resolve=resolve)
    try:  # what the user typed wins, so a stored value out of bounds can be overridden
        options = opts.ImageOptions.from_dict({**values, **overrides})
    except OptionError as err:  # the value came from the file, not from the user
        raise OptionError(f"--from {path}: the image's stored {err}; type the option to override it") from None
    return (prompt or str(stored.get("prompt", ""))), options, model, meta


def _stored_inputs(meta: Mapping[str, Any], init: Any, mask: Any, namespace: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """For ``--from``: reload the init/mask the stored run used (from their recorded VAR/PATH)."""
    from .pngmeta import stored_input_sources
    from .request import digest

    digests = (meta.get("request") or {}).get("inputs") or {}
    sources = stored_input_sources(meta, namespace)
    out = {"init": init, "mask": mask}
    for name in ("init", "mask"):
        if name in digests and out[name] is None:
            source = sources.get(name)
            flag = f"--{name}"
            if not source:
                recorded = str((meta.get("sources") or {}).get(name) or "")  # a path is not opened unasked
                raise OptionError(f"this image was made with {flag} {recorded!r}; pass {flag} with that image to re-run it")
            try:
                image = resolve_image(source, flag, namespace)
            except OptionError:
                raise OptionError(
                    f"this image was made with {flag} {source}, which is not available now; pass {flag} with that image"
                ) from None
            normal = image.convert("RGB" if name == "init" else "L")
            if digest(normal) != digests[name]:
                raise OptionError(
                    f"{flag} {source} has changed since this image was made; pass {flag} with the original image"
                )
            out[name] = normal
    return out["init"], out["mask"]


# --------------------------------------------------------------------------- running


def run(
    engine: Engine,
    prompt: str,
    options: opts.ImageOptions,
    controls: opts.ImageControls,
    *,
    model: str | None = None,
    namespace: Mapping[str, Any] | None = None,
    sink: Any = None,
    init: Any = None,
    mask: Any = None,
    where: Mapping[str, Any] | None = None,
    given: Collection[str] | None = None,
    sources: Mapping[str, str] | None = None,
) -> ImageResult:
    """Build the request (``--from``, ``--init``, ``--mask``), run it, save it with ``--save``.

    ``given``: the option names the user set explicitly (``None``: all of them); with
    ``--from`` they override the PNG's options, otherwise the model's defaults fill the rest.
    """
    model = model or controls.model
    meta: dict[str, Any] | None = None
    if controls.from_image:
        names = options.to_dict() if given is None else given
        overrides = {name: getattr(options, name) for name in names}
        resolve = functools.partial(engine.registry.resolve, kind="image")
        prompt, options, model, meta = apply_from(controls.from_image, overrides, prompt, model, resolve,
                                                  cell=controls.cell)
    elif controls.cell:
        raise OptionError(f"--cell {controls.cell} picks a cell of a comparison grid: add --from GRID.png")
    from . import presets

    prompt, options, given, preset = presets.apply("image", controls.style, prompt, options, given, engine.registry)
    sources = dict(sources or {})
    if init is None and controls.init is not None:
        init = resolve_image(controls.init, "--init", namespace)
        sources["init"] = controls.init if namespace and controls.init in namespace else os.path.abspath(controls.init)
    if mask is None and controls.mask is not None:
        mask = resolve_image(controls.mask, "--mask", namespace)
        sources["mask"] = controls.mask if namespace and controls.mask in namespace else os.path.abspath(controls.mask)
    if meta is not None:
        init, mask = _stored_inputs(meta, init, mask, namespace)
        for name in ("init", "mask"):
            if name not in sources and (meta.get("sources") or {}).get(name):
                sources[name] = meta["sources"][name]
    if init is not None:
        init = to_pil(init, "--init", "init")
    if mask is not None:
        mask = to_pil(mask, "--mask", "mask")
    # With --from every option comes from the PNG: the model's defaults do not apply.
    request = build_request(engine, prompt, options, model, init, mask, given=None if controls.from_image else given)
    if meta is not None and stored_fingerprint(meta.get("request", {})) not in ("", request.fingerprint):
        print(
            f"genmagic: {request.model} has changed since {controls.from_image} was made; the pixels may differ",
            file=sys.stderr,
        )
    token = pending_sources.set(sources)
    try:
        result: ImageResult = run_with_sink(engine, request, sink, cache=controls.cache, safety=controls.safety,
                                             finish=presets.noted(preset), **dict(where or {}))
    finally:
        pending_sources.reset(token)
    result.sources = sources
    if controls.save and result.images:
        result.info["saved"] = [str(p) for p in result.save(controls.save)]
    return result


def prepare(
    engine: Engine,
    prompt: str,
    options: opts.ImageOptions,
    controls: opts.ImageControls,
    *,
    model: str | None = None,
    given: Collection[str] | None = None,
    namespace: Mapping[str, Any] | None = None,
) -> tuple[Request, Callable[[Any], None]]:
    """One comparison cell's request (``--style`` applied, ``--init``/``--mask`` read; ``--from``
    and ``--save`` are the caller's) and the engine's ``finish`` for it (the style's name in ``info``)."""
    from . import presets

    prompt, options, given, preset = presets.apply("image", controls.style, prompt, options, given, engine.registry)
    init = resolve_image(controls.init, "--init", namespace) if controls.init is not None else None
    mask = resolve_image(controls.mask, "--mask", namespace) if controls.mask is not None else None
    return build_request(engine, prompt, options, model or controls.model, init, mask, given), presets.noted(preset)


_OTHER_IMAGE_TYPES = (".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")


def output_paths(output: str, count: int) -> list[str]:
    """Where ``-o OUTPUT`` writes ``count`` images: ``out.png`` for one; ``out-1.png`` …
    ``out-N.png`` for several, numbered to the same width so they sort (``out-01.png`` …
    ``out-12.png``); ``[]`` for a folder (``dir/`` or an existing folder), where each PNG is
    named from its prompt, seed and key. A name without ``.png`` gets it; a name ending in
    another image type is an error, since the files are PNGs (they carry their parameters)."""
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        return []
    root, ext = os.path.splitext(output)
    if ext.lower() in _OTHER_IMAGE_TYPES:
        raise OptionError(
            f"-o {output}: genmagic writes PNG files (they carry the generation parameters); use -o {root}.png"
        )
    if ext.lower() != ".png":
        root, ext = output, ".png"
    if count == 1:
        return [root + ext]
    width = len(str(count))
    return [f"{root}-{i + 1:0{width}d}{ext}" for i in range(count)]
