"""``%%imagine --over``: one image per row, the rows in one pipeline call, each row the image its
prompt and seed give alone (within float rounding of the batched UNet)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from conftest import run
from image_fixtures import *  # noqa: F403

import genmagic
from genmagic.options import ImageOptions

PROMPTS = ["a red circle", "a blue square on a white background", "a green star", "a yellow triangle"]


def test_imagine_over_a_series_one_image_per_row_batched(img_ip: Any) -> None:
    img_ip.user_ns["i_s"] = pd.Series(PROMPTS, index=list("abcd"))
    out = run(img_ip, "%%imagine -m tiny-img --over i_s --seed 3 --steps 3 --out i_b\n{item}")
    assert list(out.index) == list("abcd") and all(img.size == (64, 64) for img in out)
    batch = img_ip.user_ns["i_b"]
    assert {r.timings["batch_rows"] for r in batch.results} == {4.0}  # one pipeline call
    assert "<img" in batch._repr_mimebundle_()["text/html"]  # the grid
    engine = genmagic._magics.engine
    for prompt, image in zip(PROMPTS, out, strict=True):
        alone = engine.run(engine.request("image", prompt, ImageOptions(seed=3, steps=3), model="tiny-img"),
                           cache=False).images[0]
        diff = np.abs(np.asarray(alone, dtype=np.int16) - np.asarray(image, dtype=np.int16))
        assert diff.max() <= 2  # 8-bit pixels: rounding of the batched UNet at most


def test_imagine_many_over_a_list(img_ip: Any) -> None:
    images = genmagic.imagine_many(["a red circle", "a green star"], model="tiny-img", seed=1, steps=2)
    assert len(images) == 2 and images[0].size == (64, 64)
    again = genmagic.imagine_many(["a red circle", "a green star"], model="tiny-img", seed=1, steps=2)
    assert [np.asarray(a).tolist() == np.asarray(b).tolist() for a, b in zip(images, again, strict=True)] == [True, True]


def test_imagine_over_with_a_shared_init_and_save(img_ip: Any, tmp_path: Any) -> None:
    from PIL import Image

    img_ip.user_ns["i_init"] = Image.new("RGB", (64, 64), (200, 30, 30))
    img_ip.user_ns["i_items"] = ["a red circle", "a green star"]
    out = run(img_ip, f"%%imagine -m tiny-img --over i_items --seed 2 --steps 4 --init i_init --strength 0.5 "
                      f"--save {tmp_path} --out i_b\n{{item}}")
    assert len(out) == 2 and all(r.info["mode"] == "img2img" for r in img_ip.user_ns["i_b"].results)
    assert len(list(tmp_path.glob("*.png"))) == 2


def test_a_stopped_batch_keeps_its_partial_images(img_ip: Any) -> None:
    """Stop (every row's sink cancelled) ends the pipeline within a step; like a single run, the rows
    keep the images decoded from where it stopped."""
    from genmagic.request import ListSink

    engine = genmagic._magics.engine
    requests = [engine.request("image", p, ImageOptions(seed=5, steps=8), model="tiny-img") for p in PROMPTS[:2]]
    sinks = [ListSink(cancel_after=2), ListSink(cancel_after=2)]
    results = engine.run_many(requests, sinks=sinks, cache=False)
    assert [r.status for r in results] == ["interrupted", "interrupted"]
    assert all(len(r.images) == 1 and r.images[0].size == (64, 64) for r in results)
    assert all(r.history_id is not None for r in results)
