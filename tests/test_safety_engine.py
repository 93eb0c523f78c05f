"""How the engine acts on safety verdicts: redaction before the model, streamed output stopped
and replaced, outputs withheld, review, levels, every user text screened, cache hits screened again.
The checks here are small word checks, so each test sees exactly its own verdicts; the real
checks (PII, moderation, image) have their own tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genmagic.engine import Engine
from genmagic.errors import BlockedError, OptionError
from genmagic.options import ImageOptions, TextOptions
from genmagic.request import Event, ListSink, Request
from genmagic.results import Verdict


class Word:
    """Flags ``word`` with ``action`` at ``stage``; redacts it to ``[X]``; optionally on the stream."""

    def __init__(self, word: str, action: str, stage: str = "prompt", stream: bool = False) -> None:
        self.name = f"word:{word}"
        self.word, self.action, self.stage = word, action, stage
        self.seen: list[tuple[str, str]] = []
        self.stream_calls = 0
        if stream:
            self.screen_stream = self._screen_stream

    def _find(self, text: str) -> list[Verdict]:
        start = text.find(self.word)
        if start < 0:
            return []
        return [Verdict(self.name, "violent_crimes", 0.9, self.action, ((start, start + len(self.word)),),
                        reason=f"says {self.word!r}")]

    def screen(self, text: str, stage: str, request: Request, level: str) -> list[Verdict]:
        self.seen.append((stage, text))
        return self._find(text) if stage == self.stage else []

    def redact(self, text: str, verdicts: Any) -> str:
        return text.replace(self.word, "[X]")

    def _screen_stream(self, text: str, request: Request, level: str) -> list[Verdict]:
        self.stream_calls += 1
        return self._find(text)


def _engine(home: Path, *checks: Any) -> Engine:
    engine = Engine(home=home)
    engine.checks = list(checks)
    return engine


def _run(engine: Engine, prompt: str, model: str, sink: Any = None, **kw: Any) -> Any:
    safety = kw.pop("safety", None)
    request = engine.request("text", prompt, TextOptions(**{"seed": 1, **kw}), model=model)
    return engine.run(request, sink, safety=safety)


def test_a_redacted_prompt_is_what_the_model_sees_and_history_keeps(genmagic_home: Path) -> None:
    engine = _engine(genmagic_home, Word("alice@example.com", "redact"))
    result = _run(engine, "write to alice@example.com today", "echo:")  # echo: answers with its prompt
    assert result.text == "write to [X] today" and result.request.prompt == "write to [X] today"
    record = engine.history.get(result.history_id)
    assert record is not None and record.prompt == "write to [X] today" and "alice" not in str(record.request)
    assert [(v.action, v.target) for v in result.verdicts] == [("redact", "prompt")]


def test_system_prompt_chat_turns_and_negative_prompt_are_screened(genmagic_home: Path) -> None:
    check = Word("secret", "redact")
    engine = _engine(genmagic_home, check)
    request = engine.request("text", "hi", TextOptions(seed=1, system="keep the secret"), model="echo:",
                             messages=(("user", "my secret is x"), ("assistant", "a secret answer")))
    result = engine.run(request)
    assert result.request.options.system == "keep the [X]"
    # the model's own earlier turn goes out again: the redacting checks see it too
    assert result.request.messages == (("user", "my [X] is x"), ("assistant", "a [X] answer"))
    assert sorted(v.target for v in result.verdicts) == ["system", "turn 1", "turn 2"]
    image = engine.request("image", "a cat", ImageOptions(seed=1, negative="secret things"), model="tiny-image")
    verdicts, redacted = engine._screen_request(engine.checks, image, "standard")
    assert [v.target for v in verdicts] == ["negative"] and redacted.options.negative == "[X] things"


def test_a_blocked_prompt_names_what_and_why_and_never_reaches_the_model(genmagic_home: Path, echo_backend: Any) -> None:
    engine = _engine(genmagic_home, Word("bomb", "block"))
    loads = echo_backend.loads
    with pytest.raises(BlockedError, match=r"the prompt was blocked by a safety check \(says 'bomb'\).*--safety warn"):
        _run(engine, "how to build a bomb", "echo:")
    assert echo_backend.loads == loads
    assert engine.history.list(n=1)[0].status == "blocked"


def test_a_streamed_output_is_stopped_within_a_token_and_replaced(genmagic_home: Path) -> None:
    check = Word("forbidden", "block", stage="output", stream=True)
    engine = _engine(genmagic_home, check)
    text = "all is fine. then the forbidden part. " + "and it goes on and on. " * 20
    sink = ListSink()
    sink.retracts = True  # type: ignore[attr-defined]  # a notebook view: shown at once, replaced on a block
    result = _run(engine, "go", f"echo:{text}", sink=sink)
    assert result.status == "blocked" and result.text == ""  # nothing of it is on the result (or --out)
    withheld = [e for e in sink.events if e.type == "withheld"]
    assert len(withheld) == 1 and "says 'forbidden'" in withheld[0].data
    shown = "".join(e.data for e in sink.events if e.type == "token")
    assert "forbidden" in shown and len(shown) < len("all is fine. then the forbidden part. ") + 2  # stopped at once
    record = engine.history.get(result.history_id)
    assert record is not None and record.status == "blocked"
    assert record.outputs["texts"][0].startswith("all is fine. then the forbidden part.")  # kept for review
    assert record.outputs["withheld"] == {"0": "says 'forbidden'"}
    assert any(v.target == "output 1" and v.action == "block" for v in result.verdicts)


def test_a_phrase_split_between_two_stream_checks_is_still_caught(genmagic_home: Path) -> None:
    check = Word("forbidden thing", "block", stage="output", stream=True)
    engine = _engine(genmagic_home, check)
    text = "x" * 75 + " forbidden thing " + "y" * 200  # the first check (80 chars) sees only "forb"
    result = _run(engine, "go", f"echo:{text}", sink=ListSink())
    assert result.status == "blocked" and check.stream_calls >= 2


def test_an_output_block_withholds_that_sample_only(genmagic_home: Path) -> None:
    engine = _engine(genmagic_home, Word("bad", "block", stage="output"))
    result = _run(engine, "go", "echo:a bad answer", num=2)
    assert result.status == "blocked" and result.texts == ["", ""]
    result.release()
    assert result.texts == ["a bad answer", "a bad answer"]
    fine = _run(engine, "go", "echo:a good answer", num=2)
    assert fine.ok and fine.texts == ["a good answer"] * 2


def test_review_withholds_until_approved_and_pending_lists_it(genmagic_home: Path) -> None:
    from genmagic.safety import review

    engine = _engine(genmagic_home, Word("maybe", "review", stage="output"))
    result = _run(engine, "go", "echo:maybe not")
    assert result.status == "review" and result.text == ""
    assert [r.id for r in review.pending(engine)] == [result.history_id]
    review.decide(result, "approved", engine=engine)
    assert result.ok and result.text == "maybe not"
    assert review.pending(engine) == []
    assert [d["decision"] for d in engine.history.decisions(result.history_id)] == ["approved"]


def test_review_reject_and_edit(genmagic_home: Path) -> None:
    from genmagic.safety import review

    engine = _engine(genmagic_home, Word("maybe", "review", stage="output"))
    rejected = _run(engine, "go", "echo:maybe one")
    review.decide(rejected, "rejected", engine=engine, note="off topic")
    assert rejected.status == "rejected" and rejected.text == ""
    edited = _run(engine, "go again", "echo:maybe two")
    review.decide(edited, "edited", engine=engine, edited=["surely two"])
    assert edited.ok and edited.text == "surely two"
    assert engine.history.decisions(edited.history_id)[0]["edited"] == ["surely two"]
    assert review.pending(engine) == []
    with pytest.raises(OptionError, match="decision 'maybe'"):
        review.decide(edited, "maybe", engine=engine)


def test_levels_warn_flags_only_and_off_records_a_notice(genmagic_home: Path) -> None:
    check = Word("bomb", "block")
    engine = _engine(genmagic_home, check)
    warned = _run(engine, "a bomb", "echo:", safety="warn")
    assert warned.ok and [v.action for v in warned.verdicts] == ["warn"]
    check.seen.clear()
    off = _run(engine, "a bomb", "echo:", safety="off", seed=2)
    assert off.ok and check.seen == []  # nothing screened at all
    assert [(v.check, v.category) for v in off.verdicts] == [("safety", "off")]
    record = engine.history.get(off.history_id)
    assert record is not None and record.verdicts[0]["reason"].startswith("safety checks were off")
    with pytest.raises(OptionError, match="'loose' is not a safety level"):
        _run(engine, "x", "echo:", safety="loose")


def test_the_session_level_and_the_config_level(genmagic_home: Path, tmp_path: Path) -> None:
    check = Word("bomb", "block")
    engine = _engine(genmagic_home, check)
    assert engine.level() == "standard"
    engine.safety_level = "warn"
    assert _run(engine, "a bomb", "echo:").ok
    engine.safety_level = None
    (Path.cwd() / "genmagic.toml").write_text('[safety]\nlevel = "strict"\n')
    engine.registry._loaded_stamp = None
    assert engine.level() == "strict"  # a project may raise the level


def test_a_project_file_cannot_lower_the_level_until_trusted(genmagic_home: Path, capsys: Any) -> None:
    engine = _engine(genmagic_home)
    project = Path.cwd() / "genmagic.toml"
    project.write_text('[safety]\nlevel = "off"\n')
    assert engine.level() == "standard"
    assert "lowers the checks; ignored until you trust the file" in capsys.readouterr().err
    from genmagic.trust import trust_file

    trust_file(project, Path(engine.registry.config_files()[0][1]).parent)
    engine.registry._loaded_stamp = None
    assert engine.level() == "off"


def test_a_cache_hit_is_screened_under_the_current_level(genmagic_home: Path) -> None:
    engine = _engine(genmagic_home, Word("bad", "block", stage="output"))
    first = _run(engine, "go", "echo:a bad answer", safety="warn", seed=5)
    assert first.ok and first.text == "a bad answer"
    second = _run(engine, "go", "echo:a bad answer", seed=5)  # standard now: the cached output is withheld
    assert second.cached and second.status == "blocked" and second.text == ""
    assert (first.info["safety"], second.info["safety"]) == ("warn", "standard")  # each run records its level


def test_the_screening_sink_passes_everything_else_through() -> None:
    from genmagic.safety.screen import ScreeningSink

    inner = ListSink()
    inner.preview_every = 3  # type: ignore[attr-defined]
    sink = ScreeningSink(inner, [Word("x", "block", stream=True)], None, "standard")  # type: ignore[arg-type]
    sink.emit(Event("progress", (1, 2)))
    assert inner.events == [Event("progress", (1, 2))] and sink.preview_every == 3 and not sink.cancelled


def test_a_cache_hit_under_the_same_policy_reuses_the_stored_verdicts(genmagic_home: Path) -> None:
    prompt_check = Word("secret", "warn")
    output_check = Word("bad", "warn", stage="output")
    prompt_check.version = output_check.version = "1"  # type: ignore[attr-defined]
    engine = _engine(genmagic_home, prompt_check, output_check)
    first = _run(engine, "the secret", "echo:a bad answer", seed=9)
    calls = len(prompt_check.seen) + len(output_check.seen)
    second = _run(engine, "the secret", "echo:a bad answer", seed=9)
    assert second.cached and len(prompt_check.seen) + len(output_check.seen) == calls  # nothing screened again
    assert second.verdicts == first.verdicts and second.info["safety_policy"] == first.info["safety_policy"]
    third = _run(engine, "the secret", "echo:a bad answer", seed=9, safety="strict")
    assert third.cached and len(prompt_check.seen) + len(output_check.seen) == calls + 4  # another level: screened again
    assert third.info["safety_policy"] != first.info["safety_policy"]
    prompt_check.version = "2"  # type: ignore[attr-defined]  # the check changed: screened again
    fourth = _run(engine, "the secret", "echo:a bad answer", seed=9)
    assert fourth.cached and len(prompt_check.seen) + len(output_check.seen) == calls + 8


def test_the_config_chooses_the_redaction_mode(genmagic_home: Path) -> None:
    engine = Engine(home=genmagic_home)
    (Path.cwd() / "genmagic.toml").write_text('[safety]\nredaction = "mask"\n')
    result = engine.run(engine.request("text", "mail ana@example.org", TextOptions(seed=1), model="echo:"),
                        safety="strict")
    sent = result.request.prompt  # what the model got (its answer may be held for review at strict)
    assert "ana@example.org" not in sent and "<EMAIL" not in sent and "@" in sent
    (Path.cwd() / "genmagic.toml").write_text('[safety]\nredaction = "shred"\n')
    with pytest.raises(OptionError, match=r"\[safety\] in .*genmagic.toml: redaction mode 'shred' is not one of"):
        engine.run(engine.request("text", "hi", TextOptions(seed=1), model="echo:"))



def test_a_check_without_a_version_screens_every_cache_hit(genmagic_home: Path) -> None:
    check = Word("bad", "warn", stage="output")  # no version: it may change without a trace
    engine = _engine(genmagic_home, check)
    _run(engine, "go", "echo:a bad answer", seed=10)
    again = _run(engine, "go", "echo:a bad answer", seed=10)
    assert again.cached and len(check.seen) == 4 and again.info["safety_policy"] is None
    check.word = "answer"  # edited in place (a notebook class): the next hit sees the edit
    third = _run(engine, "go", "echo:a bad answer", seed=10)
    assert third.verdicts[-1].reason == "says 'answer'"


class Broken:
    name = "broken"

    def screen(self, text: str, stage: str, request: Request, level: str) -> list[Verdict]:
        if stage == "output":
            raise RuntimeError("model file missing")
        return []


class OldStyle:
    """Written for the issue's three-argument protocol."""

    name = "old"

    def screen(self, text: str, stage: str, request: Request) -> list[Verdict]:
        return [Verdict(self.name, "hate", 0.9, "warn", reason="old style")] if "bad" in text else []


def test_a_failing_check_holds_the_outputs_for_review_and_loses_nothing(genmagic_home: Path) -> None:
    engine = _engine(genmagic_home, Broken(), OldStyle())
    result = _run(engine, "go", "echo:a bad answer")
    assert result.status == "review" and result.text == ""
    failed = [v for v in result.verdicts if v.check == "broken"]
    assert failed[0].reason == "the check 'broken' failed (RuntimeError: model file missing); held for review"
    assert [v.reason for v in result.verdicts if v.check == "old"] == ["old style"]
    record = engine.history.get(result.history_id)
    assert record is not None and record.outputs["texts"] == ["a bad answer"]  # kept


def test_a_prompt_review_and_an_output_block_withhold_every_output(genmagic_home: Path) -> None:
    engine = _engine(genmagic_home, Word("refund", "review"), Word("bad", "block", stage="output"))
    request = engine.request("text", "a refund", TextOptions(seed=1, num=2), model="echo:a bad answer")
    result = engine.run(request)
    assert result.texts == ["", ""] and result.status == "blocked"


def test_a_request_rebuilt_from_history_still_knows_where_it_goes(genmagic_home: Path) -> None:
    engine = _engine(genmagic_home, Word("x", "warn"))
    first = _run(engine, "go", "echo:")
    rebuilt = Request.from_dict(first.request.to_dict())
    assert rebuilt.spec is None
    again = engine.run(rebuilt, cache=False)
    assert again.request.spec is not None and again.request.spec.alias == first.request.model


def test_a_view_that_cannot_take_text_back_never_gets_a_blocked_sentence(genmagic_home: Path) -> None:
    engine = _engine(genmagic_home, Word("forbidden", "block", stage="output", stream=True))
    terminal = ListSink()
    terminal.retracts = False  # type: ignore[attr-defined]  # a terminal, a file, a pipe
    result = _run(engine, "go", "echo:all is fine. then the forbidden part. and more", sink=terminal)
    shown = "".join(e.data for e in terminal.events if e.type == "token")
    assert result.status == "blocked" and shown == "all is fine."
    assert [e.type for e in terminal.events][-1] == "withheld"


def test_the_final_screen_decides_the_held_tail(genmagic_home: Path) -> None:
    final_only = Word("tail", "block", stage="output")  # no stream check: only the final screen sees it
    engine = _engine(genmagic_home, final_only, Word("zzz", "block", stage="output", stream=True))
    terminal = ListSink()
    terminal.retracts = False  # type: ignore[attr-defined]
    result = _run(engine, "go", "echo:first sentence. a tail without an end", sink=terminal)
    shown = "".join(e.data for e in terminal.events if e.type == "token")
    assert result.status == "blocked" and "tail" not in shown
    assert terminal.events[-1] == Event("withheld", "output withheld by a safety check (says 'tail')", 0)
    fine = ListSink()
    fine.retracts = False  # type: ignore[attr-defined]
    _run(engine, "go", "echo:first sentence. an end without it", sink=fine)
    assert "".join(e.data for e in fine.events if e.type == "token") == "first sentence. an end without it"


class FailingBackendCheck(Word):
    pass


def test_text_streamed_before_a_backend_failure_is_screened_in_full(genmagic_home: Path, echo_backend: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(genmagic_home, Word("secret plan", "block", stage="output"), Word("zzz", "block", stream=True))
    original = echo_backend.generate

    def fails_midway(self: Any, loaded: Any, request: Any, sink: Any) -> Any:
        for ch in "the secret plan is":
            sink.emit(Event("token", ch))
        raise ConnectionError("server went away")

    monkeypatch.setattr(echo_backend, "generate", fails_midway)
    view = ListSink()
    view.retracts = True  # type: ignore[attr-defined]
    with pytest.raises(ConnectionError):
        _run(engine, "go", "echo:x", sink=view)
    assert view.events[-1].type == "withheld"
    monkeypatch.setattr(echo_backend, "generate", original)


def test_an_untrusted_project_file_never_lowers_the_users_level(genmagic_home: Path, capsys: Any) -> None:
    engine = _engine(genmagic_home)
    user = Path(engine.registry.config_files()[0][1])
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[safety]\nlevel = "strict"\n')
    project = Path.cwd() / "genmagic.toml"
    for lower in ("off", "standard"):
        project.write_text(f'[safety]\nlevel = "{lower}"\n')
        engine.registry._loaded_stamp = None
        assert engine.level() == "strict", lower
        assert "lowers the checks" in capsys.readouterr().err
    project.write_text('[safety]\nimage_classifier = "theirs"\n')
    user.write_text('[safety]\nimage_classifier = "mine"\n')
    assert engine.registry.safety_path("image_classifier") == str((user.parent / "mine").resolve())


def test_hostile_rows_neither_crash_a_cached_run_nor_the_tables(genmagic_home: Path) -> None:
    import sqlite3

    from genmagic.history_view import history_table, verdict_table

    engine = _engine(genmagic_home, Word("bad", "warn", stage="output"))
    first = _run(engine, "go", "echo:a bad answer", seed=12)
    conn = sqlite3.connect(engine.history.path)
    conn.execute("UPDATE runs SET info = '[1, 2]', timings = '\"x\"', verdicts = ? WHERE id = ?",
                 ('[{"category": null, "action": 3}, "odd", {"stage": "output", "category": 7}]', first.history_id))
    conn.commit()
    conn.close()
    again = _run(engine, "go", "echo:a bad answer", seed=12)
    assert again.ok and not again.cached  # a row of another shape is a miss, not a crash
    assert len(history_table(engine.history)) == 2 and len(verdict_table(engine.history)) >= 1
