"""No DTD gets through the demo's XML parsing, whatever the document's encoding.

Issue 10 item 9: the old check looked for ``<!doctype`` in the raw bytes, so a UTF-16
document's internal entity was expanded. Every document below is refused by the parser
itself, in the stand-in (``number_from_query``, HTTP 400) and in the client
(``parse_reply``); the same replies without a DTD still parse in every encoding expat reads.
"""

from __future__ import annotations

import codecs
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from celeriac.demo import safexml
from celeriac.demo.hometax import HometaxReplyError, parse_reply, query_xml
from celeriac.demo.standin import StandIn, expected_status, number_from_query, reply_xml


@dataclass(frozen=True)
class Encoding:
    codec: str  # Python's codec for the bytes
    declared: str | None  # the XML declaration's encoding="...", None: no declaration
    bom: bytes = b""  # put before the bytes (Python's utf-16 / utf-32 / utf-8-sig codecs add their own)
    readable: bool = True  # whether expat reads it at all

    def encode(self, text: str) -> bytes:
        if self.declared is not None:
            text = f'<?xml version="1.0" encoding="{self.declared}"?>\n{text}'
        return self.bom + text.encode(self.codec, "xmlcharrefreplace")

    def __str__(self) -> str:
        return f"{self.codec}{'+bom' if self.bom else ''}:{self.declared or 'undeclared'}"


ENCODINGS = [
    Encoding("utf-8", None),
    Encoding("utf-8", "UTF-8"),
    Encoding("utf-8-sig", "UTF-8"),  # with a BOM
    Encoding("utf-16", None),  # BOM, native order
    Encoding("utf-16", "UTF-16"),
    Encoding("utf-16-le", None),  # no BOM: expat recognises "<\0"
    Encoding("utf-16-le", "UTF-16"),
    Encoding("utf-16-le", "UTF-16LE"),
    Encoding("utf-16-le", "UTF-16", bom=codecs.BOM_UTF16_LE),
    Encoding("utf-16-be", None),
    Encoding("utf-16-be", "UTF-16"),
    Encoding("utf-16-be", "UTF-16BE"),
    Encoding("utf-16-be", "UTF-16", bom=codecs.BOM_UTF16_BE),
    Encoding("latin-1", "ISO-8859-1"),
    Encoding("ascii", "US-ASCII"),
    Encoding("cp1252", "windows-1252"),  # read through Python's codec
    Encoding("iso-8859-5", "ISO-8859-5"),
    Encoding("koi8-r", "KOI8-R"),
    # Expat reads neither: refused as not XML, DTD or not.
    Encoding("utf-32", None, readable=False),
    Encoding("utf-32", "UTF-32", readable=False),
    Encoding("utf-32-be", "UTF-32", bom=codecs.BOM_UTF32_BE, readable=False),
    Encoding("cp500", "IBM500", readable=False),  # EBCDIC
    Encoding("shift_jis", "Shift_JIS", readable=False),  # multi-byte
]
READABLE = [e for e in ENCODINGS if e.readable]

NUMBER = "9654039585"  # closed: its reply has Hangul in both messages
EVIL = "http://127.0.0.1:{port}/evil"

# Each goes in front of a document whose trtCntn, where it names one, holds &x;.
ATTACKS = {
    "plain-doctype": "<!DOCTYPE map>",
    "internal-entity": '<!DOCTYPE map [<!ENTITY x "폐업자 (injected)">]>',
    "external-entity": '<!DOCTYPE map [<!ENTITY x SYSTEM "' + EVIL + '">]>',
    "external-file-entity": '<!DOCTYPE map [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    "external-subset": '<!DOCTYPE map SYSTEM "' + EVIL + '">',
    "public-subset": '<!DOCTYPE map PUBLIC "-//EVIL//DTD x//EN" "' + EVIL + '">',
    "parameter-entity": '<!DOCTYPE map [<!ENTITY % p SYSTEM "' + EVIL + '"> %p;]>',
    "billion-laughs": "<!DOCTYPE map [<!ENTITY x0 \"lol\">"
    + "".join(f'<!ENTITY x{i} "{f"&x{i - 1};" * 10}">' for i in range(1, 10))
    + '<!ENTITY x "&x9;">]>',
}


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local port the external references point at; nothing may connect to it."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        yield sock
        with pytest.raises(BlockingIOError):
            sock.accept()  # nothing fetched


def attack(name: str, port: int, body: str) -> str:
    doctype = ATTACKS[name].replace("{port}", str(port))
    return doctype + body.replace("<trtCntn>", "<trtCntn>&x;", 1).replace("<txprDscmNo>", "<txprDscmNo>&x;", 1)


def reply_text() -> str:
    return reply_xml(NUMBER).decode("utf-8")


def assert_refused(exc: BaseException, encoding: Encoding) -> None:
    if encoding.readable:
        assert "DOCTYPE" in str(exc)
    else:
        assert "not XML" in str(exc)


# --- the parser --------------------------------------------------------------------


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("encoding", ENCODINGS, ids=str)
def test_parse_refuses_every_dtd_in_every_encoding(encoding: Encoding, name: str, listener: socket.socket) -> None:
    document = encoding.encode(attack(name, listener.getsockname()[1], reply_text()))
    expected = safexml.Refused if encoding.readable else ValueError
    with pytest.raises(expected) as caught:
        safexml.parse(document)
    assert_refused(caught.value, encoding)


def test_the_utf16_bypass_of_issue_10_is_closed() -> None:
    document = ('<!DOCTYPE map [<!ENTITY x "injected">]><map><trtCntn>&x;</trtCntn></map>').encode("utf-16")
    assert b"<!doctype" not in document.lower()  # what the old check looked for
    with pytest.raises(safexml.Refused, match=r"declares a DOCTYPE \(<!DOCTYPE map>\)"):
        safexml.parse(document)


@pytest.mark.parametrize("encoding", READABLE, ids=str)
def test_a_normal_reply_parses_in_every_encoding_expat_reads(encoding: Encoding) -> None:
    root = safexml.parse(encoding.encode(reply_text()))
    assert root.tag == "map"
    assert (root.findtext("trtCntn") or "").startswith("폐업자 (과세유형:")


@pytest.mark.parametrize("encoding", [e for e in ENCODINGS if not e.readable], ids=str)
def test_encodings_expat_cannot_read_are_refused_as_not_xml(encoding: Encoding) -> None:
    with pytest.raises(ValueError, match="not XML") as caught:
        safexml.parse(encoding.encode(reply_text()))
    assert not isinstance(caught.value, safexml.Refused)


def test_doctype_text_outside_markup_is_not_a_dtd() -> None:
    # The parser decides, not a byte search: "<!DOCTYPE" in a comment, CDATA or text is data.
    document = b"<!-- <!DOCTYPE x> --><map><a><![CDATA[<!DOCTYPE y>]]></a><b>&lt;!DOCTYPE z&gt;</b></map>"
    root = safexml.parse(document)
    assert root.findtext("a") == "<!DOCTYPE y>"
    assert root.findtext("b") == "<!DOCTYPE z>"


def test_nothing_else_is_fetched_or_included(listener: socket.socket) -> None:
    url = EVIL.replace("{port}", str(listener.getsockname()[1]))
    document = (f'<?xml-stylesheet href="{url}"?><map xmlns:xi="http://www.w3.org/2001/XInclude">'
                f'<xi:include href="{url}"/><xi:include href="file:///etc/passwd" parse="text"/></map>').encode()
    root = safexml.parse(document)
    assert [child.tag for child in root] == ["{http://www.w3.org/2001/XInclude}include"] * 2
    assert not (root.text or "").strip()


def test_undefined_entity_is_not_xml() -> None:
    with pytest.raises(ValueError, match="not XML"):
        safexml.parse(b"<map>&x;</map>")


# --- the client: parse_reply -------------------------------------------------------


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("encoding", ENCODINGS, ids=str)
def test_parse_reply_refuses_a_reply_with_a_dtd(encoding: Encoding, name: str, listener: socket.socket) -> None:
    reply = encoding.encode(attack(name, listener.getsockname()[1], reply_text()))
    with pytest.raises(HometaxReplyError) as caught:
        parse_reply(reply)
    assert_refused(caught.value, encoding)
    if encoding.readable:
        assert str(caught.value).startswith("the reply was refused: the document declares a DOCTYPE")


@pytest.mark.parametrize("encoding", READABLE, ids=str)
def test_parse_reply_reads_a_normal_reply_in_every_encoding(encoding: Encoding) -> None:
    status, message = parse_reply(encoding.encode(reply_text()))
    assert status == expected_status(NUMBER) == "closed"
    assert message.startswith("폐업자 (과세유형:")


# --- the stand-in ------------------------------------------------------------------


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("encoding", ENCODINGS, ids=str)
def test_standin_refuses_a_query_with_a_dtd(encoding: Encoding, name: str, listener: socket.socket) -> None:
    query = encoding.encode(attack(name, listener.getsockname()[1], query_xml(NUMBER)))
    expected = safexml.Refused if encoding.readable else ValueError
    with pytest.raises(expected) as caught:
        number_from_query(query)
    assert_refused(caught.value, encoding)


@pytest.mark.parametrize("encoding", READABLE, ids=str)
def test_standin_reads_a_normal_query_in_every_encoding(encoding: Encoding) -> None:
    assert number_from_query(encoding.encode(query_xml(NUMBER))) == NUMBER


@pytest.fixture(scope="module")
def server() -> Iterator[StandIn]:
    with StandIn(delay_s=0.0) as running:
        yield running


@pytest.mark.parametrize("name", ["internal-entity", "billion-laughs", "external-entity"])
@pytest.mark.parametrize("encoding", [e for e in ENCODINGS if e.codec.startswith("utf-16") or e.codec == "latin-1"],
                         ids=str)
def test_standin_answers_400_with_the_reason(server: StandIn, encoding: Encoding, name: str,
                                             listener: socket.socket) -> None:
    query = encoding.encode(attack(name, listener.getsockname()[1], query_xml(NUMBER)))
    served = server.app.requests_served
    response = httpx.post(server.url, params={"actionId": "ATTABZAA001R08"}, content=query, timeout=10)
    assert response.status_code == 400
    assert response.text.startswith("query refused: the document declares a DOCTYPE (<!DOCTYPE map>)")
    assert server.app.requests_served == served  # refused before the delay and the truth table


def test_standin_answers_a_utf16_query(server: StandIn) -> None:
    query = Encoding("utf-16", "UTF-16").encode(query_xml(NUMBER))
    response = httpx.post(server.url, params={"actionId": "ATTABZAA001R08"}, content=query, timeout=10)
    assert response.status_code == 200
    assert parse_reply(response.content)[0] == "closed"
