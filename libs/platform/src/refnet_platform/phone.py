"""One way to write a Vietnamese phone number, so a number given at intake, in the directory and by the SMS
gateway compare equal: digits only, in international form without the plus (0912 345 678, +84 912-345-678 and
84912345678 are all "84912345678"). Plumbing, no domain rule: who a number belongs to is its owner's record."""

from __future__ import annotations

import re

COUNTRY_CODE = "84"
_NOISE = re.compile(r"[\s().\-]")


def normalise_phone(raw: str) -> str:
    """The number's canonical form, or "" when it is not a plausible phone number (8 to 15 digits)."""
    text = _NOISE.sub("", raw or "")
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    elif text.startswith("0"):
        text = COUNTRY_CODE + text[1:]
    if not text.isdigit() or not 8 <= len(text) <= 15:
        return ""
    return text
