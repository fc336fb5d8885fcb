"""Reads a past call log or case list (CSV or XLSX) into rows keyed by refnet's column names (ops.domain.history).

A column refnet does not import is refused, naming it: a spreadsheet with names, phone numbers or notes is sent
back to be trimmed rather than read. A workbook's sheets without refnet's headers (e.g. instructions) are skipped.
"""

from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import Workbook, load_workbook

from ops.domain.history import COLUMNS, EXAMPLES, header_key

Row = tuple[str, dict[str, object]]


class HistoryFileError(ValueError):
    pass


def _keys(headers: list[object], where: str) -> list[str | None]:
    keys: list[str | None] = []
    for index, header in enumerate(headers):
        text = "" if header is None else str(header).strip()
        key = header_key(text) if text else None
        if text and key is None:
            raise HistoryFileError(f"{where}: column {index + 1} ({text!r}) is not one refnet imports "
                                   "(see `refnet import --columns`); remove it (never names, phones or notes)")
        keys.append(key)
    return keys


def _row(keys: list[str | None], values: tuple[object, ...] | list[str]) -> dict[str, object] | None:
    row = {k: v for k, v in zip(keys, values, strict=False) if k is not None and v not in (None, "")}
    return row or None


def read_rows(path: Path) -> list[Row]:
    """(where, row) per non-empty row: "12" (a CSV line) or "Sheet!12" (a workbook row)."""
    suffix = path.suffix.lower()
    rows: list[Row] = []
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise HistoryFileError(f"{path.name}: empty file")
            keys = _keys(list(header), path.name)
            for line, values in enumerate(reader, start=2):
                if (row := _row(keys, values)) is not None:
                    rows.append((str(line), row))
        return rows
    if suffix in (".xlsx", ".xlsm"):
        book = load_workbook(path, read_only=True, data_only=True)
        try:
            for sheet in book.worksheets:
                cells = sheet.iter_rows(values_only=True)
                header = next(cells, None)
                if header is None or not any(header_key(str(h or "").strip()) for h in header):
                    continue  # not a data sheet (instructions)
                keys = _keys(list(header), sheet.title)
                for line, values in enumerate(cells, start=2):
                    if (row := _row(keys, values)) is not None:
                        rows.append((f"{sheet.title}!{line}", row))
        finally:
            book.close()
        return rows
    raise HistoryFileError(f"{path.name}: give a .csv or .xlsx file")


def write_template(path: Path) -> None:
    """An empty log to fill in: Vietnamese headers (English ones are read too), two example rows to replace; an
    XLSX also gets a sheet explaining every column."""
    headers = [vi for _, vi, _ in COLUMNS]
    examples = [[example.get(key, "") for key, _, _ in COLUMNS] for example in EXAMPLES]
    if path.suffix.lower() == ".csv":
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(headers)
            writer.writerows(examples)
        return
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Nhật ký"
    sheet.append(headers)
    for row in examples:
        sheet.append(row)
    guide = book.create_sheet("Hướng dẫn")
    guide.append(["Cột (tiếng Việt)", "Column (English)", "Nội dung / what it holds"])
    for key, vi, meaning in COLUMNS:
        guide.append([vi, key, meaning])
    guide.append([])
    guide.append(["Một dòng cho mỗi cuộc gọi hoặc vụ việc; không ghi họ tên, số điện thoại, địa chỉ hay nội dung "
                  "câu chuyện. One row per call or case; never names, phones, addresses or narratives."])
    book.save(path)
