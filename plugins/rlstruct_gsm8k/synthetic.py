"""Seeded, offline GSM8K-style word problems with worked rationales.

Each template draws its numbers from a ``random.Random`` and writes a question, a step-by-step
rationale with GSM8K calculator annotations (``<<3*4=12>>``) and a final ``#### N`` line, in
GSM8K's own record format ``{"question", "answer"}``.

Splits never share a question: the shared scheme of :mod:`rlstruct.splits` assigns each question
to exactly one split by a hash of its text and seeds the draw with ``"gsm8k-json:{seed}:{split}"``.
"""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Callable

from rlstruct.splits import generate_split

from .numbers import canonical_number

NAMES = [
    ("Ava", "she"), ("Ben", "he"), ("Carla", "she"), ("Dmitri", "he"), ("Elena", "she"),
    ("Farid", "he"), ("Grace", "she"), ("Hiro", "he"), ("Ines", "she"), ("Jamal", "he"),
    ("Kofi", "he"), ("Lena", "she"), ("Mateo", "he"), ("Nadia", "she"), ("Omar", "he"),
    ("Priya", "she"), ("Quinn", "he"), ("Rosa", "she"), ("Sven", "he"), ("Tara", "she"),
]
ITEMS = [
    "notebook", "pencil", "apple", "sandwich", "ticket", "candle", "mug", "plant", "toy car",
    "book", "scarf", "muffin", "poster", "marker", "battery",
]
THINGS = ["stickers", "marbles", "cookies", "cards", "stamps", "shells", "beads", "coins"]
RELATIVES = ["mother", "father", "aunt", "uncle", "grandmother", "grandfather"]
SALE_ITEMS = ["jacket", "bicycle", "lamp", "pair of boots", "backpack", "chair", "tent", "guitar"]
PERCENTS = [5, 10, 15, 20, 25, 30, 40, 50, 60, 75]

Problem = tuple[str, list[str], Fraction]
"""A generated problem: question, rationale lines, answer."""


def _num(value: Fraction | int) -> str:
    return canonical_number(Fraction(value))


def _person(rng: random.Random) -> tuple[str, str, str]:
    name, subject = rng.choice(NAMES)
    possessive = "her" if subject == "she" else "his"
    return name, subject, possessive


def _shopping(rng: random.Random) -> Problem:
    name, subject, _ = _person(rng)
    first, second = rng.sample(ITEMS, 2)
    a, b = rng.randint(2, 15), rng.randint(2, 15)
    p, q = rng.randint(1, 40), rng.randint(1, 40)
    ap, bq = a * p, b * q
    total = ap + bq
    question = (
        f"{name} buys {a} {first}s for ${p} each and {b} {second}s for ${q} each. "
        f"How much money does {subject} spend in all?"
    )
    steps = [
        f"The {first}s cost {a} * ${p} = $<<{a}*{p}={ap}>>{ap}.",
        f"The {second}s cost {b} * ${q} = $<<{b}*{q}={bq}>>{bq}.",
        f"In all, {name} spends ${ap} + ${bq} = $<<{ap}+{bq}={total}>>{total}.",
    ]
    return question, steps, Fraction(total)


def _rates(rng: random.Random) -> Problem:
    name, subject, _ = _person(rng)
    rate, hours, days = rng.randint(5, 60), rng.randint(2, 9), rng.randint(2, 30)
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


def _ages(rng: random.Random) -> Problem:
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


def _splitting(rng: random.Random) -> Problem:
    name, subject, _ = _person(rng)
    things = rng.choice(THINGS)
    friends, each, keep = rng.randint(2, 12), rng.randint(2, 40), rng.randint(1, 30)
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


def _percentages(rng: random.Random) -> Problem:
    item = rng.choice(SALE_ITEMS)
    price, percent = rng.randint(10, 600), rng.choice(PERCENTS)
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


def _savings(rng: random.Random) -> Problem:
    name, subject, _ = _person(rng)
    income = rng.randrange(1500, 8000, 50)
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


def _temperature(rng: random.Random) -> Problem:
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


TEMPLATES: list[Callable[[random.Random], Problem]] = [
    _shopping, _rates, _ages, _splitting, _percentages, _savings, _temperature,
]
"""Every problem template (shopping totals, rates, ages, splitting, percentages, savings, temperature)."""


def _final_line(answer: Fraction, rng: random.Random) -> str:
    text = _num(answer)
    if answer.denominator == 1 and abs(answer) >= 1000 and rng.random() < 0.5:
        text = f"{answer.numerator:,}"  # like the released files: "#### 2,125"
    return f"#### {text}"


def _record(rng: random.Random) -> dict[str, str]:
    question, steps, answer = rng.choice(TEMPLATES)(rng)
    return {"question": question, "answer": "\n".join([*steps, _final_line(answer, rng)])}


def generate(split: str, size: int, seed: int) -> list[dict[str, str]]:
    """``size`` distinct GSM8K-format records ``{"question", "answer"}`` of ``split``.

    Deterministic in (split, size, seed); a larger ``size`` extends a smaller one. Raises
    ``ValueError`` for an unknown split name and ``RuntimeError`` if the templates run out.
    """
    return generate_split("gsm8k-json", split, size, seed, _record, key=lambda record: record["question"])
