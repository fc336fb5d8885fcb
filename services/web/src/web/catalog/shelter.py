"""The shelter area's labels and messages, in Vietnamese and English (merged into web.i18n.CATALOG)."""

MESSAGES: dict[str, dict[str, str]] = {
    "vi": {},
    "en": {},
}
