"""Seeded, offline GSM8K-style word problems with worked rationales.

Each template draws its numbers from a ``random.Random`` and writes a question, a step-by-step
rationale with GSM8K calculator annotations (``<<3*4=12>>``) and a final ``#### N`` line, in
GSM8K's own record format ``{"question", "answer"}``.

Splits never share a question: the shared scheme of :mod:`rlstruct.splits` assigns each question
to exactly one split by a hash of its text and seeds the draw with ``"gsm8k-json:{seed}:{split}"``.

Difficulty (see docs/tasks/gsm8k-json.md, "Difficulty") moves :class:`Knobs`:

- *number of operations*: below the default, templates with fewer operations are drawn more
  often, above it those with more (:func:`template_weights`); the shopping template buys
  :attr:`Knobs.items` kinds of item (``2 * items - 1`` operations);
- *size of numbers*: the upper bound of the main quantities (prices, counts, rates, incomes)
  is multiplied by :attr:`Knobs.size`.

At the default difficulty (0.5, or ``None``) the records are exactly those of the original
generator: the same random draws in the same order.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Callable

from rlstruct.curriculum import DEFAULT_DIFFICULTY, check_difficulty, int_level, level
from rlstruct.splits import generate_split

from .numbers import canonical_number

# The words problems are made of: data, in vocabulary.json next to this module (read once, at import).
# Their order is part of the generator: reordering an entry changes every seeded record.
_WORDS = json.loads(Path(__file__).with_name("vocabulary.json").read_text(encoding="utf-8"))
NAMES: list[tuple[str, str]] = [(name, pronoun) for name, pronoun in _WORDS["names"]]
ITEMS: list[str] = _WORDS["items"]
THINGS: list[str] = _WORDS["things"]
RELATIVES: list[str] = _WORDS["relatives"]
SALE_ITEMS: list[str] = _WORDS["sale_items"]
PERCENTS: list[int] = _WORDS["percents"]

Problem = tuple[str, list[str], Fraction]
"""A generated problem: question, rationale lines, answer."""


@dataclass(frozen=True)
class Knobs:
    """What difficulty sets in the templates (the defaults are the original generator's)."""

    size: float = 1.0
    """Factor on the upper bound of the main quantities (0.5 at difficulty 0, 10 at 1)."""
    items: int = 2
    """Kinds of item bought in the shopping template (1 at difficulty 0, 4 at 1)."""
    operation_bias: float = 0.0
    """Exponent on each template's operation count in its draw weight (-2 at 0, +2 at 1; 0: uniform)."""


def knobs_for(difficulty: float) -> Knobs:
    """The :class:`Knobs` at ``difficulty`` in [0, 1] (the defaults at 0.5)."""
    return Knobs(
        size=level(difficulty, 0.5, 1.0, 10.0),
        items=int_level(difficulty, 1, 2, 4),
        operation_bias=level(difficulty, -2.0, 0.0, 2.0),
    )


def _top(low: int, high: int, knobs: Knobs) -> int:
    """``high`` scaled by ``knobs.size`` (exactly ``high`` at size 1), kept above ``low``."""
    return high if knobs.size == 1.0 else max(low + 1, math.floor(high * knobs.size))


def _num(value: Fraction | int) -> str:
    return canonical_number(Fraction(value))


def _person(rng: random.Random) -> tuple[str, str, str]:
    name, subject = rng.choice(NAMES)
    possessive = "her" if subject == "she" else "his"
    return name, subject, possessive


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _shopping(rng: random.Random, knobs: Knobs) -> Problem:
    name, subject, _ = _person(rng)
    things = rng.sample(ITEMS, knobs.items)
    counts = [rng.randint(2, _top(2, 15, knobs)) for _ in things]
    prices = [rng.randint(1, _top(1, 40, knobs)) for _ in things]
    costs = [count * price for count, price in zip(counts, prices)]
    total = sum(costs)
    bought = [f"{count} {thing}s for ${price} each" for thing, count, price in zip(things, counts, prices)]
    question = f"{name} buys {_join(bought)}. How much money does {subject} spend in all?"
    steps = [
        f"The {thing}s cost {count} * ${price} = $<<{count}*{price}={cost}>>{cost}."
        for thing, count, price, cost in zip(things, counts, prices, costs)
    ]
    if len(costs) > 1:
        shown, summed = " + ".join(f"${cost}" for cost in costs), "+".join(map(str, costs))
        steps.append(f"In all, {name} spends {shown} = $<<{summed}={total}>>{total}.")
    return question, steps, Fraction(total)


def _rates(rng: random.Random, knobs: Knobs) -> Problem:
    name, subject, _ = _person(rng)
    rate, hours, days = rng.randint(5, _top(5, 60, knobs)), rng.randint(2, 9), rng.randint(2, _top(2, 30, knobs))
    per_day = rate * hours
    total = per_day * days
    question = (
        f"{name} reads {rate} pages every hour. {subject.capitalize()} reads for {hours} hours "
        f"each day. How many pages does {subject} read in {days} days?"
    )
    steps = [
        f"Each day {subject} reads {rate} * {hours} = <<{rate}*{hours}={per_day}>>{per_day} pages.",
        f"In {days} days {subject} reads {per_day} * {days} = <<{per_day}*{days}={total}>>{total} pages.",
    ]
    return question, steps, Fraction(total)


def _ages(rng: random.Random, knobs: Knobs) -> Problem:
    name, _, possessive = _person(rng)
    relative = rng.choice(RELATIVES)
    age, times, years = rng.randint(3, 20), rng.randint(2, 5), rng.randint(1, 25)
    elder = age * times
    later_young, later_elder = age + years, elder + years
    total = later_young + later_elder
    question = (
        f"{name} is {age} years old. {possessive.capitalize()} {relative} is {times} times as old "
        f"as {name}. In {years} years, what will be the sum of their ages?"
    )
    steps = [
        f"The {relative} is {age} * {times} = <<{age}*{times}={elder}>>{elder} years old now.",
        f"In {years} years {name} will be {age} + {years} = <<{age}+{years}={later_young}>>{later_young}.",
        f"The {relative} will be {elder} + {years} = <<{elder}+{years}={later_elder}>>{later_elder}.",
        f"The sum of their ages will be {later_young} + {later_elder} = "
        f"<<{later_young}+{later_elder}={total}>>{total}.",
    ]
    return question, steps, Fraction(total)


def _splitting(rng: random.Random, knobs: Knobs) -> Problem:
    name, subject, _ = _person(rng)
    things = rng.choice(THINGS)
    friends, each, keep = rng.randint(2, 12), rng.randint(2, _top(2, 40, knobs)), rng.randint(1, _top(1, 30, knobs))
    shared = friends * each
    total = shared + keep
    reflexive = "herself" if subject == "she" else "himself"
    question = (
        f"{name} has {total} {things}. {subject.capitalize()} keeps {keep} for {reflexive} and "
        f"shares the rest equally among {friends} friends. How many {things} does each friend get?"
    )
    steps = [
        f"{name} shares {total} - {keep} = <<{total}-{keep}={shared}>>{shared} {things}.",
        f"Each friend gets {shared} / {friends} = <<{shared}/{friends}={each}>>{each} {things}.",
    ]
    return question, steps, Fraction(each)


def _percentages(rng: random.Random, knobs: Knobs) -> Problem:
    item = rng.choice(SALE_ITEMS)
    price, percent = rng.randint(10, _top(10, 600, knobs)), rng.choice(PERCENTS)
    discount = Fraction(price * percent, 100)
    final = price - discount
    d, f = _num(discount), _num(final)
    question = (
        f"A {item} costs ${price}. During a sale its price is reduced by {percent}%. "
        f"What is the sale price of the {item} in dollars?"
    )
    steps = [
        f"The discount is {percent}/100 * ${price} = $<<{percent}/100*{price}={d}>>{d}.",
        f"The sale price is ${price} - ${d} = $<<{price}-{d}={f}>>{f}.",
    ]
    return question, steps, final


def _savings(rng: random.Random, knobs: Knobs) -> Problem:
    name, subject, _ = _person(rng)
    income = rng.randrange(1500, _top(1700, 8000, knobs), 50)
    spend = rng.randrange(500, income - 100, 50)
    years = rng.randint(1, 6)
    saved = income - spend
    months = 12 * years
    total = saved * months
    question = (
        f"{name} earns ${income} each month and spends ${spend} of it. {subject.capitalize()} "
        f"saves the rest. How much money does {subject} save in {years} years?"
    )
    steps = [
        f"Each month {subject} saves ${income} - ${spend} = $<<{income}-{spend}={saved}>>{saved}.",
        f"{years} years have 12 * {years} = <<12*{years}={months}>>{months} months.",
        f"{subject.capitalize()} saves ${saved} * {months} = $<<{saved}*{months}={total}>>{total}.",
    ]
    return question, steps, Fraction(total)


def _temperature(rng: random.Random, knobs: Knobs) -> Problem:
    start, drop, rise = rng.randint(-10, 20), rng.randint(3, 30), rng.randint(1, 15)
    night = start - drop
    morning = night + rise
    question = (
        f"At noon the temperature was {start} degrees. By midnight it had dropped by {drop} "
        f"degrees, and by morning it had risen by {rise} degrees. What was the temperature in "
        f"the morning, in degrees?"
    )
    steps = [
        f"At midnight it was {start} - {drop} = <<{start}-{drop}={night}>>{night} degrees.",
        f"In the morning it was {night} + {rise} = <<{night}+{rise}={morning}>>{morning} degrees.",
    ]
    return question, steps, Fraction(morning)


TEMPLATES: list[Callable[[random.Random, Knobs], Problem]] = [
    _shopping, _rates, _ages, _splitting, _percentages, _savings, _temperature,
]
"""Every problem template (shopping totals, rates, ages, splitting, percentages, savings, temperature)."""

OPERATIONS: list[int] = [3, 2, 4, 2, 2, 3, 2]
"""Arithmetic operations in each template's rationale, in :data:`TEMPLATES` order (shopping at 2 items)."""


def template_weights(knobs: Knobs) -> list[float] | None:
    """Draw weights of :data:`TEMPLATES`: ``operations ** operation_bias``; ``None`` means uniform."""
    if knobs.operation_bias == 0.0:
        return None
    return [ops**knobs.operation_bias for ops in OPERATIONS]


def _final_line(answer: Fraction, rng: random.Random) -> str:
    text = _num(answer)
    if answer.denominator == 1 and abs(answer) >= 1000 and rng.random() < 0.5:
        text = f"{answer.numerator:,}"  # like the released files: "#### 2,125"
    return f"#### {text}"


def _record(rng: random.Random, knobs: Knobs = Knobs()) -> dict[str, str]:
    weights = template_weights(knobs)
    # uniform draws keep the original rng.choice call, so the default's random stream is unchanged
    template = rng.choice(TEMPLATES) if weights is None else rng.choices(TEMPLATES, weights)[0]
    question, steps, answer = template(rng, knobs)
    return {"question": question, "answer": "\n".join([*steps, _final_line(answer, rng)])}


def generate(split: str, size: int, seed: int, difficulty: float | None = None) -> list[dict[str, str]]:
    """``size`` distinct GSM8K-format records ``{"question", "answer"}`` of ``split``.

    Deterministic in (split, size, seed, difficulty); a larger ``size`` extends a smaller one.
    ``difficulty`` in [0, 1] (``None``: the default, 0.5) sets :class:`Knobs`. Raises ``ValueError``
    for an unknown split name or difficulty and ``RuntimeError`` if the templates run out.
    """
    value = DEFAULT_DIFFICULTY if difficulty is None else check_difficulty(difficulty)
    make = partial(_record, knobs=knobs_for(value))
    return generate_split("gsm8k-json", split, size, seed, make, key=lambda record: record["question"])
