"""Hardened XML for WCTP: what arrives on ``POST /wctp`` comes from the network, so it is parsed as
hostile until shown otherwise.

- Size first: a body over the limit is refused before any parsing (``read_limited`` stops reading).
- No network, no external entities, no DTD loading: the standard WCTP ``<!DOCTYPE wctp-Operation
  SYSTEM "http://…/wctp-dtd-v1r3.dtd">`` line is accepted and never fetched. A resolver that refuses
  everything stands behind lxml's own switches, so even a parser option that would load the external
  subset cannot reach a file or a URL; an attempt is a refusal.
- No entity expansion: a document with an internal DTD subset (where entities, billion laughs and
  external-entity file reads live) is refused outright, as is any unexpanded entity reference.
- Depth and element-count limits bound the work a small document can ask for.

lxml parsers are not thread-safe, so each thread keeps its own.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from lxml import etree

MAX_DEPTH = 12
MAX_ELEMENTS = 2000
_INTERNAL_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[")


class XmlRefused(Exception):
    """``code`` is the WCTP error code: 301 (not well-formed, too big) or 302 (not acceptable XML)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class _RefuseEverything(etree.Resolver):  # type: ignore[misc]
    """Asked for a DTD or an entity: note it and hand back nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> object:
        self.asked.append(system_url or public_id or "?")
        return self.resolve_string("", context)


@dataclass
class _Local:
    parser: etree.XMLParser
    resolver: _RefuseEverything


_local = threading.local()


def _parser() -> _Local:
    found: _Local | None = getattr(_local, "state", None)
    if found is None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                                 huge_tree=False, remove_comments=True, remove_pis=True, strip_cdata=True)
        resolver = _RefuseEverything()
        parser.resolvers.add(resolver)
        found = _Local(parser, resolver)
        _local.state = found
    return found


def parse_document(raw: bytes, *, max_bytes: int) -> etree._Element:
    """The root element of a well-formed, entity-free document within the limits, or ``XmlRefused``."""
    if len(raw) > max_bytes:
        raise XmlRefused(301, f"request of {len(raw)} bytes is over the {max_bytes}-byte limit")
    if not raw.strip():
        raise XmlRefused(301, "empty request: send a wctp-Operation document")
    state = _parser()
    state.resolver.asked.clear()
    try:
        root = etree.fromstring(raw, state.parser)
    except etree.XMLSyntaxError as exc:
        raise XmlRefused(301, f"not well-formed XML: {exc}"[:300]) from None
    except ValueError as exc:  # lxml refuses some inputs before parsing (e.g. a str with an encoding)
        raise XmlRefused(301, f"not XML: {exc}"[:300]) from None
    if state.resolver.asked:
        raise XmlRefused(302, "the document asks to load an external resource; nothing is fetched")
    dtd = root.getroottree().docinfo.internalDTD
    if _INTERNAL_SUBSET.search(raw[:4096]) or (dtd is not None and (any(dtd.iterentities())
                                                                     or any(dtd.iterelements()))):
        raise XmlRefused(302, "DTD declarations and entities are not accepted; send the standard DOCTYPE line only")
    _check_shape(root)
    return root


def _check_shape(root: etree._Element) -> None:
    count = 0
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise XmlRefused(301, f"more than {MAX_ELEMENTS} elements")
        if depth > MAX_DEPTH:
            raise XmlRefused(301, f"elements nested deeper than {MAX_DEPTH} levels")
        for child in node:
            if isinstance(child, etree._Entity):
                raise XmlRefused(302, "entity references are not accepted")
            if isinstance(child.tag, str):
                stack.append((child, depth + 1))


def local_name(node: etree._Element) -> str:
    """Namespaces are not part of WCTP; a sender that adds one still means the same element."""
    tag = node.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""
