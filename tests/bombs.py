"""Hostile files for the resource-bomb tests, built small on disk in the test itself."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from openpyxl import Workbook

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """A YAML document of a few hundred bytes that expands into width**levels values under `courses:`."""
    lines = ["lol0: &l0 [lol]"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    lines.append("courses:")
    lines.append(f"  - {{code: C1, title: *l{levels - 1}, kind: required, hours: 10}}")
    return "\n".join(lines) + "\n"


def xlsx_with_huge_shared_string(path: Path, header: list[str], row: list[str], chars: int) -> Path:
    """A real workbook (header + one row) whose shared-strings part also holds one string of `chars`
    characters: a few hundred KB on disk, `chars` bytes once unpacked."""
    wb = Workbook()
    ws = wb.active
    ws.append(header)
    ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    # openpyxl writes its strings inline: the bomb is a shared-strings part of its own, registered in the
    # workbook's relationships and content types as Excel registers it.
    sst = "xl/sharedStrings.xml"
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", (
                    b'<Relationship Id="rIdBomb" Target="sharedStrings.xml" Type="http://schemas.openxmlformats.org/'
                    b'officeDocument/2006/relationships/sharedStrings"/></Relationships>'))
            elif info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", (
                    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'))
            dst.writestr(info, data)
        part = zipfile.ZipInfo(sst)
        part.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(part, "w", force_zip64=True) as out:
            out.write(f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{MAIN}" count="1" uniqueCount="1">'
                      "<si><t>".encode())
            block = b"A" * (1 << 20)
            left = chars
            while left > 0:
                out.write(block[:min(left, len(block))])
                left -= len(block)
            out.write(b"</t></si></sst>")
    return path
