"""PNG metadata is untrusted input: ``--from`` and ``read_metadata`` read PNGs from anywhere.

The A1111 ``parameters`` text is parsed in one pass, chunks are size-capped, a chunk of the
wrong shape is a one-line error, and the file may not choose the device, files to read or a
model that runs code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, SupportsIndex

import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from IPython.core.error import UsageError

import genmagic
from genmagic import pngmeta
from genmagic.pngmeta import parameter_fields, parse_parameters, safe_options_from_png

FAST = "-m tiny-img --steps 3"
MIB = 1024 * 1024


def png_with(path: Path, **chunks: str) -> Path:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


# --------------------------------------------------------------------------- the A1111 parser


# Each shape made the old regex (``[\w \-/]+:\s*("..."|[^,]*)``) rescan the rest of the line
# from every position: 20,000 characters took seconds, 1 MiB about an hour.
HOSTILE_TAILS = {
    "words without colons": "a " * (MIB // 2),
    "unterminated quotes": 'a:"\\' * (MIB // 4),
    "quoted values": 'a: "b, ' * (MIB // 7),
    "a backslash run": "k: " + "\\" * MIB,
    "colons": ":" * MIB,
    "spaces after a key": "k:" + " " * MIB,
    "escaped quotes": 'k: "' + '\\"' * (MIB // 2),
}


@pytest.mark.parametrize("shape", sorted(HOSTILE_TAILS))
def test_a_1_mib_hostile_parameters_line_parses_in_one_pass(shape: str) -> None:
    """No timing: the old parser needed ~an hour here, so this test simply did not finish."""
    text = f"a castle\nSteps: 25, Seed: 7, Size: 64x32, {HOSTILE_TAILS[shape]}"
    assert len(text) > MIB
    meta = parse_parameters(text)
    assert meta["request"]["prompt"] == "a castle"
    assert meta["request"]["options"] == {"steps": 25, "seed": 7, "width": 64, "height": 32}


class Scanned(str):
    """A str that counts the characters its searches, indexing and slicing look at."""

    looked = 0

    def find(self, sub: str, start: SupportsIndex | None = None, end: SupportsIndex | None = None) -> int:  # type: ignore[override]
        lo, hi = int(start or 0), len(self) if end is None else int(end)
        found = str.find(self, sub, lo, hi)
        Scanned.looked += max(1, (found + len(sub) if found >= 0 else hi) - lo)
        return found

    def rfind(self, sub: str, start: SupportsIndex | None = None, end: SupportsIndex | None = None) -> int:  # type: ignore[override]
        lo, hi = int(start or 0), len(self) if end is None else int(end)
        found = str.rfind(self, sub, lo, hi)
        Scanned.looked += max(1, hi - (found if found >= 0 else lo))
        return found

    def __getitem__(self, key: Any) -> str:
        part = str.__getitem__(self, key)
        Scanned.looked += max(1, len(part))
        return part


@pytest.mark.parametrize("shape", sorted(HOSTILE_TAILS))
def test_the_parser_looks_at_each_character_a_few_times(shape: str) -> None:
    """The op count, not the clock: characters examined stay within a small multiple of the length."""
    line = Scanned("Steps: 25, Seed: 7, " + HOSTILE_TAILS[shape])
    Scanned.looked = 0
    fields = parameter_fields(line)
    assert fields["Steps"] == "25" and fields["Seed"] == "7"
    assert Scanned.looked <= 5 * len(line)


def test_parameter_fields_keeps_a1111_quoting() -> None:
    line = 'Steps: 20, Lora hashes: "a: 1, b: 2", Note: "say \\"hi\\", twice", Size: 8x8, junk, Model: sd15'
    assert parameter_fields(line) == {
        "Steps": "20", "Lora hashes": "a: 1, b: 2", "Note": 'say "hi", twice', "Size": "8x8", "Model": "sd15",
    }
    assert parameter_fields('A: "never closed, B: 2') == {"A": '"never closed', "B": "2"}


# --------------------------------------------------------------------------- reading the chunks


def test_an_oversized_chunk_is_refused_before_parsing(tmp_path: Path) -> None:
    path = png_with(tmp_path / "big.png", parameters="x\nSteps: 1, " + "a " * (pngmeta.MAX_TEXT_CHARS // 2))
    with pytest.raises(genmagic.OptionError, match=r"'parameters' text chunk holds [\d,]+ characters, over the 262,144"):
        genmagic.read_metadata(path)


@pytest.mark.parametrize("body", [
    "[1, 2]", '"text"', "7", "null", '{"request": [1]}', '{"sources": ["/etc/passwd"]}',
    '{"request": {"inputs": "x"}}', '{"request": {"options": "steps"}}', '{"foo": 1}', '{"request": null}',
])
def test_a_genmagic_chunk_that_is_json_but_no_record_is_a_one_line_error(tmp_path: Path, body: str) -> None:
    path = png_with(tmp_path / "odd.png", genmagic=body)
    with pytest.raises(genmagic.OptionError, match="genmagic chunk is JSON but not a request record") as err:
        genmagic.read_metadata(path)
    assert "\n" not in str(err.value)


def test_a_genmagic_chunk_without_a_request_is_refused_at_the_magic(img_ip: Any, tmp_path: Path) -> None:
    path = png_with(tmp_path / "foo.png", genmagic='{"foo": 1}', parameters="a red circle\nSteps: 3, Seed: 1")
    with pytest.raises(UsageError, match="genmagic chunk is JSON but not a request record") as err:
        run(img_ip, f"%%imagine {FAST} --from {path}\n")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("seed", ["1e400", "12.5", "abc", ""])
def test_an_a1111_seed_that_is_no_integer_is_a_one_line_error(tmp_path: Path, seed: str) -> None:
    path = png_with(tmp_path / "seed.png", parameters=f"a castle\nSteps: 3, Seed: {seed}, Size: 8x8")
    with pytest.raises(genmagic.OptionError) as err:
        genmagic.read_metadata(path)
    assert str(err.value) == (
        f"--from {path}: its A1111 parameters field Seed: {seed!r} is not an integer seed; the file was altered"
    )


def test_an_a1111_only_png_still_reads(tmp_path: Path) -> None:
    path = png_with(tmp_path / "a1111.png", parameters="a castle\nSteps: 3, Seed: 42, Size: 8x8")
    meta = genmagic.read_metadata(path)
    assert meta["seed"] == 42 and meta["request"]["prompt"] == "a castle" and meta["request"]["options"]["steps"] == 3


def test_stored_options_of_the_wrong_shape_are_one_line_errors() -> None:
    known = {"steps", "seed", "num"}
    with pytest.raises(genmagic.OptionError, match="stored options are not a table"):
        safe_options_from_png({"request": {"options": [1]}}, known=known)
    with pytest.raises(genmagic.OptionError, match="stored seed 'x' is not a number"):
        safe_options_from_png({"request": {}, "seed": "x"}, known=known)


# --------------------------------------------------------------------------- what --from may take


def genmagic_png(path: Path, options: dict[str, Any], model: str = "tiny-img", **extra: Any) -> Path:
    record = {"version": 1, "request": {"kind": "image", "prompt": "a red circle", "model": model,
                                        "options": options}, "index": 0, "seed": 3, **extra}
    return png_with(path, genmagic=json.dumps(record))


def test_from_does_not_take_the_device_or_dtype(img_ip: Any, tmp_path: Path) -> None:
    path = genmagic_png(tmp_path / "gpu.png", {"steps": 3, "device": "cuda:7", "dtype": "float16"})
    result = run(img_ip, f"%imagine --from {path}")
    options: Any = result.request.options
    assert options.device is None and options.dtype is None and result.info["device"] == "cpu"
    assert options.steps == 3 and result.seeds == [3]


def test_an_out_of_bounds_stored_option_names_the_png_and_can_be_overridden(img_ip: Any, tmp_path: Path) -> None:
    path = genmagic_png(tmp_path / "big.png", {"steps": 10**12})
    with pytest.raises(UsageError, match=r"--from .*big.png: the image's stored --steps must be between 1 and 1000"):
        run(img_ip, f"%imagine --from {path}")
    assert run(img_ip, f"%imagine --from {path} --steps 3").request.options.steps == 3


def test_from_does_not_open_a_lora_file_the_png_names(img_ip: Any, tmp_path: Path, tiny_lora: Path) -> None:
    path = genmagic_png(tmp_path / "lora.png", {"steps": 3, "lora": [str(tiny_lora)]})
    with pytest.raises(UsageError, match=f"made with --lora {tiny_lora}; pass --lora {tiny_lora} yourself"):
        run(img_ip, f"%imagine --from {path}")
    named = run(img_ip, f"%imagine --from {path} --lora {tiny_lora}")
    assert named.request.options.lora == (str(tiny_lora),)  # type: ignore[attr-defined]


def test_from_does_not_open_an_init_path_the_png_names(img_ip: Any, tmp_path: Path) -> None:
    first = run(img_ip, f"%%imagine {FAST} --seed 5 --save {tmp_path / 'a'}\na red circle")
    init = first.info["saved"][0]
    made = run(img_ip, f"%%imagine {FAST} --seed 1 --init {init} --save {tmp_path / 'b'}\na star")
    saved = made.info["saved"][0]
    with pytest.raises(UsageError, match=f"made with --init '{init}'; pass --init with that image"):
        run(img_ip, f"%imagine --from {saved}")
    assert run(img_ip, f"%imagine --from {saved} --init {init}").images  # named by the user: fine
    img_ip.user_ns["i_path"] = init  # a variable holding a path is a path too
    meta = {"sources": {"init": "i_path", "mask": "/etc/passwd"}}
    assert pngmeta.stored_input_sources(meta, img_ip.user_ns) == {}


def test_from_does_not_pick_a_model_that_runs_code(img_ip: Any, tmp_path: Path, tiny_image_dir: Path) -> None:
    img_ip.run_line_magic("genmagic", f"register pickled {tiny_image_dir} --allow-pickle")
    path = genmagic_png(tmp_path / "risky.png", {"steps": 3}, model="pickled")
    with pytest.raises(UsageError, match=r"made with -m pickled; pass -m pickled yourself .*sets allow_pickle"):
        run(img_ip, f"%imagine --from {path}")
    assert run(img_ip, f"%imagine --from {path} -m pickled").request.model == "pickled"
