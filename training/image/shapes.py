"""Procedural training data for the ``tiny-image`` model.

Every sample is a 64x64 RGB image of one (sometimes two) flat-coloured shapes on
a plain background, together with a caption and the structured attributes used
to draw it (so that :mod:`checker` can score generated images).

Everything is deterministic given a seed::

    >>> from shapes import ShapeGenerator
    >>> gen = ShapeGenerator(seed=0)
    >>> img, caption, attrs = gen.sample()          # PIL.Image, str, dict

Captions come from a set of *training* templates.  A disjoint set of
*held-out* templates (``heldout=True``) is only used for evaluation, to check
that the model follows paraphrases it has never seen verbatim.

The generator is original code, released with the rest of the repository.
"""
from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

SIZE = 64          # output resolution
SS = 4             # supersampling factor used for anti-aliased drawing

# Named colours (RGB).  Chosen to be far apart so that a nearest-colour
# classifier is unambiguous.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "green": (35, 165, 55),
    "blue": (30, 70, 225),
    "yellow": (250, 220, 35),
    "orange": (250, 135, 20),
    "purple": (130, 40, 175),
    "pink": (250, 135, 195),
    "cyan": (40, 210, 225),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
COLOR_NAMES = list(COLORS)
# Shape colours: every colour.  Background colours: every colour as well; the
# default (caption does not mention a background) is white.
# The shipped model is trained on the first three.  ``draw_shape`` can also draw
# "star", "ring" and "cross", but at 64x64 with a factor-4 VAE those are not
# reliably reconstructable at small sizes (VAE round trip: star 5-13 % shape
# accuracy at small/medium size), so they are left out of SHAPES.
SHAPES = ["circle", "square", "triangle"]
SIZES = {"small": (7.5, 9.5), "medium": (11.0, 13.5), "large": (15.5, 18.5)}
SIZE_NAMES = list(SIZES)

# position name -> (x, y) cell centre in pixels (64x64 image)
POSITIONS: dict[str, tuple[float, float]] = {
    "center": (32, 32),
    "top": (32, 16), "bottom": (32, 48), "left": (16, 32), "right": (48, 32),
    "top left": (16, 16), "top right": (48, 16),
    "bottom left": (16, 48), "bottom right": (48, 48),
}
POSITION_NAMES = list(POSITIONS)

# ---------------------------------------------------------------- captions
# Phrasings used for training.
POS_PHRASES_TRAIN = {
    "center": ["in the center", "in the middle", "at the center", "centered"],
    "top": ["at the top", "at the top of the image", "near the top"],
    "bottom": ["at the bottom", "at the bottom of the image", "near the bottom"],
    "left": ["on the left", "at the left", "on the left side"],
    "right": ["on the right", "at the right", "on the right side"],
    "top left": ["at the top left", "in the top left corner", "in the upper left"],
    "top right": ["at the top right", "in the top right corner", "in the upper right"],
    "bottom left": ["at the bottom left", "in the bottom left corner", "in the lower left"],
    "bottom right": ["at the bottom right", "in the bottom right corner", "in the lower right"],
}
# Phrasings only used for evaluation (never seen in training).
POS_PHRASES_HELDOUT = {
    "center": ["in the centre", "right in the middle"],
    "top": ["near the top edge", "up at the top"],
    "bottom": ["down at the bottom", "near the bottom edge"],
    "left": ["on the left-hand side", "towards the left"],
    "right": ["on the right-hand side", "towards the right"],
    "top left": ["in the top-left corner", "upper left corner"],
    "top right": ["in the top-right corner", "upper right corner"],
    "bottom left": ["in the bottom-left corner", "lower left corner"],
    "bottom right": ["in the bottom-right corner", "lower right corner"],
}

# Training caption templates.  Fields: {obj} shape phrase ("a small red circle"),
# {pos} position phrase, {bg} background colour name.
TRAIN_TEMPLATES_FULL = [
    "{obj} {pos} on a {bg} background",
    "{obj} on a {bg} background {pos}",
    "{bg} background, {obj} {pos}",
    "a picture of {obj} {pos} on a {bg} background",
    "an image of {obj} {pos} with a {bg} background",
    "{obj} {pos}, {bg} background",
    "{obj} {pos} on {bg}",
    "a {bg} background with {obj} {pos}",
    "{obj} {pos} and a {bg} background",
    "a {bg} background and {obj} {pos}",
    "the background is {bg}, {obj} {pos}",
]
TRAIN_TEMPLATES_NOBG = ["{obj} {pos}", "a picture of {obj} {pos}", "an image of {obj} {pos}"]
TRAIN_TEMPLATES_NOPOS = [
    "{obj} on a {bg} background", "{bg} background, {obj}", "{obj} on {bg}",
    "a {bg} background with {obj}", "an image of {obj} on a {bg} background",
    "{obj} and a {bg} background", "the background is {bg}, {obj}",
]
TRAIN_TEMPLATES_BARE = ["{obj}", "a picture of {obj}", "an image of {obj}"]
# Tag style: "red circle, small, top left, blue background"
TRAIN_TEMPLATES_TAGS = ["{color} {shape}, {size}, {posword}, {bg} background"]

HELDOUT_TEMPLATES_FULL = [
    "there is {obj} {pos} and the background is {bg}",
    "draw {obj} {pos} over a plain {bg} backdrop",
    "{bg} colored background featuring {obj} {pos}",
    "{obj} sitting {pos} against a {bg} background",
    "on a {bg} background: {obj}, {pos}",
    "a simple illustration of {obj} placed {pos} on {bg}",
]

# Words that are deliberately *not* in the vocabulary; they are sprinkled into
# some training captions so the model learns to ignore [UNK] tokens.
DISTRACTORS = ["nice", "simple", "beautiful", "flat", "cute", "clean", "please",
               "minimal", "shiny", "cool", "graphic", "icon", "bright", "little"]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def vocabulary() -> list[str]:
    """All words that may appear in training captions (for the tokenizer)."""
    words = set()
    texts = (TRAIN_TEMPLATES_FULL + TRAIN_TEMPLATES_NOBG + TRAIN_TEMPLATES_NOPOS
             + TRAIN_TEMPLATES_BARE + TRAIN_TEMPLATES_TAGS)
    for ph in POS_PHRASES_TRAIN.values():
        texts += ph
    texts += COLOR_NAMES + SHAPES + SIZE_NAMES + ["a", "an", "and", "medium", "sized"]
    texts += [two for two in TWO_SHAPE_TEMPLATES]
    for t in texts:
        t = t.replace("{", " ").replace("}", " ")
        for w in t.replace(",", " , ").replace(":", " : ").split():
            if w not in ("obj", "pos", "bg", "color", "shape", "size", "posword", "a_obj", "b_obj",
                         "a_pos", "b_pos"):
                words.add(w.lower())
    return sorted(words)


TWO_SHAPE_TEMPLATES = [
    "{a_obj} {a_pos} and {b_obj} {b_pos} on a {bg} background",
    "{bg} background, {a_obj} {a_pos} and {b_obj} {b_pos}",
    "{a_obj} and {b_obj} on a {bg} background",
    "{a_obj} {a_pos} and {b_obj} {b_pos}",
]


# ---------------------------------------------------------------- drawing
def _polygon_star(cx, cy, r, points=5, inner=0.45):
    pts = []
    for i in range(points * 2):
        rad = r if i % 2 == 0 else r * inner
        a = -math.pi / 2 + i * math.pi / points
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float,
               fill, bg) -> None:
    """Draw ``shape`` with "radius" r centred at (cx, cy), on a supersampled canvas
    (coordinates already multiplied by SS)."""
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        s = r * 0.88
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape == "triangle":
        R = r * 1.12  # circumradius; the centroid is at (cx, cy)
        pts = [(cx, cy - R), (cx + R * math.sqrt(3) / 2, cy + R / 2),
               (cx - R * math.sqrt(3) / 2, cy + R / 2)]
        # shift down so the bounding box is centred vertically
        dy = R / 4
        draw.polygon([(x, y + dy) for x, y in pts], fill=fill)
    elif shape == "star":
        draw.polygon(_polygon_star(cx, cy + r * 0.06, r * 1.1), fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        ri = r * 0.55
        draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=bg)
    elif shape == "cross":
        w = r * 0.36
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    else:
        raise ValueError(shape)


def _jitter(rgb, rng: random.Random, amount=10):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def render(attrs: dict, rng: random.Random | None = None) -> Image.Image:
    """Render a scene description (see :meth:`ShapeGenerator.sample_attrs`)."""
    rng = rng or random.Random(0)
    bg = _jitter(COLORS[attrs["background"]], rng, 8)
    big = Image.new("RGB", (SIZE * SS, SIZE * SS), bg)
    d = ImageDraw.Draw(big)
    for s in attrs["shapes"]:
        fill = _jitter(COLORS[s["color"]], rng, 10)
        draw_shape(d, s["shape"], s["cx"] * SS, s["cy"] * SS, s["r"] * SS, fill, bg)
    return big.resize((SIZE, SIZE), Image.BOX)


# ---------------------------------------------------------------- sampling
class ShapeGenerator:
    """Seeded generator of (image, caption, attributes)."""

    def __init__(self, seed: int = 0, two_shape_prob: float = 0.06):
        self.rng = random.Random(seed)
        self.two_shape_prob = two_shape_prob

    # -- attributes -------------------------------------------------------
    def _place(self, size: str, pos: str, xy=None):
        rng = self.rng
        r = rng.uniform(*SIZES[size])
        px, py = xy if xy is not None else POSITIONS[pos]
        cx = px + rng.uniform(-3, 3)
        cy = py + rng.uniform(-3, 3)
        m = r + 1.5
        cx = min(max(cx, m), SIZE - m)
        cy = min(max(cy, m), SIZE - m)
        return r, cx, cy

    def sample_attrs(self, n_shapes: int | None = None) -> dict:
        rng = self.rng
        if n_shapes is None:
            n_shapes = 2 if rng.random() < self.two_shape_prob else 1
        # White background is the default and common; otherwise any colour.
        bg = "white" if rng.random() < 0.3 else rng.choice(COLOR_NAMES)
        shapes = []
        if n_shapes == 1:
            color = rng.choice([c for c in COLOR_NAMES if c != bg])
            shape = rng.choice(SHAPES)
            size = rng.choice(SIZE_NAMES)
            pos = "center" if rng.random() < 0.2 else rng.choice(POSITION_NAMES)
            r, cx, cy = self._place(size, pos)
            shapes.append(dict(shape=shape, color=color, size=size, position=pos, r=r, cx=cx, cy=cy))
        else:
            layout = rng.choice([("left", "right"), ("top", "bottom")])
            for pos in layout:
                color = rng.choice([c for c in COLOR_NAMES if c != bg])
                shape = rng.choice(SHAPES)
                size = rng.choice(["small", "medium"])
                xy = {"left": (17, 32), "right": (47, 32), "top": (32, 17), "bottom": (32, 47)}[pos]
                r, cx, cy = self._place(size, pos, xy)
                shapes.append(dict(shape=shape, color=color, size=size, position=pos, r=r, cx=cx, cy=cy))
        return {"background": bg, "shapes": shapes}

    # -- captions ---------------------------------------------------------
    def _obj(self, s: dict, mention_size: bool) -> str:
        words = []
        if mention_size:
            size = s["size"]
            if size == "medium" and self.rng.random() < 0.5:
                size = "medium sized"
            words.append(size)
        words += [s["color"], s["shape"]]
        return article(words[0]) + " " + " ".join(words)

    def caption(self, attrs: dict, heldout: bool = False) -> str:
        rng = self.rng
        bg = attrs["background"]
        shapes = attrs["shapes"]
        pos_table = POS_PHRASES_HELDOUT if heldout else POS_PHRASES_TRAIN
        if len(shapes) == 2:
            a, b = shapes
            t = rng.choice(TWO_SHAPE_TEMPLATES)
            if "{bg}" not in t and bg != "white":
                t = TWO_SHAPE_TEMPLATES[0]
            return t.format(a_obj=self._obj(a, a["size"] != "medium"),
                            b_obj=self._obj(b, b["size"] != "medium"),
                            a_pos=rng.choice(POS_PHRASES_TRAIN[a["position"]]),
                            b_pos=rng.choice(POS_PHRASES_TRAIN[b["position"]]), bg=bg)
        s = shapes[0]
        # Size "medium", position "center" and a white background are defaults
        # that may be left out of the caption; anything else is always stated.
        mention_size = s["size"] != "medium" or rng.random() < 0.3
        mention_pos = s["position"] != "center" or rng.random() < 0.5
        mention_bg = bg != "white" or rng.random() < 0.5
        obj = self._obj(s, mention_size)
        pos = rng.choice(pos_table[s["position"]])
        if heldout:
            t = rng.choice(HELDOUT_TEMPLATES_FULL)
            return t.format(obj=obj, pos=pos, bg=bg)
        if not heldout and rng.random() < 0.08:
            t = TRAIN_TEMPLATES_TAGS[0]
            return t.format(color=s["color"], shape=s["shape"], size=s["size"],
                            posword=s["position"], bg=bg)
        if mention_pos and mention_bg:
            t = rng.choice(TRAIN_TEMPLATES_FULL)
        elif mention_pos:
            t = rng.choice(TRAIN_TEMPLATES_NOBG)
        elif mention_bg:
            t = rng.choice(TRAIN_TEMPLATES_NOPOS)
        else:
            t = rng.choice(TRAIN_TEMPLATES_BARE)
        cap = t.format(obj=obj, pos=pos, bg=bg)
        if rng.random() < 0.1:  # unknown words -> [UNK]; teach the model to ignore them
            words = cap.split()
            words.insert(rng.randint(0, len(words)), rng.choice(DISTRACTORS))
            cap = " ".join(words)
        if rng.random() < 0.1:
            cap = cap[0].upper() + cap[1:]
        return cap

    def sample(self, heldout: bool = False, n_shapes: int | None = None):
        attrs = self.sample_attrs(n_shapes)
        img = render(attrs, self.rng)
        return img, self.caption(attrs, heldout=heldout), attrs


def sample_grid(n=64, seed=0, path="shapes_grid.png"):
    gen = ShapeGenerator(seed)
    grid = Image.new("RGB", (8 * SIZE, (n // 8) * SIZE))
    caps = []
    for i in range(n):
        img, cap, _ = gen.sample()
        grid.paste(img, ((i % 8) * SIZE, (i // 8) * SIZE))
        caps.append(cap)
    grid.save(path)
    return caps


if __name__ == "__main__":
    import sys
    caps = sample_grid(path=sys.argv[1] if len(sys.argv) > 1 else "shapes_grid.png")
    print("\n".join(caps[:24]))
    print(len(vocabulary()), "words:", " ".join(vocabulary()))
