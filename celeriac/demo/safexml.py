"""Parsing XML from the network without a DTD.

The standard library's parser resolves no external entities, but a DTD can still define
internal ones that expand exponentially; neither Hometax nor its clients send one, so a
document with any DOCTYPE is refused before it is parsed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET


def parse(document: bytes) -> ET.Element:
    """The root element; ValueError saying why if the document has a DTD or is not XML."""
    if b"<!doctype" in document.lower():
        raise ValueError("the document declares a DOCTYPE; refused")
    try:
        return ET.fromstring(document)
    except ET.ParseError as exc:
        raise ValueError(f"not XML ({exc}): {document[:200]!r}") from None
