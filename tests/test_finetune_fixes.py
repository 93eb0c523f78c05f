"""Regressions from the %%finetune review: LoRA targets, BOS parity between training and
generation, an interrupt during evaluation, alias overwrites, merged folders, image data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genmagic.errors import OptionError
from genmagic.tuning.options import FinetuneOptions

pytest.importorskip("peft")


def lora_layers(model: Any) -> set[str]:
    return {name.removeprefix("base_model.model.") for name, m in model.named_modules() if hasattr(m, "lora_A")}


def wrapped(folder: Path, **options: Any) -> tuple[set[str], list[str]]:
    from genmagic.tuning import train_text

    model, _ = train_text.load_base(str(folder), "cpu")
    peft_model, shown = train_text.wrap_lora(model, FinetuneOptions(base=str(folder), **options))
    return lora_layers(peft_model), shown


def test_default_targets_are_the_attention_projections_only(tiny_text_dir: Path) -> None:
    layers, shown = wrapped(tiny_text_dir)
    # GPT-2's MLP output layer is also called c_proj: it must not get a LoRA
    assert layers == {"transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj"}
    assert shown == ["attn.c_attn", "attn.c_proj"]


def test_target_modules_take_a_dotted_suffix(tiny_text_dir: Path) -> None:
    layers, shown = wrapped(tiny_text_dir, target_modules=("attn.c_proj",))
    assert layers == {"transformer.h.0.attn.c_proj"} and shown == ["attn.c_proj"]
    layers, _ = wrapped(tiny_text_dir, target_modules=("c_proj",))  # a bare name still means every c_proj
    assert layers == {"transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj"}
    with pytest.raises(OptionError, match=r"--target-modules mlp\.q_proj: no such linear layer"):
        wrapped(tiny_text_dir, target_modules=("mlp.q_proj",))


def llama_tokenizer(chat_template: bool) -> Any:
    """The embedded tiny-text's Llama tokenizer (BOS added by its own tokenization), with or
    without its chat template."""
    from transformers import AutoTokenizer

    import genmagic

    tok = AutoTokenizer.from_pretrained(Path(genmagic.__file__).parent / "models" / "tiny-text")
    if not chat_template:
        tok.chat_template = None
    assert tok.bos_token_id is not None and tok("x")["input_ids"][0] == tok.bos_token_id
    return tok


def sent(tok: Any, prompt: str, *, raw: bool) -> list[int]:
    """What %%generate sends for ``prompt``: the transformers backend's encode."""
    from genmagic.backends.transformers_text import TransformersTextBackend, _TextModel
    from genmagic.options import TextOptions
    from genmagic.request import Request

    request = Request(kind="text", prompt=prompt, model="m", options=TextOptions(raw=raw))
    return TransformersTextBackend().encode(_TextModel(model=None, tokenizer=tok, context=0), request)


@pytest.mark.parametrize("chat_template", [True, False])
def test_training_starts_where_generation_starts(chat_template: bool) -> None:
    from genmagic.tuning import data as dat

    tok = llama_tokenizer(chat_template)
    options = FinetuneOptions(max_length=256)
    text = dat.encode([{"text": "The fox reads books about the stars."}], "text", options, tok, strict=False)
    ids = text.input_ids[0]
    # a text adapter is used with --raw: the same BOS, then the text, then EOS (and no loss on the BOS)
    assert ids[:-1] == sent(tok, "The fox reads books about the stars.", raw=True) and ids[-1] == tok.eos_token_id
    assert text.labels[0][0] == -100 and text.labels[0][1:] == ids[1:]

    pc = dat.encode([{"prompt": "Say fox", "completion": "The fox."}], "prompt-completion", options, tok, strict=False)
    head = sent(tok, "Say fox", raw=False)  # a user turn of the template, or the plain prompt with its BOS
    assert pc.input_ids[0][:len(head)] == head and pc.labels[0][:len(head)] == [-100] * len(head)
    assert head[0] == tok.bos_token_id  # one BOS: the template's own, or the tokenizer's
    assert tok.bos_token_id not in pc.input_ids[0][1:] and pc.labels[0][len(head)] != -100
    # the samples start from the same ids
    assert pc.prompt_ids[0] == head and text.prompt_ids[0] == sent(tok, text.prompts[0], raw=True)


def test_a_text_adapter_generates_raw_as_trained(tiny_text_dir: Path) -> None:
    import genmagic
    from genmagic.engine import default_engine

    corpus = [f"The fox reads books about the {w} every night." for w in ("stars", "sea")] * 4
    result = genmagic.finetune("fox", corpus, base=str(tiny_text_dir), steps=2, samples=0)
    assert default_engine().registry.resolve("fox", "text").params.get("raw") is True
    assert "the alias sets --raw" in result.summary()
    pc = genmagic.finetune("fox-pc", [{"prompt": "Say fox", "completion": "The fox."}] * 4,
                           base=str(tiny_text_dir), steps=2, samples=0)
    assert "raw" not in default_engine().registry.resolve("fox-pc", "text").params
    assert "--raw" not in pc.summary()


def test_an_interrupt_during_evaluation_keeps_the_adapter(tiny_text_dir: Path, genmagic_home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import genmagic
    from genmagic.engine import default_engine
    from genmagic.tuning import evaluate

    real = evaluate.perplexity

    def interrupted(*args: Any, adapter: bool, **kwargs: Any) -> float | None:
        if adapter:  # the perplexity after training: the user presses interrupt again (after Stop)
            raise KeyboardInterrupt
        return real(*args, adapter=adapter, **kwargs)

    monkeypatch.setattr(evaluate, "perplexity", interrupted)
    with pytest.raises(KeyboardInterrupt):
        genmagic.finetune("fox", [f"The fox reads about the {w}." for w in ("sea", "sky")] * 4,
                          base=str(tiny_text_dir), steps=3, samples=0)
    folder = genmagic_home / "adapters" / "fox"
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "genmagic_card.json").is_file()
    spec = default_engine().registry.resolve("fox", "text")
    assert spec.adapters == (str(folder),)
    monkeypatch.setattr(evaluate, "perplexity", real)
    out = genmagic.generate("The fox", model="fox", temperature=0, max_new_tokens=4)
    assert out.text is not None


def test_an_existing_user_alias_is_not_overwritten(tiny_text_dir: Path, genmagic_home: Path) -> None:
    import genmagic
    from genmagic.engine import default_engine

    registry = default_engine().registry
    registry.register("fox", str(tiny_text_dir), kind="text", persist=True, description="my own model")
    corpus = [f"The fox reads about the {w}." for w in ("sea", "sky")] * 4
    with pytest.raises(OptionError, match=r"^fine-tuned model name 'fox' is already an alias \(.*\) of "
                                          r".*tiny-gpt2; pick another name, or pass --overwrite") as err:
        genmagic.finetune("fox", corpus, base=str(tiny_text_dir), steps=1, samples=0)
    assert "\n" not in str(err.value)
    assert registry.resolve("fox", "text").adapters == () and not (genmagic_home / "adapters" / "fox").exists()
    genmagic.finetune("fox", corpus, base=str(tiny_text_dir), steps=1, samples=0, overwrite=True)
    assert registry.resolve("fox", "text").adapters == (str(genmagic_home / "adapters" / "fox"),)
    # its own alias: a later run (another seed) overwrites it without --overwrite
    genmagic.finetune("fox", corpus, base=str(tiny_text_dir), steps=1, samples=0, seed=1)


def test_the_magic_refuses_an_existing_alias(ip: Any, tiny_text_dir: Path) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="'tiny' is already an alias"):
        ip.run_cell_magic("finetune", f"tiny --base {tiny_text_dir} --steps 1 --samples 0", "The fox reads.\n" * 4)


def test_merged_model_is_not_an_adapter_folder(tiny_text_dir: Path, genmagic_home: Path) -> None:
    import genmagic

    corpus = [f"The fox reads about the {w}." for w in ("sea", "sky")] * 4
    result = genmagic.finetune("fox", corpus, base=str(tiny_text_dir), steps=2, samples=0, merge=True)
    assert result.merged == genmagic_home / "merged" / "fox" and f"merged model in {result.merged}" in result.summary()
    assert (result.merged / "model.safetensors").is_file()
    other = genmagic.finetune("fox-merged", corpus, base=str(tiny_text_dir), steps=2, samples=0, seed=3)
    assert other.adapter == genmagic_home / "adapters" / "fox-merged"
    assert (result.merged / "model.safetensors").is_file() and not (other.adapter / "model.safetensors").exists()


def pictures(n: int = 2) -> list[Any]:
    from PIL import Image

    return [Image.new("RGB", (64, 64), (20 * i, 20, 20)) for i in range(n)]


def test_image_lora_refuses_merge(genmagic_home: Path) -> None:
    import genmagic

    with pytest.raises(OptionError, match=r"^--merge: an image LoRA is not merged") as err:
        genmagic.finetune("night", images=pictures(), captions=["a red circle"] * 2, base="tiny-image", merge=True)
    assert "\n" not in str(err.value) and not (genmagic_home / "adapters" / "night").exists()


def test_image_captions_get_the_pii_scan(genmagic_home: Path) -> None:
    import genmagic
    from genmagic.tuning.pii_scan import PiiRefused

    captions = ["a red circle, mail jane.doe@example.com", "a blue square"]
    with pytest.raises(PiiRefused, match=r"PII scan: 1 email in row 0 \(caption\)"):
        genmagic.finetune("night", images=pictures(), captions=captions, base="tiny-image", steps=1)
    assert not (genmagic_home / "adapters" / "night").exists()
    result = genmagic.finetune("night", images=pictures(), captions=captions, base="tiny-image", steps=1,
                               redact_pii=True)
    assert result.card["data"]["pii"]["action"] == "redacted" and "email" in result.pii


def test_python_api_takes_image_objects(genmagic_home: Path) -> None:
    import pandas as pd

    import genmagic

    listed = genmagic.finetune("api-night", images=pictures(), captions=["a red circle"] * 2, base="tiny-image", steps=1)
    assert (listed.adapter / "pytorch_lora_weights.safetensors").is_file() and listed.card["data"]["images"] == 2
    frame = pd.DataFrame({"image": pictures(3), "caption": ["a red circle"] * 3})
    framed = genmagic.finetune("api-night2", images=frame, captions="caption", base="tiny-image", steps=1)
    assert framed.card["data"]["images"] == 3
    with pytest.raises(OptionError, match="captions: 1 captions for 2 images"):
        genmagic.finetune("api-night3", images=pictures(), captions=["a"], base="tiny-image", steps=1)


def test_a_builtin_base_is_persisted_by_its_alias(tmp_path: Path, genmagic_home: Path) -> None:
    import tomllib

    import genmagic
    from genmagic.registry import PACKAGE_MODELS, Registry, user_config_path

    genmagic.finetune("fox-builtin", ["The fox reads about the sea."] * 4, base="tiny-text", steps=1, samples=0)
    entry = tomllib.loads(user_config_path().read_text())["models"]["fox-builtin"]
    assert entry["source"] == "tiny-text"  # not the installed package's folder
    spec = Registry().resolve("fox-builtin", "text")  # a new session reads it back
    assert spec.source == str(PACKAGE_MODELS / "tiny-text")
    assert spec.adapters == (str(genmagic_home / "adapters" / "fox-builtin"),)


def test_images_and_text_data_together_are_refused(tmp_path: Path) -> None:
    import genmagic

    with pytest.raises(OptionError, match=r"--images trains an image LoRA .* give one of them"):
        genmagic.finetune("both", ["some text"], images=str(tmp_path), base="tiny-image")


def test_rows_left_out_are_said_on_stderr_by_the_python_api(tiny_text_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import genmagic

    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}, {"prompt": "e"}]
    genmagic.finetune("skips", rows, base=str(tiny_text_dir), steps=1, eval_split=0, samples=0)
    assert "1 without text skipped" in capsys.readouterr().err
