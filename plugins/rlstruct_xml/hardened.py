"""Hardened XML parsing: moved to the core as :mod:`rlstruct.xml_safety` (public API in
:mod:`rlstruct.plugin_api`). Re-exported here so ``rlstruct_xml.hardened`` keeps working."""

from rlstruct.xml_safety import (  # noqa: F401 - re-exports
    MAX_XML_BYTES,
    MAX_XML_DEPTH,
    UnsafeXml,
    _RefuseExternal,
    has_declaration,
    make_parser,
    parse_bytes,
    parse_untrusted,
    strip_xml_fence,
    tag_depth,
)
