"""``--over`` and Engine.run_many: lists, Series and DataFrames in a real IPython shell, batches on
the tiny GPT-2 equal to single runs (greedy and seeded), failed rows marked, an interrupt that
keeps the finished rows and a re-run that resumes from the cache, served models concurrently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import run
from fault_server import FaultServer
from IPython.core.error import UsageError
from test_checks_seam import WordCheck

import genmagic
from genmagic import registry
from genmagic.engine import Engine
from genmagic.errors import OptionError
from genmagic.options import TextOptions
from genmagic.request import ListSink, NullSink

PROMPTS = ["Once upon a time", "The fox", "A model reads a prompt and writes", "Hi",
           "Data scientists write notebooks; notebooks hold", "The quick brown", "Every night the fox looked"]


@pytest.fixture
def engine(genmagic_home: Path, tiny_text_dir: Path) -> Engine:
    engine = Engine(home=genmagic_home)
    engine.registry.register("tiny", str(tiny_text_dir))
    engine.checks = []
    return engine


def _requests(engine: Engine, prompts: list[str], **options: Any) -> list[Any]:
    return [engine.request("text", p, TextOptions(**options), model="tiny") for p in prompts]


# -- the transformers batch equals single runs


def test_greedy_batch_equals_single_runs_token_for_token(engine: Engine) -> None:
    requests = _requests(engine, PROMPTS, temperature=0, max_new_tokens=24)
    many = engine.run_many(requests, cache=False, batch_size=4)
    single = [engine.run(r, cache=False) for r in requests]
    assert [r.texts for r in many] == [r.texts for r in single]
    assert [r.tokens for r in many] == [r.tokens for r in single]
    assert {r.timings["batch_rows"] for r in many} == {4.0, 3.0}  # two padded batches, not seven runs


def test_seeded_sampled_row_is_the_single_run_with_that_seed(engine: Engine) -> None:
    requests = _requests(engine, PROMPTS, temperature=0.9, seed=3, max_new_tokens=20)
    many = engine.run_many(requests, cache=False)
    for request, row in zip(requests, many, strict=True):
        assert row.texts == engine.run(request, cache=False).texts
    other = engine.run_many(_requests(engine, PROMPTS, temperature=0.9, seed=4, max_new_tokens=20), cache=False)
    assert [r.texts for r in other] != [r.texts for r in many]


def test_padding_changes_the_logits_by_rounding_at_most(engine: Engine) -> None:
    """The documented tolerance: a left-padded row's next-token logits match the row alone."""
    import torch

    from genmagic.backends.batching import left_pad

    loaded = engine.models.get(engine.registry.resolve("tiny", "text"), TextOptions())
    model, tok = loaded.model.model, loaded.model.tokenizer
    rows = [tok(p)["input_ids"] for p in PROMPTS]
    ids, mask = left_pad(rows, tok.eos_token_id, "cpu")
    with torch.inference_mode():
        batched = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1, do_sample=False,
                                 output_logits=True, return_dict_in_generate=True, pad_token_id=tok.eos_token_id).logits[0]
        for i, row in enumerate(rows):
            alone = model(torch.tensor([row])).logits[0, -1]
            assert torch.allclose(batched[i], alone, rtol=1e-5, atol=1e-5)


def test_a_row_that_stops_early_does_not_change_the_others(engine: Engine) -> None:
    requests = _requests(engine, PROMPTS, temperature=0, max_new_tokens=20)
    cancelled = ListSink(cancel_after=2)
    sinks: list[Any] = [None, cancelled] + [None] * (len(PROMPTS) - 2)
    many = engine.run_many(requests, sinks=sinks, cache=False, batch_size=len(PROMPTS))
    assert many[1].status == "interrupted" and many[1].tokens[0] <= 3, many[1].error
    single = [engine.run(r, cache=False) for r in requests]
    assert [r.texts for i, r in enumerate(many) if i != 1] == [r.texts for i, r in enumerate(single) if i != 1]
    assert all(r.status == "ok" for i, r in enumerate(many) if i != 1)  # its own sink stopped it, not the batch


def test_stop_strings_per_row(engine: Engine) -> None:
    texts = [r.texts[0] for r in engine.run_many(_requests(engine, PROMPTS, temperature=0, max_new_tokens=30),
                                                 cache=False)]
    stop = next(t[len(t) // 2] for t in texts if t.strip())
    requests = _requests(engine, PROMPTS, temperature=0, max_new_tokens=30, stop=(stop,))
    many = engine.run_many(requests, cache=False)
    assert [r.texts for r in many] == [engine.run(r, cache=False).texts for r in requests]
    assert all(stop not in r.text for r in many)


# -- every row goes through what Engine.run does


def test_rows_are_recorded_cached_and_screened_one_by_one(engine: Engine) -> None:
    engine.checks = [WordCheck("secret", "block", "prompt")]
    prompts = ["Hi", "the secret plan", "The fox"]
    first = engine.run_many(_requests(engine, prompts, temperature=0, max_new_tokens=8))
    assert [r.status for r in first] == ["ok", "blocked", "ok"]
    assert "blocked by a safety check" in (first[1].error or "")
    assert [engine.history.get(r.history_id).status for r in first] == ["ok", "blocked", "ok"]  # type: ignore[union-attr]
    again = engine.run_many(_requests(engine, prompts, temperature=0, max_new_tokens=8))
    assert [r.cached for r in again] == [True, False, True]
    assert [r.timings.get("cached_from") for r in again] == [float(first[0].history_id), None, float(first[2].history_id)]


def test_an_interrupt_keeps_the_finished_rows_and_a_rerun_resumes(engine: Engine) -> None:
    requests = _requests(engine, PROMPTS, temperature=0, max_new_tokens=10)
    seen: list[int] = []

    def progress(index: int, result: Any) -> None:  # Ctrl-C lands while the third row is handed over
        seen.append(index)
        if len(seen) == 3:
            raise KeyboardInterrupt

    partial = engine.run_many(requests, progress=progress, batch_size=2)
    done = [r for r in partial if r.status == "ok"]
    assert len(done) == 4 and all(r.history_id for r in done)  # the third row's batch is recorded whole
    missing = [r for r in partial if r.status == "interrupted"]
    assert len(missing) == len(PROMPTS) - 4 and all(r.history_id is None for r in missing)
    resumed = engine.run_many(requests)
    assert [r.cached for r in resumed] == [r.status == "ok" for r in partial]
    assert all(r.ok for r in resumed)


def test_ctrl_c_inside_a_batch_returns_what_the_rows_reached(engine: Engine) -> None:
    class CtrlC(NullSink):
        def __init__(self) -> None:
            self.calls = 0

        @property
        def cancelled(self) -> bool:  # asked twice per token (the streamer, the stopping criterion)
            self.calls += 1
            if self.calls == 12:
                raise KeyboardInterrupt
            return False

    requests = _requests(engine, PROMPTS[:3], temperature=0, max_new_tokens=20)
    out = engine.run_many(requests, sinks=[CtrlC(), None, None], cache=False)
    assert [r.status for r in out] == ["interrupted"] * 3
    assert all(0 < r.tokens[0] < 20 for r in out), [r.tokens for r in out]
    assert all(engine.history.get(r.history_id).status == "interrupted" for r in out)  # type: ignore[union-attr]


def test_backends_without_batches_run_row_by_row(engine: Engine) -> None:
    requests = [engine.request("text", p, TextOptions(seed=1), model="echo:") for p in ["a", "b", "c"]]
    assert [r.text for r in engine.run_many(requests)] == ["a", "b", "c"]


# -- served models: concurrent requests


def _served(engine: Engine, url: str) -> None:
    engine.registry.register("f", f"openai:{url}", settings={"model": "m1", "stream": False, "server": "llama.cpp"})


@pytest.mark.parametrize("concurrency", [1, 4])
def test_served_rows_run_concurrently(engine: Engine, server: FaultServer, concurrency: int) -> None:
    _served(engine, server.url)
    for _ in range(5):
        server.then("slow", 0.5)
    requests = [engine.request("text", f"q{i}", TextOptions(seed=1), model="f") for i in range(5)]
    out = engine.run_many(requests, concurrency=concurrency, cache=False)
    assert [r.text for r in out] == ["late"] * 5
    arrivals = sorted(seen["time"] for seen in server.seen)[1:]  # the first row runs alone until it answers
    overlapping = sum(1 for t in arrivals if t < arrivals[0] + 0.5)  # arrived before the second was answered
    assert overlapping == concurrency


def test_a_failing_served_row_does_not_sink_the_batch(engine: Engine, server: FaultServer) -> None:
    _served(engine, server.url)
    engine.registry.register("f", f"openai:{server.url}", settings={"model": "m1", "stream": False, "max_retries": 0, "server": "llama.cpp"})
    server.then("ok", "one").then("status", 500, {}, {"error": {"message": "engine on fire"}}).then("ok", "three")
    requests = [engine.request("text", f"q{i}", TextOptions(seed=1), model="f") for i in range(3)]
    out = engine.run_many(requests, concurrency=1, cache=False)
    assert [r.status for r in out] == ["ok", "error", "ok"] and "engine on fire" in (out[1].error or "")


# -- the magic


def test_over_a_list(ip: Any) -> None:
    ip.user_ns["t_items"] = ["fox", "star"]
    out = run(ip, "%%generate -m echo: --over t_items --seed 1\nabout {item}")
    assert out == ["about fox", "about star"]


def test_over_a_series_keeps_its_index(ip: Any) -> None:
    ip.user_ns["t_s"] = pd.Series(["a", "b", "c"], index=[10, 20, 30], name="letters")
    out = run(ip, "%%generate -m echo: --over t_s --seed 1\n{item}!")
    assert list(out.index) == [10, 20, 30] and out.to_list() == ["a!", "b!", "c!"]
    assert out.attrs["genmagic_errors"] == {} and len(out.attrs["genmagic_history"]) == 3


def test_over_a_dataframe_with_variables_and_out_column(ip: Any) -> None:
    frame = pd.DataFrame({"name": ["Ann", "Bo"], "odd column": ["x", "y"]}, index=["r1", "r2"])
    ip.user_ns.update(t_df=frame, t_greeting="Hello")
    series = run(ip, "%%generate -m echo: --over t_df --seed 1\n{t_greeting} {name} {row[odd column]}")
    assert series.to_dict() == {"r1": "Hello Ann x", "r2": "Hello Bo y"}
    copy = run(ip, "%%generate -m echo: --over t_df --seed 1 --out-column said --out t_batch\n{name}")
    assert copy["said"].to_list() == ["Ann", "Bo"] and "said" not in frame.columns
    assert all(ip.user_ns["t_batch"].history_ids)
    same = run(ip, "%%generate -m echo: --over t_df --seed 1 --out-column said --inplace\n{name}")
    assert same is frame and frame["said"].to_list() == ["Ann", "Bo"]


def test_json_objects_become_columns(ip: Any) -> None:
    ip.user_ns["t_df"] = pd.DataFrame({"text": ['{"a": 1, "b": "x"}', '{"a": 2, "b": "y"}', "not json"]})
    out = run(ip, "%%generate -m echo: --over t_df --seed 1 -f json\n{text}")
    assert list(out.columns) == ["text", "a", "b"]
    ip.user_ns["t_df"] = pd.DataFrame({"a": ['{"a": 1}'], "b": [0]})
    assert list(run(ip, "%%generate -m echo: --over t_df --seed 1 -f json\n{a}").columns) == ["a", "b", "a_output"]
    assert out["a"].to_list()[:2] == [1, 2] and pd.isna(out["a"][2])
    assert list(out.attrs["genmagic_errors"]) == [2] and "error" in out.attrs["genmagic_errors"][2]


def test_failed_rows_are_marked_and_summed_up(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    genmagic._magics.engine.checks = [WordCheck("secret", "block", "prompt")]
    ip.user_ns["t_items"] = ["fine", "the secret", "also fine"]
    out = run(ip, "%%generate -m echo: --over t_items --seed 1 --out t_b\n{item}")
    assert out[0] == "fine" and out[1] is None and out[2] == "also fine"
    assert "1 of 3 rows have no output: row 1: blocked: the prompt was blocked" in capsys.readouterr().err
    assert ip.user_ns["t_b"].errors[1].startswith("blocked")


def test_interrupted_magic_binds_the_partial_rows_and_the_rerun_resumes(ip: Any) -> None:
    class Flaky:  # Ctrl-C while the model runs the third row, once
        interrupts = 1

    class InterruptOnce(type(registry.get_backend("echo"))):  # type: ignore[misc]
        def generate(self, loaded: Any, request: Any, sink: Any) -> Any:
            if request.prompt == "c" and Flaky.interrupts:
                Flaky.interrupts -= 1
                raise KeyboardInterrupt
            return super().generate(loaded, request, sink)

    registry.register_backend("echo", InterruptOnce)
    ip.user_ns["t_items"] = ["a", "b", "c", "d"]
    with pytest.raises(KeyboardInterrupt):
        run(ip, "%%generate -m echo: --over t_items --seed 1 --out t_b\n{item}")
    partial = ip.user_ns["t_b"]
    assert partial.value == ["a", "b", None, None] and partial.interrupted
    out = run(ip, "%%generate -m echo: --over t_items --seed 1 --out t_b\n{item}")
    assert out == ["a", "b", "c", "d"]
    assert [r.cached for r in ip.user_ns["t_b"].results] == [True, True, False, False]


def test_over_errors_are_one_line(ip: Any) -> None:
    ip.user_ns.update(t_df=pd.DataFrame({"text": ["x"]}), t_n=3, t_items=["x"])
    with pytest.raises(UsageError, match=r"unknown placeholder \{txt\} in the prompt: the rows of t_df have the columns text"):
        run(ip, "%%generate -m echo: --over t_df\n{txt}")
    with pytest.raises(UsageError, match=r"t_n is a int: --over takes a list, a pandas Series or a DataFrame$"):
        run(ip, "%%generate -m echo: --over t_n\n{item}")
    with pytest.raises(UsageError, match="--over no_such: there is no variable 'no_such'"):
        run(ip, "%%generate -m echo: --over no_such\n{item}")
    with pytest.raises(UsageError, match="--out-column needs a DataFrame for --over, but t_items is a list"):
        run(ip, "%%generate -m echo: --over t_items --out-column x\n{item}")
    with pytest.raises(UsageError, match="--inplace needs --out-column NAME"):
        run(ip, "%%generate -m echo: --over t_df --inplace\n{text}")
    with pytest.raises(UsageError, match="--chat continues one conversation; it cannot be combined with --over"):
        run(ip, "%%generate -m echo: --over t_df --chat\n{text}")


def test_several_samples_per_row(ip: Any) -> None:
    ip.user_ns["t_items"] = ["a", "b"]
    assert run(ip, "%%generate -m echo: --over t_items --seed 1 -n 2\n{item}") == [["a", "a"], ["b", "b"]]


def test_over_on_the_tiny_model_equals_single_cells(ip: Any) -> None:
    ip.user_ns["t_items"] = PROMPTS[:4]
    batch = run(ip, "%%generate -m tiny --over t_items --temperature 0 --max-new-tokens 12 --no-cache\n{item}")
    for prompt, text in zip(PROMPTS[:4], batch, strict=True):
        assert run(ip, f"%%generate -m tiny --temperature 0 --max-new-tokens 12 --no-cache\n{prompt}").text == text


# -- the Python API and the CLI


def test_generate_many(genmagic_home: Path) -> None:
    assert genmagic.generate_many(["a", "b"], "<{item}>", model="echo:", seed=1) == ["<a>", "<b>"]
    frame = pd.DataFrame({"text": ["x", "y"]})
    out = genmagic.generate_many(frame, column="text", model="echo:", seed=1, out_column="copy")
    assert out["copy"].to_list() == ["x", "y"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_cli_over_a_file(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    from genmagic.cli import main

    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    rows = pd.DataFrame({"text": ["fox", "star"], "id": [1, 2]})
    source = tmp_path / f"in{suffix}"
    {".csv": lambda: rows.to_csv(source, index=False), ".parquet": lambda: rows.to_parquet(source),
     ".jsonl": lambda: rows.to_json(source, orient="records", lines=True)}[suffix]()
    target = tmp_path / f"out{suffix}"
    assert main(["generate", "-m", "echo:", "--seed", "1", "--over", str(source), "About {text}", "-o", str(target)]) == 0
    written = {".csv": pd.read_csv, ".parquet": pd.read_parquet,
               ".jsonl": lambda p: pd.read_json(p, lines=True)}[suffix](target)
    assert list(zip(written["id"], written["output"], strict=True)) == [(1, "About fox"), (2, "About star")]
    assert main(["generate", "-m", "echo:", "--seed", "1", "--over", str(source), "--column", "text"]) == 0
    assert pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))["output"].to_list() == ["fox", "star"]


def test_the_line_form_keeps_row_placeholders_for_the_rows(ip: Any) -> None:
    ip.user_ns.update(t_df=pd.DataFrame({"name": ["Ann", "Bo"], "a b": ["x", "y"]}), t_hi="Hello")
    out = run(ip, "%generate -m echo: --seed 1 --over t_df {t_hi}, {name} {row[a b]}!")
    assert out.to_list() == ["Hello, Ann x!", "Hello, Bo y!"]
    ip.user_ns["t_items"] = ["x"]
    assert run(ip, "%generate -m echo: --seed 1 --over=t_items <{item:>3}>") == ["<  x>"]


def test_cli_over_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from genmagic.cli import main

    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["a"]}).to_csv(source, index=False)
    assert main(["generate", "-m", "echo:", "--over", str(tmp_path / "in.xlsx"), "x"]) == 2
    assert "--over" in capsys.readouterr().err
    assert main(["generate", "-m", "echo:", "--over", str(source), "{txt}"]) == 2
    assert "unknown placeholder {txt} in the prompt" in capsys.readouterr().err
    assert main(["generate", "-m", "echo:", "--over", str(source)]) == 2
    assert "its columns: text; e.g. column='text'" in capsys.readouterr().err


def test_an_interrupt_stops_the_served_rows_in_flight(engine: Engine, server: FaultServer) -> None:
    engine.registry.register("f", f"openai:{server.url}", settings={"model": "m1", "server": "llama.cpp"})
    server.then("ok", "quick")
    for _ in range(5):
        server.then("slowstream", ["a", "b", "c", "d", "e", "f", "g", "h"], 0.3)
    requests = [engine.request("text", f"q{i}", TextOptions(seed=1), model="f") for i in range(6)]

    def progress(index: int, result: Any) -> None:  # Ctrl-C as soon as the first row is back
        raise KeyboardInterrupt

    out = engine.run_many(requests, concurrency=2, progress=progress, cache=False)
    assert out[0].status == "ok" and out[0].text == "quick"  # the first row runs alone until it streams
    in_flight = [r for r in out[1:] if r.history_id is not None]
    assert in_flight and all(r.status == "interrupted" and len(r.text) < 8 for r in in_flight)  # stopped early
    assert len(server.seen) == 1 + len(in_flight)  # every request sent is recorded
    assert sum(r.history_id is None for r in out) >= 2  # the rest never started


def test_concurrent_rows_in_a_fresh_process(server: FaultServer, genmagic_home: Path) -> None:
    """The client's first requests import modules lazily; from several threads at once in a fresh
    interpreter they used to find httpx half initialised (rows failed with 'malformed answer')."""
    import subprocess
    import sys

    for i in range(6):
        server.then("stream", [f"answer {i}"])
    script = (
        "from genmagic.engine import Engine\nfrom genmagic.options import TextOptions\n"
        "e = Engine(); e.checks = []\n"
        f"e.registry.register('f', 'openai:{server.url}', settings={{'model': 'm1', 'server': 'llama.cpp'}})\n"
        "out = e.run_many([e.request('text', f'q{i}', TextOptions(seed=1), model='f') for i in range(6)], "
        "concurrency=6, cache=False)\n"
        "print(sorted(r.status for r in out), [r.error for r in out if r.error])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(Path(genmagic.__file__).parent.parent)})
    assert done.stdout.strip() == f"{['ok'] * 6} []", done.stderr[-2000:]


def test_api_mistakes_fail_before_any_row_runs(genmagic_home: Path) -> None:
    from genmagic.errors import OptionError

    with pytest.raises(OptionError, match="--out-column needs a DataFrame for --over, but data is a list"):
        genmagic.generate_many(["a"], model="echo:", seed=1, out_column="x")
    with pytest.raises(OptionError, match="unknown option 'temprature'; did you mean temperature"):
        genmagic.generate_many(["a"], model="echo:", temprature=1)
    with pytest.raises(OptionError, match=r"a DataFrame needs a prompt with \{column\} placeholders"):
        genmagic.generate_many(pd.DataFrame({"t": ["a"]}), model="echo:")
    from genmagic.engine import default_engine

    assert default_engine().history.list(5) == []  # nothing ran


def test_repetition_penalty_leaves_out_the_left_padding() -> None:
    """A row padded with the end token (a tokenizer without a pad token) scores like the row alone;
    transformers' own processor would penalise the end token in the padded row only."""
    import torch
    from transformers import RepetitionPenaltyLogitsProcessor

    from genmagic.backends.batching import repetition_penalty

    eos = 2
    padded = torch.tensor([[eos, eos, 4], [1, 0, 4]])
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, 0.5, 2.0]])
    ours = repetition_penalty(1.5, [2, 0])[0](padded, scores)
    alone = RepetitionPenaltyLogitsProcessor(1.5)(torch.tensor([[4]]), scores[:1].clone())
    assert torch.equal(ours[0], alone[0])  # the padded row: only token 4 penalised, not the end token
    assert torch.equal(ours[1], RepetitionPenaltyLogitsProcessor(1.5)(padded[1:], scores[1:].clone())[0])
    assert not torch.equal(RepetitionPenaltyLogitsProcessor(1.5)(padded[:1], scores[:1].clone())[0], alone[0])
    assert repetition_penalty(1.0, [0]) == []


def test_empty_cells_fill_in_as_empty_text_and_out_column_never_replaces_an_input() -> None:
    import pandas as pd

    from genmagic.batch import check_template, fill, rows_of
    from genmagic.errors import PromptError

    frame = pd.DataFrame({"subject": ["Refund", None], "body text": [float("nan"), "Broken"]})
    rows = rows_of(frame)
    assert [fill("{subject}|{row[body text]}", row, {}) for row in rows] == ["Refund|", "|Broken"]
    assert fill("{item}", {"item": pd.NA}, {}) == ""
    with pytest.raises(PromptError, match=r"unknown placeholder \{row\[body\]\} .* columns subject, body text"):
        check_template("{row[body]}", rows, {}, "frame")
    with pytest.raises(OptionError, match=r"--out-column subject: .* already has that column"):
        genmagic.generate_many(frame, "{subject}", model="echo:", out_column="subject")
