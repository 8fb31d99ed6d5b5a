"""Synthetic scenes for the bundled task: coloured shapes on a 2x2 grid.

A 56x56 image cut into 14 px patches, merged 2x2 by Qwen2.5-VL, gives exactly one vision
token per grid cell, so a tiny vision tower only has to recognise one shape per token.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from PIL import Image, ImageDraw

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
# Read-only so no caller can recolour the task for everyone else in the process.
COLOUR_RGB = MappingProxyType(
    {
        "red": (220, 30, 30),
        "green": (30, 170, 50),
        "blue": (30, 60, 220),
        "yellow": (235, 200, 20),
    }
)
CELL_NAMES = ("top left", "top right", "bottom left", "bottom right")
NUM_CELLS = len(CELL_NAMES)
MAX_OBJECTS = NUM_CELLS


@dataclass(frozen=True, order=True)
class SceneObject:
    """One shape in one cell of the 2x2 grid (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)."""

    cell: int
    colour: str
    shape: str

    def __post_init__(self) -> None:
        if not 0 <= self.cell < NUM_CELLS:
            raise ValueError(f"cell must be in 0..{NUM_CELLS - 1}, got {self.cell}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; expected one of {COLOURS}")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {SHAPES}")


def plural(shape: str) -> str:
    """English plural of a shape word (all of ours take a plain -s)."""
    return shape + "s"


def random_scene(rng: random.Random) -> tuple[SceneObject, ...]:
    """1..4 objects in distinct cells, sorted by cell; the other cells stay empty."""
    count = rng.randint(1, MAX_OBJECTS)
    cells = sorted(rng.sample(range(NUM_CELLS), count))
    return tuple(SceneObject(cell, rng.choice(COLOURS), rng.choice(SHAPES)) for cell in cells)


def render_scene(objects: Sequence[SceneObject], size: int = 56) -> Image.Image:
    """Draw the scene as an RGB image on white; each shape fills most of its cell."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    cell_px = size // 2
    # A small margin keeps every shape inside its own 14 px patches after the 2x2 merge.
    margin = max(1, cell_px // 9)
    for obj in objects:
        left = (obj.cell % 2) * cell_px + margin
        top = (obj.cell // 2) * cell_px + margin
        right = left + cell_px - 2 * margin - 1
        bottom = top + cell_px - 2 * margin - 1
        fill = COLOUR_RGB[obj.colour]
        if obj.shape == "circle":
            draw.ellipse((left, top, right, bottom), fill=fill)
        elif obj.shape == "square":
            draw.rectangle((left, top, right, bottom), fill=fill)
        else:
            draw.polygon([((left + right) / 2, top), (right, bottom), (left, bottom)], fill=fill)
    return image


def describe(objects: Sequence[SceneObject], keep: Sequence[SceneObject] | None = None) -> str:
    """Caption listing objects in cell order, e.g. "top left: a red circle. bottom right: a blue square."

    `keep` selects the objects to mention (warm-start captions drop some on purpose);
    an empty selection gives an empty string.
    """
    chosen = objects if keep is None else [obj for obj in objects if obj in set(keep)]
    in_cell_order = sorted(chosen, key=lambda obj: obj.cell)
    return " ".join(f"{CELL_NAMES[obj.cell]}: a {obj.colour} {obj.shape}." for obj in in_cell_order)


_CAPTION_ITEM = re.compile(rf"({'|'.join(CELL_NAMES)}): a ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})\.")


def parse_caption(caption: str) -> tuple[SceneObject, ...] | None:
    """The objects a caption in `describe`'s format names; None if any of it is not in that format.

    A cell named twice is malformed too: a faithful caption names each object once.
    """
    text = caption.strip()
    objects, cells, position = [], set(), 0
    while position < len(text):
        match = _CAPTION_ITEM.match(text, position)
        if match is None:
            return None
        cell = CELL_NAMES.index(match.group(1))
        if cell in cells:
            return None
        cells.add(cell)
        objects.append(SceneObject(cell, match.group(2), match.group(3)))
        position = match.end()
        while position < len(text) and text[position] == " ":
            position += 1
    return tuple(objects)


@dataclass(frozen=True)
class CountQuestion:
    """ "How many <colour> <shape>s are there?"; None leaves that attribute unconstrained."""

    colour: str | None = None
    shape: str | None = None

    @property
    def text(self) -> str:
        noun = plural(self.shape) if self.shape else "objects"
        return f"How many {self.colour + ' ' if self.colour else ''}{noun} are there?"

    def count(self, objects: Sequence[SceneObject]) -> int:
        return sum(
            (self.colour is None or obj.colour == self.colour) and (self.shape is None or obj.shape == self.shape)
            for obj in objects
        )


# What a cell question may ask about an object, and the options for each: the whole vocabulary.
ATTRIBUTE_OPTIONS = MappingProxyType({"colour": COLOURS, "shape": SHAPES})


@dataclass(frozen=True)
class CellQuestion:
    """ "What colour is the object in the top left?" (or its shape): a multiple-choice question whose
    options are every colour (or shape), asked only about an occupied cell.

    Colours and shapes are drawn uniformly and independently of the cell (`random_scene`), so
    every option is right equally often: no option text can be guessed blind.
    """

    cell: int
    attribute: str  # a key of ATTRIBUTE_OPTIONS

    def __post_init__(self) -> None:
        if self.attribute not in ATTRIBUTE_OPTIONS:
            raise ValueError(f"unknown attribute {self.attribute!r}; expected one of {tuple(ATTRIBUTE_OPTIONS)}")

    @property
    def text(self) -> str:
        return f"What {self.attribute} is the object in the {CELL_NAMES[self.cell]}?"

    @property
    def options(self) -> tuple[str, ...]:
        return ATTRIBUTE_OPTIONS[self.attribute]

    def answer(self, objects: Sequence[SceneObject]) -> str | None:
        """The asked attribute of the object in the cell; None if no object is there."""
        found = [obj for obj in objects if obj.cell == self.cell]
        return getattr(found[0], self.attribute) if found else None


def random_question(rng: random.Random, objects: Sequence[SceneObject], anchored: float = 0.5) -> CountQuestion:
    """A counting question by colour, shape, both, or neither (all objects).

    With probability `anchored` the asked-about colour and shape come from an object in the
    scene (the answer is at least 1), otherwise from the whole vocabulary. The reasoner learns
    on a half-and-half mix, so "0" is a real answer it cannot win by always guessing.
    """
    kind = rng.choice(("colour", "shape", "colour_shape", "total"))
    if objects and rng.random() < anchored:
        anchor = rng.choice(list(objects))
        colour, shape = anchor.colour, anchor.shape
    else:
        colour, shape = rng.choice(COLOURS), rng.choice(SHAPES)
    return CountQuestion(
        colour=colour if kind in ("colour", "colour_shape") else None,
        shape=shape if kind in ("shape", "colour_shape") else None,
    )


def make_question(rng: random.Random, objects: Sequence[SceneObject]) -> tuple[str, str]:
    """A dataset question about the scene and its answer as a digit string.

    Always about something in the scene: a question whose answer is 0 is answered right from
    any caption that does not invent such an object, so it teaches the captioner nothing.
    """
    question = random_question(rng, objects, anchored=1.0)
    return question.text, str(question.count(objects))
