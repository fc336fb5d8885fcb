"""Texts that come in through the SMS gateway: the keywords refnet understands, in Vietnamese without
diacritics and in English, case-insensitive and tolerant of extra spaces (and of diacritics, should a phone add
them), and the replies, in the sender's language. No I/O: the door (service_layer/inbound.py) decides who the
sender is by asking the service that owns that record.

    GIUONG 3 / BEDS 3                        free beds now, for a shelter that keeps one pool
    GIUONG PN 2 TE 1 / BEDS W 2 C 1          free beds per pool (codes below)
    DEN RF-1A2B3C4D / ARRIVED RF-1A2B3C4D    the survivor arrived at the bed held under that reference
    DI RF-1A2B3C4D / LEFT RF-1A2B3C4D        she left
    NHAN RF-1A2B3C4D / ACCEPT RF-1A2B3C4D    a provider accepts a new referral
    TU CHOI RF-1A2B3C4D HETCHO / DECLINE RF-1A2B3C4D FULL    a provider declines, with a reason (below)
    DUNG / STOP, BAT DAU / START             a survivor stops (resumes) every SMS to her number
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from notifications.domain.messages import Language
from refnet_platform.vocabulary import DeclineReason, TargetGroup

# Longer texts are not read at all (logged by message id only): no keyword form comes near it.
MAX_TEXT_CHARS = 300


class Keyword(StrEnum):
    BEDS = "beds"
    ARRIVED = "arrived"
    LEFT = "left"
    ACCEPT = "accept"
    DECLINE = "decline"
    STOP = "stop"
    START = "start"


SHELTER_KEYWORDS = frozenset({Keyword.BEDS, Keyword.ARRIVED, Keyword.LEFT})
PROVIDER_KEYWORDS = frozenset({Keyword.ACCEPT, Keyword.DECLINE})
SURVIVOR_KEYWORDS = frozenset({Keyword.STOP, Keyword.START})

# Each keyword as texted: (words, language). Two-word forms are also read run together (TUCHOI, BATDAU).
KEYWORDS: dict[tuple[str, ...], tuple[Keyword, Language]] = {
    ("GIUONG",): (Keyword.BEDS, Language.VI), ("BEDS",): (Keyword.BEDS, Language.EN),
    ("BED",): (Keyword.BEDS, Language.EN),
    ("DEN",): (Keyword.ARRIVED, Language.VI), ("ARRIVED",): (Keyword.ARRIVED, Language.EN),
    ("DI",): (Keyword.LEFT, Language.VI), ("LEFT",): (Keyword.LEFT, Language.EN),
    ("NHAN",): (Keyword.ACCEPT, Language.VI), ("ACCEPT",): (Keyword.ACCEPT, Language.EN),
    ("TU", "CHOI"): (Keyword.DECLINE, Language.VI), ("TUCHOI",): (Keyword.DECLINE, Language.VI),
    ("DECLINE",): (Keyword.DECLINE, Language.EN),
    ("DUNG",): (Keyword.STOP, Language.VI), ("STOP",): (Keyword.STOP, Language.EN),
    ("BAT", "DAU"): (Keyword.START, Language.VI), ("BATDAU",): (Keyword.START, Language.VI),
    ("START",): (Keyword.START, Language.EN),
}

# Bed pools by their SMS code: (Vietnamese, English) as replies show them; either is read in any text.
POOL_CODES: dict[TargetGroup, tuple[str, str]] = {
    TargetGroup.WOMEN: ("PN", "W"),  # phụ nữ
    TargetGroup.CHILDREN: ("TE", "C"),  # trẻ em
    TargetGroup.WOMEN_WITH_CHILDREN: ("MC", "WC"),  # mẹ và con
    TargetGroup.MEN: ("NAM", "M"),
}
_POOL_BY_CODE = {code: group for group, codes in POOL_CODES.items() for code in codes}

# Decline reasons by their SMS word: (Vietnamese, English); referral's codes are read too (NO_CAPACITY).
REASON_WORDS: dict[DeclineReason, tuple[str, str]] = {
    DeclineReason.NO_CAPACITY: ("HETCHO", "FULL"),  # hết chỗ
    DeclineReason.INELIGIBLE: ("KHONGPHUHOP", "INELIGIBLE"),  # không phù hợp
    DeclineReason.OUT_OF_AREA: ("NGOAIDIABAN", "OUTOFAREA"),  # ngoài địa bàn
    DeclineReason.SURVIVOR_DECLINED: ("NANNHANTUCHOI", "SURVIVORDECLINED"),  # nạn nhân từ chối
    DeclineReason.DUPLICATE: ("TRUNG", "DUPLICATE"),  # trùng
}
_REASON_BY_WORD = {word: reason for reason, words in REASON_WORDS.items() for word in words} | {
    str(reason).upper().replace("_", ""): reason for reason in DeclineReason}

_REFERENCE = re.compile(r"(?:RF-?)?([0-9A-F]{8})")


class ParseError(StrEnum):
    """What was not understood: each names the form to show back."""

    NO_KEYWORD = "no_keyword"
    MISSING_COUNT = "missing_count"  # GIUONG
    BAD_COUNT = "bad_count"  # GIUONG ba, GIUONG -1, GIUONG PN
    UNKNOWN_POOL = "unknown_pool"  # GIUONG XY 2
    REPEATED_POOL = "repeated_pool"  # GIUONG PN 1 PN 2
    MISSING_REFERENCE = "missing_reference"  # DEN
    BAD_REFERENCE = "bad_reference"  # DEN 123
    MISSING_REASON = "missing_reason"  # TU CHOI RF-1A2B3C4D
    UNKNOWN_REASON = "unknown_reason"  # TU CHOI RF-1A2B3C4D BAN
    EXTRA_WORDS = "extra_words"  # DEN RF-1A2B3C4D HOM NAY


@dataclass(frozen=True)
class Parsed:
    """A text as understood. keyword None: no keyword at all. language: the keyword's (None without one)."""

    keyword: Keyword | None
    language: Language | None
    error: ParseError | None = None
    # BEDS: (pool, free beds); the pool None for the one-count form.
    pools: tuple[tuple[TargetGroup | None, int], ...] = ()
    reference: str = ""  # normalised: RF-1A2B3C4D
    reason: DeclineReason | None = None

    @property
    def understood(self) -> bool:
        return self.keyword is not None and self.error is None


def normalise_text(text: str) -> list[str]:
    """Upper case words without diacritics (đ is d), split on any run of spaces."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.upper().split()


def parse(text: str) -> Parsed:
    words = normalise_text(text)
    for size in (2, 1):
        found = KEYWORDS.get(tuple(words[:size])) if len(words) >= size else None
        if found:
            keyword, language = found
            return _arguments(keyword, language, words[size:])
    return Parsed(None, None, ParseError.NO_KEYWORD)


def _arguments(keyword: Keyword, language: Language, rest: list[str]) -> Parsed:
    if keyword in SURVIVOR_KEYWORDS:
        return Parsed(keyword, language)  # anything after STOP is ignored: STOP always stops
    if keyword is Keyword.BEDS:
        return _beds(language, rest)
    if not rest:
        return Parsed(keyword, language, ParseError.MISSING_REFERENCE)
    reference = _reference(rest)
    if reference is None:
        return Parsed(keyword, language, ParseError.BAD_REFERENCE)
    code, used = reference
    rest = rest[used:]
    if keyword is not Keyword.DECLINE:
        return Parsed(keyword, language, ParseError.EXTRA_WORDS) if rest else Parsed(keyword, language, reference=code)
    if not rest:
        return Parsed(keyword, language, ParseError.MISSING_REASON, reference=code)
    reason = _REASON_BY_WORD.get("".join(rest).replace("_", "").replace("-", ""))
    if reason is None:
        return Parsed(keyword, language, ParseError.UNKNOWN_REASON, reference=code)
    return Parsed(keyword, language, reference=code, reason=reason)


def _reference(words: list[str]) -> tuple[str, int] | None:
    """The reference at the start of words (RF-1A2B3C4D, RF 1A2B3C4D, 1a2b3c4d) and how many words it took."""
    for used in (1, 2):
        joined = "".join(words[:used])
        match = _REFERENCE.fullmatch(joined)
        if match and (used == 1 or words[0] == "RF"):
            return "RF-" + match.group(1), used
    return None


def _beds(language: Language, rest: list[str]) -> Parsed:
    if not rest:
        return Parsed(Keyword.BEDS, language, ParseError.MISSING_COUNT)
    if len(rest) == 1 and rest[0].isdigit():
        count = _count(rest[0])
        if count is None:
            return Parsed(Keyword.BEDS, language, ParseError.BAD_COUNT)
        return Parsed(Keyword.BEDS, language, pools=((None, count),))
    # Pools: CODE N [CODE N ...]; a code run together with its count (PN2) is read too.
    tokens = [part for word in rest for part in re.findall(r"[A-Z]+|\d+|[^A-Z\d]+", word)]
    if len(tokens) % 2:
        return Parsed(Keyword.BEDS, language, ParseError.BAD_COUNT)
    pools: list[tuple[TargetGroup | None, int]] = []
    for code, number in zip(tokens[::2], tokens[1::2], strict=True):
        group = _POOL_BY_CODE.get(code)
        if group is None:
            return Parsed(Keyword.BEDS, language, ParseError.UNKNOWN_POOL if code.isalpha() else ParseError.BAD_COUNT)
        count = _count(number)
        if count is None:
            return Parsed(Keyword.BEDS, language, ParseError.BAD_COUNT)
        if any(g is group for g, _ in pools):
            return Parsed(Keyword.BEDS, language, ParseError.REPEATED_POOL)
        pools.append((group, count))
    return Parsed(Keyword.BEDS, language, pools=tuple(pools))


def _count(word: str) -> int | None:
    return int(word) if word.isdigit() and len(word) <= 4 else None


def pool_code(group: TargetGroup, language: Language) -> str:
    vi, en = POOL_CODES[group]
    return en if language is Language.EN else vi


def reason_word(reason: DeclineReason, language: Language) -> str:
    vi, en = REASON_WORDS[reason]
    return en if language is Language.EN else vi


# --- replies -------------------------------------------------------------------------------------


class Reply(StrEnum):
    BEDS_SET = "beds_set"
    ARRIVED = "arrived"
    LEFT = "left"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    STOPPED = "stopped"
    STARTED = "started"
    # What was not understood or not applied, each with the right form.
    HELP_SHELTER = "help_shelter"
    HELP_PROVIDER = "help_provider"
    BAD_BEDS = "bad_beds"
    POOL_REQUIRED = "pool_required"
    UNKNOWN_POOL = "unknown_pool"
    TOO_MANY_BEDS = "too_many_beds"
    BAD_REFERENCE = "bad_reference"
    UNKNOWN_REFERENCE = "unknown_reference"
    NOT_HELD = "not_held"
    NOT_ARRIVED = "not_arrived"
    UNKNOWN_REASON = "unknown_reason"
    NOT_OPEN = "not_open"


# Survivors' replies name no service, organisation or violence, and nothing else is ever sent to them.
REPLIES: dict[Language, dict[Reply, str]] = {
    Language.VI: {
        Reply.BEDS_SET: "Đã cập nhật giường trống: {counts}.",
        Reply.ARRIVED: "Đã ghi nhận {ref} đã đến. Giường trống: {counts}.",
        Reply.LEFT: "Đã ghi nhận {ref} đã rời đi. Giường trống: {counts}.",
        Reply.ACCEPTED: "Đã nhận chuyển gửi {ref}.",
        Reply.DECLINED: "Đã từ chối chuyển gửi {ref} ({reason}).",
        Reply.STOPPED: "Bạn sẽ không nhận thêm tin nhắn nào. Trả lời BAT DAU để nhận lại.",
        Reply.STARTED: "Bạn sẽ nhận lại tin nhắn. Trả lời DUNG để ngừng.",
        Reply.HELP_SHELTER: "Không hiểu tin nhắn. Gửi: GIUONG {form}, DEN RF-xxxxxxxx hoặc DI RF-xxxxxxxx.",
        Reply.HELP_PROVIDER: "Không hiểu tin nhắn. Gửi: NHAN RF-xxxxxxxx hoặc TU CHOI RF-xxxxxxxx <lý do>. "
                             "Lý do: {reasons}.",
        Reply.BAD_BEDS: "Không hiểu số giường. Gửi: GIUONG {form}.",
        Reply.POOL_REQUIRED: "Nơi của bạn có nhiều loại giường. Gửi: GIUONG {form}.",
        Reply.UNKNOWN_POOL: "Không có loại giường này. Gửi: GIUONG {form}.",
        Reply.TOO_MANY_BEDS: "Số giường quá lớn. Gửi: GIUONG {form}.",
        Reply.BAD_REFERENCE: "Không hiểu mã. Gửi: {keyword} RF-xxxxxxxx (mã trong tin nhắn đã nhận).",
        Reply.UNKNOWN_REFERENCE: "Không tìm thấy mã {ref}. Gửi: {keyword} RF-xxxxxxxx (mã trong tin nhắn đã nhận).",
        Reply.NOT_HELD: "Giường giữ cho {ref} không còn. Hãy gọi đường dây nóng.",
        Reply.NOT_ARRIVED: "{ref} chưa đến. Gửi trước: DEN {ref}.",
        Reply.UNKNOWN_REASON: "Không hiểu lý do. Gửi: TU CHOI {ref} <lý do>. Lý do: {reasons}.",
        Reply.NOT_OPEN: "Chuyển gửi {ref} không còn chờ trả lời.",
    },
    Language.EN: {
        Reply.BEDS_SET: "Free beds updated: {counts}.",
        Reply.ARRIVED: "{ref} arrived: recorded. Free beds: {counts}.",
        Reply.LEFT: "{ref} left: recorded. Free beds: {counts}.",
        Reply.ACCEPTED: "Referral {ref} accepted.",
        Reply.DECLINED: "Referral {ref} declined ({reason}).",
        Reply.STOPPED: "You will receive no more messages. Reply START to receive them again.",
        Reply.STARTED: "You will receive messages again. Reply STOP to stop.",
        Reply.HELP_SHELTER: "Not understood. Send: BEDS {form}, ARRIVED RF-xxxxxxxx or LEFT RF-xxxxxxxx.",
        Reply.HELP_PROVIDER: "Not understood. Send: ACCEPT RF-xxxxxxxx or DECLINE RF-xxxxxxxx <reason>. "
                             "Reasons: {reasons}.",
        Reply.BAD_BEDS: "The number of beds was not understood. Send: BEDS {form}.",
        Reply.POOL_REQUIRED: "You keep several kinds of beds. Send: BEDS {form}.",
        Reply.UNKNOWN_POOL: "You keep no such beds. Send: BEDS {form}.",
        Reply.TOO_MANY_BEDS: "Too many beds. Send: BEDS {form}.",
        Reply.BAD_REFERENCE: "The reference was not understood. Send: {keyword} RF-xxxxxxxx (from the message you "
                             "received).",
        Reply.UNKNOWN_REFERENCE: "No {ref} found. Send: {keyword} RF-xxxxxxxx (from the message you received).",
        Reply.NOT_HELD: "The bed held for {ref} is no longer held. Please call the hotline.",
        Reply.NOT_ARRIVED: "{ref} has not arrived. First send: ARRIVED {ref}.",
        Reply.UNKNOWN_REASON: "The reason was not understood. Send: DECLINE {ref} <reason>. Reasons: {reasons}.",
        Reply.NOT_OPEN: "Referral {ref} is no longer waiting for an answer.",
    },
}

# The keyword each reply shows back, per language.
KEYWORD_WORDS: dict[Keyword, tuple[str, str]] = {
    Keyword.BEDS: ("GIUONG", "BEDS"), Keyword.ARRIVED: ("DEN", "ARRIVED"), Keyword.LEFT: ("DI", "LEFT"),
    Keyword.ACCEPT: ("NHAN", "ACCEPT"), Keyword.DECLINE: ("TU CHOI", "DECLINE"),
    Keyword.STOP: ("DUNG", "STOP"), Keyword.START: ("BAT DAU", "START"),
}


def keyword_word(keyword: Keyword, language: Language) -> str:
    vi, en = KEYWORD_WORDS[keyword]
    return en if language is Language.EN else vi


def beds_form(pools: list[TargetGroup], language: Language) -> str:
    """The right form of a beds report for a shelter keeping these pools: "3", or "PN 2 TE 1"."""
    if len(pools) <= 1:
        return "3"
    return " ".join(f"{pool_code(g, language)} {n}" for g, n in zip(pools, (2, 1, 1, 1), strict=False))


def counts_text(counts: list[tuple[TargetGroup, int]], language: Language) -> str:
    """Free beds per pool as a reply shows them: "3", or "PN 2, TE 1"."""
    if len(counts) == 1:
        return str(counts[0][1])
    return ", ".join(f"{pool_code(g, language)} {n}" for g, n in counts)


def reasons_text(language: Language) -> str:
    return ", ".join(reason_word(r, language) for r in REASON_WORDS)


def render(language: Language, reply: Reply, **values: str) -> str:
    return REPLIES[language][reply].format(**values)


def reply_language(parsed: Parsed, on_record: str) -> Language:
    """English if the sender texted an English keyword or their record says English; else Vietnamese."""
    if parsed.language is Language.EN:
        return Language.EN
    return Language.parse(on_record) if on_record else Language.VI


class SenderLimit:
    """At most `limit` texts per sender in any `window_s` seconds (by sender key, in this process): a number
    that floods the door is ignored, not answered. Pure: the caller gives the time."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._seen: dict[str, list[float]] = {}

    def allow(self, sender_key: str, now: float) -> bool:
        recent = [t for t in self._seen.get(sender_key, ()) if now - t < self.window_s]
        allowed = len(recent) < self.limit
        if allowed:
            recent.append(now)
        self._seen[sender_key] = recent
        if len(self._seen) > 100_000:  # forget quiet senders so the map stays bounded
            self._seen = {k: v for k, v in self._seen.items() if v and now - v[-1] < self.window_s}
        return allowed
