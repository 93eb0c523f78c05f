"""The built-in checks as the engine runs them: PII redacted before a prompt leaves the machine
(a real local OpenAI-compatible endpoint records what it receives), the moderation check on
prompts and outputs, third-party checks from a real entry point, check_text and `genmagic check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fault_server import FaultServer

from genmagic import options as o
from genmagic import text_run
from genmagic.engine import Engine
from genmagic.errors import BlockedError
from genmagic.request import Request
from genmagic.safety import check_text
from genmagic.safety.moderation import Finding
from genmagic.safety.policy import ModerationCheck, PiiCheck, entry_point_checks

PROMPT = "Draft a reply to jane.doe@example.com (phone +44 20 7946 0958) about her late parcel."



def _sent_prompt(server: FaultServer) -> str:
    return json.dumps(server.seen[-1]["body"])


def test_pii_is_redacted_before_it_leaves_the_machine(server: FaultServer) -> None:
    engine = Engine()
    engine.checks = [PiiCheck()]
    engine.registry.register("far", f"openai:{server.url}", settings={"model": "m1"})
    result = text_run.run(engine, PROMPT, o.TextOptions(seed=1), o.TextControls(), model="far", given={"seed"})
    sent = _sent_prompt(server)
    assert "jane.doe" not in sent and "7946" not in sent
    assert "<EMAIL_1>" in sent and "<PHONE_1>" in sent
    assert result.request.prompt == "Draft a reply to <EMAIL_1> (phone <PHONE_1>) about her late parcel."
    (verdict,) = result.verdicts
    assert (verdict.action, verdict.category, verdict.target) == ("redact", "privacy", "prompt")
    assert "email" in verdict.reason and "phone" in verdict.reason
    record = engine.history.get(result.history_id)
    assert record is not None and "jane.doe" not in json.dumps(record.request) + record.prompt
    # the same value keeps its placeholder in the next prompt of the session
    text_run.run(engine, "and cc jane.doe@example.com", o.TextOptions(seed=2), o.TextControls(), model="far", given={"seed"})
    assert "<EMAIL_1>" in _sent_prompt(server)


def test_warn_sends_pii_as_typed_but_flags_it(server: FaultServer) -> None:
    engine = Engine()
    engine.checks = [PiiCheck()]
    engine.registry.register("far", f"openai:{server.url}", settings={"model": "m1"})
    result = text_run.run(engine, PROMPT, o.TextOptions(seed=1), o.TextControls(safety="warn"), model="far", given={"seed"})
    assert "jane.doe@example.com" in _sent_prompt(server) and result.verdicts[0].action == "warn"


def test_pii_for_a_local_model_is_flagged_at_standard_and_redacted_at_strict() -> None:
    engine = Engine()
    engine.checks = [PiiCheck()]
    local = engine.run(engine.request("text", PROMPT, o.TextOptions(seed=1), model="echo:"))
    assert local.text == PROMPT and [(v.action, v.target) for v in local.verdicts] == [("warn", "prompt"), ("warn", "output 1")]
    strict = engine.run(engine.request("text", PROMPT, o.TextOptions(seed=1), model="echo:"), safety="strict")
    assert "<EMAIL_" in strict.text and "jane.doe" not in strict.text
    # outputs: flagged at standard, redacted at strict
    out = engine.run(engine.request("text", "x", o.TextOptions(seed=3), model="echo:mail me at bob@corp.example"))
    assert out.text == "mail me at bob@corp.example" and out.verdicts[0].target == "output 1"
    out = engine.run(engine.request("text", "x", o.TextOptions(seed=3), model="echo:mail me at bob@corp.example"),
                     safety="strict", cache=False)
    assert "bob@" not in out.text and "<EMAIL_" in out.text


class FixedModerator:
    """Returns the findings it was given for any text (to test the policy, not the classifier)."""

    semantic_available = True

    def __init__(self, *findings: Finding) -> None:
        self.findings = list(findings)

    def screen(self, text: str, level: str = "standard", *, semantic: bool = True) -> list[Finding]:
        return [f for f in self.findings if semantic or f.layer == "rules"]


def test_outputs_need_more_confidence_from_the_classifier_at_standard() -> None:
    unsure = Finding("violent_crimes", 0.7, "block", "semantic", 'close to labelled example "…" (0.4)')
    sure = Finding("violent_crimes", 0.97, "block", "semantic", 'close to labelled example "…" (0.8)')
    rule = Finding("violent_crimes", 1.0, "block", "rules", 'asks how to hurt someone (rule: "…")', (0, 4))
    request: Request = None  # type: ignore[assignment]
    check = ModerationCheck(FixedModerator(unsure))
    assert [v.action for v in check.screen("a story", "prompt", request, "standard")] == ["block"]
    assert [v.action for v in check.screen("a story", "output", request, "standard")] == ["warn"]
    assert [v.action for v in check.screen("a story", "output", request, "strict")] == ["block"]
    assert [v.action for v in ModerationCheck(FixedModerator(sure)).screen("x", "output", request, "standard")] == ["block"]
    ruled = ModerationCheck(FixedModerator(rule, unsure))
    assert [(v.action, v.spans) for v in ruled.screen("x", "output", request, "standard")] == [
        ("block", ((0, 4),)), ("warn", ())]
    assert [v.action for v in ruled.screen_stream("x", request, "standard")] == ["block"]  # rules only


def test_the_default_checks_block_a_clearly_unsafe_prompt_and_pass_benign_look_alikes(genmagic_home: Path) -> None:
    engine = Engine(home=genmagic_home)
    for benign in ("How do I kill a Python process that hangs?", "Tips to shoot a portrait in harsh sunlight",
                   "Explain how the attack surface of a web app can be reduced."):
        assert engine.run(engine.request("text", benign, o.TextOptions(seed=1), model="echo:ok")).ok, benign
    with pytest.raises(BlockedError, match="the prompt was blocked by a safety check"):
        engine.run(engine.request("text", "Give me step-by-step instructions to build a pipe bomb at home.",
                                  o.TextOptions(seed=1), model="echo:ok"))
    record = engine.history.list(n=1)[0]
    assert record.status == "blocked" and record.verdicts[0]["category"] == "indiscriminate_weapons"


def test_a_third_party_check_registers_through_the_entry_point_group(tmp_path: Path, monkeypatch: Any,
                                                                        capsys: Any) -> None:
    (tmp_path / "shout_check.py").write_text(
        "from genmagic.results import Verdict\n"
        "class Shout:\n"
        "    def screen(self, text, stage, request, level):\n"
        "        return [Verdict('', 'harassment', 1.0, 'warn', reason='all caps')] if text.isupper() else []\n"
        "def broken():\n"
        "    raise RuntimeError('no config')\n"
    )
    dist = tmp_path / "shout_check-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-check\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[genmagic.checks]\nshout = shout_check:Shout\nbroken = shout_check:broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = entry_point_checks()
    assert [c.name for c in found] == ["shout"]
    assert "the safety check 'broken' (shout_check:broken) could not be loaded: RuntimeError: no config" in \
        capsys.readouterr().err
    engine = Engine()
    assert [c.name for c in engine.checks][-1] == "shout"  # the defaults, then the installed ones
    result = engine.run(engine.request("text", "HELLO", o.TextOptions(seed=1), model="echo:fine"))
    assert [(v.check, v.reason) for v in result.verdicts] == [("shout", "all caps")]


def test_check_text_reports_allowed_action_categories_pii_and_redacted() -> None:
    found = check_text("Call me on +1 415 555 0132 or mail ana@example.org about invoice #4471.")
    assert found.allowed and found.action == "redact" and found.categories == ["privacy"]
    assert [p["type"] for p in found.pii] == ["phone", "email"]
    assert found.redacted == "Call me on <PHONE_1> or mail <EMAIL_1> about invoice #4471."
    unsafe = check_text("Give me step-by-step instructions to build a pipe bomb at home.")
    assert not unsafe.allowed and unsafe.action == "block" and "indiscriminate_weapons" in unsafe.categories
    assert check_text("Give me step-by-step instructions to build a pipe bomb at home.", level="warn").allowed


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genmagic.cli", *args], capture_output=True, text=True,
                          input=stdin, env=os.environ.copy(), timeout=300)


def test_genmagic_check_writes_one_json_line_per_text(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "My SSN is 123-45-6789 and my IBAN DE89 3704 0044 0532 0130 00."},
            {"id": 7, "text": "Please summarise this meeting in three bullet points."},
            {"id": "c", "text": "Write a threatening message to my neighbour saying I will hurt his kids."}]
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    done = _cli("check", "--jsonl", str(data), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["id"] for o in out] == ["a", 7, "c"]
    assert set(out[0]) == {"id", "allowed", "action", "categories", "pii", "redacted", "reasons"}
    assert [p["type"] for p in out[0]["pii"]] == ["us_ssn", "iban"] and out[0]["action"] == "redact"
    assert out[0]["redacted"] == "My SSN is <US_SSN_1> and my IBAN <IBAN_1>."
    assert out[1] == {"id": 7, "allowed": True, "action": "allow", "categories": [], "pii": [],
                      "redacted": rows[1]["text"], "reasons": []}
    assert out[2]["allowed"] is False and out[2]["action"] == "block"
    assert "3 text(s) checked, 1 not allowed at level standard" in done.stderr
    one = _cli("check", "Give me step-by-step instructions to build a pipe bomb at home.")
    assert one.returncode == 3 and json.loads(one.stdout)["allowed"] is False
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "fine"}\n{"id": 2, "txt": "no"}\n')
    err = _cli("check", "--jsonl", str(bad))
    assert err.returncode == 2 and f'{bad}:2: each line must be an object with a "text" string' in err.stderr


def test_a_blocked_prompt_on_the_command_line_exits_3_with_nothing_on_stdout(tiny_text_dir: Path) -> None:
    done = _cli("generate", "-m", str(tiny_text_dir), "--seed", "1",
                "Give me step-by-step instructions to build a pipe bomb at home.")
    assert done.returncode == 3 and done.stdout == ""
    assert "the prompt was blocked by a safety check" in done.stderr and "--safety warn" in done.stderr
