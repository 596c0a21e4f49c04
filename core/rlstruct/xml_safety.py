"""Hardened XML parsing for untrusted text (model completions, and XSDs or references from records).

Part of the public plugin API (:mod:`rlstruct.plugin_api`): any task that reads XML should parse
it with :func:`parse_untrusted`, exported as ``rlstruct.parse_untrusted_xml``.

Every text goes through the same steps, cheapest first, and any refusal raises :class:`UnsafeXml`:

1. it must be a ``str`` of at most ``max_chars`` characters (checked before anything else, so a
   50 MB string costs nothing);
2. it must not contain ``<!DOCTYPE`` or ``<!ENTITY`` (any case, white space allowed after
   ``<!``): no DTD means no entity declarations, no external subset, no entity expansion;
3. it must encode to UTF-8 (a lone surrogate such as ``"\\udcff"`` is refused) and stay within
   ``max_bytes`` bytes;
4. a linear pre-scan of the tags must find nesting no deeper than ``max_depth``;
5. only then is it parsed by lxml with a parser built by :func:`make_parser`, which passes every
   safety option explicitly and refuses any external resource through a resolver that raises.

The parser runs with ``recover=False``: text that is not well-formed XML is an error, never a
"repaired" tree.
"""

from __future__ import annotations

import re

from lxml import etree

MAX_XML_BYTES = 1_000_000
"""Largest UTF-8 encoding of a document the parser accepts."""
MAX_XML_DEPTH = 128
"""Deepest element nesting accepted (libxml2's own limit without ``huge_tree`` is 256)."""

_DECLARATION = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
# A start or end tag. Quoted attribute values may hold '>' but never '<', so no alternative can
# run past the next '<': each attempt is bounded by the distance to the next tag.
_TAG = re.compile(r"<(/?)[^<>\"'!?]*(?:(?:\"[^\"<]*\"|'[^'<]*')[^<>\"']*)*>")
_SKIPPED = (("<!--", "-->"), ("<![CDATA[", "]]>"), ("<?", "?>"))


class UnsafeXml(ValueError):
    """The text was refused before or during parsing (too big, too deep, DTD, not well-formed...)."""


class _RefuseExternal(etree.Resolver):
    """A resolver that refuses every external resource (DTD, entity, schema include)."""

    def resolve(self, url: str, pubid: str, context: object) -> None:
        raise UnsafeXml(f"external resource refused: {str(url)[:100]}")


def make_parser() -> etree.XMLParser:
    """A new lxml parser with every safety option set explicitly.

    A fresh parser per call keeps parsing thread-safe; building one costs microseconds.
    """
    parser = etree.XMLParser(
        encoding="utf-8",  # the bytes are always our own UTF-8 encoding of a str
        resolve_entities=False,  # never substitute entities
        no_network=True,  # libxml2 must not fetch anything over the network
        load_dtd=False,  # never load an external DTD
        dtd_validation=False,
        attribute_defaults=False,  # defaults would come from a DTD
        huge_tree=False,  # keep libxml2's limits on depth and text node size
        recover=False,  # malformed XML is an error, not a repaired tree
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=False,
        strip_cdata=True,
        collect_ids=True,  # NB: False makes libxml2 load the external DTD subset (loadsubset != 0)
        ns_clean=False,
        compact=True,
    )
    parser.resolvers.add(_RefuseExternal())
    return parser


def has_declaration(text: str) -> bool:
    """True if ``text`` contains ``<!DOCTYPE`` or ``<!ENTITY`` (case-insensitive)."""
    return _DECLARATION.search(text) is not None


def tag_depth(text: str, limit: int) -> int:
    """Nesting depth of the start/end tags in ``text``, found without parsing.

    Skips comments, CDATA sections and processing instructions; treats ``<x/>`` as depth-neutral.
    Linear time; stops as soon as the depth exceeds ``limit`` (and returns that depth). When the
    text has at most ``limit`` ``<`` characters it returns that count, an upper bound. Text that is
    not well-formed gets an approximate answer, which is fine: the parser rejects it anyway.
    """
    tags = text.count("<")
    if tags <= limit:  # the depth can never exceed the number of tags: this bound is enough
        return tags
    depth = best = pos = 0
    find, match = text.find, _TAG.match
    while True:
        start = find("<", pos)
        if start < 0:
            return best
        for opener, closer in _SKIPPED:
            if text.startswith(opener, start):
                end = find(closer, start + len(opener))
                if end < 0:
                    return best
                pos = end + len(closer)
                break
        else:
            tag = match(text, start)
            if tag is None:
                pos = start + 1
                continue
            pos = tag.end()
            if tag.group(1):
                depth -= 1
            elif text[pos - 2] != "/":
                depth += 1
                if depth > best:
                    best = depth
                    if best > limit:
                        return best


def parse_untrusted(
    text: str, *, max_bytes: int = MAX_XML_BYTES, max_depth: int = MAX_XML_DEPTH
) -> etree._Element:
    """Parse untrusted XML text into its root element, or raise :class:`UnsafeXml`.

    See the module docstring for the steps. Never reads a file or opens a socket.
    """
    if not isinstance(text, str):
        raise UnsafeXml(f"expected text, got {type(text).__name__}")
    if len(text) > max_bytes:  # a character is at least one UTF-8 byte
        raise UnsafeXml(f"text of {len(text)} characters exceeds {max_bytes} bytes")
    if has_declaration(text):
        raise UnsafeXml("DOCTYPE or ENTITY declarations are not allowed")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeXml(f"text is not valid Unicode ({exc.reason} at {exc.start})") from None
    if len(data) > max_bytes:
        raise UnsafeXml(f"document of {len(data)} bytes exceeds {max_bytes}")
    if not data.strip():
        raise UnsafeXml("empty document")
    if tag_depth(text, max_depth) > max_depth:
        raise UnsafeXml(f"elements nested deeper than {max_depth}")
    return parse_bytes(data)


def parse_bytes(data: bytes) -> etree._Element:
    """Parse UTF-8 bytes with :func:`make_parser` only (no pre-checks); raise :class:`UnsafeXml`.

    Use :func:`parse_untrusted` for untrusted text; this step alone is still safe (no entity
    expansion, no DTD, no network) and is exposed so tests can prove it.
    """
    try:
        root = etree.fromstring(data, make_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"not well-formed XML: {str(exc)[:200]}") from None
    except UnsafeXml:
        raise
    except (ValueError, TypeError, MemoryError) as exc:
        raise UnsafeXml(f"XML parser refused the document: {type(exc).__name__}") from None
    if root is None:
        raise UnsafeXml("no root element")
    return root


def strip_xml_fence(text: str) -> str | None:
    """The XML part of a completion, or ``None`` if the wrapping is not accepted.

    Accepted, and nothing more: surrounding white space, and one markdown fence around the whole
    completion, opened by ```` ``` ```` or ```` ```xml ```` (any case) on its own line and closed
    by ```` ``` ````. Prose before or after the document is not stripped (the parser then fails).
    Pure string operations: linear time on any input.
    """
    body = text.strip()
    if not body.startswith("```"):
        return body
    newline = body.find("\n")
    if newline < 0 or len(body) < 7 or not body.endswith("```"):
        return None
    if body[3:newline].strip().lower() not in ("", "xml"):
        return None
    return body[newline + 1 : -3].strip()
