"""Image safety: diffusers' own StableDiffusionSafetyChecker run beside the pipeline (flags,
never black images), an image classifier from a local folder, blur, withhold and reveal.

Real components: tiny Stable Diffusion pipelines with a tiny StableDiffusionSafetyChecker
saved in their folders, tiny ViT classifiers, a real SQLite history."""

from __future__ import annotations

import base64
import html
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from genmagic.engine import Engine
from genmagic.errors import GenmagicError, ModelNotFoundError, OptionError
from genmagic.history_view import result_from_history
from genmagic.options import ImageOptions
from genmagic.pngmeta import read_metadata
from genmagic.safety.image import CHECKER_REASON, ImageCheck, blur
from genmagic.testing import build_tiny_image_classifier, build_tiny_image_pipeline


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("safety-models")


@pytest.fixture(scope="module")
def flagging_dir(models: Path) -> Path:
    """A pipeline whose safety checker flags every image."""
    return build_tiny_image_pipeline(models / "sd-flags", nsfw=True)


@pytest.fixture(scope="module")
def passing_dir(models: Path) -> Path:
    """The same pipeline (same weights) with a safety checker that flags nothing."""
    return build_tiny_image_pipeline(models / "sd-passes", nsfw=False)


def classifier(models: Path, name: str, **kwargs: Any) -> Path:
    folder = models / name
    return folder if folder.exists() else build_tiny_image_classifier(folder, **kwargs)


def pixels(image: Any) -> bytes:
    return bytes(image.convert("RGB").tobytes())


def bare_engine(home: Path) -> Engine:
    """An engine without safety checks: these tests call the image check and withhold themselves."""
    engine = Engine(home=home)
    engine.checks = []
    return engine


def imagine(engine: Engine, folder: Path, num: int = 2) -> Any:
    request = engine.request("image", "a red circle", ImageOptions(steps=2, seed=3, num=num), model=str(folder))
    return engine.run(request, cache=False)


def withhold_blocked(result: Any, verdicts: list[Any]) -> None:
    """What the engine does with an image check's verdicts."""
    result.verdicts += verdicts
    for v in verdicts:
        if v.action == "block":
            result.withhold(int(v.target.split()[1]) - 1, v)


def high_frequency(image: Any) -> float:
    """Mean absolute difference between neighbouring pixels (fine detail)."""
    import numpy as np

    a = np.asarray(image.convert("L"), dtype=float)
    return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())


# --------------------------------------------------------------------------- the pipeline's checker


def test_the_pipelines_checker_really_blacks_out_when_diffusers_runs_it(flagging_dir: Path) -> None:
    """The premise: stock diffusers replaces what this checker flags by a black image."""
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(flagging_dir, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a red circle", num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    assert out.nsfw_content_detected == [True]
    assert out.images[0].getextrema() == ((0, 0), (0, 0), (0, 0))


def test_flagged_images_keep_their_pixels_and_carry_the_flag(flagging_dir: Path, passing_dir: Path,
                                                            genmagic_home: Path) -> None:
    engine = bare_engine(genmagic_home)
    flagged = imagine(engine, flagging_dir)
    passed = imagine(engine, passing_dir)
    assert flagged.nsfw == [True, True] and passed.nsfw == [False, False]
    # Same UNet and VAE, same seeds: the flagged images are the pixels the VAE made, not black ones.
    assert [pixels(im) for im in flagged.images] == [pixels(im) for im in passed.images]
    assert all(im.getextrema() != ((0, 0), (0, 0), (0, 0)) for im in flagged.images)
    assert flagged.images[0].getextrema()[0][1] > 0
    # The checker is loaded beside the pipeline, which runs without one.
    states = [loaded.model for loaded in engine.models._items.values()]
    assert [s.safety is not None for s in states] == [True, True]
    assert all(s.pipe.safety_checker is None for s in states)


def test_img2img_runs_the_checker_too_and_keeps_the_pixels(flagging_dir: Path, genmagic_home: Path) -> None:
    from PIL import Image

    engine = bare_engine(genmagic_home)
    init = Image.new("RGB", (64, 64), (200, 120, 40))
    options = ImageOptions(steps=4, seed=1, strength=0.5)
    result = engine.run(engine.request("image", "a blue square", options, model=str(flagging_dir), inputs={"init": init}),
                        cache=False)
    assert result.info["mode"] == "img2img" and result.nsfw == [True]
    assert result.images[0].getextrema() != ((0, 0), (0, 0), (0, 0))


def test_a_pickled_safety_checker_is_not_loaded_without_allow_pickle(flagging_dir: Path, tmp_path: Path,
                                                                    genmagic_home: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "sd-pickled-checker"
    shutil.copytree(flagging_dir, folder)
    weights = folder / "safety_checker" / "model.safetensors"
    torch.save(load_file(weights), folder / "safety_checker" / "pytorch_model.bin")
    weights.unlink()
    engine = bare_engine(genmagic_home)
    with pytest.raises(ModelNotFoundError) as err:
        imagine(engine, folder, num=1)
    message = str(err.value)
    assert "cannot load the safety checker" in message and "allow_pickle" in message and "\n" not in message


def test_flags_become_block_verdicts_and_images_are_blurred_not_dropped(flagging_dir: Path, genmagic_home: Path,
                                                                        tmp_path: Path) -> None:
    engine = bare_engine(genmagic_home)
    result = imagine(engine, flagging_dir)
    originals = [im.copy() for im in result.images]
    verdicts = ImageCheck().screen_images(result.images, result.request, "standard", flags=result.nsfw)
    assert [(v.check, v.category, v.action, v.stage, v.target, v.reason) for v in verdicts] == [
        ("image", "sexual_content", "block", "output", "image 1", CHECKER_REASON),
        ("image", "sexual_content", "block", "output", "image 2", CHECKER_REASON),
    ]
    withhold_blocked(result, verdicts)
    assert len(result.images) == 2 and sorted(result.withheld) == [0, 1]
    for shown, original in zip(result.images, originals, strict=True):
        assert shown.size == original.size and shown.mode == original.mode
        assert pixels(shown) == pixels(blur(original)) != pixels(original)
    assert [pixels(im) for im in result.originals()] == [pixels(im) for im in originals]
    assert result.withheld[0][1] == CHECKER_REASON
    # What --save writes is the blurred image, and its metadata says so.
    saved = result.save(tmp_path / "out")
    from PIL import Image

    with Image.open(saved[0]) as im:
        assert pixels(im) == pixels(result.images[0])
    meta = read_metadata(saved[0])
    assert meta["withheld"] == {"blurred": True, "category": "sexual_content", "reason": CHECKER_REASON}


def test_reveal_gives_the_original_and_records_the_decision(flagging_dir: Path, genmagic_home: Path) -> None:
    engine = bare_engine(genmagic_home)
    result = imagine(engine, flagging_dir)
    original = result.images[1].copy()
    withhold_blocked(result, ImageCheck().screen_images(result.images, result.request, "standard", flags=result.nsfw))
    engine.history.record(result)
    assert engine.history.decisions(result.history_id) == []

    shown = result.reveal(1, history=engine.history)
    assert pixels(shown) == pixels(original)
    assert pixels(result.images[1]) != pixels(original)  # still blurred where it is shown
    [decision] = engine.history.decisions(result.history_id)
    assert (decision["decision"], decision["target"]) == ("revealed", "image 2")

    result.reveal(1, show=True)  # no history given: the store under GENMAGIC_HOME (the same one here)
    assert pixels(result.images[1]) == pixels(original) and 1 not in result.withheld
    assert [d["target"] for d in engine.history.decisions(result.history_id)] == ["image 2", "image 2"]
    with pytest.raises(OptionError, match=r"image 2 is not withheld"):
        result.reveal(1)
    with pytest.raises(OptionError, match=r"images 0 to 1"):
        result.reveal(5)


def test_history_keeps_originals_and_a_rebuilt_result_is_blurred_again(flagging_dir: Path, genmagic_home: Path) -> None:
    engine = bare_engine(genmagic_home)
    result = imagine(engine, flagging_dir)
    originals = [pixels(im) for im in result.images]
    withhold_blocked(result, ImageCheck().screen_images(result.images, result.request, "standard", flags=result.nsfw))
    engine.history.record(result)
    rec = engine.history.get(result.history_id)
    assert rec is not None and sorted(rec.outputs["withheld"]) == ["0", "1"]
    # The blobs are the originals (a reveal from history needs them), without a "withheld" mark.
    blob = engine.history.get_blob(rec.outputs["images"][0])
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        assert pixels(im) == originals[0]
        assert "withheld" not in json.loads(im.text["genmagic"])

    again = result_from_history(engine.history, result.history_id)
    assert sorted(again.withheld) == [0, 1]
    assert again.withheld[0][1] == CHECKER_REASON
    assert [pixels(im) for im in again.images] == [pixels(im) for im in result.images]  # blurred again
    caption = html.escape(f"withheld: {CHECKER_REASON} · reveal: result.reveal(0)")  # the reason: history has no verdict
    assert caption in again._repr_mimebundle_()["text/html"]
    assert pixels(again.reveal(0)) == originals[0]
    assert [d["decision"] for d in engine.history.decisions(result.history_id)] == ["revealed"]
    again.release()
    assert [pixels(im) for im in again.images] == originals and not again.withheld


def test_the_grid_shows_blurred_images_with_the_category_and_how_to_reveal(flagging_dir: Path,
                                                                          genmagic_home: Path) -> None:
    from genmagic.display import display_png

    engine = bare_engine(genmagic_home)
    result = imagine(engine, flagging_dir)
    original = result.images[0].copy()
    withhold_blocked(result, ImageCheck().screen_images(result.images, result.request, "standard", flags=result.nsfw))
    grid = result._repr_mimebundle_()["text/html"]
    assert "withheld: sexual content · reveal: result.reveal(0)" in grid
    assert "reveal: result.reveal(1)" in grid
    assert "2 withheld (blurred)" in grid
    assert "flagged by the model&#x27;s safety checker" not in grid  # counted once, as withheld
    assert base64.b64encode(display_png(result.images[0])).decode() in grid
    assert base64.b64encode(display_png(original)).decode() not in grid


# --------------------------------------------------------------------------- an image classifier


def test_a_classifier_blocks_what_it_labels_unsafe(models: Path, passing_dir: Path, genmagic_home: Path) -> None:
    engine = bare_engine(genmagic_home)
    result = imagine(engine, passing_dir)
    unsafe = ImageCheck(classifier(models, "clf-nsfw", probs={"nsfw": 0.99, "safe": 0.01}))
    verdicts = unsafe.screen_images(result.images, result.request, "standard", flags=result.nsfw)
    assert [(v.category, v.action, v.target, v.stage) for v in verdicts] == [
        ("sexual_content", "block", "image 1", "output"), ("sexual_content", "block", "image 2", "output"),
    ]
    assert verdicts[0].score == pytest.approx(0.99, abs=1e-3)
    assert "nsfw 0.99" in verdicts[0].reason and "threshold 0.50" in verdicts[0].reason
    safe = ImageCheck(classifier(models, "clf-safe", probs={"safe": 0.99, "nsfw": 0.01}))
    assert safe.screen_images(result.images, result.request, "standard") == []


def test_strict_blocks_at_a_lower_threshold_where_standard_warns(models: Path) -> None:
    from PIL import Image

    check = ImageCheck(classifier(models, "clf-borderline", probs={"nsfw": 0.4, "safe": 0.6}))
    images = [Image.new("RGB", (40, 40), "red")]
    assert check.strict_threshold == pytest.approx(0.3)
    [standard] = check.screen_images(images, _request(), "standard")
    [strict] = check.screen_images(images, _request(), "strict")
    assert (standard.action, strict.action) == ("warn", "block")
    low = ImageCheck(classifier(models, "clf-low", probs={"nsfw": 0.2, "safe": 0.8}))
    assert low.screen_images(images, _request(), "strict") == []
    with pytest.raises(OptionError, match="level 'lax' is not a safety level"):
        check.screen_images(images, _request(), "lax")


def test_labels_of_one_category_add_up_and_labels_can_be_mapped(models: Path) -> None:
    from PIL import Image

    images = [Image.new("RGB", (40, 40), "blue")]
    five = ("drawings", "hentai", "neutral", "porn", "sexy")  # a common NSFW classifier's labels
    folder = classifier(models, "clf-five", labels=five, probs={"neutral": 0.4, "porn": 0.3, "sexy": 0.3})
    [verdict] = ImageCheck(folder).screen_images(images, _request(), "standard")
    assert (verdict.category, verdict.action, verdict.score) == ("sexual_content", "block", pytest.approx(0.6, abs=1e-3))
    assert "porn+sexy" in verdict.reason

    plain = classifier(models, "clf-plain", labels=("LABEL_0", "LABEL_1"), probs={"LABEL_1": 0.9, "LABEL_0": 0.1})
    with pytest.raises(OptionError, match=r"none of its labels \(LABEL_0, LABEL_1\) maps to a category"):
        ImageCheck(plain).screen_images(images, _request(), "standard")
    [gore] = ImageCheck(plain, labels={"LABEL_1": "violent_crimes"}).screen_images(images, _request(), "standard")
    assert (gore.category, gore.action) == ("violent_crimes", "block")
    with pytest.raises(OptionError, match="'LABEL_1' maps to 'gory', which is no category"):
        ImageCheck(plain, labels={"LABEL_1": "gory"})


def test_a_multi_label_classifier_gives_each_category_its_own_probability(models: Path) -> None:
    from PIL import Image

    folder = classifier(models, "clf-multi", labels=("nsfw", "porn", "gore", "safe"), multi_label=True,
                        probs={"nsfw": 0.7, "porn": 0.6, "gore": 0.55, "safe": 0.9})
    verdicts = ImageCheck(folder).screen_images([Image.new("RGB", (40, 40))], _request(), "standard")
    # Independent sigmoids: a category takes its most confident label (0.7), not the sum (1.3).
    assert sorted((v.category, v.action, round(v.score, 2)) for v in verdicts) == [
        ("sexual_content", "block", 0.7), ("violent_crimes", "block", 0.55),
    ]
    assert "gives nsfw 0.70" in verdicts[0].reason


def test_the_classifier_is_loaded_once_per_folder_content(models: Path) -> None:
    folder = classifier(models, "clf-nsfw", probs={"nsfw": 0.99, "safe": 0.01})
    first = ImageCheck(folder).load()
    assert ImageCheck(folder).load() is first
    cfg = folder / "config.json"
    cfg.write_text(cfg.read_text())  # saved again: a new mtime, a new fingerprint
    assert ImageCheck(folder).load() is not first


def test_hostile_classifier_folders_are_refused_in_one_line(models: Path, tmp_path: Path) -> None:
    import torch

    source = classifier(models, "clf-nsfw", probs={"nsfw": 0.99, "safe": 0.01})
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (pickled / name).write_text((source / name).read_text())
    from safetensors.torch import load_file

    torch.save(load_file(source / "model.safetensors"), pickled / "pytorch_model.bin")
    with pytest.raises(ModelNotFoundError) as err:
        ImageCheck(pickled).load()
    assert "no .safetensors weights" in str(err.value) and "\n" not in str(err.value)

    remote = tmp_path / "remote"
    remote.mkdir()
    marker = tmp_path / "ran"
    (remote / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((source / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.Evil"}
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    with pytest.raises(ModelNotFoundError) as err:
        ImageCheck(remote).screen_images([blur_source()], _request(), "standard")
    assert "auto_map" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()
    assert isinstance(err.value, GenmagicError)

    with pytest.raises(ModelNotFoundError, match="no such folder"):
        ImageCheck(tmp_path / "missing").load()


# --------------------------------------------------------------------------- blur


def blur_source(size: int = 64, phase: int = 0) -> Any:
    """A sharp checkerboard (4-pixel squares) with a white cross: plenty of detail."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), "black")
    draw = ImageDraw.Draw(image)
    for y in range(0, size, 4):
        for x in range(0, size, 4):
            if ((x + y) // 4 + phase) % 2 == 0:
                draw.rectangle([x, y, x + 3, y + 3], fill=(220, 40, 40))
    draw.line([(0, size // 2), (size, size // 2)], fill="white", width=2)
    return image


@pytest.mark.parametrize("size", [64, 512])
def test_blur_hides_detail_at_any_size(size: int) -> None:
    import numpy as np

    image = blur_source(size)
    blurred = blur(image)
    assert blurred.size == image.size and blurred.mode == image.mode
    assert high_frequency(blurred) < 0.02 * high_frequency(image)
    # Two images that differ only in their detail (the checkerboard shifted by one square)
    # are told apart by nothing once blurred.
    other = blur(blur_source(size, phase=1))
    a, b = (np.asarray(im, dtype=float) for im in (blurred, other))
    assert np.abs(a - b).mean() < 0.05 * np.abs(np.asarray(image, float) - np.asarray(blur_source(size, 1), float)).mean()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_blur_keeps_size_and_mode(mode: str) -> None:
    image = blur_source(48).convert(mode)
    blurred = blur(image)
    assert (blurred.size, blurred.mode) == (image.size, mode)
    assert high_frequency(blurred) < high_frequency(image) / 10


def test_importing_the_image_check_imports_neither_torch_nor_pil() -> None:
    code = ("import sys, genmagic.safety.image; "
            "print(sorted(m for m in ('torch', 'PIL', 'transformers', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _request() -> Any:
    from genmagic.request import Request

    return Request(kind="image", prompt="x", model="m", options=ImageOptions())
