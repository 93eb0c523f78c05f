"""Image generation with a local diffusers text-to-image pipeline (a folder or a cached hub id).

Any folder with a ``model_index.json`` whose pipeline takes a ``prompt`` loads through
``DiffusionPipeline.from_pretrained``; a pipeline class the project (or a plugin) defines
itself is found by its ``_class_name`` among the imported ``DiffusionPipeline`` subclasses.

Each image ``i`` of ``--num`` is one pipeline call with its own CPU generator seeded with
``seed + i``, so any single image can be reproduced alone, on any batch size. The step
callback emits ``progress`` events every step and a cheap ``preview`` every few steps
(latents mapped to RGB by a linear fit to the model's own VAE, computed once per model),
and stops the pipeline when the sink is cancelled. A kernel interrupt (KeyboardInterrupt)
returns the images finished so far plus the last preview, with ``status="interrupted"``;
the pipeline stays usable (diffusers resets its state at the start of every call).

img2img and inpainting reuse the loaded weights through ``AutoPipelineFor*.from_pipe``.
LoRA files are loaded once per (path, content) with ``load_lora_weights`` and switched per
run with ``set_adapters``; schedulers are swapped per run with ``from_config``.

A folder with diffusers' ``StableDiffusionSafetyChecker`` (``safety_checker`` +
``feature_extractor`` in ``model_index.json``) is loaded with ``safety_checker=None``: the
pipeline would replace a flagged image by a black one, and a flagged image must be kept (the
engine blurs it, and the user may reveal it). The checker is loaded beside the pipeline
(safetensors only, unless the model is registered with ``allow_pickle``; never remote code)
and run on each decoded image with a throwaway stand-in for the pixels it would black out:
its flags fill ``ImageResult.nsfw``, the pixels stay as the VAE made them.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ModelNotFoundError, OptionError
from ..registry import split_scale
from ..request import Event, NullSink, Request, Sink
from . import Loaded, check_device, default_device, quiet_progress_bars, torch_threads, weight_bytes
from ._hub import fingerprint, local_folder, read_json, require_folder

if TYPE_CHECKING:
    from ..options import ImageOptions
    from ..registry import ModelSpec
    from ..results import ImageResult

_MARKER = "model_index.json"
PREVIEW_EVERY = 5  # steps between previews, unless the sink says otherwise (``sink.preview_every``)


@dataclass
class _ImagePipe:
    pipe: Any
    folder: str
    scheduler: Any  # the model's own scheduler, restored when --scheduler is not given
    derived: dict[str, Any] = field(default_factory=dict)  # "img2img" / "inpaint" -> pipeline
    adapters: dict[str, str] = field(default_factory=dict)  # lora key -> adapter name
    active_lora: bool = False
    base_adapters: dict[str, float] = field(default_factory=dict)  # the spec's adapters (name -> scale), always on
    preview_map: Any = None  # (weights [C,3], bias [3]) latent → RGB, fitted on first use
    safety: tuple[Any, Any] | None = None  # (StableDiffusionSafetyChecker, its feature extractor), run beside


def _dtype_kwarg() -> str:
    """diffusers 0.36 renamed ``torch_dtype`` to ``dtype``."""
    import diffusers

    major, minor = (int(x) for x in diffusers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (0, 36) else "torch_dtype"


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' and diffusers' notices while a pipeline is built or a LoRA is
    loaded (optional image processors, "no LoRA keys for the text encoder"): they are not
    about anything the user can change, and neither are their loading bars (restored after).
    Errors still raise."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    from diffusers.utils import logging as df_logging

    levels = hf_logging.get_verbosity(), df_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    df_logging.set_verbosity_error()
    try:
        with quiet_progress_bars("diffusers", "transformers"):
            yield
    finally:
        hf_logging.set_verbosity(levels[0])
        df_logging.set_verbosity(levels[1])


def _device_dtype(options: Any) -> tuple[str, str]:
    device = getattr(options, "device", None) or default_device()
    dtype = getattr(options, "dtype", None) or ("float32" if device == "cpu" else "float16")
    return device, dtype


def parse_lora(value: str) -> tuple[str, float]:
    """``PATH[:SCALE]`` → (path, scale); a missing scale is 1."""
    path, scale = split_scale(value)
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise OptionError(f"--lora {value}: no such file or folder; pass a LoRA .safetensors file or the folder holding it")
    return path, scale


def _lora_file(path: str) -> tuple[str, str | None]:
    """(folder or file, weight_name) for ``load_lora_weights``."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
        if not names:
            raise OptionError(f"--lora {path}: the folder holds no .safetensors file; save the LoRA with save_lora_weights")
        preferred = "pytorch_lora_weights.safetensors"
        return path, preferred if preferred in names else names[0]
    if not path.endswith(".safetensors"):
        raise OptionError(f"--lora {path}: only .safetensors LoRA files are loaded; convert it to safetensors")
    return os.path.dirname(path) or ".", os.path.basename(path)


def lora_fingerprint(path: str) -> str:
    """A content hash of a LoRA file (or the weights in a LoRA folder)."""
    folder, name = _lora_file(path)
    target = os.path.join(folder, name or "")
    h = hashlib.sha256()
    with open(target, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _find_pipeline_class(name: str) -> Any:
    """A ``DiffusionPipeline`` subclass called ``name``: diffusers' own, or one defined and
    imported by the project or a plugin (the diffusers way: subclass and ``register_modules``)."""
    import diffusers

    found = getattr(diffusers, name, None)
    if isinstance(found, type):
        return found
    stack = list(diffusers.DiffusionPipeline.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls.__name__ == name:
            return cls
        stack.extend(cls.__subclasses__())
    return None


def _is_text_to_image(pipe: Any) -> bool:
    params = inspect.signature(pipe.__call__).parameters
    if "prompt" not in params:
        return False
    for needed in ("image", "mask_image", "control_image"):
        p = params.get(needed)
        if p is not None and p.default is inspect.Parameter.empty:
            return False
    name = type(pipe).__name__
    return not name.endswith(("Img2ImgPipeline", "InpaintPipeline", "UpscalePipeline", "Image2ImagePipeline"))


def _scheduler_name(name: str, compatible: dict[str, Any]) -> str:
    """Accept a class name, its short form (``Euler``), any case, or an A1111 sampler name."""
    from ..pngmeta import A1111_SAMPLERS

    if name in compatible:
        return name
    a1111 = {v.lower(): k for k, v in A1111_SAMPLERS.items()}
    lowered = name.lower().replace(" ", "")
    for cls_name in compatible:
        short = cls_name.lower().removesuffix("scheduler")
        if lowered in (cls_name.lower(), short, short.removesuffix("discrete")):
            return cls_name
    return a1111.get(name.lower(), name)


def size_multiple(pipe: Any) -> int:
    """Width and height must be multiples of this for ``pipe``."""
    vsf = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    transformer = getattr(pipe, "transformer", None)
    patch = int(getattr(getattr(transformer, "config", None), "patch_size", 1) or 1) if transformer is not None else 1
    if "Flux" in type(pipe).__name__:
        patch = max(patch, 2)
    multiple = vsf * patch
    if getattr(pipe, "unet", None) is not None:
        multiple = math.lcm(multiple, 8)  # the Stable Diffusion family checks divisibility by 8
    return multiple


def native_size(pipe: Any) -> tuple[int, int]:
    vsf = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    for name in ("unet", "transformer"):
        module = getattr(pipe, name, None)
        sample = getattr(getattr(module, "config", None), "sample_size", None)
        if isinstance(sample, int):
            return sample * vsf, sample * vsf
        if isinstance(sample, (list, tuple)) and len(sample) == 2:
            return int(sample[1]) * vsf, int(sample[0]) * vsf
    default = getattr(pipe, "default_sample_size", 64)
    return default * vsf, default * vsf


_SD_CHECKER = ["stable_diffusion", "StableDiffusionSafetyChecker"]


def _has_sd_checker(index: dict[str, Any]) -> bool:
    """The pipeline folder names diffusers' own safety checker (which blacks out what it flags)."""
    return list(index.get("safety_checker") or []) == _SD_CHECKER


def _load_safety_checker(folder: str, spec: ModelSpec, dtype: Any, pipe: Any) -> tuple[Any, Any]:
    """The folder's ``StableDiffusionSafetyChecker`` and feature extractor, to run beside the pipeline."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

    extractor = getattr(pipe, "feature_extractor", None)
    if extractor is None:
        raise ModelNotFoundError(
            f"{spec.alias!r} has a safety_checker but no feature_extractor in {folder}/{_MARKER}; "
            "save the pipeline with its feature extractor"
        )
    try:
        with _quiet_transformers():
            checker = StableDiffusionSafetyChecker.from_pretrained(
                os.path.join(folder, "safety_checker"), dtype=dtype, local_files_only=True,
                use_safetensors=None if spec.allow_pickle else True,
            )
    except (OSError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not spec.allow_pickle:
            first += " (only .safetensors weights are loaded unless the model is registered with allow_pickle = true)"
        raise ModelNotFoundError(f"cannot load the safety checker of {spec.alias!r} from {folder}: {first[:300]}") from None
    return checker.eval(), extractor


def nsfw_flags(safety: tuple[Any, Any], images: list[Any]) -> list[bool]:
    """``StableDiffusionSafetyChecker``'s flags for PIL ``images``, without touching their pixels:
    its ``forward`` blacks out the flagged entries of the ``images`` it is given, so it gets
    1x1 stand-ins (its verdict comes from ``clip_input`` alone). Its "black image will be
    returned" warning is not true here, so it is silenced."""
    import numpy as np
    import torch

    checker, extractor = safety
    param = next(checker.parameters())
    clip = extractor([im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
    with torch.inference_mode(), _quiet_transformers():
        _, flags = checker(clip_input=clip.to(param.device, param.dtype), images=np.zeros((len(images), 1, 1, 3)))
    return [bool(f) for f in flags]


def _check_steps(steps: int, train_steps: int, alias: str) -> None:
    """A scheduler trained on ``train_steps`` timesteps cannot space ``steps`` of them."""
    if train_steps and steps >= train_steps:
        raise OptionError(
            f"--steps {steps} is more than {alias}'s scheduler supports; use --steps {train_steps // 2} or fewer"
        )


def _module_bytes(pipe: Any, *extra: Any) -> int:
    import torch

    total = 0
    for component in [*getattr(pipe, "components", {}).values(), *extra]:
        if isinstance(component, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in component.parameters())
            total += sum(b.numel() * b.element_size() for b in component.buffers())
    return total


def scheduler_names(pipe: Any) -> list[str]:
    return sorted({cls.__name__ for cls in getattr(pipe.scheduler, "compatibles", [])} | {type(pipe.scheduler).__name__})


def _fit_preview_map(vae: Any, channels: int, vae_scale: int) -> tuple[Any, Any]:
    """Encode random flat-colour blocks (4x4 latent pixels each) with the model's VAE and
    fit latent pixel → mean colour by least squares: the colour each latent "means"."""
    import torch

    param = next(vae.parameters())
    gen = torch.Generator().manual_seed(0)
    blocks = torch.rand(2, 3, 4, 4, generator=gen) * 2 - 1
    image = torch.nn.functional.interpolate(blocks, scale_factor=4 * vae_scale, mode="nearest")
    with torch.no_grad():
        latents = vae.encode(image.to(param.device, param.dtype)).latent_dist.mean.float().cpu()
    if latents.shape[1] != channels:
        raise ValueError("latent channels differ")
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    latents = (latents - shift) * float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
    target = torch.nn.functional.adaptive_avg_pool2d(image, latents.shape[-2:])
    x = latents.permute(0, 2, 3, 1).reshape(-1, channels)
    y = target.permute(0, 2, 3, 1).reshape(-1, 3)
    x1 = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
    ridge = 1e-3 * torch.eye(channels + 1)
    ridge[-1, -1] = 0.0
    solution = torch.linalg.solve(x1.T @ x1 + ridge, x1.T @ y)  # [C+1, 3]
    return solution[:-1], solution[-1]


class DiffusersImageBackend:
    kinds = ("image",)

    # -- discovery
    def detect(self, source: str) -> str | None:
        return "image" if local_folder(source, _MARKER) else None

    def fingerprint(self, spec: ModelSpec) -> str:
        return fingerprint(spec.source, _MARKER, spec.adapters, spec.hub_revision)

    def placement(self, spec: ModelSpec, options: Any) -> tuple[str, str]:
        return _device_dtype(options)

    load_key = placement  # a loaded pipeline is one device and dtype

    def check(self, spec: ModelSpec, options: Any) -> None:
        """Refuse, before the load, a ``--steps`` that the folder's scheduler config rules out."""
        folder = local_folder(spec.source, _MARKER, spec.hub_revision)
        if folder is None:
            return  # the load says what is missing
        config = read_json(os.path.join(folder, "scheduler", "scheduler_config.json"))
        try:
            train_steps = int(config.get("num_train_timesteps") or 0)
        except (ValueError, TypeError):
            return  # no readable config: the loaded scheduler is checked at run time
        _check_steps(options.steps, train_steps, spec.alias)

    def estimate_bytes(self, spec: ModelSpec, options: Any) -> int:
        folder = local_folder(spec.source, _MARKER, spec.hub_revision)
        return weight_bytes(folder) if folder else 0

    # -- loading
    def load(self, spec: ModelSpec, options: Any) -> Loaded:
        folder = require_folder(spec.source, _MARKER, spec.hub_revision)
        try:
            with open(os.path.join(folder, _MARKER), encoding="utf-8") as fh:
                index = json.load(fh)
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(f"cannot read {folder}/{_MARKER}: {err}; point -m at a saved diffusers pipeline") from None
        class_name = index.get("_class_name")
        if isinstance(class_name, list):  # ["module", "Class"]: remote code
            class_name = class_name[-1]
        device, dtype_name = _device_dtype(options)

        import torch

        with _quiet_transformers():
            from diffusers import DiffusionPipeline

        dtype = getattr(torch, dtype_name)
        check_device(device)
        with _quiet_transformers():
            cls = _find_pipeline_class(str(class_name)) if class_name else None
        kwargs: dict[str, Any] = {_dtype_kwarg(): dtype}
        if not spec.allow_pickle:
            kwargs["use_safetensors"] = True
        if _has_sd_checker(index):  # run beside the pipeline (below), so that it flags without blacking out
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        if os.path.isfile(os.path.join(folder, "pipeline.py")):
            if not spec.trust_remote_code:
                raise ModelNotFoundError(
                    f"{spec.alias!r} defines its own pipeline code (pipeline.py); register it with "
                    "trust_remote_code = true if you trust it"
                )
            cls, kwargs["custom_pipeline"] = DiffusionPipeline, folder
        elif cls is None:
            raise ModelNotFoundError(
                f"{spec.alias!r} is a {class_name!r} pipeline, which is neither in diffusers nor imported; "
                "import the module that defines it before running, or point -m at a diffusers pipeline folder"
            )
        try:
            with _quiet_transformers():
                pipe = cls.from_pretrained(folder, **kwargs)
        except (OSError, ValueError, TypeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if "safetensors" in first and not spec.allow_pickle:
                first += " (register the model with allow_pickle = true to load pickle weights, if you trust them)"
            raise ModelNotFoundError(f"cannot load {spec.alias!r} from {folder}: {first}") from None
        if not _is_text_to_image(pipe):
            raise ModelNotFoundError(
                f"{spec.alias!r} is a {type(pipe).__name__}, not a text-to-image pipeline; "
                "point -m at a text-to-image model (and use --init/--mask for img2img and inpainting)"
            )
        base_adapters = {}
        for adapter in spec.adapters:
            path, scale = split_scale(adapter)
            name = "adapter_" + hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
            self._load_adapter(pipe, path, name)
            base_adapters[name] = scale
        if base_adapters:
            pipe.set_adapters(list(base_adapters), adapter_weights=list(base_adapters.values()))
        safety = _load_safety_checker(folder, spec, dtype, pipe) if _has_sd_checker(index) else None
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        if safety is not None:
            safety[0].to(device)
        return Loaded(
            spec=spec,
            model=_ImagePipe(pipe=pipe, folder=folder, scheduler=pipe.scheduler, base_adapters=base_adapters,
                             safety=safety),
            nbytes=_module_bytes(pipe, *(safety[:1] if safety else ())),
            device=device,
            dtype=dtype_name,
            info={"folder": folder, "pipeline": type(pipe).__name__},
        )

    @staticmethod
    def _load_adapter(pipe: Any, path: str, name: str) -> None:
        if not hasattr(pipe, "load_lora_weights"):
            raise OptionError(f"{type(pipe).__name__} does not take LoRA weights; drop --lora")
        folder, weight_name = _lora_file(path)
        try:
            with _quiet_transformers(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                pipe.load_lora_weights(folder, weight_name=weight_name, adapter_name=name)
        except ImportError:
            raise OptionError("LoRA needs peft: pip install 'genmagic[finetune]'") from None
        except (ValueError, KeyError, OSError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise OptionError(f"--lora {path}: cannot load it into this model ({first[:200]})") from None

    def unload(self, loaded: Loaded) -> None:
        state: _ImagePipe | None = loaded.model
        if state is not None:
            state.derived.clear()
            state.safety = None
        loaded.model = None
        with contextlib.suppress(Exception):
            import torch

            if loaded.device.startswith("cuda"):
                torch.cuda.empty_cache()

    # -- per-run set-up
    def _pipeline_for(self, state: _ImagePipe, mode: str, alias: str) -> Any:
        if mode == "text2img":
            return state.pipe
        if mode not in state.derived:
            with _quiet_transformers():
                from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            auto = AutoPipelineForImage2Image if mode == "img2img" else AutoPipelineForInpainting
            what = "--init (img2img)" if mode == "img2img" else "--mask (inpainting)"
            try:
                with _quiet_transformers():
                    derived = auto.from_pipe(state.pipe)
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise OptionError(
                    f"{alias} ({type(state.pipe).__name__}) does not support {what}: {first[:160]}; "
                    "use a model that has a diffusers "
                    + ("image-to-image" if mode == "img2img" else "inpainting")
                    + " pipeline"
                ) from None
            derived.set_progress_bar_config(disable=True)
            state.derived[mode] = derived
        return state.derived[mode]

    def _set_scheduler(self, pipe: Any, state: _ImagePipe, name: str | None) -> str:
        if not name:
            pipe.scheduler = state.scheduler
            return type(state.scheduler).__name__
        if name == type(pipe.scheduler).__name__ and pipe.scheduler is not state.scheduler:
            return name
        compatible = {cls.__name__: cls for cls in getattr(state.scheduler, "compatibles", [])}
        compatible.setdefault(type(state.scheduler).__name__, type(state.scheduler))
        given, name = name, _scheduler_name(name, compatible)
        if name not in compatible:
            from ..pngmeta import A1111_SAMPLERS

            a1111 = sorted({f"'{v}'" for k, v in A1111_SAMPLERS.items() if k in compatible})
            raise OptionError(
                f"--scheduler {given} does not fit this model; compatible: {', '.join(sorted(compatible))}"
                + (f"; or an A1111 name: {', '.join(a1111)}" if a1111 else "")
            )
        pipe.scheduler = compatible[name].from_config(state.scheduler.config)
        return name

    def _set_loras(self, pipe: Any, state: _ImagePipe, loras: tuple[str, ...]) -> list[str]:
        """Activate this run's ``--lora`` files (with the spec's own adapters); LoRAs loaded
        for earlier runs and not used by this one are unloaded first."""
        wanted = []
        given: dict[str, str] = {}
        for value in loras:
            path, scale = parse_lora(value)
            key = f"{os.path.abspath(path)}#{lora_fingerprint(path)}"
            if key in given:  # set_adapters would get one adapter name twice
                raise OptionError(
                    f"--lora {value}: this LoRA is already given as --lora {given[key]}; "
                    "give it once, with the scale you want (PATH:SCALE)"
                )
            given[key] = value
            wanted.append((path, scale, key))
        keys = {key for _, _, key in wanted}
        unused = [name for key, name in state.adapters.items() if key not in keys]
        if unused:
            state.pipe.delete_adapters(unused)
            state.adapters = {key: name for key, name in state.adapters.items() if key in keys}
        names, scales = [], []
        for path, scale, key in wanted:
            if key not in state.adapters:
                name = "lora_" + hashlib.sha256(key.encode()).hexdigest()[:12]
                self._load_adapter(state.pipe, path, name)
                state.adapters[key] = name
            names.append(state.adapters[key])
            scales.append(scale)
        base = state.base_adapters
        if names:
            state.pipe.enable_lora()
            state.pipe.set_adapters(list(base) + names, adapter_weights=list(base.values()) + scales)
            state.active_lora = True
        elif state.active_lora:
            if base:
                state.pipe.set_adapters(list(base), adapter_weights=list(base.values()))
            else:
                state.pipe.disable_lora()
            state.active_lora = False
        return names

    def _check_size(self, pipe: Any, width: int, height: int, alias: str) -> None:
        multiple = size_multiple(pipe)
        for flag, value in (("--width", width), ("--height", height)):
            if value % multiple:
                near = max(multiple, round(value / multiple) * multiple)
                raise OptionError(
                    f"{flag} {value} does not fit {alias}: sizes must be multiples of {multiple}; e.g. {flag} {near}"
                )

    # -- preview
    def _preview_map(self, state: _ImagePipe, latent_channels: int) -> Any:
        """A linear latent → RGB map fitted to the model's own VAE, once per model (the
        first time a preview is wanted): works for any VAE and latent channel count."""
        if state.preview_map is not None:
            return state.preview_map
        import torch

        vae = getattr(state.pipe, "vae", None)
        weights = bias = None
        if vae is not None and hasattr(vae, "encode"):
            try:
                vae_scale = int(getattr(state.pipe, "vae_scale_factor", 8) or 8)
                weights, bias = _fit_preview_map(vae, latent_channels, vae_scale)
            except Exception:  # an unusual VAE: fall back to the plain channels below
                weights = None
        if weights is None or weights.shape[0] != latent_channels:
            weights = torch.zeros(latent_channels, 3)
            for c in range(min(3, latent_channels)):
                weights[c, c] = 0.5
            bias = torch.zeros(3)
        state.preview_map = (weights, bias)
        return state.preview_map

    def preview(self, state: _ImagePipe, latents: Any) -> Any:
        """A cheap RGB preview (latent resolution) of the first latent in a batch."""
        import torch
        from PIL import Image

        lat = latents[0].detach().float().cpu()
        if lat.dim() != 3:  # packed latents (Flux...): no cheap preview
            return None
        weights, bias = self._preview_map(state, lat.shape[0])
        rgb = torch.einsum("chw,cr->hwr", lat, weights) + bias
        rgb = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        return Image.fromarray(rgb, "RGB")

    # -- generation
    def _call_args(self, loaded: Loaded, request: Request) -> tuple[Any, str, str, int, int, dict[str, Any], Any]:
        """What a pipeline call of ``request`` needs: (pipe, mode, sampler, width, height, kwargs, params)."""
        state: _ImagePipe = loaded.model
        options: ImageOptions = request.options  # type: ignore[assignment]
        alias = request.model
        init = request.inputs.get("init")
        mask = request.inputs.get("mask")
        if mask is not None and init is None:
            raise OptionError("--mask needs --init: the image to paint into")
        mode = "inpaint" if mask is not None else "img2img" if init is not None else "text2img"
        pipe = self._pipeline_for(state, mode, alias)
        sampler = self._set_scheduler(pipe, state, options.scheduler)
        self._set_loras(pipe, state, options.lora)

        if init is not None:  # the init image's size, rounded to the model's multiple (it is resized below)
            multiple = size_multiple(state.pipe)
            width = options.width or max(multiple, round(init.width / multiple) * multiple)
            height = options.height or max(multiple, round(init.height / multiple) * multiple)
        else:
            native = native_size(state.pipe)
            width, height = options.width or native[0], options.height or native[1]
        self._check_size(state.pipe, width, height, alias)
        if init is not None and init.size != (width, height):
            from PIL import Image

            init = init.resize((width, height), Image.Resampling.LANCZOS)
        if mask is not None and mask.size != (width, height):
            mask = mask.resize((width, height), 0)
        _check_steps(options.steps, int(getattr(pipe.scheduler.config, "num_train_timesteps", 0) or 0), alias)
        if mode != "text2img" and int(options.steps * options.strength) < 1:
            raise OptionError(
                f"--strength {options.strength:g} with --steps {options.steps} runs no step; "
                f"raise --strength to {1 / options.steps:.2f} or more, or raise --steps"
            )

        params = inspect.signature(pipe.__call__).parameters
        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "num_inference_steps": options.steps,
            "guidance_scale": options.guidance,
            "output_type": "pil",
        }
        if options.negative is not None:
            if "negative_prompt" not in params:
                raise OptionError(f"{type(pipe).__name__} takes no negative prompt; drop --negative")
            kwargs["negative_prompt"] = options.negative
        if mode == "text2img" or "height" in params:
            kwargs.update(width=width, height=height)
        if init is not None:
            kwargs["image"] = init
            kwargs["strength"] = options.strength
        if mask is not None:
            kwargs["mask_image"] = mask
        kwargs = {k: v for k, v in kwargs.items() if k in params}
        return pipe, mode, sampler, width, height, kwargs, params

    def generate(self, loaded: Loaded, request: Request, sink: Sink) -> ImageResult:
        import torch

        state: _ImagePipe = loaded.model
        options: ImageOptions = request.options  # type: ignore[assignment]
        alias = request.model
        pipe, mode, sampler, width, height, kwargs, params = self._call_args(loaded, request)
        every = 0 if isinstance(sink, NullSink) else int(getattr(sink, "preview_every", PREVIEW_EVERY))
        seed = options.seed if options.seed is not None else 0

        images: list[Any] = []
        seeds: list[int] = []
        nsfw: list[bool] = []
        status = "ok"
        started = time.perf_counter()
        steps_done = 0
        preview_s = 0.0
        for index in range(options.num):
            last: dict[str, Any] = {"latents": None, "preview": None}
            total = self._total_steps(pipe, options, mode)

            def on_step(p: Any, i: int, t: Any, tensors: dict[str, Any], index: int = index, total: int = total,
                        last: dict[str, Any] = last) -> dict[str, Any]:
                nonlocal steps_done, preview_s
                steps_done += 1
                # Second-order samplers (Heun, DPM2) call back twice per step: count what the pipeline runs.
                total = int(getattr(p, "_num_timesteps", 0) or total)
                latents = tensors.get("latents")
                last["latents"] = latents
                sink.emit(Event("progress", (i + 1, total), index))
                if every and latents is not None and ((i + 1) % every == 0 or i + 1 == total):
                    t0 = time.perf_counter()
                    image = self.preview(state, latents)
                    preview_s += time.perf_counter() - t0
                    if image is not None:
                        last["preview"] = image
                        sink.emit(Event("preview", image, index))
                if sink.cancelled:
                    p._interrupt = True
                return {}

            call = dict(kwargs)
            if "callback_on_step_end" in params:
                call["callback_on_step_end"] = on_step
                if "callback_on_step_end_tensor_inputs" in params:
                    call["callback_on_step_end_tensor_inputs"] = ["latents"]
            call["generator"] = torch.Generator("cpu").manual_seed(seed + index)
            try:
                with torch.inference_mode(), torch_threads(loaded.nbytes if loaded.device == "cpu" else 1 << 40):
                    output = pipe(**call)
            except KeyboardInterrupt:
                status = "interrupted"
                image = last["preview"]
                if image is None and last["latents"] is not None:
                    image = self.preview(state, last["latents"])
                if image is not None:
                    images.append(image.resize((width, height), 0))
                    seeds.append(seed + index)
                    nsfw.append(nsfw_flags(state.safety, images[-1:])[0] if state.safety else False)
                break
            except ValueError as err:  # diffusers' check_inputs: a value this pipeline refuses
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise OptionError(f"{alias} rejected the request: {first[:200]}") from None
            images.append(output.images[0])
            seeds.append(seed + index)
            flags = nsfw_flags(state.safety, images[-1:]) if state.safety else getattr(output, "nsfw_content_detected", None)
            nsfw.append(bool(flags[0]) if flags else False)
            if sink.cancelled:
                status = "interrupted"
                break
        return _image_result(request, loaded, pipe, status, images, seeds, nsfw, started, steps_done, preview_s,
                             mode, sampler, width, height)

    # -- batches (Engine.run_many)
    def plan_batches(self, loaded: Loaded, requests: list[Request], batch_size: int | None) -> list[list[int]]:
        """Rows that can share one pipeline call: text-to-image, one image each, the same options but
        the seed (model, size, steps, guidance, scheduler, negative prompt, LoRAs); ``batch_size`` rows
        each (default 4 on the CPU, 16 on an accelerator). Any other row runs alone."""
        from .batching import plan

        keys = [(r.options.replace(seed=None), r.inputs.get("lora"),  # type: ignore[attr-defined]
                 i if set(r.inputs) - {"lora"} or r.options.num > 1 else -1)  # type: ignore[attr-defined]
                for i, r in enumerate(requests)]
        size = batch_size or (4 if loaded.device == "cpu" else 16)
        return plan(keys, [0] * len(requests), size)

    def generate_batch(self, loaded: Loaded, requests: list[Request], sinks: list[Sink]) -> list[ImageResult]:
        """Text-to-image rows of :meth:`plan_batches` in one pipeline call: a list of prompts and one
        CPU generator per row seeded with the row's seed, so row ``i`` starts from the noise it
        starts from alone (the pixels then match the single run within float rounding of the batched
        UNet). Progress goes to every row's sink; the call stops when every row is cancelled;
        Ctrl-C returns the rows as interrupted, without images. Other rows run one at a time."""
        import torch

        if len(requests) == 1 or any(set(r.inputs) - {"lora"} or r.options.num > 1 for r in requests):  # type: ignore[attr-defined]
            return [self.generate(loaded, r, s) for r, s in zip(requests, sinks, strict=True)]
        state: _ImagePipe = loaded.model
        pipe, mode, sampler, width, height, kwargs, params = self._call_args(loaded, requests[0])
        call = dict(kwargs, prompt=[r.prompt for r in requests])
        if "negative_prompt" in call:
            call["negative_prompt"] = [call["negative_prompt"]] * len(requests)
        call["generator"] = [torch.Generator("cpu").manual_seed(r.seed or 0) for r in requests]
        steps_done = 0

        def on_step(p: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            nonlocal steps_done
            steps_done += 1
            total = int(getattr(p, "_num_timesteps", 0) or requests[0].options.steps)  # type: ignore[attr-defined]
            for sink in sinks:
                sink.emit(Event("progress", (i + 1, total), 0))
            if all(sink.cancelled for sink in sinks):
                p._interrupt = True
            return {}

        if "callback_on_step_end" in params:
            call["callback_on_step_end"] = on_step
        started = time.perf_counter()
        try:
            with torch.inference_mode(), torch_threads(loaded.nbytes if loaded.device == "cpu" else 1 << 40):
                images = list(pipe(**call).images)
            status = "interrupted" if all(sink.cancelled for sink in sinks) else "ok"
        except KeyboardInterrupt:
            images, status = [], "interrupted"
        nsfw = nsfw_flags(state.safety, images) if state.safety and images else [False] * len(images)
        out = []
        for i, request in enumerate(requests):
            row = images[i:i + 1]  # a Stop (interrupt flag) still decodes: the partial images are kept
            out.append(_image_result(request, loaded, pipe, status, row, [request.seed or 0] * len(row),
                                     [bool(f) for f in nsfw[i:i + 1]] if row else [], started, steps_done, 0.0,
                                     mode, sampler, width, height))
        return out

    @staticmethod
    def _total_steps(pipe: Any, options: Any, mode: str) -> int:
        if mode == "text2img":
            return int(options.steps)
        return max(1, min(int(options.steps * options.strength), int(options.steps)))


def _image_result(request: Request, loaded: Loaded, pipe: Any, status: str, images: list[Any], seeds: list[int],
                  nsfw: list[bool], started: float, steps_done: int, preview_s: float, mode: str, sampler: str,
                  width: int, height: int) -> ImageResult:
    from ..results import ImageResult

    elapsed = time.perf_counter() - started
    return ImageResult(
        request=request,
        status=status,
        images=images,
        seeds=seeds,
        nsfw=nsfw,
        timings={
            "generate": elapsed,
            "per_image": elapsed / max(1, len(images)),
            "steps": float(steps_done),
            "steps_per_s": steps_done / elapsed if elapsed > 0 else 0.0,
            "preview": preview_s,
        },
        info={
            "device": loaded.device,
            "dtype": loaded.dtype,
            "pipeline": type(pipe).__name__,
            "mode": mode,
            "scheduler": sampler,
            "width": width,
            "height": height,
            **{k: v for k, v in loaded.info.items() if k == "folder"},
        },
    )
