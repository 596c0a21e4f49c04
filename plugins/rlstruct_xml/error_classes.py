"""Error classes (``rlstruct.error_types``) of xml-records failures.

* structure: ``extra-text`` when a well-formed document sits inside other text, else the core's
  ``not-parseable``;
* format, in this order of precedence: ``wrong-type`` for a document of another kind (not the
  reference's root element), ``missing-key`` (XSD: a missing child element or required attribute),
  ``invented-key`` (an element or attribute name the XSD declares nowhere, or an attribute it does
  not allow there), ``wrong-type`` (a value that is not of its XSD built-in type, e.g. ``xs:integer``),
  else ``schema-violation`` (order, facets such as enumerations and ranges, counts).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from lxml import etree

from rlstruct.error_types import first_failing_component
from rlstruct.xml_safety import UnsafeXml, parse_untrusted, strip_xml_fence

from .credit import count_invented
from .schemas import SchemaError, compile_schema

_DOCUMENT_START = re.compile(r"<[A-Za-z_?]")
_PRECEDENCE = ("missing-key", "invented-key", "wrong-type", "schema-violation")


def _message_kind(message: str) -> str:
    if "Missing child element" in message or "is required but missing" in message:
        return "missing-key"
    if "is not allowed" in message:  # an attribute the element may not carry
        return "invented-key"
    if "[facet" not in message and "is not a valid value of the atomic type" in message:
        return "wrong-type"
    return "schema-violation"


def _embedded_document(completion: str) -> bool:
    """Whether a well-formed XML document lies inside ``completion`` with other text around it."""
    start = _DOCUMENT_START.search(completion)
    end = completion.rfind(">")
    if start is None or end < start.start():
        return False
    outside = (completion[: start.start()] + completion[end + 1 :]).replace("```xml", "").replace("```", "")
    if not outside.strip():
        return False
    try:
        parse_untrusted(completion[start.start() : end + 1])
    except UnsafeXml:
        return False
    return True


def xml_error_type(record: Mapping[str, Any], completion: str, breakdown: Any, root_tag: str) -> str | None:
    """Refine an xml-records failure (see the module docstring); ``root_tag`` is the reference's root."""
    failing = first_failing_component(breakdown.components)
    if failing == "structure":
        return "extra-text" if _embedded_document(completion) else None
    if failing != "format":
        return None
    body = strip_xml_fence(completion)
    try:
        root = parse_untrusted(body) if body else None
        schema = compile_schema(record["xsd"])
    except (UnsafeXml, SchemaError):
        return None
    if not isinstance(root, etree._Element):
        return None
    if root.tag != root_tag:
        return "wrong-type"
    kinds = {_message_kind(message) for message in schema.validation_errors(root)}
    if count_invented(root, schema):
        kinds.add("invented-key")
    return next((kind for kind in _PRECEDENCE if kind in kinds), None)
