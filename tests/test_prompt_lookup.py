"""``--speculate prompt-lookup``: transformers' prompt-lookup decoding gives the same greedy
output token for token (the embedded model and the tiny GPT-2), also under a JSON grammar;
where it cannot run (a served model, a batch of rows) the error says so in one line."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run

import genmagic
from genmagic.backends.transformers_text import speculation
from genmagic.errors import OptionError
from genmagic.options import TextOptions

PASSAGE = ("Ticket 4411 from Dana Whitfield: the Aurora 3000 blender stops after ten seconds; "
           "orders 9921 and 9922. Repeat the ticket word for word: Ticket 4411 from")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_greedy_output_is_unchanged_on_the_embedded_model(fmt: str) -> None:
    plain = genmagic.generate(PASSAGE, model="tiny-text", temperature=0, max_new_tokens=60, format=fmt, raw=True,
                              speculate="off")
    fast = genmagic.generate(PASSAGE, model="tiny-text", temperature=0, max_new_tokens=60, format=fmt, raw=True,
                             speculate="prompt-lookup")
    assert plain.ok and fast.ok and not fast.cached
    assert fast.texts == plain.texts and fast.tokens == plain.tokens
    assert (plain.info["speculation"], fast.info["speculation"]) == ("off", "prompt-lookup")
    assert fast.request.key() != plain.request.key()


def test_greedy_output_is_unchanged_on_a_byte_level_model(ip: Any) -> None:
    line = "--temperature 0 --max-new-tokens 40 -n 2 --seed 1 --speculate off"
    plain = run(ip, f"%%generate -m tiny {line} --out t_plain\nthe cat sat on the mat, the cat sat on")
    fast = run(ip, f"%%generate -m tiny {line.replace('off', 'prompt-lookup')}\nthe cat sat on the mat, the cat sat on")
    assert fast.texts == plain.texts and not fast.cached
    assert fast.request.options.speculate == "prompt-lookup"


def test_sampling_with_prompt_lookup_is_seeded() -> None:
    one = genmagic.generate(PASSAGE, model="tiny-text", seed=5, max_new_tokens=20, speculate="prompt-lookup")
    two = genmagic.generate(PASSAGE, model="tiny-text", seed=5, max_new_tokens=20, speculate="prompt-lookup", cache=False)
    assert one.ok and one.texts == two.texts


def test_a_batch_of_rows_is_refused_in_one_line() -> None:
    assert speculation(TextOptions(speculate="prompt-lookup")) == {"prompt_lookup_num_tokens": 10}
    assert speculation(TextOptions(speculate="off"), prompt_tokens=500) == {}
    with pytest.raises(OptionError, match=r"^--speculate prompt-lookup decodes one row at a time; with 4 rows"):
        speculation(TextOptions(speculate="prompt-lookup"), rows=4)


def test_a_bad_value_names_the_choices(ip: Any) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"--speculate: invalid choice: 'ngram' \(choose from 'auto', 'off', 'prompt-lookup'\)"):
        run(ip, "%%generate -m tiny --speculate ngram\nx")


def test_auto_uses_prompt_lookup_for_greedy_runs_with_long_prompts_only() -> None:
    long_prompt = PASSAGE + " " + PASSAGE  # over 64 tokens with the chat template
    auto = genmagic.generate(long_prompt, model="tiny-text", temperature=0, max_new_tokens=30)
    off = genmagic.generate(long_prompt, model="tiny-text", temperature=0, max_new_tokens=30, speculate="off")
    assert auto.request.options.speculate == "auto" and auto.info["speculation"] == "prompt-lookup"
    assert off.info["speculation"] == "off" and auto.texts == off.texts
    short = genmagic.generate("Who?", model="tiny-text", temperature=0, max_new_tokens=10)
    sampled = genmagic.generate(long_prompt, model="tiny-text", seed=1, max_new_tokens=10)
    assert short.info["speculation"] == sampled.info["speculation"] == "off"
    assert speculation(TextOptions(temperature=0), rows=4, prompt_tokens=500) == {}  # a batch: auto stays off
    assert speculation(TextOptions(temperature=0), prompt_tokens=64) == {"prompt_lookup_num_tokens": 10}
    assert speculation(TextOptions(temperature=0), prompt_tokens=64, dtype="bfloat16") == {}  # not exact there
