"""Structured output: ``-f json`` decodes under a JSON grammar on in-process models (always valid
JSON, even from the embedded model), ``--schema`` constrains to a schema and returns the parsed
object; on unconstrained paths a schema mismatch fails the run (status ``error`` in history)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from IPython.core.error import UsageError
from pydantic import BaseModel

import genmagic
from genmagic import cli
from genmagic.errors import OptionError


class Ticket(BaseModel):
    customer: str
    product: str
    urgent: bool
    order_ids: list[int]


class Hook(BaseModel):
    call: Callable[[int], int]


@dataclasses.dataclass
class Address:
    street: str
    city: str


@dataclasses.dataclass
class Contact:
    name: str
    age: int
    address: Address


PROMPTS = [
    "Extract name and age: Alice Smith, 34, Paris.",
    'Return {"city": ...} for: I flew from Lisbon to Oslo yesterday.',
    "List three fruits as a JSON array.",
    "A JSON object with a nested address for Bob, 12 Main St, Springfield.",
    "Give me a JSON list of the first five prime numbers.",
    'She said "hello" and left. Extract the quote as JSON.',
    "Extraire le nom : Zoë Müller, née à Zürich, 29 ans. Réponds en JSON.",
    "抽取姓名和城市：王小明住在北京。用JSON回答。",
    "Emoji test 🚀🔥: return the emojis as a JSON array.",
    "Ticket #4411 from Dana: the blender broke, refund order 9921 and 9922 urgently.",
    "Convert to JSON: temperature=21.5, humidity=40%, ok=true",
    "Back\\slash and tab\there: return them in a JSON string.",
    "",
    "{",
    "Write a poem about the sea.",
    "Nested: a list of objects each with a list of tags, for three blog posts.",
    "Is the sky green? Answer with a JSON boolean.",
    "null",
    "Give a JSON object with keys a, b, c whose values are empty objects.",
    "Repeat after me: ]]]]}}}}\"\"\"",
]

TAGS_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["bug", "billing", "praise"]}},
        "score": {"type": "number"},
    },
    "required": ["title", "tags", "score"],
}


@pytest.mark.parametrize("prompt", PROMPTS)
def test_constrained_json_on_the_embedded_model_always_parses_and_validates(prompt: str) -> None:
    plain = genmagic.generate(prompt, model="tiny-text", format="json", max_new_tokens=48, temperature=0)
    assert plain.ok, plain.error
    assert plain.value == json.loads(plain.text)
    ticket = genmagic.generate(prompt, model="tiny-text", schema=Ticket, max_new_tokens=64, seed=7)
    assert ticket.ok, ticket.error
    assert isinstance(ticket.value, Ticket) and ticket.value == Ticket.model_validate_json(ticket.text)
    tags = genmagic.generate(prompt, model="tiny-text", schema=TAGS_SCHEMA, max_new_tokens=64, temperature=0)
    assert tags.ok, tags.error
    import jsonschema

    jsonschema.validate(json.loads(tags.text), TAGS_SCHEMA)
    assert tags.value == json.loads(tags.text) and set(tags.value) == {"title", "tags", "score"}


def test_a_byte_level_bpe_model_is_constrained_too(ip: Any) -> None:
    """The tiny GPT-2 of the tests (a 300-token byte-level BPE trained in code), through the magic."""
    ip.user_ns["Address"] = Address
    value = run(ip, "%%generate -m tiny --schema Address --max-new-tokens 60 --seed 3 --out t_contact\nWho?")
    assert isinstance(value, Address) and isinstance(value.city, str)
    result = ip.user_ns["t_contact"]
    assert result.value is value and result.format == "json"
    assert genmagic._magics.engine.history.list(1)[0].status == "ok"


def test_the_schema_is_in_the_key_and_a_repeat_is_served_from_the_cache() -> None:
    first = genmagic.generate("Who?", model="tiny-text", schema=Ticket, max_new_tokens=100, temperature=0)
    again = genmagic.generate("Who?", model="tiny-text", schema=Ticket, max_new_tokens=100, temperature=0)
    other = genmagic.generate("Who?", model="tiny-text", schema=TAGS_SCHEMA, max_new_tokens=100, temperature=0)
    assert first.ok and again.cached and again.value == first.value and isinstance(again.value, Ticket)
    assert not other.cached and other.request.key() != first.request.key()
    plain = genmagic.generate("Who?", model="tiny-text", max_new_tokens=100, temperature=0)
    assert plain.request.key() not in {first.request.key(), other.request.key()}


def test_json_cut_off_by_max_new_tokens_is_an_error_never_ok() -> None:
    result = genmagic.generate("Who?", model="tiny-text", schema=Contact, max_new_tokens=3, temperature=0)
    assert result.status == "error" and result.error == "JSON cut off at --max-new-tokens 3; raise it"
    from genmagic.engine import default_engine

    record = default_engine().history.list(1)[0]
    assert (record.status, record.error) == ("error", result.error)


def test_json_completed_by_the_very_last_token_is_ok() -> None:
    """The processor never sees the last token: the check at the end must consume it first."""
    result = genmagic.generate("x", model="tiny-text", format="json", max_new_tokens=2, temperature=0)
    assert (result.status, result.text, result.value, result.tokens) == ("ok", '""', "", [2])


def test_unconstrained_path_schema_mismatch_records_error(ip: Any) -> None:
    """The echo backend does not constrain: its output is validated after the run."""
    ip.user_ns["Ticket"] = Ticket
    with pytest.raises(UsageError, match=r"does not match --schema Ticket: urgent: .*\(history #\d+\)"):
        run(ip, '%%generate -m echo: --schema Ticket --out t_bad\n{"customer": "a", "product": "b", "urgent": "maybe", "order_ids": []}')
    bad = ip.user_ns["t_bad"]
    assert bad.status == "error" and bad.value is None
    record = genmagic._magics.engine.history.list(1)[0]
    assert (record.id, record.status, record.error) == (bad.history_id, "error", bad.error)
    ok = run(ip, '%%generate -m echo: --schema Ticket\n{"customer": "a", "product": "b", "urgent": true, "order_ids": [1]}')
    assert ok == Ticket(customer="a", product="b", urgent=True, order_ids=[1])
    assert genmagic._magics.engine.history.list(1)[0].status == "ok"


def test_dict_schema_mismatch_on_the_python_api() -> None:
    result = genmagic.generate('{"title": 3, "tags": [], "score": 1}', model="echo:", schema=TAGS_SCHEMA, seed=1)
    assert result.status == "error" and result.error == "the output does not match the --schema schema: title: 3 is not of type 'string'"
    good = genmagic.generate('{"title": "t", "tags": ["bug"], "score": 1}', model="echo:", schema=TAGS_SCHEMA, seed=1)
    assert good.ok and good.value == {"title": "t", "tags": ["bug"], "score": 1}


def test_the_cli_takes_a_schema_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tags.json"
    path.write_text(json.dumps(TAGS_SCHEMA))
    assert cli.main(["generate", "-m", "tiny-text", "--schema", str(path), "--temperature", "0",
                     "--max-new-tokens", "60", "--no-stream", "Classify: the app crashes"]) == 0
    printed = capsys.readouterr().out
    assert set(json.loads(printed)) == {"title", "tags", "score"}  # one JSON document on stdout, nothing else
    assert cli.main(["generate", "-m", "echo:", "--schema", str(tmp_path / "missing.json"), "x"]) == 2
    assert "--schema" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("nope", r"--schema 'nope': no notebook variable or \.json file"),
        ("t_number", r"--schema takes a JSON Schema dict, a pydantic model class or a dataclass type .*got t_number = 5$"),
        ("t_notschema", r"--schema t_notschema: not a JSON Schema"),
        ("t_badschema", r"--schema t_badschema is not a valid JSON Schema: type: 'strin' is not valid"),
        ("t_unsupported", r'--schema t_unsupported: not supported for constrained decoding: .*uniqueItems'),
        ("t_hook", r"^--schema t_hook: cannot make a JSON Schema of this class: Cannot generate a JsonSchema"),
        ("t_instance", r"--schema takes a JSON Schema dict.*got t_instance = Address\(street='a', city='b'\)"),
    ],
)
def test_bad_schema_values_are_usage_errors_naming_schema(ip: Any, value: str, match: str) -> None:
    ip.user_ns.update(
        t_number=5, t_notschema={"name": "x"}, t_badschema={"type": "strin"},
        t_unsupported={"type": "array", "uniqueItems": True}, t_instance=Address("a", "b"), t_hook=Hook,
    )
    with pytest.raises(UsageError, match=match):
        run(ip, f"%%generate -m echo: --schema {value}\nhi")


def test_schema_with_another_format_is_refused() -> None:
    with pytest.raises(OptionError, match="--schema gives JSON, not -f text"):
        genmagic.generate("x", model="echo:", schema=Ticket, format="text")


def test_the_grammar_processor_constrains_a_left_padded_batch() -> None:
    """The batch path decodes several rows at once: one matcher per row, padding left alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    from genmagic.backends._grammar import json_constraint
    from genmagic.registry import PACKAGE_MODELS

    folder = PACKAGE_MODELS / "tiny-text"
    tok = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    batch = tok(["Who?", "Extract the order numbers: 9921 and 9922, from Dana.", "{"], return_tensors="pt", padding=True)
    constraint = json_constraint(tok, TAGS_SCHEMA, 3, 2, 64)
    torch.manual_seed(0)
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=64, do_sample=True, top_k=0, pad_token_id=tok.pad_token_id,
                             eos_token_id=2, logits_processor=LogitsProcessorList([constraint]))
    texts = tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    import jsonschema

    for row, text in enumerate(texts):
        assert not constraint.incomplete(row, out[row, batch["input_ids"].shape[1]:].tolist()), text
        jsonschema.validate(json.loads(text), TAGS_SCHEMA)


def test_a_draft_token_the_grammar_forbids_never_unconstrains_the_row(tiny_text_dir: Any) -> None:
    """Assisted decoding (prompt lookup) shows the processor drafts that may hold tokens the grammar
    forbids, then rolls them back: the row stays constrained."""
    import torch
    from transformers import AutoTokenizer

    from genmagic.backends._grammar import json_constraint

    tok = AutoTokenizer.from_pretrained(tiny_text_dir)
    constraint = json_constraint(tok, None, 1, tok.eos_token_id, 64)
    prefix = [5, 6]
    vocab = len(tok)
    brace = tok.encode("{", add_special_tokens=False)
    allowed = lambda ids: int((constraint(torch.tensor([prefix + ids]), torch.zeros(1, vocab)) > -1).sum())  # noqa: E731
    allowed([])  # the start: only JSON openers
    after_brace = allowed(brace)
    forbidden = tok.encode("zzz", add_special_tokens=False)[:1]
    allowed(brace + forbidden)  # a draft with a token the grammar forbids
    assert allowed(brace) == after_brace < vocab  # rolled back to '{': constrained as before
