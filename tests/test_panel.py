"""The control panel driven from code: set values, click the buttons, read the outputs and history."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from IPython.core.error import UsageError
from slow_backend import FailingBackend, SlowEchoBackend

import genmagic
from genmagic import registry
from genmagic.panel import Panel
from genmagic.results import Verdict


@pytest.fixture(autouse=True)
def slow_backends() -> Any:
    registry.register_backend("slow", SlowEchoBackend)
    registry.register_backend("fail", FailingBackend)
    SlowEchoBackend.most = SlowEchoBackend.active = 0
    yield
    genmagic._magics.engine.models.unload()  # while their backends are still there to unload them
    registry.unregister_backend("slow")
    registry.unregister_backend("fail")


def engine() -> Any:
    return genmagic._magics.engine


def rows() -> list[Any]:
    return engine().history.list(n=50)


def html(panel: Panel) -> str:
    return "".join(o.get("data", {}).get("text/html", "") + o.get("text", "") for o in panel.output.outputs)


def until(condition: Any) -> None:
    """Wait for something a worker thread does (no time limit is asserted)."""
    while not condition():
        time.sleep(0.01)


def test_generate_runs_through_the_run_layer_and_records_history(ip: Any) -> None:
    panel = Panel("text", "Once upon a time", model="tiny", options={"max_new_tokens": 6, "seed": 1})
    assert panel.controls["max_new_tokens"].get() == 6 and panel.seed.value == "1" and panel.seed_mode.value == "lock"
    panel.generate_button.click()
    first = panel.wait()
    assert first.status == "ok" and panel.history_id == rows()[-1].id
    assert first.request.options.seed == 1 and first.request.model == "tiny"
    assert first.text and first.text[:5] in html(panel)  # the view became the result, in the panel
    assert panel.status_text.startswith("done · seed 1") and not panel.generate_button.disabled

    panel.controls["temperature"].widget.value = 1.5
    panel.prompt.value = "The fox"
    panel.generate_button.click()
    second = panel.wait()
    assert second.history_id == first.history_id + 1 and len(rows()) == 2
    assert second.request.options.temperature == 1.5 and second.request.prompt == "The fox"
    assert not second.cached
    panel.generate_button.click()  # the same values, seeded: the cache answers, as for the magic
    assert panel.wait().cached and "from the cache" in panel.status_text


def test_defaults_are_the_models_and_follow_a_model_switch(ip: Any, tiny_text_dir: Path, tmp_path: Path) -> None:
    tuned = tmp_path / "tuned"
    shutil.copytree(tiny_text_dir, tuned)
    config = json.loads((tuned / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=0.3, top_k=7, max_new_tokens=4)
    (tuned / "generation_config.json").write_text(json.dumps(config))
    ip.run_line_magic("genmagic", f"register tuned {tuned}")
    (Path.cwd() / "genmagic.toml").write_text('[models.house]\nsource = "echo:hi"\nparams = { top_k = 3 }\n')

    panel = Panel("text", "Hi", model="tiny", options={"max_new_tokens": 5})
    assert panel.controls["temperature"].get() == 0.8 and panel.controls["top_k"].get() == 50
    assert {"tiny", "tuned", "house"} <= set(panel.model.options)
    panel.controls["top_p"].widget.value = 0.5  # the user's: kept across models
    panel.model.value = "tuned"
    values = {name: panel.controls[name].get() for name in ("temperature", "top_k", "max_new_tokens", "top_p")}
    assert values == {"temperature": 0.3, "top_k": 7, "max_new_tokens": 5, "top_p": 0.5}
    panel.model.value = "house"
    assert panel.controls["top_k"].get() == 3 and panel.controls["temperature"].get() == 0.8
    panel.model.value = "tuned"
    panel.generate_button.click()
    options = panel.wait().request.options
    assert (options.temperature, options.top_k, options.max_new_tokens, options.top_p) == (0.3, 7, 5, 0.5)
    magic = run(ip, f"%%generate -m tuned --max-new-tokens 5 --top-p 0.5 --seed {options.seed}\nHi")
    assert magic.request.key() == panel.result.request.key()  # the magic with the same flags: the same request


@pytest.mark.parametrize("locked", [True, False])
def test_copy_as_cell_reproduces_the_panel_run(ip: Any, locked: bool) -> None:
    ip.user_ns["t_unused"] = 1
    panel = Panel("text", "A {curly} fox", model="tiny", options={"max_new_tokens": 7, "stop": ("\n\n",)},
                  controls=genmagic.options.TextControls(out="t_story", format="text"), namespace=ip.user_ns)
    panel.controls["repetition_penalty"].widget.value = 1.3
    if locked:
        panel.seed.value = "42"  # typing a seed locks it
        assert panel.seed_mode.value == "lock"
    panel.generate_button.click()
    result = panel.wait()
    assert ip.user_ns["t_story"] is result  # --out is bound to the panel's latest result
    assert panel.seed.value == str(result.request.seed)  # a random seed is shown after the run
    cell = panel.copy_cell()
    assert cell == panel.cell == panel.cell_box.value == panel.as_cell()
    assert "--out" not in cell and "--widgets" not in cell and "--no-interpolate" in cell and "-f text" in cell
    assert ip.rl_next_input == cell  # offered as the next cell too
    again = run(ip, cell)
    assert again.request.key() == result.request.key()
    assert again.cached and again.texts == result.texts


def test_bad_values_show_a_one_line_error_and_run_nothing(img_ip: Any) -> None:
    panel = Panel("image", "a red circle", model="tiny-img", options={"steps": 2})
    panel.controls["width"].widget.value = "wide"
    panel.generate_button.click()
    assert not panel.running and panel.status_text.startswith("--width must be a whole number, got 'wide'")
    panel.controls["width"].widget.value = "4"
    panel.generate_button.click()
    assert panel.status_text.startswith("--width must be")  # the options' own bounds check
    panel.controls["width"].widget.value = ""
    panel.seed.value = "x1"
    panel.generate_button.click()
    assert panel.status_text.startswith("--seed must be a whole number, got 'x1'")
    panel.seed.value, panel.prompt.value = "1", "  "
    panel.copy_button.click()
    assert panel.status_text.startswith("the prompt is empty") and panel.cell == ""
    assert rows() == [] and "\n" not in panel.status_text


def test_image_panel_runs_and_shows_the_grid(img_ip: Any) -> None:
    panel = Panel("image", "a red circle", model="tiny-img",
                  options={"steps": 2, "seed": 5, "width": 32, "height": 32, "negative": "blue"})
    assert panel.controls["negative"].get() == "blue"
    panel.generate_button.click()
    result = panel.wait()
    assert result.status == "ok" and len(result.images) == 1 and result.request.options.negative == "blue"
    assert "<img" in html(panel) and panel.history_id == rows()[-1].id
    cell = panel.as_cell()
    assert cell.startswith("%%imagine -m tiny-img") and "--negative blue" in cell and "--seed 5" in cell
    assert run(img_ip, cell).request.key() == result.request.key()


def test_stop_keeps_the_partial_text_like_an_interrupt(ip: Any) -> None:
    panel = Panel("text", "go", model="slow:" + "abcdefghij" * 100, options={"max_new_tokens": 1000})
    panel.generate_button.click()
    assert panel.generate_button.disabled and not panel.stop_button.disabled
    until(lambda: panel._sink is not None and len(panel._sink.texts[0]) >= 3)
    panel.stop_button.click()
    result = panel.wait()
    assert result.status == "interrupted" and 3 <= len(result.text) < 1000
    assert rows()[-1].status == "interrupted" and rows()[-1].outputs["texts"] == [result.text]
    assert panel.status_text.startswith("stopped: the partial output is kept")
    assert result.text in html(panel)
    assert not panel.generate_button.disabled and panel.stop_button.disabled


def test_runs_take_turns_and_a_panel_runs_one_at_a_time(ip: Any) -> None:
    one = Panel("text", "a", model="slow:" + "x" * 30, options={"max_new_tokens": 30, "seed": 1})
    two = Panel("text", "b", model="slow:" + "y" * 30, options={"max_new_tokens": 30, "seed": 1})
    one.generate_button.click()
    one.generate()  # a second Generate while it runs is refused, not queued
    assert "a run is under way" in one.status_text
    two.generate_button.click()
    assert one.wait().text == "x" * 30 and two.wait().text == "y" * 30
    assert SlowEchoBackend.most == 1  # the engine's lock: never two runs inside the backend at once
    assert len(rows()) == 2
    with engine().lock:  # a cell's run holds it: the panel says it waits
        one.generate_button.click()
        until(lambda: one.status_text == "waiting for another run to end…")
    assert one.wait().status == "ok" and one.status_text.startswith("done")


def test_errors_in_the_thread_show_in_the_panel(ip: Any) -> None:
    panel = Panel("text", "go", model="fail:x", options={"seed": 1})
    panel.generate_button.click()
    assert panel.wait() is None
    assert isinstance(panel.error, RuntimeError)
    assert panel.status_text.startswith("error: RuntimeError: the device fell over")
    assert "Traceback" in html(panel) and rows()[-1].status == "error"
    assert not panel.generate_button.disabled


class BlockWord:
    name = "block:word"

    def screen(self, text: str, stage: str, request: Any, level: str) -> list[Verdict]:
        if stage == "prompt" and "forbidden" in text:
            return [Verdict(self.name, "hate", 1.0, "block", (), stage, reason="a test block")]
        return []


def test_a_safety_block_is_a_one_line_status(ip: Any) -> None:
    engine().checks = [BlockWord()]
    panel = Panel("text", "something forbidden", model="echo:", options={"seed": 1})
    panel.generate_button.click()
    assert panel.wait() is None
    assert panel.status_text.startswith("the prompt was blocked by a safety check (a test block)")
    assert "Traceback" not in html(panel) and rows()[-1].status == "blocked"


class ReviewOutputs:
    name = "review:all"

    def screen(self, text: str, stage: str, request: Any, level: str) -> list[Verdict]:
        return [Verdict(self.name, "hate", 0.6, "review", (), stage, reason="a test review")] if stage == "output" else []


def test_a_run_held_for_review_shows_the_review_panel(ip: Any) -> None:
    engine().checks = [ReviewOutputs()]
    panel = Panel("text", "hello", model="echo:", options={"seed": 1})
    panel.generate_button.click()
    result = panel.wait()
    assert result.status == "review" and result.text == ""  # withheld until a person approves
    assert panel.status_text.startswith("1 output(s) held for review")
    (view, review) = panel.output.outputs
    assert "application/vnd.jupyter.widget-view+json" in review["data"]
    assert "hello" not in json.dumps(view["data"])  # the withheld text is behind the review panel only


def test_widgets_flag_and_panel_command(img_ip: Any) -> None:
    panel = run(img_ip, "%%generate --widgets -m tiny --temperature 0.5 --seed 3 --max-new-tokens 5 --no-cache "
                        "--out t_first\nHello")
    assert isinstance(panel, Panel)
    assert panel.touched == {"temperature", "seed", "max_new_tokens"}
    assert panel.controls["temperature"].get() == 0.5 and panel.controls["cache"].get() is False
    result = panel.wait()  # the cell runs once, in the panel's thread
    assert img_ip.user_ns["t_first"] is result and result.request.options.temperature == 0.5
    with pytest.raises(UsageError, match="--widgets does not take --chat"):
        run(img_ip, "%%generate --widgets --chat\nHi")
    image = img_ip.run_line_magic("genmagic", "panel image")
    assert isinstance(image, Panel) and image.kind == "image" and image.prompt.value == "" and not image.running
    assert "steps" in image.controls and "guidance" in image.controls and "negative" in image.controls


def test_stop_ends_an_image_within_a_step(img_ip: Any) -> None:
    panel = Panel("image", "a red circle", model="tiny-img", options={"steps": 500, "seed": 2, "width": 32, "height": 32})
    panel.generate_button.click()
    until(lambda: panel._sink is not None and panel._sink.done >= 2)
    panel.stop_button.click()
    result = panel.wait()
    assert result.status == "interrupted" and rows()[-1].status == "interrupted"
    assert panel._sink.done < 500 and panel.status_text.startswith("stopped: the partial output is kept")


def test_choices_from_a_callable_make_a_dropdown(img_ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seam presets use: an option whose choices come from a callable of (kind, registry)."""
    from genmagic import panel_controls

    seen: list[Any] = []
    monkeypatch.setitem(panel_controls.CHOICES_FROM, "scheduler",
                        lambda kind, reg: seen.append((kind, reg)) or ["EulerDiscreteScheduler", "DDIMScheduler"])
    panel = Panel("image", "a red circle", model="tiny-img", options={"steps": 2, "seed": 1, "width": 32, "height": 32})
    dropdown = panel.controls["scheduler"].widget
    assert seen == [("image", engine().registry)]
    assert list(dropdown.options) == [("(none)", None), ("EulerDiscreteScheduler", "EulerDiscreteScheduler"),
                                      ("DDIMScheduler", "DDIMScheduler")]
    dropdown.value = "DDIMScheduler"
    panel.generate_button.click()
    assert panel.wait().request.options.scheduler == "DDIMScheduler"
    assert "--scheduler DDIMScheduler" in panel.as_cell()


def test_lock_without_a_seed_draws_one_and_the_panel_displays_as_a_widget(ip: Any) -> None:
    panel = Panel("text", "Hi", model="echo:")
    assert panel.seed.value == "" and panel.seed_mode.value == "random"
    panel.seed_mode.value = "lock"
    assert panel.seed.value.isdigit()
    bundle = panel._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id


def test_the_tone_picker_lists_the_presets_and_a_run_applies_one(ip: Any) -> None:
    from genmagic.presets import get, names

    panel = Panel("text", "Tell me about owls", model="echo:", options={"seed": 1})
    dropdown = panel.controls["tone"].widget
    assert [value for _, value in dropdown.options] == [None, *names("text")] and "formal" in names("text")
    dropdown.value = "formal"
    panel.generate_button.click()
    result = panel.wait()
    preset = get("text", "formal")
    assert result.info["preset"] == "tone formal"
    assert result.request.prompt == preset.template.replace("{prompt}", "Tell me about owls")
    assert "--tone formal" in panel.as_cell()
