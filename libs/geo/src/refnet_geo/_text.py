"""Name matching: case- and accent-insensitive keys for Vietnamese place names."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[a-z0-9]+")

# Leading words that name the kind of unit, not the unit ("Tỉnh Quảng Ninh", "TP. Hồ Chí Minh").
_PROVINCE_PREFIXES: tuple[tuple[str, ...], ...] = (("thanh", "pho"), ("tinh",), ("tp",))
_PROVINCE_SUFFIXES: tuple[tuple[str, ...], ...] = (("city",), ("province",))
_COMMUNE_PREFIXES: tuple[tuple[str, ...], ...] = (("dac", "khu"), ("thi", "tran"), ("phuong",), ("xa",))
_COMMUNE_EXACT_PREFIXES: tuple[str, ...] = ("đặc khu ", "thị trấn ", "phường ", "xã ")


def words(text: str) -> list[str]:
    """Lower-case ASCII words: diacritics dropped, đ → d, punctuation as a separator."""
    decomposed = unicodedata.normalize("NFD", text.casefold()).replace("đ", "d")
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _WORD.findall(plain)


def _strip(parts: list[str], prefixes: tuple[tuple[str, ...], ...], suffixes: tuple[tuple[str, ...], ...]) -> str:
    for prefix in prefixes:
        if len(parts) > len(prefix) and tuple(parts[: len(prefix)]) == prefix:
            parts = parts[len(prefix) :]
            break
    for suffix in suffixes:
        if len(parts) > len(suffix) and tuple(parts[-len(suffix) :]) == suffix:
            parts = parts[: -len(suffix)]
            break
    return "".join(parts)


def province_key(name: str) -> str:
    """``"Tỉnh Quảng Ninh"``, ``"quang ninh"``, ``"QUẢNG NINH"`` → ``"quangninh"``."""
    return _strip(words(name), _PROVINCE_PREFIXES, _PROVINCE_SUFFIXES)


def commune_key(name: str) -> str:
    """``"Phường Hồng Hà"``, ``"hong ha"`` → ``"hongha"`` (accents dropped)."""
    return _strip(words(name), _COMMUNE_PREFIXES, ())


def commune_exact_key(name: str) -> str:
    """Like :func:`commune_key` but keeping diacritics: ``"Văn Lang"`` and ``"Văn Lăng"`` differ."""
    text = " ".join(unicodedata.normalize("NFC", name).casefold().split())
    for prefix in _COMMUNE_EXACT_PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix) :]
            break
    return text
