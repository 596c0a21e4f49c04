"""Honest partial credit for how much of a JSON Schema an instance meets.

Shared by the ``json-recipes`` and ``json-schema`` tasks. :func:`format_credit` is

* exactly 1.0 when the instance is valid under Draft 2020-12 (:data:`SchemaValidator`);
* otherwise ``max(0, met - invented) / counted``, capped at :data:`INVALID_CAP`, where the
  walker below counts one *check* per constraint it can evaluate:

  - ``type``, ``enum``, ``const``: one check each;
  - ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``multipleOf``: one each
    (unmet when the instance is not a number);
  - ``minLength``, ``maxLength``, ``pattern``: one each (unmet when it is not a string);
  - ``minItems``, ``maxItems``, ``uniqueItems``, ``contains``: one each (unmet when not an array);
  - ``minProperties``, ``maxProperties``, ``dependentRequired``: one per constraint;
  - ``required``: one check per key; a missing key *also* counts every check of that property's
    schema as unmet, so ``{}`` earns almost nothing;
  - ``properties`` / ``patternProperties`` / ``additionalProperties`` (a schema): the value's
    checks, recursively;
  - ``items`` / ``prefixItems``: the items' checks; the items of one ``items`` schema are
    *averaged* and weigh as one item, so a long list of good items cannot outweigh missing keys;
    an empty array where ``minItems`` asks for some counts the item schema as unmet;
  - ``allOf``: every branch; ``anyOf`` / ``oneOf``: the best-scoring branch only;
  - ``$ref``: followed inside the document only (JSON pointers ``#/...`` and plain-name anchors,
    see :mod:`.schema_refs`) at most :data:`MAX_REF_DEPTH` times along one path, so recursive
    schemas terminate;
  - each key forbidden by ``additionalProperties: false`` (an *invented* key) subtracts one met
    check: invented keys are penalised, not merely ignored.

  Keywords not listed (``not``, ``if``/``then``/``else``, ``unevaluated*``, ``propertyNames``,
  ``dependentSchemas``, ``$dynamicRef``) are not counted, but the validator still enforces them,
  so an instance that breaks only those gets :data:`INVALID_CAP`, never 1.0.

The walker also gathers *semantic* checks for :func:`semantic_credit`: each string under a
checked ``format`` (see :mod:`.string_formats`) and each array under ``uniqueItems: true``.

Work is bounded: at most :data:`MAX_VISITS` schema/instance visits per call (past that the
partial credit is unavailable and an invalid instance scores 0) and :data:`MAX_SCHEMA_DEPTH`
nested schema levels. ``pattern`` regular expressions come from the schema (record data, not
model output); a catastrophic pattern in a record can still be slow: the sandbox bounds scoring,
and :func:`rlstruct.data.load_records` bounds record checks, by time and memory.

References never leave the record's document: the validator resolves through
:func:`.schema_refs.document_registry` (which retrieves nothing), and :func:`validator_for` refuses
a schema with a reference that points outside it (:class:`OutsideReference`).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, Iterator
from urllib.parse import unquote

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from .schema_refs import document_registry, outside_references, schema_nodes
from .string_formats import FORMAT_CHECKS

MAX_REF_DEPTH = 16
"""How many ``$ref`` hops the walker follows along one path."""
MAX_SCHEMA_DEPTH = 200
"""Deeper schema nesting is not walked (its checks are not counted)."""
MAX_VISITS = 100_000
"""Walker steps per call before it gives up on partial credit."""
INVALID_CAP = 0.99
"""Highest format credit an instance the validator rejects can get."""
MAX_REPORTED_FAILURES = 5
"""How many failing semantic checks a tally remembers (for error messages)."""

_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STRING_KEYWORDS = ("minLength", "maxLength", "pattern")
_SIMPLE_KEYWORDS = (
    "type",
    "enum",
    "const",
    *_NUMBER_KEYWORDS,
    *_STRING_KEYWORDS,
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)


class BudgetExceeded(RuntimeError):
    """The walker used up :data:`MAX_VISITS` steps."""


class OutsideReference(ValueError):
    """A schema holds a reference that does not resolve inside it; nothing was fetched."""


# -- JSON equality that can be hashed (for enum, const and uniqueItems) -----------------------------
def canonical(value: Any) -> Any:
    """A hashable key equal for JSON-equal values (``1 == 1.0``, ``true != 1``, key order ignored)."""
    if value is True or value is False:
        return ("b", value)
    if value is None:
        return ("z",)
    if isinstance(value, int):
        return ("n", value)
    if isinstance(value, float):
        return ("n", int(value)) if value.is_integer() else ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("l", tuple(canonical(item) for item in value))
    if isinstance(value, dict):
        return ("d", frozenset((key, canonical(item)) for key, item in value.items()))
    return ("o", repr(value))


def all_unique(items: list[Any]) -> bool:
    """Whether no two items of ``items`` are JSON-equal (linear time, unlike pairwise checks)."""
    seen: set[Any] = set()
    for item in items:
        key = canonical(item)
        if key in seen:
            return False
        seen.add(key)
    return True


# -- validation -------------------------------------------------------------------------------------
def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if unique and validator.is_type(instance, "array") and not all_unique(instance):
        yield ValidationError("array has non-unique elements")


SchemaValidator = validators.extend(Draft202012Validator, {"uniqueItems": _unique_items})
"""``Draft202012Validator`` with a linear-time ``uniqueItems`` (the stock one is quadratic for
objects, seconds for a few thousand items). Same verdicts; ``format`` is not asserted."""


@lru_cache(maxsize=256)
def _validator_for_text(schema_text: str) -> Any:
    schema = json.loads(schema_text)
    outside = outside_references(schema)
    if outside:
        path, keyword, value = outside[0]
        raise OutsideReference(
            f"{json_path((*path, keyword), 'schema')}: {value!r} does not resolve inside the schema "
            "(references outside the record's schema are refused; nothing is fetched)"
        )
    return SchemaValidator(schema, registry=document_registry(schema))


def validator_for(schema: Any) -> Any:
    """A cached :data:`SchemaValidator` for ``schema`` that resolves references inside it only.

    Raises :class:`OutsideReference` when a reference in ``schema`` points outside it (checked
    here as well as at record load, so a record that skipped the load check is refused too).
    """
    return _validator_for_text(json.dumps(schema, sort_keys=True))


def is_valid(schema: Any, instance: Any) -> bool:
    """Whether ``instance`` validates under ``schema`` (endless recursion or a dangling reference: False)."""
    try:
        return bool(validator_for(schema).is_valid(instance))
    except (RecursionError, Unresolvable):
        return False


def first_error(schema: Any, instance: Any, root: str = "$") -> str | None:
    """The most relevant validation error as ``"<root>.a[0]: <message>"``, or ``None`` when valid."""
    error = best_match(validator_for(schema).iter_errors(instance))
    if error is None:
        return None
    return f"{json_path(error.absolute_path, root)}: {error.message[:200]}"


def json_path(parts: Any, root: str = "$") -> str:
    """Render a sequence of keys and indices as ``$.a[0].b`` (``root`` replaces ``$``)."""
    text = root
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


# -- local references -------------------------------------------------------------------------------
def resolve_pointer(root: Any, ref: Any) -> Any:
    """Resolve a JSON-pointer ``$ref`` (``#`` or ``#/json/pointer``) in ``root``; ``None`` if it does not.

    Pointers only; the walker resolves anchors as well (through :mod:`.schema_refs`).
    """
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    pointer = unquote(ref[1:])
    if pointer == "":
        return root
    if not pointer.startswith("/"):
        return None
    node = root
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node if isinstance(node, (dict, bool)) else None


def embedded_ids(schema: Any) -> list[str]:
    """Paths (``$.a.b``) of ``$id`` keywords below the root: they would change what ``#`` means."""
    return [json_path(path) for path, node in schema_nodes(schema) if path and "$id" in node]


def _subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """Every object node of ``schema`` (iteratively, skipping data keywords such as ``enum``)."""
    return (node for _, node in schema_nodes(schema))


def unresolved_refs(schema: Any) -> list[str]:
    """Every reference (``$ref``, ``$dynamicRef``, ``$recursiveRef``) in ``schema`` that does not
    resolve to a schema inside it (see :func:`.schema_refs.outside_references`)."""
    return [value for _, _, value in outside_references(schema)]


# -- the walker -------------------------------------------------------------------------------------
@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "number":
        return _is_number(value)
    if name == "integer":
        return _is_number(value) and (isinstance(value, int) or value.is_integer())
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    return False


def _number_ok(keyword: str, value: Any, bound: Any) -> bool:
    if keyword == "minimum":
        return value >= bound
    if keyword == "maximum":
        return value <= bound
    if keyword == "exclusiveMinimum":
        return value > bound
    if keyword == "exclusiveMaximum":
        return value < bound
    if bound == 0:
        return False
    if isinstance(value, int) and isinstance(bound, int):
        return value % bound == 0
    try:
        quotient = value / bound
    except (OverflowError, ZeroDivisionError):
        return False
    return math.isfinite(quotient) and quotient == int(quotient)


def _as_count(value: Any) -> int:
    if _is_number(value) and math.isfinite(value):
        return max(0, int(value))
    return 0


class Tally:
    """Checks counted for one (schema, instance) pair: met, counted, invented keys, semantic checks."""

    __slots__ = ("met", "counted", "invented", "semantic_met", "semantic_counted", "failures")

    def __init__(self) -> None:
        self.met = 0.0
        self.counted = 0.0
        self.invented = 0
        self.semantic_met = 0
        self.semantic_counted = 0
        self.failures: list[str] = []

    def check(self, ok: bool) -> None:
        """Count one check, met or not."""
        self.counted += 1
        if ok:
            self.met += 1

    def semantic(self, ok: bool, where: str) -> None:
        """Count one semantic check (format / uniqueItems), remembering where it failed."""
        self.semantic_counted += 1
        if ok:
            self.semantic_met += 1
        elif len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append(where)

    def merge(self, other: "Tally", weight: float | None = None) -> None:
        """Add ``other``; with ``weight``, its met/counted are rescaled to weigh ``weight`` checks."""
        if weight is None:
            self.met += other.met
            self.counted += other.counted
        elif other.counted > 0:
            self.met += weight * other.met / other.counted
            self.counted += weight
        self.invented += other.invented
        self.semantic_met += other.semantic_met
        self.semantic_counted += other.semantic_counted
        room = MAX_REPORTED_FAILURES - len(self.failures)
        if room > 0:
            self.failures.extend(other.failures[:room])

    @property
    def credit(self) -> float:
        """``max(0, met - invented) / counted`` (1.0 when nothing was counted and nothing invented)."""
        if self.counted <= 0:
            return 0.0 if self.invented else 1.0
        return max(0.0, self.met - self.invented) / self.counted


def _where(path: tuple[Any, ...] | None) -> str:
    parts: list[Any] = []
    while path is not None:
        path, key = path
        parts.append(key)
    return json_path(reversed(parts))


class _Walker:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.visits = 0
        self.static_memo: dict[tuple[int, int], float] = {}
        self.enum_memo: dict[int, frozenset[Any]] = {}
        self.targets: dict[str, Any] = {}
        self._resolver: Any = None

    def target(self, ref: Any) -> Any:
        """The sub-schema a ``$ref`` names inside the document (pointer or anchor), else ``None``."""
        if not isinstance(ref, str):
            return None
        if ref not in self.targets:
            if self._resolver is None:  # built on first use: most walks meet no $ref
                root = DRAFT202012.create_resource(self.root)
                self._resolver = document_registry(self.root).resolver_with_root(root)
            try:
                found = self._resolver.lookup(ref).contents
            except Exception:  # noqa: BLE001 - unresolvable (or outside): not followed, never fetched
                found = None
            self.targets[ref] = found if isinstance(found, (dict, bool)) else None
        return self.targets[ref]

    def tick(self) -> None:
        self.visits += 1
        if self.visits > MAX_VISITS:
            raise BudgetExceeded(f"schema walk exceeded {MAX_VISITS} steps")

    # -- how many checks a schema holds when the instance is absent --------------------------------
    def static(self, schema: Any, refs: int, depth: int) -> float:
        self.tick()
        if schema is False:
            return 1.0
        if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
            return 0.0
        key = (id(schema), refs)
        if key in self.static_memo:
            return self.static_memo[key]
        self.static_memo[key] = 0.0  # a cycle through required properties counts as nothing
        count = float(sum(1 for keyword in _SIMPLE_KEYWORDS if keyword in schema))
        count += schema.get("uniqueItems") is True
        count += isinstance(schema.get("contains"), (dict, bool))
        ref = schema.get("$ref")
        if ref is not None and refs < MAX_REF_DEPTH:
            count += self.static(self.target(ref), refs + 1, depth + 1)
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        for name in _string_list(schema.get("required")):
            count += 1 + (self.static(properties[name], refs, depth + 1) if name in properties else 0)
        min_items = _as_count(schema.get("minItems"))
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        for sub in prefix[:min_items]:
            count += self.static(sub, refs, depth + 1)
        if min_items > len(prefix) and "items" in schema:
            count += self.static(schema["items"], refs, depth + 1)
        for sub in _schema_list(schema.get("allOf")):
            count += self.static(sub, refs, depth + 1)
        for keyword in ("anyOf", "oneOf"):
            branches = _schema_list(schema.get(keyword))
            if branches:
                count += max(self.static(sub, refs, depth + 1) for sub in branches)
        self.static_memo[key] = count
        return count

    def unmet(self, tally: Tally, schema: Any, refs: int, depth: int) -> None:
        tally.counted += self.static(schema, refs, depth)

    # -- the instance against the schema --------------------------------------------------------------
    def walk(self, schema: Any, value: Any, path: Any, refs: int, depth: int) -> Tally:
        self.tick()
        tally = Tally()
        if schema is False:
            tally.check(False)
            return tally
        if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
            return tally
        ref = schema.get("$ref")
        if ref is not None and refs < MAX_REF_DEPTH:
            target = self.target(ref)
            if target is not None:
                tally.merge(self.walk(target, value, path, refs + 1, depth + 1))
        self._values(schema, value, tally)
        self._numbers(schema, value, tally)
        self._strings(schema, value, path, tally)
        self._arrays(schema, value, path, refs, depth, tally)
        self._objects(schema, value, path, refs, depth, tally)
        self._combinators(schema, value, path, refs, depth, tally)
        return tally

    def _values(self, schema: dict[str, Any], value: Any, tally: Tally) -> None:
        if "type" in schema:
            types = schema["type"]
            names = [types] if isinstance(types, str) else types if isinstance(types, list) else []
            tally.check(any(isinstance(n, str) and _is_type(value, n) for n in names))
        if isinstance(schema.get("enum"), list):
            enum = schema["enum"]
            allowed = self.enum_memo.get(id(enum))
            if allowed is None:
                allowed = self.enum_memo[id(enum)] = frozenset(canonical(item) for item in enum)
            tally.check(canonical(value) in allowed)
        if "const" in schema:
            tally.check(canonical(value) == canonical(schema["const"]))

    def _numbers(self, schema: dict[str, Any], value: Any, tally: Tally) -> None:
        for keyword in _NUMBER_KEYWORDS:
            if keyword in schema and _is_number(schema[keyword]):
                tally.check(_is_number(value) and _number_ok(keyword, value, schema[keyword]))

    def _strings(self, schema: dict[str, Any], value: Any, path: Any, tally: Tally) -> None:
        is_string = isinstance(value, str)
        if "minLength" in schema:
            tally.check(is_string and len(value) >= _as_count(schema["minLength"]))
        if "maxLength" in schema:
            tally.check(is_string and len(value) <= _as_count(schema["maxLength"]))
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            regex = _compile(pattern)
            if regex is not None:
                tally.check(is_string and regex.search(value) is not None)
        name = schema.get("format")
        check = FORMAT_CHECKS.get(name) if isinstance(name, str) else None
        if check is not None and is_string:
            tally.semantic(check(value), f"{_where(path)} (format {name})")

    def _arrays(self, schema: dict[str, Any], value: Any, path: Any, refs: int, depth: int, tally: Tally) -> None:
        is_list = isinstance(value, list)
        items: list[Any] = value if is_list else []
        if "minItems" in schema:
            tally.check(is_list and len(items) >= _as_count(schema["minItems"]))
        if "maxItems" in schema:
            tally.check(is_list and len(items) <= _as_count(schema["maxItems"]))
        if schema.get("uniqueItems") is True:
            unique = is_list and all_unique(items)
            tally.check(unique)
            if is_list:
                tally.semantic(unique, f"{_where(path)} (uniqueItems)")
        min_items = _as_count(schema.get("minItems"))
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        for index, sub in enumerate(prefix):
            if index < len(items):
                tally.merge(self.walk(sub, items[index], (path, index), refs, depth + 1))
            elif index < min_items:
                self.unmet(tally, sub, refs, depth + 1)
        if "items" in schema:
            rest = items[len(prefix):]
            if rest:
                self._average_items(schema["items"], rest, len(prefix), path, refs, depth, tally)
            elif min_items > len(prefix):
                self.unmet(tally, schema["items"], refs, depth + 1)
        contains = schema.get("contains")
        if isinstance(contains, (dict, bool)):
            found = False
            for index, item in enumerate(items):
                sub = self.walk(contains, item, (path, index), refs, depth + 1)
                if sub.invented == 0 and sub.met >= sub.counted:
                    found = True
                    break
            tally.check(is_list and found)

    def _average_items(
        self, schema: Any, items: list[Any], start: int, path: Any, refs: int, depth: int, tally: Tally
    ) -> None:
        """Items of one ``items`` schema: mean credit, weighing as much as one average item."""
        ratios = Tally()  # met = sum of item credits, counted = number of items with checks
        checks = 0.0
        for offset, item in enumerate(items):
            sub = self.walk(schema, item, (path, start + offset), refs, depth + 1)
            checks += sub.counted
            ratios.merge(sub, weight=1.0)
        if ratios.counted > 0:
            scale = (checks / ratios.counted) / ratios.counted
            ratios.met *= scale
            ratios.counted *= scale
        tally.merge(ratios)

    def _objects(self, schema: dict[str, Any], value: Any, path: Any, refs: int, depth: int, tally: Tally) -> None:
        is_object = isinstance(value, dict)
        obj: dict[str, Any] = value if is_object else {}
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        for name in _string_list(schema.get("required")):
            present = name in obj
            tally.check(present)
            if not present and name in properties:
                self.unmet(tally, properties[name], refs, depth + 1)
        for name, sub in properties.items():
            if name in obj:
                tally.merge(self.walk(sub, obj[name], (path, name), refs, depth + 1))
        patterns = schema.get("patternProperties")
        patterns = patterns if isinstance(patterns, dict) else {}
        additional = schema.get("additionalProperties", True)
        if patterns or additional is not True:
            for name, item in obj.items():
                matched = name in properties
                for pattern, sub in patterns.items():
                    regex = _compile(pattern)
                    if regex is not None and regex.search(name):
                        matched = True
                        tally.merge(self.walk(sub, item, (path, name), refs, depth + 1))
                if matched:
                    continue
                if additional is False:
                    tally.invented += 1
                elif isinstance(additional, dict):
                    tally.merge(self.walk(additional, item, (path, name), refs, depth + 1))
        if "minProperties" in schema:
            tally.check(is_object and len(obj) >= _as_count(schema["minProperties"]))
        if "maxProperties" in schema:
            tally.check(is_object and len(obj) <= _as_count(schema["maxProperties"]))
        dependent = schema.get("dependentRequired")
        if isinstance(dependent, dict):
            for name, needed in dependent.items():
                if name in obj:
                    for other in _string_list(needed):
                        tally.check(other in obj)

    def _combinators(self, schema: dict[str, Any], value: Any, path: Any, refs: int, depth: int, tally: Tally) -> None:
        for sub in _schema_list(schema.get("allOf")):
            tally.merge(self.walk(sub, value, path, refs, depth + 1))
        for keyword in ("anyOf", "oneOf"):
            branches = [self.walk(sub, value, path, refs, depth + 1) for sub in _schema_list(schema.get(keyword))]
            if branches:
                tally.merge(max(branches, key=lambda t: (t.credit, -t.counted)))


def _string_list(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _schema_list(value: Any) -> list[Any]:
    return [item for item in value if isinstance(item, (dict, bool))] if isinstance(value, list) else []


# -- public scores ----------------------------------------------------------------------------------
def tally(schema: Any, instance: Any) -> Tally:
    """Walk ``instance`` against ``schema`` and count checks (may raise :class:`BudgetExceeded`)."""
    return _Walker(schema).walk(schema, instance, None, 0, 0)


def format_credit(schema: Any, instance: Any) -> float:
    """Schema conformance in [0, 1]: 1.0 iff valid, else the walker's share of checks met (capped)."""
    if is_valid(schema, instance):
        return 1.0
    try:
        counted = tally(schema, instance)
    except (BudgetExceeded, RecursionError):
        return 0.0
    return min(INVALID_CAP, counted.credit)


def has_semantic_keywords(schema: Any) -> bool:
    """Whether ``schema`` holds a checked ``format`` or ``uniqueItems: true`` anywhere."""
    return any(
        node.get("uniqueItems") is True or (isinstance(name := node.get("format"), str) and name in FORMAT_CHECKS)
        for node in _subschemas(schema)
    )


def semantic_credit(schema: Any, instance: Any) -> float:
    """Share of semantic checks (checked ``format`` strings, ``uniqueItems`` arrays) that pass.

    1.0 when the schema asks for none at the places the instance reaches; 0.0 when the walk is
    too large to finish.
    """
    if not has_semantic_keywords(schema):
        return 1.0
    try:
        counted = tally(schema, instance)
    except (BudgetExceeded, RecursionError):
        return 0.0
    if counted.semantic_counted == 0:
        return 1.0
    return counted.semantic_met / counted.semantic_counted


def semantic_failures(schema: Any, instance: Any) -> list[str]:
    """Where the semantic checks of ``instance`` fail (at most :data:`MAX_REPORTED_FAILURES`)."""
    return tally(schema, instance).failures


__all__ = [
    "BudgetExceeded",
    "INVALID_CAP",
    "MAX_REF_DEPTH",
    "MAX_VISITS",
    "OutsideReference",
    "SchemaValidator",
    "Tally",
    "all_unique",
    "canonical",
    "embedded_ids",
    "first_error",
    "format_credit",
    "has_semantic_keywords",
    "is_valid",
    "json_path",
    "resolve_pointer",
    "semantic_credit",
    "semantic_failures",
    "tally",
    "unresolved_refs",
    "validator_for",
]
