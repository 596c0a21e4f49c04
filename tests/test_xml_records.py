"""Tests of the ``xml-records`` task (plugins/rlstruct_xml): records, prompts, the four reward
components, and hostile input (XXE, billion laughs, external DTD, deep nesting, huge documents)."""

from __future__ import annotations

import resource
import socket
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from rlstruct import COMPONENTS, RecordError
from rlstruct.reward import RewardSpec, score_inline
from rlstruct_xml import XmlRecordsTask
from rlstruct_xml.credit import MAX_NODES
from rlstruct_xml.hardened import (
    MAX_XML_DEPTH,
    UnsafeXml,
    make_parser,
    parse_bytes,
    parse_untrusted,
    strip_xml_fence,
    tag_depth,
)
from rlstruct_xml.schemas import BoundedCache, SchemaError, builtin_text, compile_schema

TASK = XmlRecordsTask()
SPEC = RewardSpec.build(TASK, {})
TRAIN = TASK.synthetic("train", 80, 7)
PO = next(r for r in TRAIN if r["xsd"] == "purchase-order")
BIB = next(r for r in TRAIN if r["xsd"] == "bibliography")
PASSWD_LINE = next(
    (line for line in Path("/etc/passwd").read_text(errors="replace").splitlines() if line.strip()),
    "root:x:0:0:",
)

EVENT_XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="event">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="title" type="xs:string"/>
        <xs:element name="day" type="xs:date"/>
        <xs:element name="fee" type="xs:decimal"/>
      </xs:sequence>
      <xs:attribute name="seats" type="xs:positiveInteger" use="required"/>
    </xs:complexType>
  </xs:element>
</xs:schema>"""
EVENT = {
    "prompt": "A talk on XML, 2024-05-01, fee 12.50, 40 seats.",
    "xsd": EVENT_XSD,
    "reference": '<event seats="40"><title>A talk on XML</title><day>2024-05-01</day><fee>12.50</fee></event>',
}


def score(record: dict, completion: str):
    return score_inline(TASK, SPEC, record, completion)


def assert_clean(breakdown) -> None:
    assert not breakdown.errors, breakdown.errors
    assert 0.0 <= breakdown.reward <= 1.0
    for name in COMPONENTS:
        assert 0.0 <= breakdown.components[name] <= 1.0
    for before, after in zip(COMPONENTS, COMPONENTS[1:]):
        if breakdown.components[before] == 0.0:
            assert breakdown.components[after] == 0.0


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@contextmanager
def bounded(seconds: float = 1.0, megabytes: int = 200) -> Iterator[None]:
    """Assert the block takes under ``seconds`` and allocates under ``megabytes`` (Python heap
    peak by tracemalloc; whole-process peak growth by maxrss, which covers libxml2)."""
    rss_before = _maxrss_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f}s"
    assert peak < megabytes * 2**20, f"python peak {peak / 2**20:.0f} MB"
    assert _maxrss_bytes() - rss_before < megabytes * 2**20


@pytest.fixture
def no_network(monkeypatch):
    """Fail on any Python socket; also a real listener to catch connects made from C (libxml2)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)

    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        connection = None
    finally:
        listener.close()
    assert connection is None, "something connected to the listener"


@pytest.fixture
def secret_file(tmp_path: Path) -> tuple[str, str]:
    marker = "SECRET-MARKER-7f3a9c"
    path = tmp_path / "secret.txt"
    path.write_text(marker)
    return path.as_uri(), marker


def reachable_text(record: dict, completion: str) -> str:
    """Everything a parse of ``completion`` exposes: the tree, serialised, and the scores."""
    parsed = TASK.structure(record, completion)
    parts = [repr(parsed.score), repr(score(record, completion).to_json())]
    if parsed.value is not None:
        parts.append(etree.tostring(parsed.value, encoding="unicode"))
        parts.extend(str(node.text) for node in parsed.value.iter())
    return "\n".join(parts)


# -- records, synthetic data, prompts ----------------------------------------------------------------
# That synthetic references score 1.0, that records round-trip through JSON and normalize_record,
# that splits are seeded, disjoint and sized, that an unknown split is refused, and that generic
# hostile output is bounded is checked for every built-in task by the contract kit
# (tests/test_contract_kit.py).
def test_synthetic_covers_both_builtin_schemas_and_a_record_xsd_reference_scores_one():
    assert {r["xsd"] for r in TRAIN} >= {"bibliography", "purchase-order"}
    assert TASK.normalize_record(EVENT) == EVENT
    breakdown = score(EVENT, TASK.reference_completion(EVENT))
    assert breakdown.components == {name: 1.0 for name in COMPONENTS}, breakdown
    assert breakdown.reward == 1.0 and not breakdown.errors


def test_split_aliases():
    assert TASK.synthetic("eval", 5, 1) == TASK.synthetic("test", 5, 1)
    assert TASK.synthetic("dev", 5, 1) == TASK.synthetic("validation", 5, 1)


def test_synthetic_prompts_state_the_facts():
    root = etree.fromstring(PO["reference"])
    for value in (root.get("orderId"), root.get("orderDate"), root.get("shipDate"), root.findtext("shipTo/city")):
        assert value in PO["prompt"]
    for item in root.iter("item"):
        assert item.get("sku") in PO["prompt"] and item.findtext("unitPrice") in PO["prompt"]
    bib = etree.fromstring(BIB["reference"])
    for entry in bib.iter("entry"):
        assert entry.findtext("title") in BIB["prompt"] and entry.get("id") in BIB["prompt"]
        assert all(author.text in BIB["prompt"] for author in entry.iter("author"))


def test_build_prompt_and_reference():
    prompt = TASK.build_prompt(PO)
    system, user = prompt.messages
    assert system["role"] == "system" and user == {"role": "user", "content": PO["prompt"]}
    assert "only" in system["content"] and "XSD" in system["content"]
    assert builtin_text("purchase-order").strip() in system["content"]
    assert EVENT_XSD in TASK.build_prompt(EVENT).messages[0]["content"]
    assert TASK.reference_completion(PO) == PO["reference"]


@pytest.mark.parametrize(
    "change, key",
    [
        ({"prompt": None}, "prompt"),
        ({"xsd": 3}, "xsd"),
        ({"reference": ""}, "reference"),
        ({"xsd": "purchase_order"}, "xsd"),  # neither a built-in name nor XSD text
        ({"xsd": "<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><xs:element/></xs:schema>"}, "xsd"),
        ({"xsd": "bibliography"}, "reference"),  # the purchase order is not a bibliography
        ({"reference": "<purchaseOrder/>"}, "reference"),
        ({"reference": "<purchaseOrder"}, "reference"),
        ({"reference": '<!DOCTYPE r [<!ENTITY x "y">]><purchaseOrder/>'}, "reference"),
    ],
)
def test_normalize_record_names_the_key(change, key):
    record = {**PO, **change}
    with pytest.raises(RecordError, match=rf"^{key}:"):
        TASK.normalize_record(record)


def test_normalize_record_reports_the_first_xsd_error():
    with pytest.raises(RecordError, match=r"reference: not valid under the XSD: .*purchaseOrder"):
        TASK.normalize_record({**PO, "reference": "<purchaseOrder/>"})
    with pytest.raises(RecordError, match="prompt: missing"):
        TASK.normalize_record({"xsd": "bibliography", "reference": BIB["reference"]})
    assert TASK.normalize_record({**BIB, "id": 12}) == {**BIB, "id": 12}  # extra keys kept


@pytest.mark.parametrize(
    "statement",
    [
        '<xs:include schemaLocation="other.xsd"/>',
        '<xs:import namespace="urn:x" schemaLocation="file:///etc/passwd"/>',
        '<xs:redefine schemaLocation="other.xsd"/>',
    ],
)
def test_xsd_may_not_load_other_files(statement):
    xsd = EVENT_XSD.replace('<xs:element name="event">', statement + '<xs:element name="event">', 1)
    with pytest.raises(RecordError, match="xsd: xs:(include|import|redefine)"):
        TASK.normalize_record({**EVENT, "xsd": xsd})


def test_xsd_import_over_network_is_refused_without_connecting(no_network):
    xsd = EVENT_XSD.replace(
        '<xs:element name="event">', f'<xs:import namespace="urn:x" schemaLocation="{no_network}/x.xsd"/><xs:element name="event">', 1
    )
    with pytest.raises(RecordError, match="xsd:"):
        TASK.normalize_record({**EVENT, "xsd": xsd})
    with pytest.raises(SchemaError):
        compile_schema('<!DOCTYPE xs:schema SYSTEM "' + no_network + '/x.dtd">' + EVENT_XSD)
    # an import without a location loads nothing
    plain = EVENT_XSD.replace('<xs:element name="event">', '<xs:import namespace="urn:x"/><xs:element name="event">', 1)
    assert TASK.normalize_record({**EVENT, "xsd": plain})


def test_compiled_schemas_are_cached_and_bounded():
    assert compile_schema("purchase-order") is compile_schema("purchase-order")
    assert compile_schema(builtin_text("purchase-order")) is compile_schema("purchase-order")
    cache: BoundedCache[int, int] = BoundedCache(3)
    for key in range(10):
        cache.get(key, lambda key=key: key * 2)
    assert len(cache._items) == 3 and cache.get(9, lambda: -1) == 18 and cache.get(0, lambda: -1) == -1


# -- structure ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "wrap",
    [
        lambda x: x,
        lambda x: f"\n\n  {x}  \n",
        lambda x: f"```xml\n{x}\n```",
        lambda x: f"```XML\n{x}\n```\n",
        lambda x: f"```\n{x}\n```",
        lambda x: f'<?xml version="1.0" encoding="UTF-8"?>\n{x}',
        lambda x: f'<?xml version="1.0" encoding="ISO-8859-1"?>\n{x}',  # the text is always read as Unicode
        lambda x: f"```xml\n<?xml version='1.0'?>\n{x}\n```",
        lambda x: x.replace("<items>", "<items><!-- comment --><?pi data?>"),
    ],
)
def test_accepted_completion_forms(wrap):
    record = next(r for r in TRAIN if r["xsd"] == "purchase-order" and any(ord(c) > 127 for c in r["reference"]))
    breakdown = score(record, wrap(record["reference"]))
    assert breakdown.reward == 1.0, breakdown


@pytest.mark.parametrize(
    "wrap",
    [
        lambda x: f"Here is the XML:\n{x}",
        lambda x: f"{x}\nHope this helps!",
        lambda x: f"```json\n{x}\n```",
        lambda x: f"```xml\n{x}\n```\n```xml\n{x}\n```",
        lambda x: f"```xml\n{x}",
        lambda x: x + x,
        lambda x: x[:-5],
        lambda x: f"<!DOCTYPE purchaseOrder>\n{x}",
        lambda x: f"<!doctype purchaseOrder>{x}",
    ],
)
def test_rejected_completion_forms(wrap):
    breakdown = score(PO, wrap(PO["reference"]))
    assert breakdown.components["structure"] == 0.0 and breakdown.reward == 0.0
    assert_clean(breakdown)


def test_strip_xml_fence():
    assert strip_xml_fence("  <a/> ") == "<a/>"
    assert strip_xml_fence("```xml\n<a/>\n```") == "<a/>"
    assert strip_xml_fence("```python\n<a/>\n```") is None
    assert strip_xml_fence("```") is None


def test_tag_depth_skips_comments_cdata_and_quoted_brackets():
    inner = "<b>" * 300
    shallow = f"<a><!-- {inner} --><![CDATA[{inner}]]><?pi {inner}?><c x='>' y=\"/>\"/></a>" + "<x/>" * 200
    assert tag_depth(shallow, MAX_XML_DEPTH) <= 2
    assert tag_depth("<a><b/><c></c></a>" + " <z/>" * 200, 128) == 2
    deep = '<a x="/>">' * 200 + "</a>" * 200  # '/>' inside quotes does not close the tag
    assert tag_depth(deep, MAX_XML_DEPTH) > MAX_XML_DEPTH
    with pytest.raises(UnsafeXml, match="deeper"):
        parse_untrusted(deep)
    assert parse_untrusted("<a>" * 100 + "</a>" * 100).tag == "a"


# -- format --------------------------------------------------------------------------------------------
def test_wrong_root_is_well_formed_but_format_zero():
    breakdown = score(PO, BIB["reference"])
    assert breakdown.components == {"structure": 1.0, "format": 0.0, "content": 0.0, "validity": 0.0}
    namespaced = PO["reference"].replace("<purchaseOrder ", '<purchaseOrder xmlns="urn:other" ', 1)
    assert score(PO, namespaced).components["format"] == 0.0


def test_format_partial_credit_is_honest():
    ref = PO["reference"]
    empty = score(PO, "<purchaseOrder/>").components["format"]
    skeleton = score(PO, '<purchaseOrder orderId="PO-00001" orderDate="2020-01-01" shipDate="2020-01-02" currency="USD"/>')
    one_type_error = score(PO, ref.replace("<total>", "<total>about ", 1)).components["format"]
    declared_but_misplaced = score(PO, ref.replace("</name>", "</name><city>X</city>", 1)).components["format"]
    invented = score(PO, ref.replace("</name>", "</name><nickname>X</nickname>", 1)).components["format"]
    invented_attr = score(PO, ref.replace("<buyer>", '<buyer vip="yes">', 1)).components["format"]
    assert empty < 0.05 and skeleton.components["format"] < 0.2
    assert one_type_error == 0.5  # every path present, one XSD error
    assert declared_but_misplaced == 0.5
    assert invented < declared_but_misplaced and invented_attr < 0.5
    assert score(PO, ref).components["format"] == 1.0


def test_too_many_nodes_get_format_zero():
    filler = "<city>x</city>" * (MAX_NODES + 10)
    breakdown = score(PO, PO["reference"].replace("</shipTo>", filler + "</shipTo>", 1))
    assert breakdown.components["structure"] == 1.0 and breakdown.components["format"] == 0.0


# -- content ---------------------------------------------------------------------------------------------
def test_content_f1_over_paths_texts_and_attributes():
    ref = PO["reference"]
    root = etree.fromstring(ref)
    city = root.findtext("shipTo/city")
    total = root.findtext("total")
    same = ref.replace(f"<city>{city}</city>", f"<city>  {city.upper()} </city>").replace(
        f"<total>{total}</total>", f"<total>{total}000</total>"
    )
    assert score(PO, same).components["content"] == 1.0  # case, spacing, trailing zeros ignored
    wrong_city = score(PO, ref.replace(f"<city>{city}</city>", "<city>Atlantis</city>")).components["content"]
    wrong_attr = score(PO, ref.replace(f'orderId="{root.get("orderId")}"', 'orderId="PO-00000"')).components["content"]
    assert 0.8 < wrong_city < 1.0 and 0.8 < wrong_attr < 1.0
    extra_item = ref.replace("</items>", '<item sku="ZZZ-0000"><productName>x</productName><quantity>1</quantity><unitPrice>1</unitPrice></item></items>')
    assert score(PO, extra_item).components["content"] < 1.0


def test_content_for_unrelated_but_valid_document_is_low():
    other = next(r for r in TRAIN if r["xsd"] == "purchase-order" and r is not PO)
    breakdown = score(PO, other["reference"])
    assert breakdown.components["format"] == 1.0 and breakdown.components["content"] < 0.5


# -- validity -------------------------------------------------------------------------------------------
def _po(total: str = "25.00", order: str = "2024-01-05", ship: str = "2024-01-09", qty: str = "2") -> str:
    return (
        f'<purchaseOrder orderId="PO-12345" orderDate="{order}" shipDate="{ship}" currency="EUR">'
        "<buyer><name>Ada</name></buyer>"
        "<shipTo><street>1 Elm Street</street><city>Leeds</city><postalCode>12345</postalCode><country>GB</country></shipTo>"
        f'<items><item sku="ABC-1234"><productName>Mouse</productName><quantity>{qty}</quantity><unitPrice>10.00</unitPrice></item>'
        '<item sku="ABC-1235"><productName>Cable</productName><quantity>1</quantity><unitPrice>5</unitPrice></item></items>'
        f"<total>{total}</total></purchaseOrder>"
    )


PO_SMALL = {"prompt": "p", "xsd": "purchase-order", "reference": _po()}


@pytest.mark.parametrize(
    "completion, expected",
    [
        (_po(), 1.0),
        (_po(total="25.009"), 1.0),  # within 0.01
        (_po(total="25.02"), 8 / 9),  # 9 checks: 3 on dates, items present, 2 per item, total
        (_po(ship="2024-01-01"), 8 / 9),
        (_po(qty="0", total="5.00"), 8 / 9),
        (_po(order="2024-02-30"), 7 / 9),  # not a real date, so ordering cannot be checked either
    ],
)
def test_purchase_order_validity(completion, expected):
    assert TASK.normalize_record(PO_SMALL)
    assert score(PO_SMALL, completion).components["validity"] == pytest.approx(expected)


def _bib(year: str = "1999", start: str = "3", end: str = "9", author: str = "Ada Lovelace", second_id: str = "b") -> str:
    return (
        '<bibliography><entry id="a" type="article"><title>T</title>'
        f"<authors><author>{author}</author></authors><year>{year}</year>"
        f'<pages start="{start}" end="{end}"/></entry>'
        f'<entry id="{second_id}" type="book"><title>U</title><authors><author>B</author></authors><year>2001</year></entry>'
        "</bibliography>"
    )


BIB_SMALL = {"prompt": "p", "xsd": "bibliography", "reference": _bib()}


@pytest.mark.parametrize(
    "completion, expected",
    [
        (_bib(), 1.0),
        (_bib(year="1300"), 7 / 8),
        (_bib(year="2500"), 7 / 8),
        (_bib(start="9", end="3"), 7 / 8),
        (_bib(author="   "), 7 / 8),
        (_bib(second_id="a"), 7 / 8),
        ("<bibliography/>", 0.0),
    ],
)
def test_bibliography_validity(completion, expected):
    assert TASK.normalize_record(BIB_SMALL)
    breakdown = score(BIB_SMALL, completion)
    if expected == 0.0:  # an empty bibliography fails its only check (and format is already low)
        assert breakdown.components["validity"] == 0.0
    else:
        assert breakdown.components["validity"] == pytest.approx(expected)


def test_record_supplied_xsd_generic_checks():
    assert TASK.normalize_record(EVENT) == EVENT
    bad_day = EVENT["reference"].replace("2024-05-01", "May 1st")
    breakdown = score(EVENT, bad_day)
    assert breakdown.components["format"] == 0.5 and breakdown.components["validity"] == pytest.approx(2 / 3)
    untyped = {
        "prompt": "p",
        "xsd": '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="note" type="xs:string"/></xs:schema>',
        "reference": "<note>hello</note>",
    }
    assert TASK.normalize_record(untyped)
    assert score(untyped, "<note>Hello!</note>").components == {name: 1.0 for name in COMPONENTS}
    assert score(untyped, "<note>bye</note>").components["content"] == 0.0


def test_inline_builtin_xsd_text_gets_builtin_checks():
    inline = {**PO_SMALL, "xsd": builtin_text("purchase-order")}
    assert score(inline, _po(total="99.00")).components["validity"] == pytest.approx(8 / 9)


# -- hostile input ---------------------------------------------------------------------------------------
XXE = '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]><lolz>&lol9;</lolz>"
)


def _hostile(url: str, secret: str) -> dict[str, str]:
    return {
        "xxe": XXE,
        "xxe-secret": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{secret}">]><r>&x;</r>',
        "xxe-parameter": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]><r/>',
        "billion-laughs": LAUGHS,
        "external-dtd": '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd"><r/>',
        "external-dtd-listener": f'<!DOCTYPE purchaseOrder SYSTEM "{url}/x.dtd"><purchaseOrder/>',
        "xinclude": f'<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{secret}" parse="text"/></r>',
        "deep-100k": "<a>" * 100_000 + "</a>" * 100_000,
        "deep-in-limit": "<a>" * 12_000 + "</a>" * 12_000,  # under the completion size bound
        "50MB": "<purchaseOrder>" + "x" * 50_000_000 + "</purchaseOrder>",
    }


@pytest.mark.parametrize(
    "name",
    ["xxe", "xxe-secret", "xxe-parameter", "billion-laughs", "external-dtd", "external-dtd-listener",
     "xinclude", "deep-100k", "deep-in-limit", "50MB"],
)
def test_hostile_documents_are_refused_safely(name, no_network, secret_file):
    secret_url, marker = secret_file
    completion = _hostile(no_network, secret_url)[name]
    with bounded():
        breakdown = score(PO, completion)
        text = reachable_text(PO, completion)
    assert_clean(breakdown)
    assert breakdown.components["structure"] == 0.0 or name == "xinclude"
    assert breakdown.components["format"] == 0.0
    assert PASSWD_LINE not in text and marker not in text


@pytest.mark.parametrize("name", ["xxe", "xxe-secret", "xxe-parameter", "billion-laughs", "external-dtd", "external-dtd-listener"])
def test_parser_alone_is_safe_without_the_doctype_precheck(name, no_network, secret_file):
    """Defence in depth: even if a DOCTYPE got past the pre-check, the parser expands nothing,
    loads nothing and connects nowhere."""
    secret_url, marker = secret_file
    data = _hostile(no_network, secret_url)[name].encode()
    with bounded():
        try:
            root = parse_bytes(data)
        except UnsafeXml:
            return
        text = etree.tostring(root, encoding="unicode") + "".join(str(n.text) for n in root.iter())
    assert len(text) < 1_000  # no entity expansion
    assert PASSWD_LINE not in text and marker not in text


def test_parser_never_asks_for_an_external_dtd(monkeypatch, tmp_path):
    """Below the refusing resolver, the options themselves must not load a DTD. (lxml's
    ``collect_ids=False`` would: it makes libxml2 load the external subset.)"""
    import rlstruct_xml.hardened as hardened

    asked: list[str] = []
    monkeypatch.setattr(hardened._RefuseExternal, "resolve", lambda self, url, pubid, ctx: asked.append(url))
    dtd = tmp_path / "x.dtd"
    dtd.write_text('<!ENTITY x "LEAKED">')
    root = parse_bytes(f'<!DOCTYPE r SYSTEM "{dtd.as_uri()}"><r>&x;</r>'.encode())
    assert asked == [] and "LEAKED" not in etree.tostring(root, encoding="unicode")


def test_entities_without_a_dtd():
    with pytest.raises(UnsafeXml):
        parse_untrusted("<r>&x;</r>")  # undefined entity: an error, not a hole
    assert parse_bytes(b"<r>&amp;&#65;</r>").text == "&A"  # predefined and character references work
    assert make_parser() is not make_parser()  # a fresh parser per call (thread safety)


def test_huge_document_is_refused_by_size(no_network):
    with bounded():
        with pytest.raises(UnsafeXml, match="exceeds"):
            parse_untrusted("<r>" + "x" * 2_000_000 + "</r>")
        with pytest.raises(UnsafeXml, match="deeper"):
            parse_untrusted("<a>" * 100_000 + "</a>" * 100_000)


def test_schema_location_hints_in_the_completion_load_nothing(no_network):
    hinted = PO["reference"].replace(
        "<purchaseOrder ",
        '<purchaseOrder xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:noNamespaceSchemaLocation="{no_network}/po.xsd" ',
        1,
    )
    with bounded():
        breakdown = score(PO, hinted)
    assert breakdown.reward == 1.0


# Generic hostile output (10 MB strings, deep nesting, number bombs, invalid UTF-8, empty) is
# checked by the contract kit; these are the cases shaped like XML and like the task's documents.
_ODD = [
    "<purchaseOrder>\udcff</purchaseOrder>",
    b"<purchaseOrder>\xff\xfe</purchaseOrder>".decode("utf-8", "surrogateescape"),
    "<purchaseOrder>" + "y" * 10_000_000 + "</purchaseOrder>",
    "<" * 99_000,
    "<!--" * 24_000,
    '<a "' * 24_000,
    "```xml\n" + ("```" + " " * 1000) * 90,
    "<purchaseOrder>" + "<x/>" * 24_000 + "</purchaseOrder>",
    "<purchaseOrder " + " ".join(f'a{i}="1"' for i in range(8_000)) + "/>",
    "\x00<purchaseOrder/>",
]


def _number_variants() -> list[str]:
    ref = _po()
    out = []
    for value in ("9" * 90_000, "1e999999999", "NaN", "Infinity", "-INF", "-0", "0x1F", "1_000"):
        out.append(ref.replace("<total>25.00", f"<total>{value}"))
        out.append(ref.replace("<quantity>2", f"<quantity>{value}"))
        out.append(ref.replace('orderDate="2024-01-05"', f'orderDate="{value}"'))
    return out


@pytest.mark.parametrize("completion", _ODD + _number_variants())
def test_odd_model_output_is_fast_bounded_and_error_free(completion):
    for record in (PO_SMALL, BIB_SMALL, EVENT):
        start = time.perf_counter()
        breakdown = score(record, completion)
        assert time.perf_counter() - start < 1.0
        assert_clean(breakdown)


def test_components_tolerate_odd_parsed_values():
    for value in (None, "<purchaseOrder/>", 3, b"x"):
        assert TASK.format(PO, value) == 0.0
        assert TASK.content(PO, value) == 0.0
        assert TASK.validity(PO, value) == 0.0
    assert TASK.structure(PO, None).score == 0.0  # type: ignore[arg-type]


# -- properties (random text and edited synthetic references are fuzzed by the contract kit) ---------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_inside_a_root_element_never_raises(text):
    for record in (PO, BIB):
        assert_clean(score(record, f"<purchaseOrder>{text}</purchaseOrder>"))


_EDITS = st.lists(
    st.tuples(st.sampled_from(["delete", "insert", "replace"]), st.integers(0, 10**6), st.text(max_size=6)),
    min_size=1,
    max_size=6,
)


def _mutate(text: str, edits) -> str:
    for op, position, piece in edits:
        at = position % (len(text) + 1)
        if op == "delete":
            text = text[:at] + text[at + len(piece) + 1 :]
        elif op == "insert":
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([PO_SMALL, BIB_SMALL, EVENT]), _EDITS)
def test_mutated_references_never_raise_and_gate(record, edits):
    breakdown = score(record, _mutate(record["reference"], edits))
    assert_clean(breakdown)
