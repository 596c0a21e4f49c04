"""Seeded near-miss completions: edited reference completions and short random text.

Real model output is mostly *almost* right, so most cases here are a reference completion with a
few characters deleted, inserted or replaced, or cut short; the rest is random text over the
characters structured formats are made of. A fixed seed gives the same cases in every run, so a
failure the kit reports can be reproduced.
"""

from __future__ import annotations

import random
from typing import Sequence

ALPHABET = '{}[]<>/"\',:=;#-.+eE0123456789 \n\tabcxyzNaTrufls\\\udcff\u00e9\x00'
"""Characters the random edits draw from: structure of JSON/XML/key=value, digits, literals, junk."""


def _piece(rng: random.Random, longest: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, longest)))


def edit_text(text: str, rng: random.Random) -> str:
    """Apply one to four random edits (delete, insert, replace, truncate) to ``text``."""
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(text))
        action = rng.choice(("delete", "insert", "replace", "truncate"))
        piece = _piece(rng, 6)
        if action == "delete":
            text = text[:at] + text[at + len(piece) :]
        elif action == "insert":
            text = text[:at] + piece + text[at:]
        elif action == "replace":
            text = text[:at] + piece + text[at + len(piece) :]
        else:
            text = text[:at]
    return text


def fuzz_completions(references: Sequence[str], count: int, seed: int | str = 0) -> list[str]:
    """``count`` deterministic near-miss completions: three in four edit one of ``references``
    (all random text when there is none), the rest are random strings of up to 300 characters."""
    rng = random.Random(f"rlstruct.testing.fuzz:{seed}")
    cases = []
    for index in range(count):
        if references and index % 4 != 3:
            cases.append(edit_text(rng.choice(references), rng))
        else:
            cases.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 300))))
    return cases
