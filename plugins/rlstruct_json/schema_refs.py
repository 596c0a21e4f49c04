"""Keep every reference of a record's JSON Schema inside the record's own document.

A json-schema record is untrusted data, and a reference keyword may name any URI:
``{"$dynamicRef": "http://127.0.0.1:9/x"}`` or ``{"$ref": "file:///etc/passwd"}``. jsonschema's
default registry fetches whatever it cannot find, so such a record would make every reward worker
open a socket or read a local file, and the fetched content would decide the score. Here:

* :func:`document_registry` is a ``referencing`` registry that holds the record's schema and
  nothing else, and whose retriever refuses every URI. The validator resolves through it
  (:func:`rlstruct_json.schema_credit.validator_for`), so nothing is fetched even for a record
  that never went through :func:`outside_references`;
* :func:`outside_references` lists every reference keyword (``$ref``, ``$dynamicRef``,
  ``$recursiveRef``) that does not resolve to a schema inside the document; the task refuses
  such a record at load and again when it scores;
* plain-name anchors inside the document resolve: 2020-12 ``$anchor`` and ``$dynamicAnchor``,
  and the draft-04 form ``"id": "#name"``. A root ``$id`` (or a draft-04 root ``id`` URI) only
  names the document itself; it never makes anything fetchable.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from referencing import Anchor, Registry, Specification
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012, DynamicAnchor

REFERENCE_KEYWORDS: tuple[str, ...] = ("$ref", "$dynamicRef", "$recursiveRef")
"""Keywords whose value is a URI to follow; each must resolve inside the record's schema."""

DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
"""Keywords whose values are instance data, never schemas (not searched for keywords)."""


def refuse_retrieval(uri: str) -> Any:
    """The registry's retriever: nothing outside the document is ever fetched."""
    raise NoSuchResource(ref=uri)


def schema_nodes(schema: Any) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every object node of ``schema`` with its path (iterative; data keywords are skipped).

    This over-approximates the schema positions (a ``properties`` map is visited too), which is
    the safe direction: a reference anywhere in the document is checked.
    """
    stack: list[tuple[tuple[Any, ...], Any]] = [((), schema)]
    while stack:  # children are pushed in reverse, so nodes come out in document order
        path, node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed([((*path, index), item) for index, item in enumerate(node)]))
        elif isinstance(node, dict):
            yield path, node
            children = [((*path, key), value) for key, value in node.items() if key not in DATA_KEYWORDS]
            stack.extend(reversed(children))


def _plain_anchors(_spec: Specification[Any], contents: Any) -> Iterable[Anchor[Any]]:
    """Every plain-name anchor of the whole document, all named relative to the root."""
    found: list[Anchor[Any]] = []
    for _, node in schema_nodes(contents):
        resource = DRAFT202012.create_resource(node)  # the validator's view of the target
        legacy = node.get("id")
        if isinstance(legacy, str) and legacy.startswith("#") and len(legacy) > 1:
            found.append(Anchor(name=legacy[1:], resource=resource))
        anchor = node.get("$anchor")
        if isinstance(anchor, str) and anchor:
            found.append(Anchor(name=anchor, resource=resource))
        dynamic = node.get("$dynamicAnchor")
        if isinstance(dynamic, str) and dynamic:
            found.append(DynamicAnchor(name=dynamic, resource=resource))
    return found


def _root_id(contents: Any) -> str | None:
    value = contents.get("$id") if isinstance(contents, dict) else None
    return value if isinstance(value, str) else None


_IN_DOCUMENT = Specification(
    name="rlstruct in-document (Draft 2020-12 plus draft-04 plain-name ids)",
    id_of=_root_id,
    # Sub-schemas are not crawled as separate resources: the root's anchors cover the document,
    # and a sub-schema's $schema or $id cannot switch how (or where) anything is looked up.
    subresources_of=lambda contents: [],
    maybe_in_subresource=lambda segments, resolver, subresource: resolver,
    anchors_in=_plain_anchors,
)


def document_registry(schema: Any) -> Registry[Any]:
    """A crawled registry holding only ``schema`` (and its anchors); it refuses to retrieve anything.

    Pass it as ``registry=`` to a jsonschema validator: jsonschema adds the bundled meta-schemas
    (no I/O) and the root resource, and keeps the anchors found here.
    """
    resource = _IN_DOCUMENT.create_resource(schema)
    registry: Registry[Any] = Registry(retrieve=refuse_retrieval)  # type: ignore[call-arg]
    registry = registry.with_resource(_root_id(schema) or "", resource)
    legacy = schema.get("id") if isinstance(schema, dict) else None
    if isinstance(legacy, str) and legacy and not legacy.startswith("#"):
        registry = registry.with_resource(legacy, resource)  # draft-04 root id: another name for it
    return registry.crawl()


def outside_references(schema: Any) -> list[tuple[tuple[Any, ...], str, Any]]:
    """``(path, keyword, value)`` of every reference keyword that does not resolve to a schema
    inside ``schema`` (a remote or ``file:`` URI, a missing pointer or anchor...), in document order.

    Resolution goes through :func:`document_registry`, so checking fetches nothing either.
    """
    registry = document_registry(schema)
    resolver = registry.resolver_with_root(DRAFT202012.create_resource(schema))
    bad: list[tuple[tuple[Any, ...], str, Any]] = []
    for path, node in schema_nodes(schema):
        for keyword in REFERENCE_KEYWORDS:
            value = node.get(keyword)
            if not isinstance(value, str):
                # Where it is a keyword, the meta-schema refuses a non-string; elsewhere (a
                # property named "$ref" in a properties map) it is not a reference at all.
                continue
            try:
                target = resolver.lookup(value).contents
            except Exception:  # noqa: BLE001 - any failure to resolve is a refusal, never a fetch
                target = None
            if not isinstance(target, (dict, bool)):
                bad.append((path, keyword, value))
    return bad


__all__ = [
    "DATA_KEYWORDS",
    "REFERENCE_KEYWORDS",
    "document_registry",
    "outside_references",
    "refuse_retrieval",
    "schema_nodes",
]
