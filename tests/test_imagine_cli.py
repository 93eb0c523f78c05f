"""``genmagic imagine`` as a user runs it (a subprocess), and a project-defined pipeline class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from image_fixtures import *  # noqa: F403

import genmagic


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genmagic.cli", *args],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )


def test_imagine_writes_pngs_and_reproduces_from_them(tiny_image_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "out.png"
    first = cli("imagine", "-m", str(tiny_image_dir), "--steps", "3", "--seed", "7", "-n", "2",
                "--negative", "blurry", "a red circle", "-o", str(out))
    assert first.returncode == 0, first.stderr
    paths = [tmp_path / "out-1.png", tmp_path / "out-2.png"]
    assert first.stdout.split() == [str(p) for p in paths]
    meta = genmagic.read_metadata(paths[1])
    assert meta["seed"] == 8 and meta["request"]["options"]["negative"] == "blurry"
    assert "Steps: 3, Sampler: DDIM, CFG scale: 7.5, Seed: 8, Size: 64x64" in meta["parameters"]
    again = cli("imagine", "--from", str(paths[1]), "--no-cache", "-o", str(tmp_path / "again.png"))
    assert again.returncode == 0, again.stderr
    with Image.open(paths[1]) as a, Image.open(tmp_path / "again.png") as b:
        assert a.tobytes() == b.tobytes()
    hist = json.loads(cli("history", "--json", "--kind", "image").stdout)
    assert [r["status"] for r in hist] == ["ok", "ok"] and hist[1]["outputs"]["seeds"] == [7, 8]


def test_imagine_errors_exit_2_and_write_nothing(tiny_image_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "pics"
    target.mkdir()
    out = target / "bad.png"
    bad = cli("imagine", "-m", str(tiny_image_dir), "--steps", "2", "--width", "61", "x", "-o", str(out))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        f"genmagic: error: --width 61 does not fit {tiny_image_dir}: sizes must be multiples of 8; e.g. --width 64"
    )
    assert list(target.iterdir()) == []
    empty = cli("imagine", "-m", str(tiny_image_dir))
    assert empty.returncode == 2 and "the prompt is empty" in empty.stderr


def test_a_project_defined_pipeline_class_loads_by_name(tiny_image_dir: Path, tmp_path: Path) -> None:
    """A pipeline the project defines (a DiffusionPipeline subclass) saves and loads the diffusers way."""
    from diffusers import StableDiffusionPipeline

    class GenmagicTinyPipeline(StableDiffusionPipeline):  # type: ignore[misc]
        pass

    pipe: Any = GenmagicTinyPipeline.from_pretrained(tiny_image_dir)
    folder = tmp_path / "custom"
    pipe.save_pretrained(folder)
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "GenmagicTinyPipeline"
    result = genmagic.imagine("a red circle", model=str(folder), steps=2, seed=1)
    assert result.ok and result.info["pipeline"] == "GenmagicTinyPipeline"


def test_output_names_one_file_per_image_and_prints_every_path(tiny_image_dir: Path, tmp_path: Path) -> None:
    tmp_path = tmp_path / "pics"
    tmp_path.mkdir()
    one = cli("imagine", "-m", str(tiny_image_dir), "--steps", "1", "--seed", "1", "a circle", "-o", str(tmp_path / "c.png"))
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines() == [str(tmp_path / "c.png")] and sorted(os.listdir(tmp_path)) == ["c.png"]
    # another image type: refused before the run, nothing written, nothing recorded
    jpeg = cli("imagine", "-m", str(tiny_image_dir), "--steps", "1", "a circle", "-o", str(tmp_path / "c.jpg"))
    assert jpeg.returncode == 2 and f"use -o {tmp_path / 'c'}.png" in jpeg.stderr
    assert sorted(os.listdir(tmp_path)) == ["c.png"]
    assert len(json.loads(cli("history", "--json").stdout)) == 1


def test_output_numbers_sort_and_a_name_without_png_gets_it() -> None:
    from genmagic.errors import OptionError
    from genmagic.image_run import output_paths

    assert output_paths("c.png", 3) == ["c-1.png", "c-2.png", "c-3.png"]
    assert output_paths("c.png", 12)[0] == "c-01.png" and output_paths("c.png", 12)[-1] == "c-12.png"
    assert output_paths("run.v2", 1) == ["run.v2.png"] and output_paths("shot.PNG", 1) == ["shot.PNG"]
    try:
        output_paths("c.webp", 2)
    except OptionError as err:
        assert str(err) == "-o c.webp: genmagic writes PNG files (they carry the generation parameters); use -o c.png"
    else:
        raise AssertionError("a .webp name was accepted")
