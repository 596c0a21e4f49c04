"""rlstruct-example-kv: the plugin built step by step in docs/plugin-tutorial.md.

It adds one task, ``key-value``: the prompt lists some facts and names a few keys, and the model
must answer each requested key as a ``key=value`` line. It also adds one extra reward component,
``no-shouting``, that any task config can switch on. The tutorial starts from the 40-line version
of the same task in tests/example_plugin/minimal_kv.py.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Mapping

from rlstruct import Parsed, Record, RecordError, RewardComponent, Task, hookimpl

MAX_COMPLETION_CHARS = 20_000
"""Longer completions score 0 without being parsed (model output is untrusted)."""
MAX_VALUE_CHARS = 24
"""Validity: a value longer than this many characters is not plausible."""

VOCABULARY: dict[str, list[str]] = {
    "colour": ["red", "teal", "amber", "violet", "olive", "navy", "coral", "ivory"],
    "city": ["oslo", "lima", "perth", "kyoto", "quito", "tunis", "porto", "cork"],
    "animal": ["otter", "heron", "lynx", "gecko", "bison", "koala", "moose", "newt"],
    "fruit": ["mango", "plum", "lime", "fig", "guava", "kiwi", "pear", "date"],
    "metal": ["tin", "zinc", "iron", "gold", "nickel", "cobalt", "copper", "silver"],
    "weekday": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
    "instrument": ["cello", "oboe", "harp", "banjo", "tuba", "sitar", "flute", "drum"],
    "season": ["spring", "summer", "autumn", "winter"],
}
"""The keys the generator draws facts from, with the values each key may take."""


def is_key(text: str) -> bool:
    """A key is an ASCII identifier: letters, digits and underscores, not starting with a digit."""
    return text.isascii() and text.isidentifier()


def parse_line(line: str) -> tuple[str, str] | None:
    """``"city = oslo"`` -> ``("city", "oslo")``; ``None`` when the line is not ``key=value``."""
    key, sep, value = line.partition("=")
    key = key.strip()
    if not sep or not is_key(key):
        return None
    return key, value.strip()


class KeyValueTask(Task):
    """Answer the requested facts as ``key=value`` lines, one per line."""

    name = "key-value"
    description = "Answer the requested facts as key=value lines, one per line."
    synthetic_size = 256
    system_prompt = (
        "Answer with one line key=value for each requested key, using the facts given. "
        "Write nothing else."
    )

    # -- data ---------------------------------------------------------------------------------
    def normalize_record(self, raw: Mapping[str, Any]) -> Record:
        """Check ``{"facts": {key: value, ...}, "keys": [key, ...]}``; errors name the key at fault."""
        facts, keys = raw.get("facts"), raw.get("keys")
        if not isinstance(facts, dict) or not facts:
            raise RecordError("'facts' must be a non-empty object of key -> value")
        for key, value in facts.items():
            if not is_key(key):
                raise RecordError(f"'facts.{key}': a key must be letters, digits and underscores")
            if not isinstance(value, str) or not 0 < len(value) <= MAX_VALUE_CHARS:
                raise RecordError(f"'facts.{key}' must be a string of 1 to {MAX_VALUE_CHARS} characters")
            if value != value.strip() or "\n" in value:
                raise RecordError(f"'facts.{key}' must be one line without surrounding spaces")
        if not isinstance(keys, list) or not keys:
            raise RecordError("'keys' must be a non-empty list of keys from 'facts'")
        for index, key in enumerate(keys):
            if not isinstance(key, str) or key not in facts:
                raise RecordError(f"'keys[{index}]' ({key!r}) is not one of the facts")
        if len(set(keys)) != len(keys):
            raise RecordError("'keys' names a key twice")
        return {"facts": dict(facts), "keys": list(keys)}

    def random_record(self, rng: random.Random) -> Record:
        """Five to seven facts, of which two to four are asked for (only ``rng`` is random)."""
        fact_keys = rng.sample(sorted(VOCABULARY), rng.randint(5, 7))
        facts = {key: rng.choice(VOCABULARY[key]) for key in fact_keys}
        keys = rng.sample(fact_keys, rng.randint(2, 4))
        return {"facts": facts, "keys": keys}

    # -- prompting ----------------------------------------------------------------------------
    def user_prompt(self, record: Record) -> str:
        """The facts as a list, then the keys to answer."""
        facts = "\n".join(f"- {key}: {value}" for key, value in record["facts"].items())
        return f"Facts:\n{facts}\n\nKeys: {', '.join(record['keys'])}"

    def reference_completion(self, record: Record) -> str:
        """One ``key=value`` line per requested key, in the order asked."""
        return "\n".join(f"{key}={record['facts'][key]}" for key in record["keys"])

    # -- hierarchical reward --------------------------------------------------------------------
    def structure(self, record: Record, completion: str) -> Parsed:
        """Share of non-empty lines that parse as ``key=value``; the parsed value is the pairs."""
        if len(completion) > MAX_COMPLETION_CHARS:
            return Parsed(0.0)
        lines = [line for line in completion.splitlines() if line.strip()]
        pairs = [pair for pair in map(parse_line, lines) if pair is not None]
        if not pairs:
            return Parsed(0.0)
        return Parsed(len(pairs) / len(lines), pairs)

    def format(self, record: Record, parsed: list[tuple[str, str]]) -> float:
        """Requested keys present, divided by the requested keys plus every extra or repeated key."""
        wanted = set(record["keys"])
        found = [key for key, _ in parsed]
        present = wanted & set(found)
        unwanted = len(found) - len(present)  # keys not asked for, and repeats
        return len(present) / (len(wanted) + unwanted)

    def content(self, record: Record, parsed: list[tuple[str, str]]) -> float:
        """Share of requested keys whose (first) value equals the reference value."""
        answers: dict[str, str] = {}
        for key, value in parsed:
            answers.setdefault(key, value)
        facts = record["facts"]
        right = sum(answers.get(key) == facts[key] for key in record["keys"])
        return right / len(record["keys"])

    def validity(self, record: Record, parsed: list[tuple[str, str]]) -> float:
        """Share of answered values that are non-empty and at most ``MAX_VALUE_CHARS`` long."""
        plausible = sum(0 < len(value) <= MAX_VALUE_CHARS for _, value in parsed)
        return plausible / len(parsed)


def no_shouting(record: Record, completion: str, params: Mapping[str, Any]) -> float:
    """Share of letters that are not upper case; 1.0 when there are fewer than ``min_letters``.

    Only the first ``MAX_COMPLETION_CHARS`` characters are looked at, so huge outputs stay fast.
    """
    text = completion[:MAX_COMPLETION_CHARS]
    letters = upper = 0
    for char in text:
        if char.isalpha():
            letters += 1
            upper += char.isupper()
    if letters < max(1, int(params["min_letters"])):
        return 1.0
    return 1.0 - upper / letters


NO_SHOUTING = RewardComponent(
    name="no-shouting",
    description="Share of letters that are not upper case (penalises SHOUTED answers).",
    score=no_shouting,
    defaults={"min_letters": 1},
)


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    """Give rlstruct the ``key-value`` task."""
    register(KeyValueTask())


@hookimpl
def register_rewards(register: Callable[[RewardComponent], None]) -> None:
    """Give rlstruct the ``no-shouting`` reward component."""
    register(NO_SHOUTING)
