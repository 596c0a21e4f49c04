"""The ``xml-records`` task: emit an XML document valid under an XSD. See docs/tasks/xml-records.md."""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from lxml import etree

from rlstruct import MAX_COMPLETION_CHARS, Parsed, Prompt, Record, RecordError, Task
from rlstruct.xml_safety import UnsafeXml, parse_untrusted, strip_xml_fence

from .checks import validity_score
from .credit import ReferenceProfile, content_items, format_score, multiset_f1, profile
from .error_classes import xml_error_type
from .schemas import BUILTIN_SCHEMAS, BoundedCache, SchemaError, compile_schema, resolve_xsd
from .synthetic import generate

_KEYS = ("prompt", "xsd", "reference")
_PROFILES: BoundedCache[str, ReferenceProfile] = BoundedCache(1024)

SYSTEM_PROMPT = (
    "Output only one XML document that is valid under the XML Schema (XSD) below: no prose, no "
    "explanation. An XML declaration is allowed; a DOCTYPE is not.\n\nXSD:\n{xsd}"
)


def _reference_profile(reference: str) -> ReferenceProfile:
    """The reference's :class:`ReferenceProfile`, cached by a hash of its text."""
    key = hashlib.sha256(reference.encode("utf-8", "surrogatepass")).hexdigest()
    return _PROFILES.get(key, lambda: profile(parse_untrusted(reference)))


class XmlRecordsTask(Task):
    """XML documents conforming to an XSD (built-in bibliography / purchase-order schemas, or any)."""

    name = "xml-records"
    description = "XML documents valid under an XSD (bibliographies, purchase orders, or a record's own XSD)."
    hf_dataset = None
    synthetic_size = 512

    # -- data ---------------------------------------------------------------------------------
    def normalize_record(self, raw: Mapping[str, Any]) -> Record:
        """Check keys and types, that the XSD compiles and that the reference is valid under it.

        The record is returned as given (a plain copy); extra keys are kept and ignored.
        """
        if not isinstance(raw, Mapping):
            raise RecordError(f"record must be an object, got {type(raw).__name__}")
        for key in _KEYS:
            if key not in raw:
                raise RecordError(f"{key}: missing")
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise RecordError(f"{key}: must be a non-empty string")
        try:
            schema = compile_schema(raw["xsd"])
        except SchemaError as exc:
            names = ", ".join(BUILTIN_SCHEMAS)
            raise RecordError(f"xsd: {exc} (give XSD text or a built-in name: {names})") from None
        try:
            root = parse_untrusted(raw["reference"])
        except UnsafeXml as exc:
            raise RecordError(f"reference: {exc}") from None
        errors = schema.validation_errors(root)
        if errors:
            raise RecordError(f"reference: not valid under the XSD: {errors[0][:200]}")
        return dict(raw)

    def synthetic(self, split: str, size: int, seed: int, difficulty: float | None = None) -> list[Record]:
        """Seeded bibliographies and purchase orders (built-in schemas); splits never share prompts.

        ``difficulty`` in [0, 1] sets repeated elements, optional elements and attributes, and above
        the default adds nested outlines (``None``: the default, 0.5).
        """
        return generate(split, size, seed, difficulty)

    # -- prompting ----------------------------------------------------------------------------
    def build_prompt(self, record: Record) -> Prompt:
        """System: output only an XML document valid under the XSD (included); user: the prompt."""
        xsd_text, _ = resolve_xsd(record["xsd"])
        return Prompt(
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT.format(xsd=xsd_text.strip())},
                {"role": "user", "content": record["prompt"]},
            ]
        )

    def reference_completion(self, record: Record) -> str | None:
        """The reference XML document."""
        return record["reference"]

    # -- hierarchical reward --------------------------------------------------------------------
    def structure(self, record: Record, completion: str) -> Parsed:
        """1 if the completion (optionally in one ```xml fence) is well-formed XML, else 0.

        Refused with 0 before parsing: over ``MAX_COMPLETION_CHARS`` characters, DOCTYPE/ENTITY,
        lone surrogates, nesting over the depth bound. The parsed value is the root element.
        """
        if not isinstance(completion, str) or len(completion) > MAX_COMPLETION_CHARS:
            return Parsed(0.0)
        body = strip_xml_fence(completion)
        if not body:
            return Parsed(0.0)
        try:
            return Parsed(1.0, parse_untrusted(body))
        except UnsafeXml:
            return Parsed(0.0)

    def format(self, record: Record, parsed: Any) -> float:
        """XSD conformance with partial credit (1.0 exactly when valid with only declared names)."""
        if not isinstance(parsed, etree._Element):
            return 0.0
        return format_score(parsed, compile_schema(record["xsd"]), _reference_profile(record["reference"]))

    def content(self, record: Record, parsed: Any) -> float:
        """Multiset F1 of (path, text) and (path@attr, value) items against the reference."""
        if not isinstance(parsed, etree._Element):
            return 0.0
        return multiset_f1(content_items(parsed), _reference_profile(record["reference"]).items)

    def validity(self, record: Record, parsed: Any) -> float:
        """Share of semantic checks passed (schema-specific, or generic typed values)."""
        if not isinstance(parsed, etree._Element):
            return 0.0
        return validity_score(parsed, compile_schema(record["xsd"]))

    # -- evaluation aids ------------------------------------------------------------------------
    def error_type(self, record: Record, completion: str, breakdown: Any) -> str | None:
        """extra-text for structure; wrong-type (another root), missing-key, invented-key, wrong-type or
        schema-violation for format, from the XSD's complaints (see :mod:`.error_classes`)."""
        return xml_error_type(record, completion, breakdown, _reference_profile(record["reference"]).root_tag)
