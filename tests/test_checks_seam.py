"""The safety seam (``Engine.checks``): a check that blocks, a check that flags an output,
verdicts on the result, in history, and on results served from the cache."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from conftest import run
from IPython.core.error import UsageError

import genmagic
from genmagic.engine import Engine
from genmagic.errors import BlockedError
from genmagic.options import TextOptions
from genmagic.request import Request
from genmagic.results import Verdict


class WordCheck:
    """Flags ``word`` wherever it appears; ``action`` says what the flag asks for."""

    def __init__(self, word: str, action: str, stage: str) -> None:
        self.name = f"word:{word}"
        self.word, self.action, self.stage = word, action, stage
        self.seen: list[tuple[str, str]] = []

    def screen(self, text: str, stage: str, request: Request, level: str) -> list[Verdict]:
        self.seen.append((stage, text))
        start = text.find(self.word)
        if stage != self.stage or start < 0:
            return []
        return [Verdict(self.name, "privacy", 1.0, self.action, ((start, start + len(self.word)),), stage)]


def _only(engine: Engine, *checks: WordCheck) -> None:
    engine.checks = list(checks)  # these tests look at exactly the verdicts of their own checks


def _engine(home: Any) -> Engine:
    return Engine(home=home)


def test_a_blocking_check_stops_the_run_and_records_it(genmagic_home: Any) -> None:
    engine = _engine(genmagic_home)
    _only(engine, WordCheck("secret", "block", "prompt"))
    request = engine.request("text", "tell me the secret", TextOptions(seed=1), model="echo:")
    with pytest.raises(BlockedError, match=r"the prompt was blocked by a safety check \(privacy\); nothing was sent to the model \(history #1\)"):
        engine.run(request)
    record = engine.history.get(1)
    assert record is not None and record.status == "blocked" and record.outputs == {"texts": [], "tokens": []}
    assert record.verdicts == [Verdict("word:secret", "privacy", 1.0, "block", ((12, 18),), "prompt", "prompt").to_dict()]
    assert engine.models.loaded() == []  # the model was never loaded


def test_a_blocking_check_is_a_usage_error_in_the_magic(ip: Any) -> None:
    _only(genmagic._magics.engine, WordCheck("secret", "block", "prompt"))
    with pytest.raises(UsageError, match="blocked by a safety check"):
        run(ip, "%%generate -m echo: --seed 1\nthe secret plan")
    last = genmagic._magics.engine.history.list(n=1)[0]
    assert last.status == "blocked" and last.prompt == "the secret plan"


def test_a_flagged_output_keeps_its_verdict_on_the_result_and_in_history(ip: Any) -> None:
    check = WordCheck("beta", "warn", "output")
    _only(genmagic._magics.engine, check)
    result = run(ip, "%%generate -m echo:alpha-beta --seed 3\nanything")
    assert result.ok and result.text == "alpha-beta"  # a flag never drops the output
    assert ("prompt", "anything") in check.seen and ("output", "alpha-beta") in check.seen
    flagged = Verdict("word:beta", "privacy", 1.0, "warn", ((6, 10),), "output", "output 1")
    assert result.verdicts == [flagged]
    record = genmagic._magics.engine.history.get(result.history_id)
    assert record is not None and record.status == "ok" and record.verdicts == [flagged.to_dict()]


def test_a_cached_result_carries_the_output_verdicts_of_its_run(ip: Any) -> None:
    _only(genmagic._magics.engine, WordCheck("beta", "warn", "output"))
    first = run(ip, "%%generate -m echo:alpha-beta --seed 4\nanything")
    second = run(ip, "%%generate -m echo:alpha-beta --seed 4\nanything")
    assert not first.cached and second.cached and second.text == first.text
    assert second.verdicts == first.verdicts and second.verdicts[0].stage == "output"
    record = genmagic._magics.engine.history.get(second.history_id)
    assert record is not None and record.cached and record.verdicts == [v.to_dict() for v in first.verdicts]


def test_a_check_added_after_a_run_screens_its_cached_output(ip: Any) -> None:
    _only(genmagic._magics.engine)
    first = run(ip, "%%generate -m echo:alpha-beta --seed 5\nanything")
    assert first.verdicts == []
    check = WordCheck("beta", "warn", "output")
    _only(genmagic._magics.engine, check)
    second = run(ip, "%%generate -m echo:alpha-beta --seed 5\nanything")
    assert second.cached and ("output", "alpha-beta") in check.seen
    flagged = Verdict("word:beta", "privacy", 1.0, "warn", ((6, 10),), "output", "output 1")
    assert second.verdicts == [flagged]
    record = genmagic._magics.engine.history.get(second.history_id)
    assert record is not None and record.verdicts == [flagged.to_dict()]


def test_a_removed_check_no_longer_flags_a_cached_output(ip: Any) -> None:
    _only(genmagic._magics.engine, WordCheck("beta", "warn", "output"))
    checks = genmagic._magics.engine.checks
    first = run(ip, "%%generate -m echo:alpha-beta --seed 6\nanything")
    assert [v.check for v in first.verdicts] == ["word:beta"]
    checks.clear()
    checks.append(WordCheck("alpha", "review", "output"))
    second = run(ip, "%%generate -m echo:alpha-beta --seed 6\nanything")
    assert second.cached and second.verdicts == [Verdict("word:alpha", "privacy", 1.0, "review", ((0, 5),), "output", "output 1")]
    assert second.status == "review" and second.text == ""  # withheld until a person approves it


def test_a_backends_own_flags_stay_on_a_cached_result(genmagic_home: Any) -> None:
    engine = _engine(genmagic_home)
    _only(engine)
    request = engine.request("text", "anything", TextOptions(seed=7), model="echo:alpha")
    first = engine.run(request)
    own = Verdict("echo:nsfw", "nsfw", 0.9, "warn", (), "backend")
    engine.history.record(dataclasses.replace(first, verdicts=[own], cached=False))  # a run that flagged itself
    second = engine.run(request)
    assert second.cached and second.verdicts == [own]
