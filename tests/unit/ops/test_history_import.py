"""`refnet import`'s reading of past call logs and cases: the column set in Vietnamese or English, old place
names and codes mapped by date, every bad row named with its line and column, the template in the repo."""

from __future__ import annotations

import csv
import signal
from datetime import date
from pathlib import Path

import pytest
from openpyxl import Workbook

from ops.adapters.history_file import HistoryFileError, read_rows, write_template
from ops.domain.history import HistoryCall, HistoryCase, read_history
from ops.entrypoints import cli

REPO = Path(__file__).resolve().parents[3]
TODAY = date(2026, 12, 6)


def write_csv(path: Path, header: list[str], *rows: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_english_headers_old_places_and_the_line_that_handled_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "log.csv",
                     ["record", "id", "date", "line", "province", "district", "case_type", "sex", "age_band",
                      "disability", "reporting_consent", "topic", "outcome"],
                     ["case", "7", "2024-02-01", "1800.577.756", "Quảng Bình", "", "trafficking;other_gbv", "female",
                      "16-17", "yes", "no", "", ""],
                     ["case", "8", "2025-03-01 10:00", "18001769", "30", "288", "domestic_violence", "", "60+", "",
                      "", "", ""],
                     ["call", "9", "2024-02-01", "111", "Hà Tĩnh", "", "", "", "", "", "", "child_protection",
                      "advice_given"])
    history = read_history(read_rows(path), today=TODAY)
    assert history.problems == []
    trafficked, older = history.cases
    assert isinstance(trafficked, HistoryCase) and (trafficked.line, trafficked.province_code) == ("42", "44")
    assert trafficked.is_child and trafficked.case_types == ("trafficking", "other_gbv")
    assert (trafficked.disability, trafficked.reporting_consent, trafficked.key) == ("yes", False, "42:case:7")
    # Old Hải Dương's code and one of its districts, on a date before the 2025 merger: Hải Phòng now.
    assert (older.province_code, older.recorded_province_code, older.district_code) == ("31", "30", "288")
    assert older.sex == "unknown" and not older.is_child
    call = history.calls[0]
    assert isinstance(call, HistoryCall) and (call.line, call.province_code, call.channel) == ("111", "42",
                                                                                               "national_111")


def test_every_bad_row_is_named_with_its_line_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "log.csv",
                     ["Loại bản ghi", "Mã bản ghi", "Ngày", "Đường dây", "Tỉnh", "Huyện", "Chủ đề", "Kết quả",
                      "Loại vụ việc", "Nhóm tuổi", "Trẻ em"],
                     ["vụ việc", "1", "2024-02-30", "18001769", "", "", "", "", "domestic_violence", "18-59", ""],
                     ["vụ việc", "2", "2024-02-01", "18001769", "Atlantis", "", "", "", "domestic_violence", "", "có"],
                     ["cuộc gọi", "3", "2024-02-01", "18001769", "", "", "weather", "advice_given", "", "", ""],
                     ["vụ việc", "4", "2025-08-01", "18001769", "22", "193", "", "", "domestic_violence", "18-59", ""],
                     ["vụ việc", "5", "2024-02-01", "18001769", "", "", "", "", "domestic_violence", "6-11", "không"],
                     ["vụ việc", "5", "2024-02-01", "18001769", "", "", "", "", "domestic_violence", "6-11", ""],
                     ["vụ việc", "6", "2027-01-01", "18001769", "", "", "", "", "domestic_violence", "6-11", ""])
    problems = [(p.line, p.field) for p in read_history(read_rows(path), today=TODAY).problems]
    assert problems == [("2", "date"), ("3", "province"), ("4", "topic"), ("5", "district"), ("6", "child"),
                        ("8", "date")]


def test_a_column_refnet_does_not_import_is_refused_so_no_name_travels(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "log.csv", ["record", "id", "Họ tên"], ["case", "1", "Nguyễn Thị A"])
    with pytest.raises(HistoryFileError, match="column 3 \\('Họ tên'\\) is not one refnet imports"):
        read_rows(path)


def test_a_workbook_skips_its_instructions_and_names_rows_by_sheet(tmp_path: Path) -> None:
    book = Workbook()
    guide = book.active
    assert guide is not None
    guide.title = "Hướng dẫn"
    guide.append(["Điền một dòng cho mỗi cuộc gọi"])
    sheet = book.create_sheet("2024")
    sheet.append(["record", "id", "date", "line", "topic", "outcome"])
    sheet.append(["call", "1", date(2024, 5, 1), "18001769", "advice", "advice_given"])
    sheet.append([None] * 6)
    sheet.append(["call", "2", date(2024, 5, 1), "18001769", "advice", "no_idea"])
    book.save(tmp_path / "log.xlsx")
    history = read_history(read_rows(tmp_path / "log.xlsx"), today=TODAY)
    assert len(history.calls) == 1 and [str(p) for p in history.problems] == [
        "line 2024!4: outcome: 'no_idea' is not one of advice_given, counselling_given, referred_elsewhere, "
        "case_opened, case_follow_up, no_action, disconnected"]


def test_the_template_in_the_repo_is_what_the_cli_writes_and_reads_clean(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("import-template.csv", "import-template.xlsx"):
        committed = REPO / "demo" / name
        history = read_history(read_rows(committed), today=TODAY)
        assert history.problems == [] and len(history.cases) == len(history.calls) == 1
        write_template(tmp_path / name)
        assert read_rows(tmp_path / name) == read_rows(committed)
    assert cli.main(["import", str(REPO / "demo" / "import-template.xlsx"), "--dry-run"]) == 0
    assert "1 cases and 1 calls good, 0 bad; nothing imported (dry run)" in capsys.readouterr().err


def test_the_cli_called_in_process_leaves_the_callers_sigpipe_alone() -> None:
    """Only the `refnet` command itself dies quietly on a closed pipe; a caller running main() keeps Python's
    own handling (a test run was killed by a later write to a closed pipe)."""
    before = signal.getsignal(signal.SIGPIPE)
    assert cli.main(["import", str(REPO / "demo" / "import-template.xlsx"), "--dry-run"]) == 0
    assert signal.getsignal(signal.SIGPIPE) == before
