"""``-f json`` whose output does not parse is a failed run everywhere: on the result bound by
``--out``, in history, in the CLI's exit status and in the Python API; the raw text is kept."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run
from IPython.core.error import UsageError

import genmagic
from genmagic import cli


def last_record() -> Any:
    return genmagic._magics.engine.history.list(1)[0]


def test_the_magic_binds_a_failed_result_and_history_says_error(ip: Any) -> None:
    with pytest.raises(UsageError, match=r"not valid JSON.*\(history #\d+\)"):
        run(ip, '%%generate -m echo: -f json --out t_bad\n{"a": 1,, }')
    bad = ip.user_ns["t_bad"]
    assert bad.status == "error" and not bad.ok and bad.error.startswith("the output is not valid JSON")
    assert bad.text == '{"a": 1,, }'
    record = last_record()
    assert (record.id, record.status, record.error) == (bad.history_id, "error", bad.error)
    assert record.outputs["texts"] == ['{"a": 1,, }']


def test_valid_json_stays_ok(ip: Any) -> None:
    assert run(ip, '%%generate -m echo: -f json\n{"a": [1, 2]}') == {"a": [1, 2]}
    assert last_record().status == "ok"


def test_a_cached_answer_that_does_not_parse_is_a_failed_run_too(ip: Any) -> None:
    first = run(ip, "%%generate -m echo: --seed 1 -f text --out t_text\nnot json")
    assert first.ok
    with pytest.raises(UsageError, match="not valid JSON"):
        run(ip, "%%generate -m echo: --seed 1 -f json --out t_json\nnot json")
    cached = ip.user_ns["t_json"]
    assert cached.cached and cached.status == "error" and cached.text == "not json"
    record = last_record()
    assert (record.cached, record.status) == (True, "error")


def test_every_sample_must_parse() -> None:
    result = genmagic.generate("[1]x", model="echo:", format="json", num=2, stop=["x"], seed=1)
    assert result.ok  # the stop text cuts both samples to "[1]"
    bad = genmagic.generate("[1, ", model="echo:", format="json", num=2, seed=1)
    assert bad.status == "error" and bad.error.startswith("sample 1: the output is not valid JSON")


def test_the_python_api_returns_the_failed_result() -> None:
    result = genmagic.generate("no json here", model="echo:", format="json", seed=1)
    assert result.status == "error" and "not valid JSON" in (result.error or "")
    assert result.text == "no json here"


def test_the_cli_exits_2_and_history_says_error(capsys: pytest.CaptureFixture[str]) -> None:
    from genmagic.engine import default_engine

    assert cli.main(["generate", "-m", "echo:", "-f", "json", "--seed", "1", "--no-stream", "no json"]) == 2
    out, err = capsys.readouterr()
    assert out.strip() == "no json" and "not valid JSON" in err and err.count("\n") == 1
    record = default_engine().history.list(1)[0]
    assert (record.status, record.outputs["texts"]) == ("error", ["no json"])
