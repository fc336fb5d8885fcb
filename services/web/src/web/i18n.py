"""Every label and message of the web app, in Vietnamese (the default) and English.

Templates: `{{ t("nav.sign_out") }}` (the page's language), `{{ when|vntime }}` (Vietnam time). Code:
`translate(lang, key, **params)`. A key missing from a language is a test failure (tests/unit/web), and shows
as the key itself on the page rather than failing it. The language is the `lang` cookie ("vi" or "en"), set
by /lang?to=en&next=/path (the switch on every page).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LANG_COOKIE = "lang"


def _vietnam() -> tzinfo:
    try:
        return ZoneInfo("Asia/Ho_Chi_Minh")
    except ZoneInfoNotFoundError:  # a slim image without tzdata: Vietnam keeps UTC+7 all year
        return timezone(timedelta(hours=7), "ICT")


VIETNAM_TZ = _vietnam()

_COMMON: dict[str, dict[str, str]] = {
    "vi": {
        "app.name": "refnet",
        "app.tagline": "Mạng lưới chuyển gửi bảo vệ",
        "nav.skip": "Bỏ qua, đến nội dung chính",
        "nav.signed_in_as": "Đăng nhập: {name}",
        "nav.sign_out": "Đăng xuất",
        "nav.sign_in": "Đăng nhập",
        "nav.sign_in_again": "Đăng nhập lại",
        "nav.home": "Trang chính",
        "nav.language": "Ngôn ngữ",
        "nav.switch_to": "English",
        "role.operator": "Điều phối viên đường dây nóng",
        "role.supervisor": "Giám sát viên",
        "role.agency": "Cán bộ cơ quan đối tác",
        "role.shelter": "Nhân viên cơ sở tạm lánh",
        "role.ops": "Đội vận hành",
        "area.cases.title": "Bàn làm việc",
        "area.cases.intro": "Cuộc gọi và ca của tỉnh bạn phụ trách.",
        "area.cases.empty": "Chưa có gì ở đây.",
        "area.referrals.title": "Chuyển gửi",
        "area.referrals.intro": "Các chuyển gửi giao cho cơ quan của bạn.",
        "area.referrals.empty": "Chưa có chuyển gửi nào.",
        "area.shelter.title": "Cơ sở tạm lánh",
        "area.shelter.intro": "Giường trống, người đến và người rời đi.",
        "area.shelter.empty": "Chưa có gì ở đây.",
        "refused.title": "Không dành cho vai trò của bạn",
        "refused.app": "Vai trò của bạn ({role}) không dùng ứng dụng này: ứng dụng dành cho điều phối viên và giám "
                       "sát viên đường dây nóng, cán bộ cơ quan đối tác và nhân viên cơ sở tạm lánh.",
        "refused.area": "Trang này không dành cho vai trò của bạn ({role}).",
        "refused.signed_in_as": "Bạn đã đăng nhập là",
        "refused.go_home": "Về trang của bạn",
        "problem.title": "Có vấn đề",
        "problem.back": "Về trang chính",
        "problem.retry": "Thử lại",
        "problem.session_expired": "Phiên đăng nhập đã hết hạn. Những gì bạn đã nhập được giữ lại: đăng nhập "
                                   "lại rồi gửi lại.",
        "problem.field": "Thông tin chưa đúng: {field}",
        "problem.not_found": "Không tìm thấy.",
        "problem.connection_lost": "Mất kết nối, xin thử lại.",
        "signed_out.title": "Đã đăng xuất",
        "signed_out.text": "Bạn đã đăng xuất.",
        "signed_out.provider_open": "Không liên lạc được với máy chủ đăng nhập: phiên đăng nhập ở đó có thể vẫn còn.",
        "form.submit": "Gửi",
        "form.errors": "Vui lòng sửa các mục được đánh dấu.",
        "time.vietnam": "giờ Việt Nam",
    },
    "en": {
        "app.name": "refnet",
        "app.tagline": "Protection referral network",
        "nav.skip": "Skip to main content",
        "nav.signed_in_as": "Signed in: {name}",
        "nav.sign_out": "Sign out",
        "nav.sign_in": "Sign in",
        "nav.sign_in_again": "Sign in again",
        "nav.home": "Home",
        "nav.language": "Language",
        "nav.switch_to": "Tiếng Việt",
        "role.operator": "Hotline operator",
        "role.supervisor": "Supervisor",
        "role.agency": "Partner agency staff",
        "role.shelter": "Shelter staff",
        "role.ops": "Operations team",
        "area.cases.title": "Workspace",
        "area.cases.intro": "Calls and cases of the provinces you cover.",
        "area.cases.empty": "Nothing here yet.",
        "area.referrals.title": "Referrals",
        "area.referrals.intro": "Referrals assigned to your agency.",
        "area.referrals.empty": "No referrals yet.",
        "area.shelter.title": "Shelter",
        "area.shelter.intro": "Free beds, arrivals and departures.",
        "area.shelter.empty": "Nothing here yet.",
        "refused.title": "Not for your role",
        "refused.app": "Your role ({role}) does not use this app: it is for hotline operators and supervisors, "
                       "partner agency staff and shelter staff.",
        "refused.area": "This page is not for your role ({role}).",
        "refused.signed_in_as": "Signed in as",
        "refused.go_home": "Go to your page",
        "problem.title": "Something is wrong",
        "problem.back": "Back to the home page",
        "problem.retry": "Try again",
        "problem.session_expired": "Your session has ended. What you typed is kept: sign in again, then send it "
                                   "again.",
        "problem.field": "Please check: {field}",
        "problem.not_found": "Not found.",
        "problem.connection_lost": "Connection lost, try again.",
        "signed_out.title": "Signed out",
        "signed_out.text": "You are signed out.",
        "signed_out.provider_open": "The identity provider could not be reached: your session there may still be "
                                    "open.",
        "form.submit": "Send",
        "form.errors": "Please correct the marked fields.",
        "time.vietnam": "Vietnam time",
    },
}



def _merged() -> dict[str, dict[str, str]]:
    from web.catalog import casework, operator, partner, shelter

    catalog = {lang: dict(messages) for lang, messages in _COMMON.items()}
    for area in (operator, casework, partner, shelter):
        for lang, messages in area.MESSAGES.items():
            clash = set(messages) & set(catalog[lang])
            assert not clash, f"{area.__name__} redefines {sorted(clash)}"
            catalog[lang].update(messages)
    return catalog


CATALOG = _merged()


def language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def lang_of(request: Request | None) -> str:
    """The request's language: its `lang` cookie, else Vietnamese."""
    return language(request.cookies.get(LANG_COOKIE) if request is not None else None)


def translate(lang: str, key: str, **params: Any) -> str:
    text = CATALOG[language(lang)].get(key) or CATALOG[DEFAULT_LANGUAGE].get(key) or key
    return text.format(**params) if params else text


def vntime(value: Any, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """A moment in Vietnam time: a datetime (naive = UTC), a protobuf Timestamp, or epoch seconds; "" for
    nothing (None, an unset Timestamp)."""
    if value is None or value == "":
        return ""
    if hasattr(value, "ToDatetime"):  # google.protobuf.Timestamp
        if not value.seconds and not value.nanos:
            return ""
        value = value.ToDatetime(tzinfo=UTC)
    elif isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if not isinstance(value, datetime):
        return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.astimezone(VIETNAM_TZ).strftime(fmt))
