"""Parsing XML from the network without a DTD, whatever its encoding.

Neither Hometax nor its clients send a DTD, and a DTD is what lets a document define
entities (that expand exponentially: the "billion laughs") or point at external ones.
So the parser itself refuses any DOCTYPE declaration, any entity declaration and any
external reference, as expat reports them: after it has decoded the document, so the
refusal holds in UTF-8, UTF-16 (either byte order, with or without a BOM) and any
encoding the XML declaration names. Looking for ``<!DOCTYPE`` in the raw bytes did not:
a UTF-16 document got past it. The handlers are ``defusedxml``'s, the maintained library
for exactly this; nothing is ever fetched.

Expat reads UTF-8, UTF-16, US-ASCII, ISO-8859-1 and, through Python's codecs, other
single-byte encodings; anything else (UTF-32, multi-byte codecs such as Shift_JIS) is
refused as not XML it can read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree as DET


class Refused(ValueError):
    """The document has a DTD, an entity declaration or an external reference."""


def parse(document: bytes) -> ET.Element:
    """The root element; ``Refused`` if the document has a DTD, ValueError if it is not XML."""
    try:
        return DET.fromstring(document, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden as exc:
        raise Refused(f"the document declares a DOCTYPE ({_describe(exc)}); no DTD is accepted") from None
    except defusedxml.EntitiesForbidden as exc:
        raise Refused(f"the document declares the entity {exc.name!r}; no entity is accepted") from None
    except defusedxml.ExternalReferenceForbidden as exc:
        raise Refused(f"the document refers to an external resource ({_describe(exc)})") from None
    except defusedxml.DefusedXmlException as exc:
        raise Refused(f"the document uses a forbidden XML feature: {exc!r}") from None
    except (ET.ParseError, ValueError, LookupError) as exc:
        # ValueError: expat's "multi-byte encodings are not supported"; LookupError: a codec name
        # Python does not know.
        raise ValueError(f"not XML this parser reads ({exc}): {document[:200]!r}") from None


def _describe(exc: defusedxml.DTDForbidden | defusedxml.ExternalReferenceForbidden) -> str:
    name = getattr(exc, "name", None)
    parts = [f"<!DOCTYPE {name}>"] if name else []
    parts += [f"{label} {value!r}" for label, value in (("SYSTEM", exc.sysid), ("PUBLIC", exc.pubid)) if value]
    return ", ".join(parts) or "no identifier"
