"""One fine-tuning run, whichever way in (the magic, the CLI, ``genmagic.finetune``):

data → format → PII scan → token ids → (the saved adapter when the run's fingerprint matches)
→ LoRA training with a live view → evaluation → adapter + model card → alias in the user config
→ optionally a merged model folder.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import card as cards
from .live import TrainingView, interrupt_stops, live_view
from .options import FinetuneControls, FinetuneOptions
from .result import FinetuneResult


def run(name: str, options: FinetuneOptions, controls: FinetuneControls, *, data: Any = None,
        namespace: Mapping[str, Any] | None = None, cell: str | None = None, engine: Any = None,
        view: TrainingView | None = None) -> FinetuneResult:
    """Fine-tune ``options.base`` on the data into alias ``name``."""
    from ..engine import default_engine

    engine = engine or default_engine()
    if options.images is not None or (options.captions is not None):
        if data is not None or controls.data is not None or (cell or "").strip():
            from ..errors import OptionError

            raise OptionError("--images trains an image LoRA on pictures and captions; --data (or the cell body) "
                              "is text for a text LoRA: give one of them")
        from .train_image import run_image

        return run_image(name, options, controls, namespace=namespace, engine=engine,
                         view=view or live_view(controls.live))
    base = engine.registry.resolve(options.base, "text")
    cards.check_name(name, base, engine.registry, replace=controls.overwrite)
    view = view or live_view(controls.live)
    try:
        return _run_text(name, base, options, controls, data if data is not None else controls.data,
                         namespace, cell, engine, view)
    except BaseException as err:  # the error itself is the message (a UsageError, the CLI's line)
        view.close("interrupted" if isinstance(err, KeyboardInterrupt) else "")
        raise


def _run_text(name: str, base: Any, options: FinetuneOptions, controls: FinetuneControls, data: Any,
              namespace: Mapping[str, Any] | None, cell: str | None, engine: Any, view: TrainingView) -> FinetuneResult:
    from ..backends import default_device, seeded
    from ..backends._hub import require_folder
    from ..registry import get_backend
    from . import data as dat
    from . import evaluate, pii_scan, train_text

    rows, where = dat.load_rows(data, namespace, cell)
    fmt = dat.pick_format(rows, options, where)
    report = pii_scan.scan(rows, fmt, options, engine.level(controls.safety))
    redaction = engine.registry.safety_setting("redaction") or "placeholder"
    rows = pii_scan.apply_policy(rows, fmt, options, report, allow=controls.allow_pii, redaction=str(redaction))
    view.message(report.summary())

    folder = require_folder(base.source, "config.json", base.hub_revision)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=base.trust_remote_code)
    encoded = dat.encode(rows, fmt, options, tokenizer, strict=controls.strict)
    notes = [f"{len(encoded)} example{'s' if len(encoded) != 1 else ''} ({fmt}) from {where}"]
    if encoded.truncated:
        notes.append(f"{encoded.truncated} truncated to --max-length {options.max_length}")
    if encoded.skipped:
        notes.append(f"{encoded.skipped} without text skipped")
    view.message("; ".join(notes))
    if (encoded.skipped or encoded.truncated) and type(view) is TrainingView:  # a silent view (the Python API)
        print(f"genmagic: {'; '.join(notes[1:])}", file=sys.stderr)  # rows left out are never silent

    base_fp = get_backend(base.backend).fingerprint(dataclasses.replace(base, adapters=()))
    data_fp = dat.fingerprint(encoded)
    fp_options = cards.fingerprint_options(options, image=False)
    fingerprint = cards.run_fingerprint(base_fp, data_fp, fp_options)
    out_dir = cards.adapter_dir(name)
    saved = None if controls.retrain else cards.reusable(out_dir, fingerprint, "adapter_config.json")
    if saved is not None:
        cards.register(engine.registry, name, base, out_dir, raw=fmt == "text")
        view.close(f"{name}: the saved adapter has the same data, options and seed (fingerprint {fingerprint}); "
                   "reused it (--retrain trains again)")
        merged = _merge(base, out_dir, folder, controls) if controls.merge else None
        return FinetuneResult(name=name, adapter=out_dir, card=saved, reused=True, pii=report.summary(), merged=merged)

    device = controls.device or default_device()
    train_idx, eval_idx = train_text.split(encoded, options.eval_split, options.seed)
    with seeded(options.seed, device):
        model, tokenizer = train_text.load_base(folder, device, base.trust_remote_code)
        model, targets = train_text.wrap_lora(model, options)
        ppl_before = evaluate.perplexity(model, tokenizer, encoded, eval_idx, device, options.batch_size, adapter=False)
        with interrupt_stops(view):
            trained = train_text.train(model, tokenizer, encoded, train_idx, eval_idx, options, device, view)
        stopped = view.reason if trained.stopped else ""
        metrics = {
            "steps": trained.steps, "planned_steps": trained.total, "train_examples": len(train_idx),
            "eval_examples": len(eval_idx), "final_loss": trained.losses[-1][1] if trained.losses else None,
            "eval_loss": trained.eval_losses[-1][1] if trained.eval_losses else None,
            "perplexity_before": ppl_before, "perplexity_after": None, "seconds": round(trained.seconds, 2),
            "steps_per_second": round(trained.steps / trained.seconds, 3) if trained.seconds else None,
            "device": device, "target_modules": targets,
        }
        card = cards.make_card(
            name=name, base=base, base_fingerprint=base_fp, data_fingerprint=data_fp, fingerprint=fingerprint,
            options=fp_options, metrics=metrics, stopped=bool(stopped),
            data={"source": where, "format": fmt, "examples": len(encoded), "truncated": encoded.truncated,
                  "pii": report.to_dict()},
        )
        # saved and registered before the evaluation: an interrupt there (a second one after Stop) keeps it
        cards.save_adapter(lambda tmp: model.save_pretrained(tmp), out_dir, card)
        cards.register(engine.registry, name, base, out_dir, raw=fmt == "text")
        view.message(f"{name}: adapter saved to {out_dir}; evaluating")
        metrics["perplexity_after"] = evaluate.perplexity(model, tokenizer, encoded, eval_idx, device,
                                                          options.batch_size, adapter=True)
        examples = evaluate.samples(model, tokenizer, encoded, eval_idx or train_idx, device, controls.samples)
    cards.write_card(out_dir, card)  # with the perplexity after
    merged = _merge(base, out_dir, folder, controls, model) if controls.merge else None
    result = FinetuneResult(name=name, adapter=out_dir, card=card, stopped=stopped, losses=trained.losses,
                            eval_losses=trained.eval_losses, samples=examples, merged=merged, pii=report.summary())
    view.close(result.summary())
    return result


def _merge(base: Any, adapter: Path, folder: str, controls: FinetuneControls, model: Any = None) -> Path:
    """A full model folder with the adapter merged in: ``GENMAGIC_HOME/merged/NAME`` (not beside
    the adapters, where it would be the adapter folder of an alias ``NAME-merged``)."""
    import shutil

    out = cards.merged_dir(adapter.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    if model is None:
        from peft import PeftModel

        from .train_text import load_base

        plain, _ = load_base(folder, "cpu", base.trust_remote_code)
        model = PeftModel.from_pretrained(plain, str(adapter))
    merged = model.merge_and_unload()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    from ..backends import quiet_progress_bars

    with quiet_progress_bars("transformers"):  # no "Writing model shards" bar under the live view
        merged.save_pretrained(tmp, safe_serialization=True)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(folder, trust_remote_code=base.trust_remote_code).save_pretrained(tmp)
    for extra in ("generation_config.json", "genmagic.json"):
        if os.path.isfile(os.path.join(folder, extra)) and not (tmp / extra).exists():
            shutil.copy2(os.path.join(folder, extra), tmp / extra)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out

