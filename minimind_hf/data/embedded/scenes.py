"""Items and scenes of the synthetic image sets: which shapes exist, how they are split into
train / held-out, and how a scene is laid out, drawn and encoded (Pillow).

An *item* is one shape's attributes, ``Item("circle", "red", "left")``: 3 shapes x 6 colours
x 5 positions = 90 items, split over items (never texts or pixels). A :class:`Scene` holds
everything needed to redraw an image (:func:`draw_scene`), so answers can be verified from
the pixels; :func:`encode_scene` stores it as RGB / RGBA / palette / grayscale PNG or JPEG.
"""

from __future__ import annotations

import functools
import io
import random
from collections import Counter
from dataclasses import dataclass

SHAPES = ("circle", "square", "triangle")
# Far apart in RGB so a nearest-colour read-back (and a tiny vision tower) cannot confuse them.
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
POSITIONS = ("left", "right", "top", "bottom", "center")
# Neutral tones, each at RGB distance >= 100 from every shape colour (tested).
BACKGROUNDS = {"grey": (128, 128, 128), "slate": (70, 80, 95), "sand": (190, 180, 150)}
MIN_CONTRAST = 100
MIN_GRAY_CONTRAST = 50  # luminance gap needed before a scene may be stored as grayscale

SIZES = ((32, 32), (48, 48), (64, 64), (64, 80), (80, 64))  # (width, height)
MULTI_SHAPE_SIZES = SIZES[1:]  # 32 px is too small for three shapes
# Storage format -> probability. "L" falls back to "RGB" where colour matters or contrast is low.
STORAGES = {"RGB": 0.70, "RGBA": 0.08, "P": 0.08, "L": 0.06, "JPEG": 0.08}
NOISE_PROBABILITY = 0.3
NOISE_ALPHA = 0.1  # blend weight of the grey noise: at most +-13 levels

# ----------------------------------------------------------------------------- items and split


@dataclass(frozen=True, order=True)
class Item:
    """One shape's attributes: the unit the train / held-out split is made over."""

    shape: str
    colour: str
    position: str

    @property
    def text(self) -> str:
        return f"{self.colour} {self.shape} {self.position}"


ALL_ITEMS = tuple(Item(s, c, p) for s in SHAPES for c in COLOURS for p in POSITIONS)


def split_items(seed: int = 0, held_out_fraction: float = 0.2) -> tuple[list[Item], list[Item]]:
    """(train, held_out) items: disjoint, seeded, each sorted.

    Items are held out in a seeded order, skipping any that would leave less than
    ``MIN_TRAINING_SHARE`` of its groups in training - a group being every item with the
    same value of one attribute, or of two ("yellow", "yellow triangle", "triangle on the
    left"). Otherwise a purely random split can hold out nearly all yellow triangles, and
    "yellow means not a triangle" becomes a shortcut that held-out questions punish.
    """
    shuffled = list(ALL_ITEMS)
    random.Random(f"vision-split:{seed}").shuffle(shuffled)
    n_held = max(1, round(len(shuffled) * held_out_fraction))
    sizes = Counter(group for item in ALL_ITEMS for group in _groups(item))
    remaining = sizes.copy()
    held_out = []
    for item in shuffled:
        if len(held_out) == n_held:
            break
        if all(remaining[g] - 1 >= MIN_TRAINING_SHARE * sizes[g] for g in _groups(item)):
            held_out.append(item)
            remaining.subtract(_groups(item))
    return sorted(set(ALL_ITEMS) - set(held_out)), sorted(held_out)


MIN_TRAINING_SHARE = 0.6


def _groups(item: Item) -> list[tuple]:
    """The attribute groups an item belongs to: ((attribute, value), ...) for one or two attributes."""
    pairs = (("shape", item.shape), ("colour", item.colour), ("position", item.position))
    return [(a,) for a in pairs] + [(a, b) for i, a in enumerate(pairs) for b in pairs[i + 1 :]]


# ----------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class Shape:
    shape: str
    colour: str
    position: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 inclusive, in pixels


@dataclass(frozen=True)
class Scene:
    """Everything needed to draw (and re-draw) one image file."""

    file: str
    size: tuple[int, int]  # width, height
    storage: str  # "RGB", "RGBA", "P", "L" (PNG modes) or "JPEG"
    background: str
    noise_seed: int  # 0: plain background
    shapes: tuple[Shape, ...]

    def to_dict(self) -> dict:
        # By hand: dataclasses.asdict deep-copies and dominated record building.
        shapes = [
            {"shape": s.shape, "colour": s.colour, "position": s.position, "box": list(s.box)} for s in self.shapes
        ]
        return {
            "file": self.file,
            "size": list(self.size),
            "storage": self.storage,
            "background": self.background,
            "noise_seed": self.noise_seed,
            "shapes": shapes,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        shapes = tuple(Shape(s["shape"], s["colour"], s["position"], tuple(s["box"])) for s in data["shapes"])
        return cls(data["file"], tuple(data["size"]), data["storage"], data["background"], data["noise_seed"], shapes)


def _luminance(rgb) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b  # what Image.convert("L") uses


def _distance(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


def _layout(items: list[Item], size: tuple[int, int], rng: random.Random) -> tuple[Shape, ...]:
    """Boxes for the items (distinct positions). One shape is big (36-46% of the short side);
    several are smaller (24-28%) and pushed further out, so they never overlap."""
    width, height = size
    short = min(width, height)
    single = len(items) == 1
    near, jitter = (0.27, 0.03) if single else (0.18, 0.0)
    anchors = {
        "left": (near, 0.5),
        "right": (1 - near, 0.5),
        "top": (0.5, near),
        "bottom": (0.5, 1 - near),
        "center": (0.5, 0.5),
    }
    shapes = []
    for item in items:
        side = round(short * (rng.uniform(0.36, 0.46) if single else rng.uniform(0.24, 0.28)))
        fx, fy = anchors[item.position]
        cx = (fx + rng.uniform(-jitter, jitter)) * width
        cy = (fy + rng.uniform(-jitter, jitter)) * height
        x0 = min(max(round(cx - side / 2), 0), width - side)
        y0 = min(max(round(cy - side / 2), 0), height - side)
        shapes.append(Shape(item.shape, item.colour, item.position, (x0, y0, x0 + side - 1, y0 + side - 1)))
    return tuple(shapes)


@functools.cache
def contrasting_backgrounds(colours: tuple[str, ...], grayscale: bool = False) -> list[str]:
    """Backgrounds that stand out from every colour (in luminance too, for grayscale files)."""

    def ok(background, colour):
        bg, fg = BACKGROUNDS[background], COLOURS[colour]
        if grayscale:
            return abs(_luminance(bg) - _luminance(fg)) >= MIN_GRAY_CONTRAST
        return _distance(bg, fg) >= MIN_CONTRAST

    return [name for name in BACKGROUNDS if all(ok(name, colour) for colour in colours)]


def _weighted_choice(weights: dict, rng: random.Random):
    # One rng.random() call; random.choices is needlessly slow for one draw.
    r = rng.random() * sum(weights.values())
    for value, weight in weights.items():
        r -= weight
        if r < 0:
            return value
    return value


def make_scene(file: str, items: list[Item], rng: random.Random, allow_grayscale: bool = False) -> Scene:
    """A random rendering of the items: size, storage format, background, noise, jitter."""
    size = rng.choice(SIZES if len(items) == 1 else MULTI_SHAPE_SIZES)
    storage = _weighted_choice(STORAGES, rng)
    colours = tuple(sorted({item.colour for item in items}))
    if storage == "L" and not (allow_grayscale and contrasting_backgrounds(colours, grayscale=True)):
        storage = "RGB"
    background = rng.choice(contrasting_backgrounds(colours, grayscale=storage == "L"))
    # Palette images are flat graphics: noise would only blur their few exact colours.
    noisy = storage != "P" and rng.random() < NOISE_PROBABILITY
    noise_seed = rng.randrange(1, 2**31) if noisy else 0
    suffix = ".jpg" if storage == "JPEG" else ".png"
    return Scene(file + suffix, size, storage, background, noise_seed, _layout(items, size, rng))


def draw_scene(scene: Scene):
    """The scene as an RGB PIL image (before conversion to its storage format)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", scene.size, BACKGROUNDS[scene.background])
    if scene.noise_seed:
        # Soft grey blotches: noise at a quarter of the resolution, upscaled. randbytes is
        # seeded and platform-stable (unlike Image.effect_noise); coarse noise keeps PNGs small.
        coarse = (-(-scene.size[0] // 4), -(-scene.size[1] // 4))
        noise = random.Random(scene.noise_seed).randbytes(coarse[0] * coarse[1])
        noise = Image.frombytes("L", coarse, noise).convert("RGB").resize(scene.size, Image.Resampling.BILINEAR)
        image = Image.blend(image, noise, NOISE_ALPHA)
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        fill = COLOURS[shape.colour]
        x0, y0, x1, y1 = shape.box
        if shape.shape == "circle":
            draw.ellipse(shape.box, fill=fill)
        elif shape.shape == "square":
            draw.rectangle(shape.box, fill=fill)
        else:  # triangle, apex up
            draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=fill)
    return image


def encode_scene(scene: Scene) -> bytes:
    """The file bytes: fixed encoder settings and no metadata, so the same scene gives the same bytes."""
    from PIL import Image

    image = draw_scene(scene)
    buffer = io.BytesIO()
    if scene.storage == "JPEG":
        image.save(buffer, "JPEG", quality=90, subsampling=0)  # 4:4:4 keeps small colour shapes intact
    elif scene.storage == "P":
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(buffer, "PNG", compress_level=6)
    else:
        image.convert(scene.storage).save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()
