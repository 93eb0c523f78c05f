"""A small, independent prompt-adherence checker for generated shape images.

It does not use any learned model: it looks at pixels only.

* background colour: per-channel median of the 2-pixel image border, mapped to
  the nearest named colour;
* foreground: pixels far from the background colour; the largest 4-connected
  component is "the shape";
* foreground colour: median colour of the component's interior pixels, mapped
  to the nearest named colour;
* position: the component's centroid, in a 3x3 grid (left/center/right x
  top/center/bottom);
* shape: geometry of the component mask - hole ratio (ring), fill ratio of its
  bounding box, and row/column occupancy profiles - matched to the nearest
  prototype (prototypes are measured on clean renders of each shape).

``analyze(img)`` returns a dict; ``score(analysis, expected)`` compares with the
attributes of a prompt.  ``python checker.py`` reports the checker's own
accuracy on ground-truth generator images.
"""
from __future__ import annotations

import os
import sys
from collections import deque
from functools import lru_cache

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shapes import COLORS, SHAPES, ShapeGenerator

_NAMES = list(COLORS)
_PALETTE = np.array([COLORS[n] for n in _NAMES], dtype=np.float32)


def nearest_color(rgb) -> str:
    d = ((_PALETTE - np.asarray(rgb, dtype=np.float32)[None]) ** 2).sum(1)
    return _NAMES[int(d.argmin())]


def _components(mask: np.ndarray):
    """4-connected components of a boolean mask -> list of index arrays."""
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    comps = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        q = deque([(y0, x0)])
        seen[y0, x0] = True
        pts = []
        while q:
            y, x = q.popleft()
            pts.append((y, x))
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    q.append((yy, xx))
        comps.append(np.array(pts))
    return comps


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Mask with interior holes filled (background not reachable from the border)."""
    outside = np.zeros(mask.shape, dtype=bool)
    h, w = mask.shape
    q = deque()
    for y in range(h):
        for x in (0, w - 1):
            if not mask[y, x] and not outside[y, x]:
                outside[y, x] = True; q.append((y, x))
    for x in range(w):
        for y in (0, h - 1):
            if not mask[y, x] and not outside[y, x]:
                outside[y, x] = True; q.append((y, x))
    while q:
        y, x = q.popleft()
        for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= yy < h and 0 <= xx < w and not mask[yy, xx] and not outside[yy, xx]:
                outside[yy, xx] = True
                q.append((yy, xx))
    return ~outside


def _profile(m: np.ndarray, axis: int, n=5):
    """Occupancy (fraction filled) of n evenly spaced rows (axis=1) or columns (axis=0)."""
    L = m.shape[0] if axis == 1 else m.shape[1]
    out = []
    for f in np.linspace(0.15, 0.85, n):
        i = min(L - 1, int(f * L))
        line = m[i, :] if axis == 1 else m[:, i]
        out.append(line.mean())
    return out


def shape_features(comp_mask: np.ndarray):
    ys, xs = np.nonzero(comp_mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = comp_mask[y0:y1, x0:x1]
    # pad by one so that hole filling works for shapes touching the border
    filled = _fill_holes(np.pad(crop, 1))[1:-1, 1:-1]
    area_f = filled.sum()
    hole = (filled & ~crop).sum() / max(area_f, 1)
    fill = area_f / crop.size
    aspect = crop.shape[1] / crop.shape[0]
    feats = [fill * 2, hole * 4, aspect] + _profile(filled, 1) + _profile(filled, 0)
    return np.array(feats, dtype=np.float32)


@lru_cache(maxsize=1)
def _prototypes():
    """Mean feature vector per shape, measured on clean renders (white
    background, no colour noise) at many sizes and sub-pixel offsets."""
    import random

    from shapes import render
    rng = random.Random(0)
    protos = {}
    for shape in SHAPES:
        fs = []
        for i in range(24):
            r = 6 + i * 0.5
            attrs = {"background": "white", "shapes": [dict(shape=shape, color="black", r=r,
                     cx=32 + rng.uniform(-1, 1), cy=32 + rng.uniform(-1, 1))]}
            img = np.asarray(render(attrs, random.Random(i)))
            a = analyze(img, with_shape=False)
            fs.append(shape_features(a["_mask"]))
        protos[shape] = np.mean(fs, 0)
    return protos


def classify_shape(comp_mask: np.ndarray) -> str:
    f = shape_features(comp_mask)
    best, bd = None, 1e9
    for s, p in _prototypes().items():
        d = float(((f - p) ** 2).sum())
        if d < bd:
            best, bd = s, d
    return best


def position_name(cx: float, cy: float, size=64) -> str:
    lo, hi = size * 0.375, size * 0.625
    v = "top" if cy < lo else ("bottom" if cy > hi else "")
    h = "left" if cx < lo else ("right" if cx > hi else "")
    if v and h:
        return f"{v} {h}"
    return v or h or "center"


def analyze(img, with_shape=True, thresh=70.0) -> dict:
    """Analyze an RGB image (PIL.Image or HxWx3 uint8 array)."""
    a = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img).astype(np.float32)
    h, w, _ = a.shape
    border = np.concatenate([a[:2].reshape(-1, 3), a[-2:].reshape(-1, 3),
                             a[:, :2].reshape(-1, 3), a[:, -2:].reshape(-1, 3)])
    bg_rgb = np.median(border, 0)
    dist = np.sqrt(((a - bg_rgb[None, None]) ** 2).sum(-1))
    fg = dist > thresh
    out = {"background": nearest_color(bg_rgb), "color": None, "shape": None,
           "position": None, "area": 0}
    comps = _components(fg)
    if not comps:
        out["_mask"] = fg
        return out
    comp = max(comps, key=len)
    m = np.zeros((h, w), dtype=bool)
    m[comp[:, 0], comp[:, 1]] = True
    out["_mask"] = m
    out["area"] = int(m.sum())
    if out["area"] < 6:
        return out
    # interior pixels (all 4 neighbours inside) avoid anti-aliased edges
    inner = m.copy()
    inner[1:] &= m[:-1]; inner[:-1] &= m[1:]; inner[:, 1:] &= m[:, :-1]; inner[:, :-1] &= m[:, 1:]
    px = a[inner] if inner.sum() >= 4 else a[m]
    out["color"] = nearest_color(np.median(px, 0))
    cy, cx = comp[:, 0].mean(), comp[:, 1].mean()
    out["position"] = position_name(cx, cy, w)
    out["centroid"] = (float(cx), float(cy))
    if with_shape:
        out["shape"] = classify_shape(m)
    return out


def score(analysis: dict, expected: dict) -> dict:
    """Per-attribute correctness (True/False) for the attributes present in
    ``expected`` (keys: color, shape, background, position)."""
    return {k: analysis.get(k) == v for k, v in expected.items() if v is not None}


def self_test(n=600, seed=4242):
    """Checker accuracy on ground-truth single-shape generator images."""
    gen = ShapeGenerator(seed)
    tot = {"color": 0, "shape": 0, "background": 0, "position": 0}
    conf = {}
    for _ in range(n):
        img, _, at = gen.sample(n_shapes=1)
        s = at["shapes"][0]
        res = analyze(img)
        sc = score(res, {"color": s["color"], "shape": s["shape"], "background": at["background"],
                         "position": s["position"]})
        for k, v in sc.items():
            tot[k] += v
        if not sc["shape"]:
            key = (s["shape"], res["shape"], s["size"])
            conf[key] = conf.get(key, 0) + 1
    return {k: v / n for k, v in tot.items()}, conf


if __name__ == "__main__":
    acc, conf = self_test()
    print("checker accuracy on ground-truth images:", {k: round(v, 3) for k, v in acc.items()})
    print("shape confusions (true, predicted, size): count", sorted(conf.items(), key=lambda x: -x[1])[:12])
