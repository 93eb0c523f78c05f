"""Image safety: the pipeline's own safety checker's flags and an optional image classifier,
turned into :class:`~genmagic.results.Verdict`\\ s; :func:`blur` hides a withheld image.

Two sources, both optional:

* **The pipeline's safety checker.** A Stable Diffusion folder with a ``safety_checker``
  (diffusers' ``StableDiffusionSafetyChecker``) flags images; the diffusers backend runs it
  without letting it black them out and puts the flags in ``ImageResult.nsfw``. Each flag is
  a ``block`` verdict, category ``sexual_content`` (the concepts that checker matches).
* **An image classifier** named in the config: any local
  ``AutoModelForImageClassification`` folder (safetensors weights only, never its own code).
  Its labels map to categories (:data:`DEFAULT_LABELS`, or ``labels=``); a category's
  probability is the sum of its labels' softmax probabilities (the largest sigmoid for a
  multi-label model). At ``standard`` a probability at or over ``threshold`` blocks and one
  at or over the strict threshold (``threshold * STRICT_FACTOR``, 0.3 by default) warns; at
  ``strict`` the strict threshold blocks.

The levels ``off`` and ``warn`` are the caller's (the engine turns blocks into warnings); here
they screen as ``standard``. The classifier is loaded once per folder content (its
fingerprint) and runs on the CPU without gradients. Importing this module imports neither
torch nor PIL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelNotFoundError, OptionError
from ..registry import dir_fingerprint
from ..results import Verdict
from .blur import blur
from .labels import CATEGORY_NAMES, check_level

if TYPE_CHECKING:
    from ..request import Request

__all__ = ["DEFAULT_LABELS", "STRICT_FACTOR", "ImageCheck", "blur"]

DEFAULT_LABELS: Mapping[str, str] = {
    **dict.fromkeys(("nsfw", "porn", "hentai", "sexy", "explicit", "sexual", "nudity"), "sexual_content"),
    **dict.fromkeys(("violence", "violent", "gore", "blood"), "violent_crimes"),
    **dict.fromkeys(("safe", "sfw", "normal", "neutral", "drawings"), "safe"),
}
STRICT_FACTOR = 0.6  # strict blocks at threshold * STRICT_FACTOR (standard warns there)
CHECKER_REASON = "flagged by the pipeline's safety checker (StableDiffusionSafetyChecker)"


@dataclass
class _Classifier:
    model: Any
    processor: Any
    names: list[str]  # label of each output
    categories: list[str]  # category of each output ("" when the label maps to none)
    multi_label: bool


_loaded: dict[str, tuple[str, _Classifier]] = {}  # real path -> (fingerprint, classifier)


class ImageCheck:
    """Screens a run's images; see the module docstring."""

    name = "image"

    def __init__(self, classifier: str | os.PathLike[str] | None = None, *, threshold: float = 0.5,
                 labels: Mapping[str, str] | None = None) -> None:
        if not 0.0 < threshold <= 1.0:
            raise OptionError(f"image classifier threshold {threshold!r} is not in (0, 1]; use e.g. 0.5")
        self.classifier = Path(classifier).expanduser() if classifier else None
        self.threshold = threshold
        for label, category in (labels or {}).items():
            if category != "safe" and category not in CATEGORY_NAMES:
                raise OptionError(
                    f"image classifier label {label!r} maps to {category!r}, which is no category; "
                    f"use 'safe' or one of {', '.join(CATEGORY_NAMES)}"
                )
        self.labels = {k.lower(): v for k, v in {**DEFAULT_LABELS, **(labels or {})}.items()}

    def version(self) -> str:
        """What decides this check's verdicts besides the images: its code, the classifier's files,
        the threshold and the label map (``policy.policy_key``)."""
        from .digest import files_digest

        classifier = dir_fingerprint(str(self.classifier)) if self.classifier and self.classifier.is_dir() else ""
        return f"{files_digest(__file__)}:{classifier}:{self.threshold}:{sorted(self.labels.items())}"

    @property
    def strict_threshold(self) -> float:
        return self.threshold * STRICT_FACTOR

    def screen(self, text: str, stage: str, request: Request, level: str = "standard") -> list[Verdict]:
        """Texts are other checks' job."""
        return []

    def screen_images(self, images: Sequence[Any], request: Request, level: str = "standard",
                      flags: Sequence[bool] = ()) -> list[Verdict]:
        """The verdicts on ``images`` (the originals, not blurred copies): one ``block`` per
        image ``flags`` marks (the pipeline's safety checker), then the classifier's."""
        check_level(level, "level")
        verdicts = [
            Verdict(check=self.name, category="sexual_content", score=1.0, action="block", stage="output",
                    target=f"image {i + 1}", reason=CHECKER_REASON)
            for i, flagged in enumerate(flags) if flagged and i < len(images)
        ]
        if self.classifier is not None and images:
            verdicts += self._classify(images, level)
        return verdicts

    def _classify(self, images: Sequence[Any], level: str) -> list[Verdict]:
        import torch

        clf = self.load()
        pixels = clf.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            logits = clf.model(pixel_values=pixels.to(clf.model.dtype)).logits.float()
        probs = torch.sigmoid(logits) if clf.multi_label else torch.softmax(logits, dim=-1)
        block = self.strict_threshold if level == "strict" else self.threshold
        verdicts = []
        for i, row in enumerate(probs.tolist()):
            per_category: dict[str, tuple[float, list[str]]] = {}
            for p, label, category in zip(row, clf.names, clf.categories, strict=True):
                if not category or category == "safe":
                    continue
                total, names = per_category.get(category, (0.0, []))
                if not clf.multi_label:  # one distribution: the category's labels add up
                    per_category[category] = (total + p, [*names, label])
                elif p > total or not names:  # independent labels: the most confident one speaks
                    per_category[category] = (p, [label])
            for category, (p, names) in per_category.items():
                if p < self.strict_threshold:
                    continue
                action = "block" if p >= block else "warn"
                verdicts.append(Verdict(
                    check=self.name, category=category, score=round(p, 4), action=action, stage="output",
                    target=f"image {i + 1}",
                    reason=f"the image classifier ({self.classifier.name if self.classifier else ''}) gives "
                           f"{'+'.join(names)} {p:.2f} (threshold {block:.2f})",
                ))
        return verdicts

    def load(self) -> _Classifier:
        """The classifier, loaded on first use and again only when its folder changes."""
        if self.classifier is None:
            raise OptionError("no image classifier is configured")
        folder = self.classifier
        what = f"image classifier {folder}"
        if not folder.is_dir():
            raise ModelNotFoundError(f"{what}: no such folder; point it at a saved image-classification model")
        real = os.path.realpath(folder)
        stamp = dir_fingerprint(real)
        cached = _loaded.get(real)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        _refuse_unsafe_folder(folder, what)
        clf = self._load(real, what)
        _loaded[real] = (stamp, clf)
        return clf

    def _load(self, folder: str, what: str) -> _Classifier:
        from transformers import AutoImageProcessor, AutoModelForImageClassification
        from transformers.utils import logging as hf_logging

        from ..backends import quiet_progress_bars

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # notices about optional image-processing backends
        try:
            with quiet_progress_bars("transformers"):
                model = AutoModelForImageClassification.from_pretrained(
                    folder, local_files_only=True, trust_remote_code=False, use_safetensors=True, device_map="cpu",
                )
                processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError, TypeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelNotFoundError(f"cannot load the {what}: {first[:200]}") from None
        finally:
            hf_logging.set_verbosity(level)
        model.eval()
        id2label = model.config.id2label or {}
        names = [str(id2label.get(i, f"LABEL_{i}")) for i in range(model.config.num_labels)]
        categories = [self.labels.get(n.lower(), "") for n in names]
        if not any(c and c != "safe" for c in categories):
            raise OptionError(
                f"{what}: none of its labels ({', '.join(names)}) maps to a category; "
                "pass labels={'LABEL': 'sexual_content', ...}"
            )
        multi = getattr(model.config, "problem_type", None) == "multi_label_classification"
        return _Classifier(model=model, processor=processor, names=names, categories=categories, multi_label=multi)


def _refuse_unsafe_folder(folder: Path, what: str) -> None:
    """A classifier folder is data: no code of its own, no pickle weights."""
    for name in ("config.json", "preprocessor_config.json"):
        path = folder / name
        if not path.is_file():
            if name == "config.json":
                raise ModelNotFoundError(f"{what}: no config.json; save the model with save_pretrained")
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(f"{what}: cannot read {name} ({err})") from None
        if isinstance(data, dict) and ("auto_map" in data or data.get("trust_remote_code")):
            raise ModelNotFoundError(
                f"{what}: its {name} asks to run the folder's own code (auto_map), which genmagic never does; "
                "use a classifier whose architecture transformers has built in"
            )
    if not any(p.name.endswith(".safetensors") for p in folder.iterdir()):
        raise ModelNotFoundError(
            f"{what}: no .safetensors weights (pickle files such as pytorch_model.bin are never loaded); "
            "save it again with save_pretrained(folder, safe_serialization=True)"
        )
