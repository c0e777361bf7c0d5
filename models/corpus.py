"""The project's small text corpus, generated deterministically from a hand-written grammar.

``models/data/corpus.txt`` (about 80 KB, one sentence per line) is this module's output; it is
committed so that readers need not run anything, and ``python -m models.corpus`` rewrites it.
The text is original to this project (no third-party prose) and trains the character-level GPT of
the QAT demo. (MiniLM's calibration text is ``models/data/calibration.txt``: 200 hand-written
everyday sentences, none close to the evaluation sentences of ``models/data/sentences.txt``; the
grammar's small vocabulary proved too narrow to calibrate with.)
"""

from __future__ import annotations

import random
from pathlib import Path

__all__ = ["CORPUS_PATH", "generate", "load_corpus"]

CORPUS_PATH = Path(__file__).resolve().parent / "data" / "corpus.txt"

_PEOPLE = [
    "the engineer",
    "a student",
    "my neighbour",
    "the old sailor",
    "a young baker",
    "the librarian",
    "our teacher",
    "the gardener",
    "a tired driver",
    "the chemist",
    "the painter",
    "a small child",
    "the farmer",
    "my sister",
    "the pilot",
    "a careful nurse",
    "the mayor",
    "the shopkeeper",
]
_THINGS = [
    "the bridge",
    "a letter",
    "the garden",
    "the old clock",
    "a map of the coast",
    "the kitchen",
    "a wooden boat",
    "the river",
    "the red bicycle",
    "a loaf of bread",
    "the mountain road",
    "the station",
    "a cup of tea",
    "the library",
    "the wind turbine",
    "a pair of boots",
    "the harbour",
    "the printer",
    "a basket of apples",
    "the lighthouse",
    "the winter coat",
    "the small radio",
]
_VERBS = [
    "repaired",
    "painted",
    "found",
    "carried",
    "cleaned",
    "described",
    "measured",
    "visited",
    "photographed",
    "borrowed",
    "forgot",
    "opened",
    "counted",
    "followed",
    "sketched",
    "moved",
]
_ADVERBS = [
    "slowly",
    "quietly",
    "before noon",
    "in the rain",
    "after dinner",
    "with great care",
    "at dawn",
    "without a word",
    "twice",
    "as usual",
    "for the first time",
    "late at night",
    "on Sunday",
]
_PLACES = [
    "near the market",
    "by the sea",
    "in the valley",
    "behind the school",
    "across the street",
    "in a quiet village",
    "at the edge of town",
    "under the old oak",
    "on the third floor",
]
_ADJECTIVES = [
    "bright",
    "quiet",
    "heavy",
    "narrow",
    "warm",
    "strange",
    "simple",
    "broken",
    "famous",
    "green",
    "crowded",
    "empty",
    "useful",
    "gentle",
    "cold",
    "noisy",
]
_TOPICS = [
    "the weather",
    "the price of coffee",
    "a new train line",
    "the summer festival",
    "an old song",
    "the football match",
    "the history of the town",
    "a recipe for soup",
    "the night sky",
    "the local election",
    "a book about birds",
    "the broken heater",
]
_FACTS = [
    "water boils at a lower temperature on high mountains",
    "bees visit thousands of flowers in a single day",
    "a year on the planet is a little longer than three hundred and sixty five days",
    "sound travels faster in water than in air",
    "most trees grow more slowly in cold climates",
    "the moon always shows the same face to the earth",
    "salt makes ice melt at lower temperatures",
    "a map is always a simplified picture of the land",
    "bread rises because yeast produces small bubbles of gas",
    "rivers carry sand and stones down to the sea",
]
_NUMBERS = ["two", "three", "four", "five", "six", "seven", "ten", "twelve", "twenty"]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _sentence(rng: random.Random) -> str:
    c = rng.choice
    forms = [
        lambda: f"{_cap(c(_PEOPLE))} {c(_VERBS)} {c(_THINGS)} {c(_ADVERBS)}.",
        lambda: f"{_cap(c(_PEOPLE))} {c(_VERBS)} {c(_THINGS)} {c(_PLACES)}.",
        lambda: f"{_cap(c(_THINGS))} {c(_PLACES)} looked {c(_ADJECTIVES)} and {c(_ADJECTIVES)}.",
        lambda: f"Yesterday {c(_PEOPLE)} talked about {c(_TOPICS)} for {c(_NUMBERS)} hours.",
        lambda: f"Did {c(_PEOPLE)} really say that {c(_FACTS)}?",
        lambda: f"{_cap(c(_PEOPLE))} explained that {c(_FACTS)}.",
        lambda: f"After {c(_NUMBERS)} days, {c(_PEOPLE)} {c(_VERBS)} {c(_THINGS)} again.",
        lambda: f"Nobody knew why {c(_THINGS)} was so {c(_ADJECTIVES)} {c(_ADVERBS)}.",
        lambda: f"{_cap(c(_PEOPLE))} and {c(_PEOPLE)} {c(_VERBS)} {c(_THINGS)} together.",
        lambda: f"It is often said that {c(_FACTS)}, but {c(_PEOPLE)} was not sure.",
        lambda: f"When {c(_PEOPLE)} {c(_VERBS)} {c(_THINGS)}, everyone {c(_PLACES)} noticed.",
        lambda: f"There were {c(_NUMBERS)} {c(_ADJECTIVES)} houses {c(_PLACES)}.",
    ]
    return c(forms)()


def generate(n_bytes: int = 80_000, seed: int = 0) -> str:
    """Sentences, one per line, until the text reaches ``n_bytes`` (same output for the same seed)."""
    rng = random.Random(seed)
    lines: list[str] = []
    size = 0
    while size < n_bytes:
        line = _sentence(rng)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def load_corpus(path: str | Path = CORPUS_PATH) -> str:
    """The committed corpus text."""
    return Path(path).read_text(encoding="utf-8")


if __name__ == "__main__":
    CORPUS_PATH.write_text(generate(), encoding="utf-8")
    print(f"wrote {CORPUS_PATH}")
