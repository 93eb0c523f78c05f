"""LoRA fine-tuning: a DataFrame (a list, a file, the cell body) to a model alias in one call.

``genmagic.finetune(name, data, **options)`` (which calls :func:`finetune` here), ``%%finetune NAME
[options]`` and ``genmagic finetune NAME [options]`` take the same options
(:class:`~genmagic.tuning.options.FinetuneOptions` and ``FinetuneControls``)::

    import genmagic
    result = genmagic.finetune("support-bot", df, base="tiny-text", text_column="reply", steps=200, seed=0)
    genmagic.generate("How do I reset my password?", model="support-bot")

Modules: ``options`` (the declaration), ``data`` (sources and formats), ``pii_scan``,
``train_text`` / ``train_image`` (the training loops), ``evaluate``, ``live`` (progress, loss
curve, Stop), ``card`` (adapter folder, model card, alias), ``run`` (one run end to end),
``result`` (what a run returns). Importing it imports no torch.
"""

from __future__ import annotations

from typing import Any

from .options import FinetuneControls, FinetuneOptions

__all__ = ["FinetuneControls", "FinetuneOptions", "finetune"]


def finetune(name: str, data: Any = None, *, progress: bool = False, **options: Any) -> Any:
    """Fine-tune a LoRA adapter into alias ``name``; ``options`` are ``%%finetune``'s
    (``base="tiny-text"``, ``text_column="reply"``, ``steps=200``, ``seed=0``, ``redact_pii=True``,
    ``retrain=True``, ...). ``data``: a DataFrame, a list of texts or dicts, or a file path.
    ``progress=True`` prints progress on stderr. Returns a :class:`~.result.FinetuneResult`."""
    from ..options import split_kwargs
    from .run import run

    namespace = _image_objects(options)
    values, control_values = split_kwargs(options, FinetuneOptions, FinetuneControls)
    control_values.setdefault("live", progress)
    if isinstance(data, str):
        control_values.setdefault("data", data)
        data = None
    return run(name, FinetuneOptions(**values), FinetuneControls(**control_values), data=data, namespace=namespace)


def _image_objects(options: dict[str, Any]) -> dict[str, Any] | None:
    """``images=`` given as objects (a list of PIL images or of (image, caption) pairs, a
    DataFrame; ``captions=`` a list, one per image): put where ``--images VAR`` finds them."""
    import os

    images, captions = options.get("images"), options.get("captions")
    if isinstance(images, os.PathLike):
        options["images"] = os.fspath(images)
    if images is None or isinstance(images, (str, os.PathLike)):
        return None
    if captions is not None and not isinstance(captions, (str, os.PathLike)):
        from ..errors import OptionError

        images, captions = list(images), [str(c) for c in captions]
        if len(captions) != len(images):
            raise OptionError(f"captions: {len(captions)} captions for {len(images)} images; give one per image")
        images = list(zip(images, captions))
        del options["captions"]
    options["images"] = "images"
    return {"images": images}
