"""Hostile model output: the completions every task must score without raising, fast and in bounds.

Two kinds, both plain strings keyed by a short name that failure messages quote:

- :func:`generic_hostile_outputs`: format-agnostic attacks (deep nesting, 10 MB strings, number
  bombs, NaN literals, XML entity attacks, text that is not valid UTF-8, empty output);
- :func:`reference_mutations`: the same attacks grafted onto a task's own reference completion, so
  they reach past the first "is this my format at all?" test into the task's deeper parsing.

The XML attacks point at a local file (``secret_uri``) and at a closed local port: a parser that
resolves entities or loads a DTD either leaks the file's text (the kit looks for it) or stalls.
"""

from __future__ import annotations

import re

TEN_MB = 10_000_000
DEEP = 100_000
"""Nesting depth of the deep-nesting attacks (far past any recursive parser's stack)."""
CLOSED_PORT_URL = "http://127.0.0.1:9"
"""A local URL nothing listens on (the discard port): fetching it fails instead of hanging."""

# Numbers a model can write that overflow, blow up int parsing or are not JSON numbers at all.
NUMBER_BOMBS: dict[str, str] = {
    "digits-5000": "9" * 5000,
    "long-fraction": "1." + "5" * 5000,
    "exponent-overflow": "1e999999999",
    "exponent-underflow": "1e-999999999",
    "nan": "NaN",
    "infinity": "-Infinity",
}

_DIGIT_RUN = re.compile(r"\d+(?:\.\d+)?")


def _billion_laughs() -> str:
    entities = ['<!ENTITY l0 "lol">'] + [f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)]
    return f"<!DOCTYPE r [{''.join(entities)}]><r>&l9;</r>"


def generic_hostile_outputs(secret_uri: str) -> dict[str, str]:
    """Format-agnostic hostile completions; ``secret_uri`` is a ``file://`` URI the XML attacks read."""
    quadratic_entity = "x" * 50_000
    return {
        "empty": "",
        "whitespace": " \n\t\r\n ",
        "null-bytes": "\x00" * 1000,
        "deep-json-arrays": "[" * DEEP + "]" * DEEP,
        "deep-json-objects": '{"a":' * DEEP + "1" + "}" * DEEP,
        "unclosed-brackets": "{[" * DEEP,
        "deep-xml": "<a>" * DEEP + "</a>" * DEEP,
        "deep-in-fence": "```json\n" + "[" * DEEP + "\n```",
        "ten-mb-bare": "x" * TEN_MB,
        "ten-mb-json-string": '{"a": "' + "a" * TEN_MB + '"}',
        "ten-mb-xml-text": "<r>" + "y" * TEN_MB + "</r>",
        "million-lines": "a=b\n" * 1_000_000,
        "digit-run": "9" * DEEP,
        "json-huge-int": '{"n": ' + NUMBER_BOMBS["digits-5000"] + "}",
        "json-exponent-bomb": '{"n": 1e999999999, "m": [1e-999999999]}',
        "bare-exponent-bomb": NUMBER_BOMBS["exponent-overflow"],
        "power-tower": "9**9**9**9",
        "json-nan-literals": '{"a": NaN, "b": Infinity, "c": -Infinity, "d": [NaN]}',
        "bare-nan": "NaN",
        "xml-billion-laughs": _billion_laughs(),
        "xml-quadratic-blowup": f'<!DOCTYPE r [<!ENTITY a "{quadratic_entity}">]><r>{"&a;" * 50_000}</r>',
        "xml-xxe-file": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{secret_uri}">]><r>&x;</r>',
        "xml-xxe-parameter": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{CLOSED_PORT_URL}/p.dtd"> %p;]><r/>',
        "xml-external-dtd": f'<!DOCTYPE r SYSTEM "{CLOSED_PORT_URL}/x.dtd"><r/>',
        "xml-xinclude": f'<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{secret_uri}" parse="text"/></r>',
        "lone-surrogates": "\udcff\ud800 text \udfff",
        "surrogates-in-json": '{"a": "\udcff", "b": ["\ud800"]}',
        "escaped-surrogates": '{"a": "\\ud800", "b": ["\\udfff"]}',
        "surrogateescape-bytes": bytes(range(256)).decode("utf-8", errors="surrogateescape"),
        "mojibake": "\ufeffCafÃ© â€œquotedâ€\x9d Ã¼ber \u200b\u202e",
    }


def reference_mutations(reference: str) -> dict[str, str]:
    """The generic attacks grafted onto one reference completion (empty when it has no text)."""
    if not reference:
        return {}
    middle = len(reference) // 2
    cases = {
        "reference+10mb": reference + " " + "x" * TEN_MB,
        "reference-repeated": reference * max(1, 1_000_000 // len(reference)),
        "reference-in-deep-json": "[" * DEEP + reference + "]" * DEEP,
        "reference-in-deep-xml": "<a>" * DEEP + reference + "</a>" * DEEP,
        "reference-lone-surrogate": reference[:middle] + "\udcff" + reference[middle:],
        "reference-bad-bytes": reference[:middle]
        + b"\xff\xfe\xc3".decode("utf-8", errors="surrogateescape")
        + reference[middle:],
        "reference-null-byte": reference[:middle] + "\x00" + reference[middle:],
    }
    if _DIGIT_RUN.search(reference):
        for name, bomb in NUMBER_BOMBS.items():
            cases[f"reference-numbers-{name}"] = _DIGIT_RUN.sub(bomb, reference)
    return cases
