"""Where an adapter lives, its model card, and its alias.

An adapter is saved under ``GENMAGIC_HOME/adapters/NAME`` (peft's ``adapter_config.json`` +
``adapter_model.safetensors``, or diffusers' ``pytorch_lora_weights.safetensors`` for an image
LoRA) with ``genmagic_card.json`` (the base model and its weight fingerprint, the data
fingerprint, the options, the metrics, the date) and a readable ``README.md``. The run's
fingerprint (base + data + options) decides whether a re-run can reuse the saved adapter. The
alias ``NAME`` goes into the user config, so ``-m NAME`` routes to base + adapter after a restart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import OptionError
from ..registry import ModelSpec, Registry, builtin_specs, home_dir

CARD = "genmagic_card.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name: str, base: ModelSpec, registry: Registry, *, replace: bool = False) -> str:
    """A usable alias for the tuned model, and a base that is a plain model (not base + adapters).
    An existing alias is only overwritten when this feature made it (:func:`made_here`) or with
    ``replace``."""
    if base.adapters:
        raise OptionError(f"--base {base.alias} already has adapters; fine-tune from its base model instead")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise OptionError(f"fine-tuned model name {name!r}: use letters, digits, '.', '_' or '-' (at most 64), "
                          "e.g. support-bot")
    if name in {s.alias for s in builtin_specs()} or name == base.alias:
        raise OptionError(f"fine-tuned model name {name!r} is the base model's or a built-in alias; pick a new "
                          "one, e.g. support-bot")
    existing = next((s for s in registry.specs() if s.alias == name), None)
    if existing is not None and not replace and not made_here(existing):
        what = existing.source + "".join(f" + {a}" for a in existing.adapters)
        raise OptionError(f"fine-tuned model name {name!r} is already an alias ({existing.origin}) of {what}; "
                          "pick another name, or pass --overwrite to replace it")
    return name


def made_here(spec: ModelSpec) -> bool:
    """Whether alias ``spec`` is one fine-tuning made: base + its one adapter ``adapters/NAME``
    (or, after GENMAGIC_HOME moved, an adapter whose card names the alias)."""
    if spec.adapters == (str(adapter_dir(spec.alias)),):
        return True
    card = read_card(Path(spec.adapters[0])) if len(spec.adapters) == 1 else None
    return card is not None and card.get("name") == spec.alias


def adapter_dir(name: str) -> Path:
    return home_dir() / "adapters" / name


def merged_dir(name: str) -> Path:
    """Where ``--merge`` writes the full model with the adapter merged in."""
    return home_dir() / "merged" / name


# Options that only matter for one kind of training: left out of the other's fingerprint.
IMAGE_ONLY = ("images", "captions", "resolution")
TEXT_ONLY = ("format", "text_column", "prompt_column", "completion_column", "messages_column", "max_length")


def fingerprint_options(options: Any, image: bool) -> dict[str, Any]:
    """The options that shape the adapter (a :class:`FinetuneOptions`), as a dict."""
    drop = TEXT_ONLY if image else IMAGE_ONLY
    return {k: v for k, v in options.to_dict().items() if k not in drop}


def run_fingerprint(base_fingerprint: str, data_fingerprint: str, options: dict[str, Any]) -> str:
    payload = json.dumps({"base": base_fingerprint, "data": data_fingerprint, "options": options}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_card(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def reusable(folder: Path, fingerprint: str, weights: str) -> dict[str, Any] | None:
    """The card of a finished adapter saved by the same run (same fingerprint), else None."""
    card = read_card(folder)
    if card and card.get("fingerprint") == fingerprint and not card.get("stopped") and (folder / weights).is_file():
        return card
    return None


def make_card(*, name: str, base: ModelSpec, base_fingerprint: str, data_fingerprint: str, fingerprint: str,
              options: dict[str, Any], metrics: dict[str, Any], data: dict[str, Any], stopped: bool) -> dict[str, Any]:
    return {
        "name": name, "base": base.alias, "base_source": base.source, "base_fingerprint": base_fingerprint,
        "data_fingerprint": data_fingerprint, "fingerprint": fingerprint, "options": options, "metrics": metrics,
        "data": data, "stopped": stopped, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "genmagic": _version(),
    }


def _version() -> str:
    from .. import __version__

    return __version__


def card_markdown(card: dict[str, Any]) -> str:
    metrics = card.get("metrics", {})
    lines = [
        f"# {card['name']}", "",
        f"A LoRA adapter trained with genmagic `%%finetune` on `{card['base']}` ({card['date']}).", "",
        "| | |", "|---|---|",
        f"| base model | `{card['base']}` (`{card['base_source']}`) |",
        f"| base fingerprint | `{card['base_fingerprint']}` |",
        f"| data fingerprint | `{card['data_fingerprint']}` |",
        f"| run fingerprint | `{card['fingerprint']}` |",
        *(f"| {k.replace('_', ' ')} | {v} |" for k, v in metrics.items()),
        *(f"| data: {k.replace('_', ' ')} | {v} |" for k, v in card.get("data", {}).items()),
        "", "## Options", "", "```json", json.dumps(card["options"], indent=2, sort_keys=True), "```", "",
        "Use it: `%%generate -m " + card["name"] + "` (text) or `%%imagine -m " + card["name"] + "` (images).", "",
    ]
    if card.get("stopped"):
        lines.insert(4, "Training was stopped before the planned steps; this is the adapter at that point.\n")
    return "\n".join(lines)


def write_card(folder: Path, card: dict[str, Any]) -> None:
    """``genmagic_card.json`` and the ``README.md`` model card of the adapter in ``folder``."""
    (folder / CARD).write_text(json.dumps(card, indent=2, sort_keys=True), encoding="utf-8")
    (folder / "README.md").write_text(card_markdown(card), encoding="utf-8")


def save_adapter(write: Any, folder: Path, card: dict[str, Any]) -> None:
    """Write the adapter (``write(tmp_folder)``) and its card into a new folder, then swap it in,
    so a crash or a failed save never leaves a half-written adapter under the alias."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    write_card(tmp, card)
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.replace(old)
    tmp.replace(folder)
    shutil.rmtree(old, ignore_errors=True)


def register(registry: Registry, name: str, base: ModelSpec, folder: Path, *, raw: bool = False) -> ModelSpec:
    """Alias ``name`` = base + the adapter, in this session and the user config. ``raw``: the
    adapter learned plain text (``--format text``), so ``%%generate -m NAME`` sends prompts as
    plain text to continue (params ``raw = true``), as it was trained, not as a chat turn."""
    params = {**base.params, **({"raw": True} if raw else {})}
    extra: dict[str, Any] = {"params": params} if params else {}
    if base.hub_revision:
        extra["hub_revision"] = base.hub_revision
    return registry.register(name, base.source, kind=base.kind, backend=base.backend, adapters=[str(folder)],
                             persist=True, settings=dict(base.settings) or None,
                             description=f"LoRA of {base.alias} (genmagic finetune)", **extra)
