"""%%finetune / genmagic.finetune end to end on real tiny models: data → PII scan → LoRA
training → adapter + card → alias → generation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run

import genmagic
from genmagic.errors import GenmagicError, OptionError
from genmagic.registry import Registry
from genmagic.tuning.live import TrainingView
from genmagic.tuning.pii_scan import PiiRefused

pytest.importorskip("peft")

# A small learnable corpus: a few fixed sentences, repeated.
CORPUS = [f"The fox reads books about the {w} every night." for w in ("stars", "sea", "sky", "moon")] * 6
FAST = {"steps": 12, "batch_size": 4, "lr": 1e-2, "samples": 0}


def tune(name: str, base: Path, data: Any = CORPUS, **options: Any) -> Any:
    return genmagic.finetune(name, data, base=str(base), **{**FAST, **options})


class StopAt(TrainingView):
    """A view whose user presses Stop after ``at`` steps (or sends the kernel an interrupt)."""

    def __init__(self, at: int, interrupt: bool = False) -> None:
        super().__init__()
        self.at, self.interrupt = at, interrupt

    def step(self, step: int, loss: float, eval_loss: float | None) -> None:
        super().step(step, loss, eval_loss)
        if step == self.at:
            if self.interrupt:
                os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT, as a kernel interrupt sends
            else:
                self.stop("stopped")


def run_view(name: str, base: Path, view: TrainingView, **options: Any) -> Any:
    from genmagic.tuning.options import FinetuneControls, FinetuneOptions
    from genmagic.tuning.run import run as run_finetune

    values = {**FAST, "steps": 20, **options}
    samples = values.pop("samples")
    return run_finetune(name, FinetuneOptions(base=str(base), **values), FinetuneControls(samples=samples),
                        data=CORPUS, view=view)


def test_loss_goes_down_on_a_learnable_corpus() -> None:
    # the embedded tiny-text (Llama-style, pretrained): LoRA on its attention learns the corpus
    result = genmagic.finetune("fox", CORPUS, base="tiny-text", steps=30, batch_size=4, lr=2e-3, samples=1)
    first = sum(loss for _, loss in result.losses[:3]) / 3
    last = sum(loss for _, loss in result.losses[-3:]) / 3
    assert last < first * 0.6, result.losses
    m = result.metrics
    assert m["perplexity_after"] < m["perplexity_before"] / 2
    assert m["target_modules"] == ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]  # found in the model
    assert result.eval_losses[-1][1] < result.eval_losses[0][1]


def test_adapter_card_and_alias(tiny_text_dir: Path, genmagic_home: Path) -> None:
    result = tune("fox", tiny_text_dir, steps=30, eval_split=0.2)
    assert result.metrics["target_modules"] == ["attn.c_attn", "attn.c_proj"]  # GPT-2's (Conv1D) attention projections
    folder = genmagic_home / "adapters" / "fox"
    assert result.adapter == folder
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "adapter_config.json").is_file()
    card = json.loads((folder / "genmagic_card.json").read_text())
    assert card["base_source"] == str(tiny_text_dir) and len(card["base_fingerprint"]) >= 16
    assert card["data_fingerprint"] and card["options"]["r"] == 8 and card["date"]
    assert card["metrics"]["steps"] == 30
    assert "fox" in (folder / "README.md").read_text()
    spec = Registry().resolve("fox", "text")  # a fresh registry reads the user config
    assert spec.source == str(tiny_text_dir) and spec.adapters == (str(folder),)


def test_tuned_alias_generates_differently_from_base(tiny_text_dir: Path) -> None:
    tune("fox", tiny_text_dir, steps=20)
    base = genmagic.generate("The fox reads", model=str(tiny_text_dir), seed=3, max_new_tokens=12, raw=True)
    tuned = genmagic.generate("The fox reads", model="fox", seed=3, max_new_tokens=12, raw=True)
    assert base.ok and tuned.ok
    assert tuned.text != base.text
    assert tuned.request.fingerprint != base.request.fingerprint


def test_alias_survives_a_new_process(tiny_text_dir: Path) -> None:
    tune("fox", tiny_text_dir)
    here = genmagic.generate("The fox", model="fox", temperature=0, max_new_tokens=8, raw=True)
    env = {**os.environ, "PYTHONPATH": str(Path(genmagic.__file__).parent.parent)}
    out = subprocess.run(
        [sys.executable, "-m", "genmagic.cli", "generate", "-m", "fox", "--temperature", "0", "--max-new-tokens", "8",
         "--raw", "--no-cache", "The fox"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip("\n") == here.text


def test_same_run_reuses_the_adapter_and_retrain_trains_again(tiny_text_dir: Path) -> None:
    first = tune("fox", tiny_text_dir)
    weights = first.adapter / "adapter_model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = tune("fox", tiny_text_dir)
    assert again.reused and weights.stat().st_mtime_ns == stamp
    assert again.card["fingerprint"] == first.card["fingerprint"]
    other = tune("fox", tiny_text_dir, seed=1)  # another seed: another run
    assert not other.reused and other.card["fingerprint"] != first.card["fingerprint"]
    forced = tune("fox", tiny_text_dir, seed=1, retrain=True)
    assert not forced.reused


def test_same_seed_gives_the_same_adapter(tiny_text_dir: Path) -> None:
    from safetensors.torch import load_file

    a = load_file(str(tune("fox-a", tiny_text_dir, dropout=0.1).adapter / "adapter_model.safetensors"))
    b = load_file(str(tune("fox-b", tiny_text_dir, dropout=0.1).adapter / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_retraining_never_serves_old_cached_generations(tiny_text_dir: Path) -> None:
    tune("fox", tiny_text_dir, steps=5)
    one = genmagic.generate("The fox", model="fox", seed=5, max_new_tokens=10, raw=True)
    assert genmagic.generate("The fox", model="fox", seed=5, max_new_tokens=10, raw=True).cached
    tune("fox", tiny_text_dir, steps=25, retrain=True)
    two = genmagic.generate("The fox", model="fox", seed=5, max_new_tokens=10, raw=True)
    assert not two.cached
    assert two.request.fingerprint != one.request.fingerprint
    assert two.text != one.text


def test_stop_keeps_a_loadable_adapter(tiny_text_dir: Path) -> None:
    view = StopAt(3)
    result = run_view("fox", tiny_text_dir, view)
    assert result.stopped == "stopped" and result.metrics["steps"] == 3 and result.metrics["planned_steps"] == 20
    assert result.card["stopped"]
    assert genmagic.generate("The fox", model="fox", seed=1, max_new_tokens=5, raw=True).ok
    assert not tune("fox", tiny_text_dir, steps=20).reused  # a stopped run is never reused as a finished one


def test_kernel_interrupt_stops_at_the_next_step(tiny_text_dir: Path) -> None:
    result = run_view("fox", tiny_text_dir, StopAt(2, interrupt=True))
    assert result.stopped == "interrupted" and result.metrics["steps"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert genmagic.generate("The fox", model="fox", seed=1, max_new_tokens=5, raw=True).ok


PII_ROWS = [{"text": "Write to anna.smith@example.com about the fox."}, {"text": "The fox reads books."}] * 4


def test_pii_is_refused_at_standard(tiny_text_dir: Path, genmagic_home: Path) -> None:
    with pytest.raises(PiiRefused, match=r"1 email|4 email.*row 0 \(text\).*--redact-pii.*--allow-pii"):
        tune("fox", tiny_text_dir, PII_ROWS)
    assert not (genmagic_home / "adapters" / "fox").exists()


def test_pii_redacted_or_allowed(tiny_text_dir: Path) -> None:
    from transformers import AutoTokenizer

    redacted = tune("fox", tiny_text_dir, PII_ROWS, redact_pii=True)
    assert "redacted before training" in redacted.pii
    assert redacted.card["data"]["pii"] == {"level": "standard", "action": "redacted", "found": {"email": 4}}
    allowed = genmagic.finetune("fox2", PII_ROWS, base=str(tiny_text_dir), allow_pii=True, **FAST)
    assert allowed.card["data"]["pii"]["action"] == "allowed"
    assert redacted.card["data_fingerprint"] != allowed.card["data_fingerprint"]
    # what the redacted run trained on: the same rows with a placeholder, nothing else changed
    from genmagic.tuning import data as dat
    from genmagic.tuning.options import FinetuneOptions

    tok = AutoTokenizer.from_pretrained(tiny_text_dir)
    rows = [{"text": r["text"].replace("anna.smith@example.com", "<EMAIL_1>")} for r in PII_ROWS]
    expected = dat.encode(rows, "text", FinetuneOptions(), tok, strict=False)
    assert dat.fingerprint(expected) == redacted.card["data_fingerprint"]


def test_pii_only_reported_at_warn(tiny_text_dir: Path) -> None:
    result = genmagic.finetune("fox", PII_ROWS, base=str(tiny_text_dir), safety="warn", **FAST)
    assert result.card["data"]["pii"]["action"] == "reported"


@pytest.mark.parametrize(("data", "options", "message"), [
    ([{"reply": "hi"}], {"text_column": "text"}, "--text-column text: no such column in the data; its columns are reply"),
    ([], {}, "the data has no examples; give at least one"),
    ([{"text": "x " * 100}], {"max_length": 16, "strict": True},
     "example 0 is .* tokens, over --max-length 16; raise --max-length"),
    ("missing.jsonl", {}, "--data missing.jsonl: no such file"),
    ([{"prompt": "a"}], {"format": "prompt-completion"}, "--completion-column completion: no such column"),
    (CORPUS, {"target_modules": ["q_proj"]}, "--target-modules q_proj: no such linear layer.*c_attn"),
    ([3, 4], {}, r"data\[0\] is int; each example must be a text or a dict"),
])
def test_bad_input_is_one_line(tiny_text_dir: Path, data: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(GenmagicError, match=message) as err:
        tune("fox", tiny_text_dir, data, **options)
    assert "\n" not in str(err.value)


def test_a_tuned_alias_is_no_base(tiny_text_dir: Path, genmagic_home: Path) -> None:
    tune("fox", tiny_text_dir, steps=1)
    with pytest.raises(OptionError, match="--base fox already has adapters"):
        genmagic.finetune("fox2", CORPUS, base="fox", steps=1)
    assert not (genmagic_home / "adapters" / "fox2").exists()


def test_bad_names_and_options() -> None:
    with pytest.raises(OptionError, match="fine-tuned model name 'a b'"):
        genmagic.finetune("a b", CORPUS)
    with pytest.raises(OptionError, match="built-in alias"):
        genmagic.finetune("tiny-text", CORPUS)
    with pytest.raises(OptionError, match="--r must be between 1 and 1024, got 0"):
        genmagic.finetune("fox", CORPUS, r=0)
    with pytest.raises(OptionError, match="unknown option 'step'; did you mean steps"):
        genmagic.finetune("fox", CORPUS, step=3)


def test_long_examples_are_truncated_and_counted(tiny_text_dir: Path) -> None:
    rows = [{"text": "The fox reads books about the stars. " * 20}, *({"text": t} for t in CORPUS)]
    result = tune("fox", tiny_text_dir, rows, max_length=32)
    assert result.card["data"]["truncated"] == 1


def test_formats_prompt_completion_and_chat(tiny_text_dir: Path) -> None:
    from transformers import AutoTokenizer

    from genmagic.tuning import data as dat
    from genmagic.tuning.options import FinetuneOptions

    tok = AutoTokenizer.from_pretrained(tiny_text_dir)
    pc = dat.encode([{"prompt": "Say fox", "completion": "The fox."}], "prompt-completion", FinetuneOptions(), tok,
                    strict=False)
    head = tok.apply_chat_template([{"role": "user", "content": "Say fox"}], add_generation_prompt=True, tokenize=False)
    n_head = len(tok(head, add_special_tokens=False)["input_ids"])
    assert pc.labels[0][:n_head] == [-100] * n_head and all(x != -100 for x in pc.labels[0][n_head:])
    chat = [{"messages": [{"role": "user", "content": "Say fox"}, {"role": "assistant", "content": "The fox."}]}] * 8
    result = tune("fox", tiny_text_dir, chat)
    assert result.card["data"]["format"] == "chat"


def test_merge_exports_a_full_model(tiny_text_dir: Path) -> None:
    result = tune("fox", tiny_text_dir, merge=True)
    assert result.merged is not None and (result.merged / "model.safetensors").is_file()
    merged = genmagic.generate("The fox", model=str(result.merged), temperature=0, max_new_tokens=8, raw=True)
    routed = genmagic.generate("The fox", model="fox", temperature=0, max_new_tokens=8, raw=True)
    assert merged.text == routed.text


def test_magic_with_a_dataframe_and_the_cell_body(ip: Any, tiny_text_dir: Path) -> None:
    import pandas as pd

    ip.user_ns["t_df"] = pd.DataFrame({"reply": CORPUS, "id": range(len(CORPUS))})
    result = run(ip, f"%%finetune fox --base {tiny_text_dir} --data t_df --text-column reply --steps 4 --samples 1 --lr 1e-2")
    assert result.metrics["steps"] == 4 and result.card["data"]["source"] == "t_df"
    assert len(result.samples) == 1 and set(result.samples[0]) == {"prompt", "reference", "base", "tuned"}
    assert "<table>" in result._repr_html_()
    body = run(ip, f"%%finetune fox-cell --base {tiny_text_dir} --steps 2\n" + "\n".join(CORPUS[:4]))
    assert body.card["data"]["examples"] == 4
    text = run(ip, "%%generate -m fox --seed 1 --max-new-tokens 5 --raw\nThe fox")
    assert text.ok and text.request.model == "fox"


def test_magic_errors_are_usage_errors(ip: Any, tiny_text_dir: Path) -> None:
    from IPython.core.error import UsageError

    ip.user_ns["t_rows"] = [{"reply": "hi"}]
    with pytest.raises(UsageError, match="--text-column text: no such column in t_rows; its columns are reply"):
        run(ip, f"%%finetune fox --base {tiny_text_dir} --data t_rows")
    with pytest.raises(UsageError, match="no training data"):
        run(ip, f"%%finetune fox --base {tiny_text_dir}\n")
