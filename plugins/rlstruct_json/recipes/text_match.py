"""Word-level text normalisation used to compare recipe names, ingredients and steps."""

from __future__ import annotations

import re

from rlstruct import normalize_text

_WORD = re.compile(r"[^\W_]+")

STOPWORDS = frozenset(
    "a an and or the of to in into on onto with for at by from over until then it its them this "
    "that is are be each all some your you about more".split()
)
"""Words ignored when comparing step texts and dish names."""


def singular(word: str) -> str:
    """A crude English singular (tomatoes -> tomato, berries -> berry, onions -> onion)."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("oes", "ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """Lower-cased, singularised word tokens of ``text`` (letters and digits only)."""
    return [singular(w) for w in _WORD.findall(str(text).lower())]


def content_words(text: str) -> frozenset[str]:
    """The set of :func:`words` of ``text`` minus :data:`STOPWORDS`."""
    return frozenset(w for w in words(text) if w not in STOPWORDS)


def name_key(text: str) -> str:
    """Canonical form of an ingredient name: "Cherry Tomatoes " -> "cherry tomato"."""
    return " ".join(words(normalize_text(text)))


def head_noun(text: str) -> str:
    """Last word of :func:`name_key` (the noun an instruction is most likely to use)."""
    key = name_key(text)
    return key.rsplit(" ", 1)[-1] if key else ""
