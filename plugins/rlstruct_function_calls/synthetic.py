"""Seeded synthetic function-calling records over a small built-in tool library.

The library (weather, currency conversion, calendar events, web search, math) is defined once,
in ``library.json`` next to this module, and rendered per record in one of the three accepted tool shapes (OpenAI, plain JSON Schema,
xLAM), mixed within a record. Requests hold one to three calls (parallel calls may use the
same tool twice); optional parameters are sometimes given and sometimes left out (then the
expected call leaves them out too). A record belongs to a split by a hash of its query (the
shared scheme of :mod:`rlstruct.splits`), so different splits never share a prompt.

Difficulty (see docs/tasks/function-calls.md, "Difficulty") moves :class:`Knobs`:

- *parallel calls*: the distribution of calls per request (always one at difficulty 0, up to
  four at 1);
- *tools offered*: how many unused library tools are offered besides the needed ones;
- *optional parameters*: the chance that a request sets an optional parameter (never at 0).

At the default difficulty (0.5, or ``None``) the records are exactly those of the original
generator: the same random draws in the same order.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from rlstruct.curriculum import DEFAULT_DIFFICULTY, check_difficulty, int_range, level
from rlstruct.splits import generate_split

__all__ = ["LIBRARY", "Knobs", "ParamSpec", "ToolSpec", "generate", "knobs_for", "render_tool"]

_MISSING = object()


@dataclass(frozen=True)
class ParamSpec:
    """One tool parameter, with its xLAM type string and its JSON Schema equivalent."""

    name: str
    py_type: str
    schema: dict[str, Any]
    description: str
    required: bool = True
    default: Any = _MISSING


@dataclass(frozen=True)
class ToolSpec:
    """One library tool."""

    name: str
    description: str
    params: tuple[ParamSpec, ...] = field(default_factory=tuple)


def _param(raw: dict[str, Any]) -> ParamSpec:
    """A parameter from library.json: required exactly when it has no ``default``."""
    default = raw.get("default", _MISSING)
    return ParamSpec(raw["name"], raw["py_type"], raw["schema"], raw["description"], default is _MISSING, default)


# The tool library and the words requests are made of: data, in library.json next to this module
# (read once, at import). Their order is part of the generator: reordering an entry changes every record.
_DATA = json.loads(Path(__file__).with_name("library.json").read_text(encoding="utf-8"))

LIBRARY: dict[str, ToolSpec] = {
    tool["name"]: ToolSpec(tool["name"], tool["description"], tuple(map(_param, tool["params"])))
    for tool in _DATA["tools"]
}
"""Every library tool by name, in library.json's order."""

SHAPES = ("openai", "plain", "xlam")


def render_tool(spec: ToolSpec, shape: str) -> dict[str, Any]:
    """Render a library tool in one of the accepted raw shapes (``openai``, ``plain``, ``xlam``)."""
    if shape == "xlam":
        params: dict[str, Any] = {}
        for p in spec.params:
            entry: dict[str, Any] = {"description": p.description, "type": p.py_type + ("" if p.required else ", optional")}
            if p.default is not _MISSING:
                entry["default"] = copy.deepcopy(p.default)
            params[p.name] = entry
        return {"name": spec.name, "description": spec.description, "parameters": params}
    properties: dict[str, Any] = {}
    for p in spec.params:
        prop = {**copy.deepcopy(p.schema), "description": p.description}
        if p.default is not _MISSING:
            prop["default"] = copy.deepcopy(p.default)
        properties[p.name] = prop
    plain = {
        "name": spec.name,
        "description": spec.description,
        "parameters": {
            "type": "object",
            "properties": properties,
            "required": [p.name for p in spec.params if p.required],
        },
    }
    if shape == "plain":
        return plain
    if shape == "openai":
        return {"type": "function", "function": plain}
    raise ValueError(f"unknown tool shape {shape!r} (known: {', '.join(SHAPES)})")


# -- request fragments: each returns (text, call) ---------------------------------------------
_CITIES: list[str] = _DATA["cities"]
_CURRENCIES: list[str] = _DATA["currencies"]
_TITLES: list[str] = _DATA["event_titles"]
_PEOPLE: list[str] = _DATA["people"]
_TOPICS: list[str] = _DATA["search_topics"]
_LANGUAGES: dict[str, str] = _DATA["languages"]

Fragment = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Knobs:
    """What difficulty sets in the generator (the defaults are the original generator's)."""

    call_weights: tuple[float, ...] = (50, 35, 15)
    """Relative weights of 1, 2, 3 (and 4) calls per request (easy (100,): one call; hard
    (10, 25, 35, 30))."""
    distractors: tuple[int, int] = (1, 2)
    """Inclusive range of unused tools offered besides the called ones (easy (0, 0), hard (3, 5);
    capped by the library)."""
    optional: float = 1.0
    """Factor on the chance of setting each optional parameter (0 at difficulty 0, 2 at 1; capped at 1)."""


def knobs_for(difficulty: float) -> Knobs:
    """The :class:`Knobs` at ``difficulty`` in [0, 1] (the defaults at 0.5)."""
    weights = tuple(level(difficulty, easy, default, hard) for easy, default, hard in
                    zip((100, 0, 0, 0), (50, 35, 15, 0), (10, 25, 35, 30)))
    while weights and weights[-1] == 0:  # no zero-weight tail: the default draws exactly as before
        weights = weights[:-1]
    return Knobs(
        call_weights=weights,
        distractors=int_range(difficulty, (0, 0), (1, 2), (3, 5)),
        optional=level(difficulty, 0.0, 1.0, 2.0),
    )


def _chance(p: float, knobs: Knobs) -> float:
    """The chance ``p`` of an optional parameter scaled by ``knobs.optional`` (exactly ``p`` at 1)."""
    return p if knobs.optional == 1.0 else min(1.0, p * knobs.optional)


def _weather(rng: random.Random, knobs: Knobs) -> Fragment:
    city = rng.choice(_CITIES)
    args: dict[str, Any] = {"city": city}
    text = f"get the weather forecast for {city}"
    if rng.random() < _chance(0.4, knobs):
        days = rng.randint(2, 10)
        args["days"] = days
        text += f" for the next {days} days"
    roll = rng.random()
    if roll < _chance(0.3, knobs):
        args["unit"] = "fahrenheit"
        text += " in fahrenheit"
    elif roll < _chance(0.45, knobs):
        args["unit"] = "celsius"  # the default, stated explicitly
        text += " in celsius"
    return text, {"name": "get_weather", "arguments": args}


def _currency(rng: random.Random, knobs: Knobs) -> Fragment:
    source, target = rng.sample(_CURRENCIES, 2)
    amount: int | float = rng.randint(1, 20000) if rng.random() < 0.5 else round(rng.uniform(1, 5000), 2)
    return (f"convert {amount} {source} to {target}",
            {"name": "convert_currency", "arguments": {"amount": amount, "from_currency": source, "to_currency": target}})


def _calendar(rng: random.Random, knobs: Knobs) -> Fragment:
    title = rng.choice(_TITLES)
    date = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    start = f"{rng.randint(7, 19):02d}:{rng.choice(['00', '15', '30', '45'])}"
    args: dict[str, Any] = {"title": title, "date": date, "start_time": start}
    text = f"create a calendar event titled '{title}' on {date} at {start}"
    if rng.random() < _chance(0.4, knobs):
        minutes = rng.choice([15, 30, 45, 90, 120])
        args["duration_minutes"] = minutes
        text += f" lasting {minutes} minutes"
    if rng.random() < _chance(0.4, knobs):
        people = rng.sample(_PEOPLE, rng.randint(1, 3))
        args["attendees"] = people
        text += " with " + " and ".join(people)
    return text, {"name": "create_calendar_event", "arguments": args}


def _search(rng: random.Random, knobs: Knobs) -> Fragment:
    topic = rng.choice(_TOPICS)
    args: dict[str, Any] = {"query": topic}
    text = f"search the web for '{topic}'"
    if rng.random() < _chance(0.4, knobs):
        count = rng.choice([3, 5, 20, 25])
        args["max_results"] = count
        text += f", top {count} results"
    if rng.random() < _chance(0.3, knobs):
        language = rng.choice(sorted(_LANGUAGES))
        args["language"] = _LANGUAGES[language]
        text += f", results in {language}"
    return text, {"name": "web_search", "arguments": args}


def _power(rng: random.Random, knobs: Knobs) -> Fragment:
    base: int | float = rng.randint(2, 99) if rng.random() < 0.6 else round(rng.uniform(0.5, 20), 1)
    exponent = rng.randint(2, 12)
    return (f"compute {base} raised to the power of {exponent}",
            {"name": "math_power", "arguments": {"base": base, "exponent": exponent}})


def _mean(rng: random.Random, knobs: Knobs) -> Fragment:
    numbers: list[int | float] = [
        rng.randint(-50, 500) if rng.random() < 0.7 else round(rng.uniform(-50, 500), 1)
        for _ in range(rng.randint(3, 6))
    ]
    shown = ", ".join(str(n) for n in numbers)
    return f"find the average of {shown}", {"name": "math_mean", "arguments": {"numbers": numbers}}


def _gcd(rng: random.Random, knobs: Knobs) -> Fragment:
    a, b = rng.randint(2, 100000), rng.randint(2, 100000)
    return (f"find the greatest common divisor of {a} and {b}",
            {"name": "math_gcd", "arguments": {"a": a, "b": b}})


_FRAGMENTS: list[Callable[[random.Random, Knobs], Fragment]] = [
    _weather, _currency, _calendar, _search, _power, _mean, _gcd,
]

def _record(rng: random.Random, knobs: Knobs = Knobs()) -> dict[str, Any]:
    weights = list(knobs.call_weights)
    count = rng.choices(list(range(1, len(weights) + 1)), weights=weights)[0]
    texts, answers, keys = [], [], set()
    while len(answers) < count:
        text, call = rng.choice(_FRAGMENTS)(rng, knobs)
        key = json.dumps(call, sort_keys=True)
        if key in keys:
            continue
        keys.add(key)
        texts.append(text)
        answers.append(call)
    if count == 1:
        query = texts[0][0].upper() + texts[0][1:] + "."
    else:
        query = "Please " + "; ".join(texts[:-1]) + "; and " + texts[-1] + "."
    called = list(dict.fromkeys(call["name"] for call in answers))
    others = [name for name in LIBRARY if name not in called]
    low, high = knobs.distractors
    high = min(high, len(others))
    offered = called + rng.sample(others, rng.randint(min(low, high), high))
    rng.shuffle(offered)
    tools = [render_tool(LIBRARY[name], rng.choice(SHAPES)) for name in offered]
    return {"query": query, "tools": tools, "answers": answers}


def generate(split: str, size: int, seed: int, difficulty: float | None = None) -> list[dict[str, Any]]:
    """``size`` raw records (tools in mixed raw shapes) for ``split``, seeded and deterministic.

    ``difficulty`` in [0, 1] (``None``: the default, 0.5) sets :class:`Knobs`.
    """
    value = DEFAULT_DIFFICULTY if difficulty is None else check_difficulty(difficulty)
    make = partial(_record, knobs=knobs_for(value))
    return generate_split("function-calls", split, size, seed, make, key=lambda record: record["query"])
