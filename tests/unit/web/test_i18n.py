"""The catalog: every key in both languages, no empty text, the same placeholders; Vietnam time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from web.bootstrap import templates
from web.i18n import CATALOG, LANGUAGES, translate, vntime

PLACEHOLDER = re.compile(r"{(\w+)}")


def test_every_key_is_in_both_languages_with_the_same_placeholders() -> None:
    assert set(LANGUAGES) == set(CATALOG) == {"vi", "en"}
    assert set(CATALOG["vi"]) == set(CATALOG["en"])
    for key, text in CATALOG["vi"].items():
        assert text.strip() and CATALOG["en"][key].strip(), key
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(CATALOG["en"][key])), key


def test_every_key_a_template_uses_is_in_the_catalog() -> None:
    env = templates()
    used: set[str] = set()
    for name in env.list_templates():
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        used |= {k for k in re.findall(r"""\bt\(\s*["']([\w.]+)["']\s*[,)]""", source)}
    assert used and used <= set(CATALOG["vi"]), sorted(used - set(CATALOG["vi"]))
    for role in ("operator", "supervisor", "agency", "shelter", "ops"):
        assert f"role.{role}" in CATALOG["vi"]
    for area in ("cases", "referrals", "shelter"):
        assert {f"area.{area}.title", f"area.{area}.intro", f"area.{area}.empty"} <= set(CATALOG["en"])


def test_translate_defaults_to_vietnamese_and_fills_placeholders() -> None:
    assert translate("vi", "area.cases.title") == "Bàn làm việc"
    assert translate("en", "area.cases.title") == "Workspace"
    assert translate("fr", "area.cases.title") == "Bàn làm việc"
    assert translate("en", "nav.signed_in_as", name="qn-operator") == "Signed in: qn-operator"
    assert translate("en", "no.such.key") == "no.such.key"


def test_times_show_in_vietnam_time() -> None:
    moment = datetime(2026, 12, 31, 18, 30, tzinfo=UTC)
    assert vntime(moment) == "01/01/2027 01:30"
    assert vntime(datetime(2026, 12, 31, 18, 30)) == "01/01/2027 01:30"  # naive is UTC
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    assert vntime(stamp, "%H:%M") == "01:30"
    assert vntime(Timestamp()) == "" and vntime(None) == ""
    assert vntime(moment.timestamp(), "%d/%m %H:%M") == "01/01 01:30"
