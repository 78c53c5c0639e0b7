"""Moodle REST answers (JSON, or the default XML) -> Python values, or the right MoodleError.

An answer that is neither is a ProtocolError: it is never silently taken as an empty result.
"""

from __future__ import annotations

import json
from typing import Any

from lxml import etree

from creditbridge.connector.errors import MoodleError, ProtocolError, error_for

# Moodle's XML is small and trusted-format, but the parser still refuses entities and network access.
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True, huge_tree=False)


def parse_response(body: str | bytes, *, fmt: str = "json", function: str | None = None,
                   status: int | None = None) -> Any:
    """Decode one answer; raise the MoodleError its error envelope describes.

    `fmt` is what was asked for; Moodle falls back to XML for an unknown format, so a body that looks
    like XML is read as XML whatever was asked.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    stripped = text.lstrip()
    if stripped.startswith("<"):
        return parse_xml(text, function=function, status=status)
    if fmt == "xml" and not stripped:
        raise ProtocolError("empty answer where XML was expected", function=function, status=status)
    return parse_json(text, function=function, status=status)


def parse_json(text: str, *, function: str | None = None, status: int | None = None) -> Any:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ProtocolError(f"answer is not JSON: {_excerpt(text)}", function=function, status=status) from e
    except RecursionError:
        # Nesting deeper than Python's recursion limit: no Moodle answer is, and the traceback would be enormous.
        raise ProtocolError("answer is nested too deeply to be Moodle's", function=function, status=status) from None
    if isinstance(value, dict) and "exception" in value and "errorcode" in value:
        raise _envelope_error(value, function=function, status=status)
    return value


def _envelope_error(value: dict[str, Any], *, function: str | None, status: int | None) -> MoodleError:
    return error_for(
        _str_or_none(value.get("errorcode")),
        str(value.get("message") or value.get("errorcode") or "Moodle error"),
        exception=_str_or_none(value.get("exception")),
        debuginfo=_str_or_none(value.get("debuginfo")),
        function=function,
        status=status,
    )


def parse_xml(text: str, *, function: str | None = None, status: int | None = None) -> Any:
    try:
        root = etree.fromstring(text.encode("utf-8"), parser=_XML_PARSER)
    except etree.XMLSyntaxError as e:
        raise ProtocolError(f"answer is not well-formed XML: {_excerpt(text)}", function=function,
                            status=status) from e
    if root.tag == "EXCEPTION":
        raise error_for(
            _child_text(root, "ERRORCODE"),
            _child_text(root, "MESSAGE") or "Moodle error",
            exception=root.get("class"),
            debuginfo=_child_text(root, "DEBUGINFO"),
            function=function,
            status=status,
        )
    if root.tag != "RESPONSE":
        raise ProtocolError(f"unexpected XML root <{_tag(root)}>", function=function, status=status)
    children = list(root)
    if not children:
        return None  # what a function returning nothing (JSON `null`) answers in XML
    if len(children) != 1:
        raise ProtocolError("XML <RESPONSE> with more than one value", function=function, status=status)
    try:
        return _xml_value(children[0])
    except ValueError as e:
        raise ProtocolError(f"unexpected XML structure: {e}", function=function, status=status) from e


def _xml_value(node: etree._Element) -> Any:
    if node.tag == "VALUE":
        if node.get("null") == "null":
            return None
        return node.text or ""
    if node.tag == "MULTIPLE":
        return [_xml_value(child) for child in node]
    if node.tag == "SINGLE":
        out: dict[str, Any] = {}
        for key in node:
            name = key.get("name")
            if key.tag != "KEY" or name is None:
                raise ValueError(f"<{_tag(key)}> inside <SINGLE>")
            inner = list(key)
            out[name] = _xml_value(inner[0]) if inner else None
        return out
    raise ValueError(f"unknown element <{_tag(node)}>")


def _tag(node: etree._Element) -> str:
    # Parsed from text, an element's tag is text; a comment's or processing instruction's is a factory function.
    return node.tag if isinstance(node.tag, str) else str(node.tag)


def _child_text(node: etree._Element, tag: str) -> str | None:
    child = node.find(tag)
    return None if child is None else (child.text or "")


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat[:limit] + ("..." if len(flat) > limit else ""))
