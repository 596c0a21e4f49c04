"""Partial credit for the ``format`` and ``content`` components, computed on parsed lxml trees.

Paths are built from local names (namespaces dropped), without positions: ``/purchaseOrder/items/
item/quantity`` for an element and ``/purchaseOrder/items/item@sku`` for an attribute. Attributes
in the ``xsi`` namespace are schema metadata and are ignored everywhere here.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Iterator

from lxml import etree

from rlstruct import normalize_text

from .schemas import XSI, CompiledSchema

MAX_NODES = 2_000
"""A completion with more elements + attributes than this (or than 4x the reference) gets format 0."""
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_MAX_NUMBER_CHARS = 40


def local_name(tag: str) -> str:
    """``{ns}name`` or ``name`` -> ``name``."""
    return tag.rpartition("}")[2]


def walk(root: etree._Element) -> Iterator[tuple[str, etree._Element]]:
    """Yield ``(path, element)`` for every element, depth first, without recursion."""
    stack = [(f"/{local_name(root.tag)}", root)]
    while stack:
        path, element = stack.pop()
        yield path, element
        for child in reversed(element):
            if isinstance(child.tag, str):  # skip anything that is not an element
                stack.append((f"{path}/{local_name(child.tag)}", child))


def attributes(element: etree._Element) -> Iterator[tuple[str, str]]:
    """``(local name, value)`` of the element's attributes, ``xsi:*`` left out."""
    for name, value in element.attrib.items():
        if not name.startswith(f"{{{XSI}}}"):
            yield local_name(name), value


def count_nodes(root: etree._Element, limit: int) -> int:
    """Elements plus attributes in the tree; stops counting once over ``limit``."""
    total = 0
    for element in root.iter():
        total += 1 + len(element.attrib)
        if total > limit:
            break
    return total


def shape(root: etree._Element) -> set[str]:
    """The set of element paths and attribute paths present in the tree."""
    found: set[str] = set()
    for path, element in walk(root):
        found.add(path)
        found.update(f"{path}@{name}" for name, _ in attributes(element))
    return found


def normalize_value(text: str) -> str:
    """Text for comparison: decimals in canonical form (``12.50`` -> ``12.5``), else
    :func:`rlstruct.normalize_text` (lower case, collapsed white space)."""
    compact = "".join(text.split())
    if len(compact) <= _MAX_NUMBER_CHARS and _DECIMAL.fullmatch(compact):
        try:
            return format(Decimal(compact).normalize(), "f")
        except (InvalidOperation, ValueError):
            pass
    return normalize_text(text)


def content_items(root: etree._Element) -> Counter[tuple[str, str]]:
    """The multiset of ``(path, normalised text)`` for leaf elements and ``(path@attr, value)``.

    Text of elements that have child elements (mixed content) is ignored.
    """
    items: Counter[tuple[str, str]] = Counter()
    for path, element in walk(root):
        if not any(isinstance(child.tag, str) for child in element):
            items[(path, normalize_value(element.text or ""))] += 1
        for name, value in attributes(element):
            items[(f"{path}@{name}", normalize_value(value))] += 1
    return items


def multiset_f1(predicted: Counter, reference: Counter) -> float:
    """F1 of two multisets (1.0 when both are empty)."""
    n_pred, n_ref = sum(predicted.values()), sum(reference.values())
    if n_pred == 0 and n_ref == 0:
        return 1.0
    hits = sum((predicted & reference).values())
    if hits == 0:
        return 0.0
    precision, recall = hits / n_pred, hits / n_ref
    return 2 * precision * recall / (precision + recall)


def count_invented(root: etree._Element, schema: CompiledSchema) -> int:
    """Occurrences of element and attribute names that the XSD declares nowhere."""
    invented = 0
    for _, element in walk(root):
        if local_name(element.tag) not in schema.element_names:
            invented += 1
        invented += sum(1 for name, _ in attributes(element) if name not in schema.attribute_names)
    return invented


@dataclass(frozen=True)
class ReferenceProfile:
    """What the reward compares a completion with, computed once per reference document."""

    root_tag: str
    """The reference's root element tag (``{namespace}name``): the root the schema expects."""
    shape: frozenset[str]
    """Element and attribute paths of the reference (:func:`shape`)."""
    items: Counter
    """The reference's :func:`content_items`."""
    nodes: int
    """Elements plus attributes in the reference."""


def profile(root: etree._Element) -> ReferenceProfile:
    """Build the :class:`ReferenceProfile` of a parsed reference document."""
    return ReferenceProfile(
        root_tag=root.tag,
        shape=frozenset(shape(root)),
        items=content_items(root),
        nodes=count_nodes(root, 10**9),
    )


def format_score(root: etree._Element, schema: CompiledSchema, reference: ReferenceProfile) -> float:
    """XSD conformance with partial credit (see docs/tasks/xml-records.md).

    * 0 if the root is not the reference's root, or the tree has more than
      ``max(MAX_NODES, 4 x reference)`` elements + attributes;
    * 1.0 if the document is valid and uses only names the XSD declares;
    * else ``coverage / (1 + n_errors + n_invented)``, where ``coverage`` is the share of the
      reference's element/attribute paths present, ``n_errors`` the number of XSD errors and
      ``n_invented`` the occurrences of undeclared element/attribute names.
    """
    if root.tag != reference.root_tag:
        return 0.0
    limit = max(MAX_NODES, 4 * reference.nodes)
    if count_nodes(root, limit) > limit:
        return 0.0
    errors = len(schema.validation_errors(root))
    invented = count_invented(root, schema)
    if errors == 0 and invented == 0:
        return 1.0
    coverage = len(shape(root) & reference.shape) / max(1, len(reference.shape))
    return coverage / (1 + errors + invented)
