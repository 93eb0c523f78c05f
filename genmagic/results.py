"""What a run produced: :class:`Verdict`, :class:`Result`, :class:`TextResult`, :class:`ImageResult`.

Plain data: outputs, the request, timings, safety verdicts and provenance, plus the
history-store round trip. Showing a result is :mod:`genmagic.display`'s job: the
``_repr_*_`` methods only hand the result to it (that import happens when a result is
shown, and display imports these types only for type checking).

Image ``i`` was made with seed ``seeds[i]`` (the request's seed + i) alone, so
``%%imagine --seed {seeds[i]} -n 1`` (same other options) gives the same pixels. In the
history store the images are PNG blobs named by content hash, each carrying its
generation parameters (see :mod:`genmagic.pngmeta`).

A withheld image (:meth:`Result.withhold`) is blurred in ``images`` (what is shown, saved
and bound to ``--out``) while history keeps the original, which :meth:`ImageResult.reveal`
returns (and history records that it was revealed).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import OptionError
from .pngmeta import image_metadata, png_bytes

if TYPE_CHECKING:
    from .request import Request

# How --init/--mask were spelled in the run being made (set by image_run.run), so the
# PNGs written to history while the engine records the run already carry them.
pending_sources: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("pending_sources", default=None)


@dataclass(frozen=True)
class Verdict:
    """One safety check's finding. Kept on the result and in history, never dropped."""

    check: str
    category: str
    score: float
    action: str  # allow | redact | warn | block | review
    spans: tuple[tuple[int, int], ...] = ()  # character offsets in the screened text (``target``)
    stage: str = "prompt"  # prompt | output (screened again on a cache hit) | backend (a backend's own flag, kept)
    target: str = ""  # which text or image: "prompt", "system", "negative", "turn 2", "output 1", "image 3"
    reason: str = ""  # one line a user can read: what was found, and why it matters

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "category": self.category,
            "score": self.score,
            "action": self.action,
            "spans": [list(s) for s in self.spans],
            "stage": self.stage,
            "target": self.target,
            "reason": self.reason,
        }


@dataclass
class Result:
    """What a run produced. ``status``: ok | interrupted | error | blocked."""

    request: Request
    status: str = "ok"
    timings: dict[str, float] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    cached: bool = False
    history_id: int | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # backend provenance: device, dtype, ...
    # Outputs a safety check withheld: index -> (the original output, the reason). The output list
    # shows a stand-in (an empty text, a blurred image); history keeps the original.
    withheld: dict[int, tuple[Any, str]] = field(default_factory=dict, repr=False)
    history: Any = field(default=None, repr=False, compare=False)  # the History it is recorded in (set by record)

    # -- withheld outputs (safety)
    def _outputs(self) -> list[Any]:
        return []

    def _stand_in(self, output: Any) -> Any:
        """What is shown (and bound to ``--out``) instead of a withheld output."""
        return None

    def output_count(self) -> int:
        return len(self._outputs())

    def withhold(self, index: int, verdict: Verdict) -> None:
        """Keep output ``index`` out of sight (and off ``--out``): ``verdict`` says why."""
        outputs = self._outputs()
        if index in self.withheld or not 0 <= index < len(outputs):
            return
        reason = verdict.reason or verdict.category.replace("_", " ")
        self.withheld[index] = (outputs[index], reason)
        outputs[index] = self._stand_in(outputs[index])

    def release(self, index: int | None = None) -> None:
        """Put withheld outputs back (all of them by default): after a person approved them."""
        outputs = self._outputs()
        for i in [index] if index is not None else list(self.withheld):
            if i in self.withheld:
                outputs[i] = self.withheld.pop(i)[0]

    def originals(self) -> list[Any]:
        """Every output as produced, withheld ones included (what history stores)."""
        return [self.withheld[i][0] if i in self.withheld else o for i, o in enumerate(self._outputs())]

    def _withheld_record(self) -> dict[str, str]:
        return {str(i): reason for i, (_, reason) in self.withheld.items()}

    def _withhold_stored(self, outputs: Any) -> None:
        """Withhold again what a stored run had withheld (a history row shown later)."""
        stored = outputs.get("withheld") if isinstance(outputs, dict) else None
        for key, reason in (stored or {}).items() if isinstance(stored, dict) else ():
            if str(key).isdigit():
                self.withhold(int(key), Verdict("history", "", 0.0, "block", reason=str(reason)))

    def to_record(self, put_blob: Callable[[bytes, str], str]) -> Any:
        """The outputs as JSON for the history store; binary outputs go through ``put_blob``."""
        raise NotImplementedError

    @classmethod
    def from_record(cls, request: Request, outputs: Any, get_blob: Callable[[str], bytes]) -> Result:
        """Rebuild a result from :meth:`to_record`'s JSON (for the cache)."""
        raise NotImplementedError

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class TextResult(Result):
    texts: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # new tokens per sample
    format: str = "auto"  # how the result shows itself: auto | markdown | text | code | json | html
    # With -f json / --schema: each sample parsed (a pydantic or dataclass instance for such a schema)
    values: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    @property
    def value(self) -> Any:
        """The first sample parsed (-f json: the JSON value; --schema: the schema's type); None
        for other formats and for a run that failed."""
        return self.values[0] if self.values else None

    def _outputs(self) -> list[Any]:
        return self.texts

    def _stand_in(self, output: Any) -> Any:
        return ""

    def to_record(self, put_blob: Callable[[bytes, str], str]) -> Any:
        record: dict[str, Any] = {"texts": self.originals(), "tokens": self.tokens}
        if self.withheld:
            record["withheld"] = self._withheld_record()
        return record

    @classmethod
    def from_record(cls, request: Request, outputs: Any, get_blob: Callable[[str], bytes]) -> TextResult:
        result = cls(request=request, texts=[str(t) for t in outputs["texts"]], tokens=list(outputs.get("tokens", [])))
        result._withhold_stored(outputs)
        return result

    def json(self) -> Any:
        """The text parsed as JSON (a ``OutputFormatError`` with the position otherwise)."""
        from .display import parse_json

        return parse_json(self.text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (
            f"TextResult(model={self.request.model!r}, status={self.status!r}, "
            f"seed={self.request.seed}, texts={[t[:40] + ('…' if len(t) > 40 else '') for t in self.texts]!r}"
            + (f", preset={self.info['preset']!r}, prompt sent={self.request.prompt!r}" if self.info.get("preset") else "")
            + ")"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .display import text_result_bundle

        return text_result_bundle(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text("\n\n".join(self.texts) if len(self.texts) > 1 else self.text)


@dataclass
class ImageResult(Result):
    images: list[Any] = field(default_factory=list)  # PIL images
    seeds: list[int] = field(default_factory=list)
    nsfw: list[bool] = field(default_factory=list)  # the pipeline's own safety checker, per image
    sources: dict[str, str] = field(default_factory=dict)  # how --init/--mask were given (VAR or PATH)

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = dict(pending_sources.get() or {})

    # -- access
    @property
    def image(self) -> Any:
        return self.images[0] if self.images else None

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.images)

    def __getitem__(self, index: int) -> Any:
        return self.images[index]

    # -- withheld images (the safety checks')
    def _outputs(self) -> list[Any]:
        return self.images

    def _stand_in(self, output: Any) -> Any:
        from .safety.blur import blur

        return blur(output)

    def withheld_verdict(self, index: int) -> Verdict | None:
        """The verdict that withheld image ``index`` (None when it is not withheld, or when the
        result was rebuilt from history, which keeps only the reason)."""
        if index not in self.withheld:
            return None
        return next((v for v in self.verdicts if v.action == "block" and v.target == f"image {index + 1}"), None)

    def reveal(self, index: int, *, show: bool = False, history: Any = None) -> Any:
        """The original of withheld image ``index``. The ``revealed`` decision (target ``image
        N``) goes to the history the run was recorded in (``result.history``, set when it was
        recorded or read back; or ``history``); a result never recorded has no run to attach it to. ``show=True`` also puts
        the original back in ``images`` (what the grid shows and ``save`` writes)."""
        if not 0 <= index < len(self.images):
            raise OptionError(f"reveal({index}): this result has images 0 to {len(self.images) - 1}")
        if index not in self.withheld:
            raise OptionError(f"reveal({index}): image {index + 1} is not withheld; result.images[{index}] is the original")
        original, reason = self.withheld[index]
        store = history or self.history
        if self.history_id is not None and store is not None:
            store.decide(self.history_id, "revealed", target=f"image {index + 1}", note=reason)
        if show:
            self.release(index)
        return original

    # -- metadata and files
    def metadata(self, index: int, *, original: bool = False) -> dict[str, Any]:
        """What image ``index``'s PNG chunks hold: A1111 ``parameters`` and the full request;
        a withheld (blurred) image says so under ``withheld``, unless ``original``."""
        image = self.images[index]
        data = image_metadata(
            self.request.to_dict(),
            index=index,
            seed=self.seeds[index] if index < len(self.seeds) else (self.request.seed or 0) + index,
            size=image.size,
            sampler=str(self.info.get("scheduler", "")),
            sources=self.sources,
            info=self.info,
        )
        if index in self.withheld and not original:
            verdict = self.withheld_verdict(index)
            data["withheld"] = {"blurred": True, "reason": self.withheld[index][1],
                                "category": verdict.category if verdict else ""}
        return data

    def png(self, index: int = 0) -> bytes:
        """Image ``index`` as PNG bytes with its generation parameters (blurred if withheld)."""
        return png_bytes(self.images[index], self.metadata(index))

    def filenames(self) -> list[str]:
        slug = re.sub(r"[^a-z0-9]+", "-", self.request.prompt.lower()).strip("-")[:40] or "image"
        key = self.request.key()[:8]
        return [f"{slug}-{seed}-{key}.png" for seed in self.seeds[: len(self.images)]]

    def save(self, directory: str | os.PathLike[str] = ".") -> list[Path]:
        """Write every image as a PNG with its parameters into ``directory``; returns the paths.

        Each file is written to a temporary name and renamed, so an error leaves no half file.
        """
        folder = Path(directory).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, name in enumerate(self.filenames()):
            paths.append(write_atomic(folder / name, self.png(index)))
        return paths

    def grid(self, columns: int | None = None) -> Any:
        """All images pasted into one PIL image."""
        from PIL import Image

        if not self.images:
            return None
        cols = columns or min(len(self.images), 4)
        rows = -(-len(self.images) // cols)
        w = max(im.width for im in self.images)
        h = max(im.height for im in self.images)
        sheet = Image.new("RGB", (cols * w, rows * h), "white")
        for i, im in enumerate(self.images):
            sheet.paste(im.convert("RGB"), ((i % cols) * w, (i // cols) * h))
        return sheet

    # -- history store
    def to_record(self, put_blob: Callable[[bytes, str], str]) -> Any:
        """The originals (withheld ones too: a reveal from history needs them) and which are withheld."""
        record: dict[str, Any] = {
            "images": [put_blob(png_bytes(image, self.metadata(i, original=True)), ".png")
                       for i, image in enumerate(self.originals())],
            "seeds": list(self.seeds),
            "nsfw": list(self.nsfw),
            "sources": dict(self.sources),
        }
        if self.withheld:
            record["withheld"] = self._withheld_record()
        return record

    @classmethod
    def from_record(cls, request: Request, outputs: Any, get_blob: Callable[[str], bytes]) -> ImageResult:
        import io

        from PIL import Image

        images = []
        for name in outputs.get("images", []):
            with Image.open(io.BytesIO(get_blob(name))) as im:
                im.load()
                images.append(im.copy())
        result = cls(
            request=request,
            images=images,
            seeds=list(outputs.get("seeds", [])),
            nsfw=list(outputs.get("nsfw", [])),
            sources=dict(outputs.get("sources", {})),
        )
        result._withhold_stored(outputs)  # blurred again, as when it was recorded
        return result

    # -- display (the rendering lives in genmagic.display)
    def __repr__(self) -> str:
        return (
            f"ImageResult(model={self.request.model!r}, status={self.status!r}, "
            f"seeds={self.seeds!r}, size={self.images[0].size if self.images else None}"
            + (f", withheld={sorted(self.withheld)!r}" if self.withheld else "")
            + (f", preset={self.info['preset']!r}, prompt sent={self.request.prompt!r}" if self.info.get("preset") else "")
            + ")"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .display import image_result_bundle

        return image_result_bundle(self)



def _umask() -> int:
    try:  # Linux reports it without changing it
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it (straight back)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, with the
    permissions a plain ``open`` would give (mkstemp's files are 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path



def result_class(kind: str) -> type[Result]:
    if kind == "text":
        return TextResult
    if kind == "image":
        return ImageResult
    raise KeyError(kind)
