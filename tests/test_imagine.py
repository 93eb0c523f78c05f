"""%%imagine end to end on a tiny Stable Diffusion pipeline built in code, in a real IPython shell."""

from __future__ import annotations

import _thread
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from image_fixtures import write_lora
from IPython.core.error import UsageError

import genmagic
from genmagic.results import ImageResult

FAST = "-m tiny-img --steps 3"


def engine() -> Any:
    return genmagic._magics.engine


def pixels(image: Any) -> bytes:
    return bytes(image.convert("RGB").tobytes())


# --------------------------------------------------------------------------- basics


def test_magic_makes_a_captioned_grid_and_records_it(img_ip: Any) -> None:
    result = run(img_ip, f'%%imagine {FAST} --guidance 6 --seed 7 -n 2 --negative "blurry"\na red circle on a blue background')
    assert isinstance(result, ImageResult) and result.ok
    assert [im.size for im in result.images] == [(64, 64), (64, 64)]
    assert result.seeds == [7, 8]
    options: Any = result.request.options
    assert options.negative == "blurry" and options.guidance == 6
    assert result.info["device"] == "cpu" and result.info["dtype"] == "float32"
    assert {"generate", "per_image", "steps_per_s", "load", "total"} <= set(result.timings)
    assert result.nsfw == [False, False]
    bundle = result._repr_mimebundle_()
    html = bundle["text/html"]
    assert html.count("data:image/png;base64,") == 2 and "seed 7" in html and "seed 8" in html
    assert "tiny-img" in html and f"history #{result.history_id}" in html
    record = engine().history.get(result.history_id)
    assert record.status == "ok" and record.outputs["seeds"] == [7, 8]
    blobs = [engine().history.blob_path(name) for name in record.outputs["images"]]
    assert all(path.is_file() and path.suffix == ".png" for path in blobs)


def test_line_form_and_out(img_ip: Any) -> None:
    run(img_ip, f"%imagine {FAST} --seed 1 --out i_pic a green square")
    pic = img_ip.user_ns["i_pic"]
    assert pic.request.prompt == "a green square" and len(pic.images) == 1


def test_default_model_traitlet(img_ip: Any) -> None:
    genmagic._magics.default_image_model = "tiny-img"
    result = run(img_ip, "%%imagine --steps 2 --seed 1\na star")
    assert result.request.model == "tiny-img"


def test_random_seed_is_recorded_and_reproduces(img_ip: Any) -> None:
    first = run(img_ip, f"%%imagine {FAST}\na blue star")
    assert isinstance(first.request.seed, int) and not first.cached
    again = run(img_ip, f"%%imagine {FAST} --seed {first.request.seed}\na blue star")
    assert pixels(again.images[0]) == pixels(first.images[0])


# --------------------------------------------------------------------------- determinism and cache


def test_same_request_same_pixels_served_from_cache(img_ip: Any) -> None:
    a = run(img_ip, f"%%imagine {FAST} --seed 11 -n 2 --no-cache\na red circle")
    b = run(img_ip, f"%%imagine {FAST} --seed 11 -n 2 --no-cache\na red circle")
    assert not (a.cached or b.cached)
    assert [pixels(i) for i in a.images] == [pixels(i) for i in b.images]
    c = run(img_ip, f"%%imagine {FAST} --seed 11 -n 2\na red circle")
    assert c.cached and [pixels(i) for i in c.images] == [pixels(i) for i in a.images]
    assert c.seeds == [11, 12]
    other = run(img_ip, f"%%imagine {FAST} --seed 13 -n 1\na red circle")
    assert pixels(other.images[0]) != pixels(a.images[0])


def test_each_image_reproduces_alone(img_ip: Any) -> None:
    batch = run(img_ip, f"%%imagine {FAST} --seed 20 -n 3\na yellow triangle")
    alone = run(img_ip, f"%%imagine {FAST} --seed 22 -n 1\na yellow triangle")
    assert pixels(alone.images[0]) == pixels(batch.images[2])


def test_model_change_invalidates_the_cache(img_ip: Any, tiny_image_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(tiny_image_dir, tmp_path / "copy"))
    run(img_ip, f"%genmagic register i-copy {copy}")
    first = run(img_ip, "%%imagine -m i-copy --steps 2 --seed 1\na circle")
    config = copy / "scheduler" / "scheduler_config.json"
    data = json.loads(config.read_text())
    data["beta_end"] = 0.02
    config.write_text(json.dumps(data))
    second = run(img_ip, "%%imagine -m i-copy --steps 2 --seed 1\na circle")
    assert second.request.fingerprint != first.request.fingerprint and not second.cached


# --------------------------------------------------------------------------- options


def test_scheduler_swap_and_restore(img_ip: Any) -> None:
    euler = run(img_ip, f"%%imagine {FAST} --seed 3 --scheduler EulerDiscreteScheduler\na circle")
    assert euler.info["scheduler"] == "EulerDiscreteScheduler"
    short = run(img_ip, f"%%imagine {FAST} --seed 3 --scheduler 'Euler a'\na circle")
    assert short.info["scheduler"] == "EulerAncestralDiscreteScheduler"
    plain = run(img_ip, f"%%imagine {FAST} --seed 3\na circle")
    assert plain.info["scheduler"] == "DDIMScheduler"
    assert pixels(plain.images[0]) != pixels(euler.images[0])


def test_size_is_validated_against_the_model(img_ip: Any) -> None:
    wide = run(img_ip, f"%%imagine {FAST} --seed 1 --width 96 --height 32\na circle")
    assert wide.images[0].size == (96, 32)
    with pytest.raises(UsageError, match=r"--width 60 does not fit tiny-img: sizes must be multiples of 8; e.g. --width 64"):
        run(img_ip, f"%%imagine {FAST} --width 60\na circle")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--steps 0", r"argument --steps: must be between 1 and 1000, got 0; e.g. --steps 30"),
        ("--guidance 100", r"argument --guidance: must be between 0 and 50, got 100"),
        ("--scheduler Nope", r"--scheduler Nope does not fit this model; compatible: .*EulerDiscreteScheduler"),
        ("--init i_list", r"--init i_list: the variable is a list, not an image"),
        ("--init no/such/file.png", r"--init no/such/file.png: it is neither a variable in the notebook nor a file"),
        ("--init i_bad_file", r"--init .*bad.png: cannot read it as an image"),
        ("--mask i_img", r"--mask needs --init"),
        ("--init i_img --mask i_small", r"--mask is 32x32 but --init is 64x64"),
        ("--dtype float8", r"argument --dtype: invalid choice"),
        ("--steps 1000", r"--steps 1000 is more than tiny-img's scheduler supports; use --steps 500 or fewer"),
        ("--lora missing.safetensors", r"--lora missing.safetensors: no such file or folder"),
        ("-m nope-model", r"unknown model 'nope-model'"),
        ("-m tiny", r"model 'tiny' is a text model, not an image model"),
    ],
)
def test_bad_input_is_one_line_usage_error(img_ip: Any, tmp_path: Path, line: str, message: str) -> None:
    from PIL import Image

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    img_ip.user_ns.update(
        i_list=[1, 2], i_bad_file=str(bad), i_img=Image.new("RGB", (64, 64), "red"), i_small=Image.new("L", (32, 32))
    )
    with pytest.raises(UsageError) as info:
        run(img_ip, f"%%imagine {FAST} --seed 1 {line}\na circle")
    text = str(info.value)
    assert "\n" not in text
    import re

    assert re.search(message, text), text


def test_too_many_steps_are_refused_before_the_model_loads(img_ip: Any, tiny_image_dir: Path) -> None:
    engine().models.unload()
    with pytest.raises(UsageError, match=r"^--steps 1000 is more than tiny-img's scheduler supports; use --steps 500"):
        run(img_ip, "%%imagine -m tiny-img --seed 1 --steps 1000\na circle")
    assert not [item for item in engine().models.loaded() if item.spec.source == str(tiny_image_dir)]


def test_not_a_text_to_image_pipeline(img_ip: Any, tiny_image_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(tiny_image_dir, tmp_path / "img2img"))
    index = json.loads((copy / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionImg2ImgPipeline"
    (copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UsageError, match="is a StableDiffusionImg2ImgPipeline, not a text-to-image pipeline"):
        run(img_ip, f"%%imagine -m {copy} --steps 2\na circle")


# --------------------------------------------------------------------------- img2img, inpainting, LoRA


def test_img2img_from_variable_array_and_path_shares_weights(img_ip: Any, tmp_path: Path, tiny_image_dir: Path) -> None:
    base = run(img_ip, f"%%imagine {FAST} --seed 5 --out i_base\na red circle")
    img = run(img_ip, "%%imagine -m tiny-img --steps 4 --strength 0.5 --seed 1 --init i_base\na blue circle")
    assert img.ok and img.info["mode"] == "img2img" and img.images[0].size == (64, 64)
    assert img.sources == {"init": "i_base"}
    img_ip.user_ns["i_array"] = np.asarray(base.images[0])
    arr = run(img_ip, "%%imagine -m tiny-img --steps 4 --strength 0.5 --seed 1 --init i_array\na blue circle")
    assert pixels(arr.images[0]) == pixels(img.images[0])
    assert arr.cached  # same init pixels → same request key
    path = tmp_path / "init.png"
    base.images[0].save(path)
    from_file = run(img_ip, f"%%imagine -m tiny-img --steps 4 --strength 0.5 --seed 1 --init {path} --no-cache\na blue circle")
    assert pixels(from_file.images[0]) == pixels(img.images[0])
    stronger = run(img_ip, "%%imagine -m tiny-img --steps 4 --strength 0.9 --seed 1 --init i_base\na blue circle")
    assert stronger.request.key() != img.request.key()
    # This module's pipeline: other modules that import image_fixtures build (and load) their own copy.
    state = next(item.model for item in engine().models.loaded() if item.spec.source == str(tiny_image_dir))
    assert state.derived["img2img"].unet is state.pipe.unet


def test_img2img_init_of_an_odd_size_is_rounded_to_the_models_multiple(img_ip: Any) -> None:
    from PIL import Image

    img_ip.user_ns["i_odd"] = Image.new("RGB", (100, 37), (200, 30, 30))
    result = run(img_ip, "%%imagine -m tiny-img --steps 4 --strength 0.5 --seed 1 --init i_odd\na blue circle")
    assert result.ok and result.images[0].size == (96, 40)  # multiples of 8 (100 -> 96, 37 -> 40)


def test_inpainting_with_a_mask(img_ip: Any) -> None:
    from PIL import Image, ImageDraw

    run(img_ip, f"%%imagine {FAST} --seed 5 --out i_base\na red circle")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    img_ip.user_ns["i_mask"] = mask
    result = run(img_ip, "%%imagine -m tiny-img --steps 4 --seed 2 --init i_base --mask i_mask\na star")
    assert result.ok and result.info["mode"] == "inpaint" and result.images[0].size == (64, 64)


def test_lora_applies_switches_off_and_tracks_file_content(img_ip: Any, tiny_lora: Path, tiny_image_dir: Path,
                                                           tmp_path: Path) -> None:
    plain = run(img_ip, f"%%imagine {FAST} --seed 4 --no-cache\na circle")
    with_lora = run(img_ip, f"%%imagine {FAST} --seed 4 --lora {tiny_lora}\na circle")
    assert pixels(with_lora.images[0]) != pixels(plain.images[0])
    zero = run(img_ip, f"%%imagine {FAST} --seed 4 --lora {tiny_lora}:0\na circle")
    assert np.abs(np.asarray(zero.images[0], dtype=int) - np.asarray(plain.images[0], dtype=int)).max() <= 1
    after = run(img_ip, f"%%imagine {FAST} --seed 4 --no-cache\na circle")
    assert pixels(after.images[0]) == pixels(plain.images[0])
    # The same path with new content is a new request (no stale cache hit).
    moving = write_lora(tmp_path / "moving", tiny_image_dir, seed=1)
    first = run(img_ip, f"%%imagine {FAST} --seed 4 --lora {moving}\na circle")
    write_lora(moving, tiny_image_dir, seed=2)
    second = run(img_ip, f"%%imagine {FAST} --seed 4 --lora {moving}\na circle")
    assert not second.cached and second.request.key() != first.request.key()
    assert pixels(second.images[0]) != pixels(first.images[0])


# --------------------------------------------------------------------------- metadata, --save, --from


def test_save_writes_pngs_with_a1111_and_genmagic_metadata(img_ip: Any, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "pics"
    result = run(img_ip, f'%%imagine {FAST} --seed 7 -n 2 --guidance 6 --negative "blurry" --save {out}\na red circle')
    files = sorted(out.iterdir())
    assert len(files) == 2 and all(f.suffix == ".png" for f in files)
    assert [str(f) for f in files] == sorted(result.info["saved"])
    with Image.open(files[0]) as im:
        params = getattr(im, "text")["parameters"]  # noqa: B009 - PngImageFile only
    lines = params.split("\n")
    assert lines[0] == "a red circle" and lines[1] == "Negative prompt: blurry"
    assert lines[2].startswith("Steps: 3, Sampler: DDIM, CFG scale: 6, Seed: ")
    assert "Size: 64x64" in lines[2] and "Model: tiny-img" in lines[2]
    meta = genmagic.read_metadata(files[0])
    assert meta["request"] == result.request.to_dict()
    assert meta["seed"] in (7, 8) and meta["size"] == [64, 64] and meta["parameters"] == params


def test_from_png_reproduces_the_same_pixels(img_ip: Any, tmp_path: Path) -> None:
    out = tmp_path / "pics"
    result = run(img_ip, f"%%imagine {FAST} --seed 30 -n 2 --scheduler EulerDiscreteScheduler --save {out}\na red circle")
    second = next(p for p in out.iterdir() if "-31-" in p.name)
    again = run(img_ip, f"%imagine --from {second} --no-cache")
    assert again.request.prompt == "a red circle" and again.seeds == [31]
    assert again.request.options.scheduler == "EulerDiscreteScheduler"
    assert pixels(again.images[0]) == pixels(result.images[1])
    changed = run(img_ip, f"%imagine --from {second} --steps 2 -n 2")
    changed_options: Any = changed.request.options
    assert changed_options.steps == 2 and changed.seeds == [31, 32]
    genmagic._magics.default_image_model = "tiny"  # --from uses the PNG's model, not the default
    assert run(img_ip, f"%imagine --from {second}").request.model == "tiny-img"


def test_from_png_with_init_reloads_it(img_ip: Any, tmp_path: Path) -> None:
    run(img_ip, f"%%imagine {FAST} --seed 5 --out i_base\na red circle")
    first = run(img_ip, f"%%imagine -m tiny-img --steps 4 --seed 1 --init i_base --save {tmp_path}\na star")
    (saved,) = first.info["saved"]
    again = run(img_ip, f"%imagine --from {saved} --no-cache")
    assert pixels(again.images[0]) == pixels(first.images[0])
    img_ip.user_ns["i_base"] = run(img_ip, f"%%imagine {FAST} --seed 6\na red circle")
    with pytest.raises(UsageError, match="--init i_base has changed since this image was made"):
        run(img_ip, f"%imagine --from {saved}")


def test_read_metadata_of_an_a1111_png(tmp_path: Path) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a castle, night\nNegative prompt: fog\nSteps: 25, Sampler: Euler a, CFG scale: 6.5, "
                                "Seed: 1234, Size: 512x768, Model hash: abc, Model: sd15")
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    meta = genmagic.read_metadata(path)
    assert meta["request"]["prompt"] == "a castle, night"
    assert meta["request"]["options"] == {
        "negative": "fog", "steps": 25, "guidance": 6.5, "seed": 1234, "width": 512, "height": 768,
        "scheduler": "EulerAncestralDiscreteScheduler",
    }
    with pytest.raises(genmagic.OptionError, match="carries no generation parameters"):
        Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
        genmagic.read_metadata(tmp_path / "plain.png")


def test_nothing_half_written_after_an_error(img_ip: Any, tmp_path: Path) -> None:
    out = tmp_path / "pics"
    with pytest.raises(UsageError):
        run(img_ip, f"%%imagine {FAST} --width 60 --save {out}\na circle")
    assert not out.exists() or not list(out.iterdir())


# --------------------------------------------------------------------------- progress, previews, interrupt


def test_progress_and_preview_events(img_ip: Any) -> None:
    from genmagic.image_run import build_request
    from genmagic.options import ImageOptions
    from genmagic.request import ListSink

    request = build_request(engine(), "a circle", ImageOptions(steps=6, seed=1, num=2), "tiny-img")
    sink = ListSink()
    engine().run(request, sink, cache=False)
    progress = [(e.data, e.index) for e in sink.events if e.type == "progress"]
    assert progress == [((s, 6), i) for i in range(2) for s in range(1, 7)]
    previews = [e for e in sink.events if e.type == "preview"]
    assert [p.index for p in previews] == [0, 0, 1, 1]
    assert previews[0].data.size == (16, 16) and previews[0].data.mode == "RGB"


def test_cell_sink_shows_bar_and_previews_in_place() -> None:
    from PIL import Image

    from genmagic.request import Event
    from genmagic.sinks import CellImageSink

    sink = CellImageSink(num=2, preview_every=2)
    sink.emit(Event("progress", (3, 10), 1))
    sink.emit(Event("preview", Image.new("RGB", (16, 16), "red"), 1))
    bundle = sink.bundle()
    assert '<progress value="13" max="20"' in bundle["text/html"]
    assert "image 2/2 · step 3/10" in bundle["text/plain"]
    assert bundle["text/html"].count("data:image/png") == 1
    assert "interrupted" in sink.bundle("interrupted")["text/html"]


def test_interrupt_keeps_last_preview_history_and_pipeline(img_ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from genmagic import sinks

    class InterruptingSink(sinks.TerminalImageSink):
        preview_every = 2
        closed: Any = None

        def emit(self, event: Any) -> None:
            super().emit(event)
            if event.type == "progress" and event.data[0] == 5:
                _thread.interrupt_main()

        def close(self, success: bool, note: str = "", final: Any = None) -> bool:
            InterruptingSink.closed = (success, note)
            return super().close(success, note)

    monkeypatch.setattr(sinks, "live_image_sink", lambda num, every, stream: InterruptingSink(num))
    run(img_ip, f"%%imagine {FAST} --seed 1\nwarm up")
    loaded_before = next(i.model for i in engine().models.loaded() if i.spec.alias == "tiny-img")
    with pytest.raises(KeyboardInterrupt):
        run(img_ip, "%%imagine -m tiny-img --steps 30 --seed 2 -n 2 --out i_partial\na circle")
    partial = img_ip.user_ns["i_partial"]
    assert partial.status == "interrupted" and len(partial.images) == 1
    assert partial.images[0].size == (64, 64)
    assert InterruptingSink.closed == (False, f"interrupted · history #{partial.history_id}")
    record = engine().history.get(partial.history_id)
    assert record.status == "interrupted" and len(record.outputs["images"]) == 1
    monkeypatch.undo()
    after = run(img_ip, f"%%imagine {FAST} --seed 1 --no-cache\nwarm up")
    assert after.ok
    assert next(i.model for i in engine().models.loaded() if i.spec.alias == "tiny-img") is loaded_before


def test_cancel_through_the_sink_stops_at_the_next_step(img_ip: Any) -> None:
    from genmagic.image_run import build_request
    from genmagic.options import ImageOptions
    from genmagic.request import ListSink

    request = build_request(engine(), "a circle", ImageOptions(steps=30, seed=1, num=3), "tiny-img")
    sink = ListSink(cancel_after=4)
    result = engine().run(request, sink)
    assert result.status == "interrupted" and len(result.images) == 1
    assert len([e for e in sink.events if e.type == "progress"]) == 4


# --------------------------------------------------------------------------- Python API


def test_python_api(tiny_image_dir: Path, tmp_path: Path) -> None:
    result = genmagic.imagine("a red circle", model=str(tiny_image_dir), steps=2, seed=3, num=2)
    assert isinstance(result, ImageResult) and result.seeds == [3, 4]
    again = genmagic.imagine("a red circle", model=str(tiny_image_dir), steps=2, seed=3, num=2)
    assert again.cached and [pixels(i) for i in again.images] == [pixels(i) for i in result.images]
    path = tmp_path / "init.png"
    result.images[0].save(path)
    img = genmagic.imagine("a star", model=str(tiny_image_dir), steps=4, seed=1, init=str(path), strength=0.5)
    assert img.info["mode"] == "img2img" and img.sources == {"init": str(path)}
    saved = img.save(tmp_path / "out")
    with pytest.raises(genmagic.OptionError, match=r"made with --init '.*init.png'; pass --init with that image"):
        genmagic.imagine(from_image=str(saved[0]), cache=False)  # a PNG does not choose files to open
    again_from = genmagic.imagine(from_image=str(saved[0]), init=str(path), cache=False)
    assert pixels(again_from.images[0]) == pixels(img.images[0])
    with pytest.raises(genmagic.OptionError, match="unknown option 'temperature'"):
        genmagic.imagine("x", model=str(tiny_image_dir), temperature=1)


# --------------------------------------------------------------------------- history, devices


def test_genmagic_show_rebuilds_the_images_from_history(img_ip: Any) -> None:
    result = run(img_ip, f"%%imagine {FAST} --seed 40 -n 2\na star")
    shown = run(img_ip, f"%genmagic show {result.history_id}")
    assert isinstance(shown, ImageResult) and shown.seeds == [40, 41]
    assert [pixels(i) for i in shown.images] == [pixels(i) for i in result.images]
    table = run(img_ip, "%genmagic history -n 1 --kind image")
    assert "2 image(s)" in repr(table)


def test_device_and_dtype_defaults_and_errors(img_ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from genmagic.backends import diffusers_image
    from genmagic.options import ImageOptions

    backend = diffusers_image.DiffusersImageBackend()
    spec = engine().registry.resolve("tiny-img", "image")
    assert backend.load_key(spec, ImageOptions()) == ("cpu", "float32")
    monkeypatch.setattr(diffusers_image, "default_device", lambda: "cuda")
    assert backend.load_key(spec, ImageOptions()) == ("cuda", "float16")
    assert backend.load_key(spec, ImageOptions(device="cuda", dtype="bfloat16")) == ("cuda", "bfloat16")
    monkeypatch.undo()
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match=r"--device cuda is not usable here .*; use --device cpu"):
            run(img_ip, f"%%imagine {FAST} --device cuda\na circle")


def test_second_order_sampler_progress_reaches_its_total(img_ip: Any) -> None:
    from genmagic.image_run import build_request
    from genmagic.options import ImageOptions
    from genmagic.request import ListSink

    request = build_request(engine(), "a circle", ImageOptions(steps=3, seed=1, scheduler="Heun"), "tiny-img")
    sink = ListSink()
    result = engine().run(request, sink, cache=False)
    progress = [e.data for e in sink.events if e.type == "progress"]
    assert result.info["scheduler"] == "HeunDiscreteScheduler"
    assert progress[-1][0] == progress[-1][1] == len(progress) and all(t == len(progress) for _, t in progress)
    assert [e for e in sink.events if e.type == "preview"]  # the last step always previews
