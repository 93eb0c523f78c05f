"""Safety as a notebook user meets it: %genmagic safety, GenMagics.safety_level, --safety, withheld
outputs in the cell and on --out, the review panel, the verdict log and the history table.
Small word checks stand in for the real ones, so each test sees exactly its own verdicts."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run
from IPython.core.error import UsageError
from test_safety_engine import Word
from traitlets import TraitError

import genmagic


def _only(*checks: Any) -> Any:
    engine = genmagic._magics.engine
    engine.checks = list(checks)
    return engine


@pytest.fixture(autouse=True)
def _level_back() -> Any:
    yield
    genmagic._magics.safety_level = ""


def test_the_session_level_is_set_shown_and_checked(ip: Any, capsys: Any) -> None:
    _only(Word("bomb", "block"))
    run(ip, "%genmagic safety")
    assert "safety level: standard (the default); checks: word:bomb" in capsys.readouterr().out
    run(ip, "%genmagic safety warn")
    assert genmagic._magics.engine.level() == "warn"
    assert run(ip, "%generate -m echo: --seed 1 a bomb").ok  # warn: flagged, not blocked
    run(ip, "%config GenMagics.safety_level = 'strict'")
    assert genmagic._magics.engine.level() == "strict"
    with pytest.raises(UsageError, match=r"safety lax: use a level \(off, warn, standard, strict\), log, review"):
        run(ip, "%genmagic safety lax")
    with pytest.raises(TraitError, match=r"GenMagics\.safety_level 'lax' is not a safety level; use one of: off, warn"):
        genmagic._magics.safety_level = "lax"
    assert genmagic._magics.engine.level() == "strict"  # the bad value was refused, the level kept
    with pytest.raises(UsageError, match="argument --safety: invalid choice: 'lax'"):
        run(ip, "%generate -m echo: --safety lax hi")


def test_safety_off_for_one_cell_leaves_a_visible_notice(ip: Any) -> None:
    check = _only(Word("bomb", "block")).checks[0]
    result = run(ip, "%generate -m echo: --seed 1 --safety off a bomb")
    assert result.ok and check.seen == []
    bundle = result._repr_mimebundle_()
    assert "safety: safety off" in bundle["text/plain"] and "safety off" in bundle["text/html"]
    record = genmagic._magics.engine.history.get(result.history_id)
    assert record is not None and record.verdicts[0]["category"] == "off"


def test_a_withheld_output_shows_its_reason_and_binds_nothing(ip: Any, capsys: Any) -> None:
    _only(Word("bad", "block", stage="output"))
    result = run(ip, "%%generate -m echo:a-bad-answer --seed 2 --out t_answer\nwhatever")
    assert result.status == "blocked" and ip.user_ns["t_answer"] is result and str(result) == ""
    bundle = result._repr_mimebundle_()
    assert "[withheld by a safety check: says 'bad']" in bundle["text/plain"]
    assert "safety: blocked: violent crimes" in bundle["text/plain"]
    err = capsys.readouterr().err
    assert f"kept in history #{result.history_id}" in err and "--safety warn" in err
    table = repr(run(ip, "%genmagic history -n 1"))
    assert "blocked: violent crimes" in table and "whatever  [withheld]" in table
    log = repr(run(ip, "%genmagic safety log"))
    assert "output 1" in log and "says 'bad'" in log and "block" in log


def test_a_withheld_answer_does_not_join_the_conversation(ip: Any) -> None:
    _only(Word("bad", "block", stage="output"))
    run(ip, "%%generate -m echo:a-bad-answer --seed 3 --chat\nhello")
    assert genmagic._magics.conversation == []


def test_the_review_panel_approves_edits_and_rejects(ip: Any) -> None:
    pytest.importorskip("ipywidgets")
    from genmagic.safety.review import review_widget

    _only(Word("maybe", "review", stage="output"))
    result = run(ip, "%%generate -m echo:maybe-so --seed 4 --out t_held\nwhatever")
    assert result.status == "review" and ip.user_ns["t_held"].text == ""
    panel = review_widget(result, genmagic._magics.engine)
    approve = next(b for b in panel.children[3].children if getattr(b, "description", "") == "Approve")
    approve.click()
    assert ip.user_ns["t_held"].text == "maybe-so" and result.ok
    assert "approved" in panel.children[0].value

    edited = run(ip, "%%generate -m echo:maybe-not --seed 5\nwhatever")
    panel = review_widget(edited, genmagic._magics.engine)
    panel.children[2].value = "certainly"
    next(b for b in panel.children[3].children if getattr(b, "description", "") == "Approve edited").click()
    assert edited.text == "certainly"

    rejected = run(ip, "%%generate -m echo:maybe-never --seed 6\nwhatever")
    run(ip, f"%genmagic safety reject {rejected.history_id} --note 'off topic'")
    assert [d["decision"] for d in genmagic._magics.engine.history.decisions(rejected.history_id)] == ["rejected"]
    from genmagic.safety.review import refresh

    assert refresh(rejected) == "rejected" and rejected.text == ""  # the decision made elsewhere reaches the object
    assert len(run(ip, "%genmagic safety review")) == 0  # nothing pending any more
    with pytest.raises(UsageError, match=f"run #{result.history_id} was already approved; a decision is final"):
        run(ip, f"%genmagic safety approve {result.history_id}")
    with pytest.raises(UsageError, match="run #999 is not in the history"):
        run(ip, "%genmagic safety approve 999")


def test_a_withheld_json_or_code_output_is_neither_parsed_nor_inserted(ip: Any) -> None:
    _only(Word("bad", "block", stage="output"))
    ip.rl_next_input = None  # an earlier test's -f code output may have set it
    result = run(ip, '%%generate -m echo:["bad"] --seed 7 -f json\nwhatever')
    assert result.status == "blocked"  # the result, not a JSON error about an empty text
    ip.rl_next_input = None  # an earlier test's -f code may have left one
    code = run(ip, "%%generate -m echo:bad=1 --seed 8 -f code\nwhatever")
    assert code.status == "blocked" and ip.rl_next_input is None


def test_a_decision_by_id_reaches_the_held_object_and_history_shows_it(ip: Any) -> None:
    _only(Word("maybe", "review", stage="output"))
    held = run(ip, "%%generate -m echo:maybe-later --seed 9 --out t_wait\nwhatever")
    assert held.status == "review" and ip.user_ns["t_wait"].text == ""
    assert "review (pending)" in repr(run(ip, "%genmagic history -n 1"))
    run(ip, f"%genmagic safety approve {held.history_id}")
    assert ip.user_ns["t_wait"].text == "maybe-later" and held.ok  # no refresh() needed in this session
    assert "review: approved" in repr(run(ip, "%genmagic history -n 1"))
    shown = run(ip, f"%genmagic show {held.history_id}")
    assert shown.ok and shown.text == "maybe-later"


def test_history_json_hides_withheld_outputs_unless_asked(ip: Any) -> None:
    import json
    import os
    import subprocess
    import sys

    _only(Word("bad", "block", stage="output"))
    result = run(ip, "%%generate -m echo:a-bad-answer --seed 11\nwhatever")
    def cli(*args: str) -> list[dict[str, Any]]:
        out = subprocess.run([sys.executable, "-m", "genmagic.cli", "history", "--json", "-n", "1", *args],
                             capture_output=True, text=True, env=os.environ.copy(), timeout=120)
        return json.loads(out.stdout)
    (row,) = cli()
    assert row["id"] == result.history_id and row["outputs"]["texts"] == ["[withheld: says 'bad']"]
    assert row["decisions"] == []
    (full,) = cli("--include-withheld")
    assert full["outputs"]["texts"] == ["a-bad-answer"]
