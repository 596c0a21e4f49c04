"""XSD handling: the built-in schemas, hardened compilation, and a bounded cache of compiled schemas.

A record's ``xsd`` is either the name of a built-in schema (``"bibliography"``,
``"purchase-order"``) or the text of an XSD. XSD text from a record is data, not code: it is
parsed by :func:`rlstruct.xml_safety.parse_untrusted` (no DTD, no entities, no network), and it
may not pull in other documents: ``xs:include``, ``xs:redefine``, ``xs:override`` and any
``xs:import`` with a ``schemaLocation`` are refused before libxml2 sees the schema.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Callable, Generic, Hashable, Mapping, TypeVar

from lxml import etree

from rlstruct.xml_safety import UnsafeXml, parse_untrusted

XS = "http://www.w3.org/2001/XMLSchema"
"""The XML Schema namespace."""
XSI = "http://www.w3.org/2001/XMLSchema-instance"
"""The XML Schema instance namespace (``xsi:type``, ``xsi:nil``...)."""

BUILTIN_SCHEMAS: dict[str, str] = {
    "bibliography": "bibliography.xsd",
    "purchase-order": "purchase_order.xsd",
}
"""Built-in schema name -> package data file."""

MAX_XSD_BYTES = 512_000
"""Largest XSD text accepted from a record."""
_FORBIDDEN = ("include", "redefine", "override")
_SIMPLE_TYPE_CHAIN = 10

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SchemaError(ValueError):
    """An XSD could not be accepted (unsafe, not well-formed, or does not compile)."""


class BoundedCache(Generic[K, V]):
    """A thread-safe least-recently-used cache holding at most ``size`` values."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The cached value for ``key``, computing it with ``make()`` on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: compiling may be slow; a duplicate is harmless
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


@cache
def builtin_text(name: str) -> str:
    """The XSD text of the built-in schema ``name`` (a key of :data:`BUILTIN_SCHEMAS`)."""
    return resources.files(__package__).joinpath(BUILTIN_SCHEMAS[name]).read_text("utf-8")


def resolve_xsd(xsd: str) -> tuple[str, str | None]:
    """Return ``(xsd_text, builtin_name)`` for a record's ``xsd`` value.

    ``builtin_name`` is set when ``xsd`` names a built-in schema or is its exact text (up to
    surrounding white space), so the schema-specific validity checks apply; else ``None``.
    """
    if xsd in BUILTIN_SCHEMAS:
        return builtin_text(xsd), xsd
    stripped = xsd.strip()
    for name in BUILTIN_SCHEMAS:
        if stripped == builtin_text(name).strip():
            return xsd, name
    return xsd, None


@dataclass(frozen=True)
class CompiledSchema:
    """A compiled XSD with the facts the reward needs about it."""

    schema: etree.XMLSchema
    builtin: str | None
    """Name of the built-in schema, or ``None`` for a record-supplied XSD."""
    element_names: frozenset[str]
    """Local names of every element declared anywhere in the XSD."""
    attribute_names: frozenset[str]
    """Local names of every attribute declared anywhere in the XSD."""
    element_types: Mapping[str, str]
    """Element local name -> built-in XSD type (``date``, ``decimal``...), where unambiguous."""
    attribute_types: Mapping[str, str]
    """Attribute local name -> built-in XSD type, where unambiguous."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def validation_errors(self, root: etree._Element) -> list[str]:
        """Messages of the XSD errors in the document rooted at ``root`` (empty when valid).

        Validation is serialised per schema: lxml keeps the error log on the schema object.
        """
        with self._lock:
            if self.schema.validate(root):
                return []
            return [entry.message for entry in self.schema.error_log]


def _schema_doc(text: str) -> etree._Element:
    try:
        doc = parse_untrusted(text, max_bytes=MAX_XSD_BYTES)
    except UnsafeXml as exc:
        raise SchemaError(str(exc)) from None
    if doc.tag != f"{{{XS}}}schema":
        raise SchemaError(f"root element is {doc.tag!r}, not xs:schema")
    for node in doc.iter(f"{{{XS}}}*"):
        local = etree.QName(node).localname
        if local in _FORBIDDEN:
            raise SchemaError(f"xs:{local} is not allowed (a schema may not load other files)")
        if local == "import" and node.get("schemaLocation") is not None:
            raise SchemaError("xs:import with a schemaLocation is not allowed (no file or network access)")
    return doc


def _xs_type(node: etree._Element, qname: str | None) -> str | None:
    """The local name of ``qname`` if it is a built-in XSD type in ``node``'s scope."""
    if not qname:
        return None
    prefix, _, local = qname.rpartition(":")
    return local if node.nsmap.get(prefix or None) == XS else None


def _declared_types(doc: etree._Element) -> tuple[dict[str, str], dict[str, str]]:
    """Map element and attribute names to the built-in type they are declared with."""
    simple_bases: dict[str, tuple[etree._Element, str]] = {}
    for simple in doc.iterfind(f"{{{XS}}}simpleType[@name]"):
        restriction = simple.find(f"{{{XS}}}restriction")
        if restriction is not None and restriction.get("base"):
            simple_bases[simple.get("name", "")] = (restriction, restriction.get("base", ""))

    def builtin_of(node: etree._Element) -> str | None:
        qname = node.get("type")
        if qname is None:
            inline = node.find(f"{{{XS}}}simpleType/{{{XS}}}restriction")
            if inline is None:
                return None
            node, qname = inline, inline.get("base")
        for _ in range(_SIMPLE_TYPE_CHAIN):
            found = _xs_type(node, qname)
            if found or not qname:
                return found
            named = simple_bases.get(qname.rpartition(":")[2])
            if named is None:
                return None
            node, qname = named
        return None

    result: tuple[dict[str, str], dict[str, str]] = ({}, {})
    ambiguous: tuple[set[str], set[str]] = (set(), set())
    for index, kind in enumerate(("element", "attribute")):
        for node in doc.iter(f"{{{XS}}}{kind}"):
            name = node.get("name")
            if not name:
                continue
            found = builtin_of(node)
            known = result[index].get(name)
            if name in ambiguous[index] or (known is not None and known != found) or found is None:
                ambiguous[index].add(name)
                result[index].pop(name, None)
            else:
                result[index][name] = found
    return result


def _compile(text: str, builtin: str | None) -> CompiledSchema:
    doc = _schema_doc(text)
    try:
        schema = etree.XMLSchema(doc)
    except etree.XMLSchemaParseError as exc:
        first = exc.error_log[0].message if len(exc.error_log) else str(exc)
        raise SchemaError(f"XSD does not compile: {first[:200]}") from None
    except UnsafeXml as exc:
        raise SchemaError(str(exc)) from None
    elements = frozenset(n.get("name", "") for n in doc.iter(f"{{{XS}}}element") if n.get("name"))
    attributes = frozenset(n.get("name", "") for n in doc.iter(f"{{{XS}}}attribute") if n.get("name"))
    element_types, attribute_types = _declared_types(doc)
    return CompiledSchema(schema, builtin, elements, attributes, element_types, attribute_types)


_SCHEMAS: BoundedCache[str, CompiledSchema] = BoundedCache(64)


def compile_schema(xsd: str) -> CompiledSchema:
    """Compile a record's ``xsd`` (built-in name or XSD text), cached by a hash of the text.

    Raises :class:`SchemaError` with the first problem found.
    """
    if not isinstance(xsd, str):
        raise SchemaError(f"xsd must be text, got {type(xsd).__name__}")
    text, builtin = resolve_xsd(xsd)
    try:
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    except UnicodeEncodeError:
        raise SchemaError("xsd is not valid Unicode") from None
    return _SCHEMAS.get(key, lambda: _compile(text, builtin))
