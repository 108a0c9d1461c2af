"""How every tier writes text: the engine joining a PDF's text layer and the recogniser joining what it read
must put spaces in the same places, or the same page reads differently by the way it was read."""

from __future__ import annotations

from collections.abc import Sequence


def is_cjk(ch: str) -> bool:
    """CJK ideographs, kana, Hangul and full-width forms: scripts written without spaces between words."""
    return ("\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff"
            or "\uff00" <= ch <= "\uffef")


def join_words(parts: Sequence[str]) -> str:
    """Pieces of one paragraph (its lines, or a line's pieces): a space between words, none at a CJK
    boundary or after a line-end hyphen."""
    out = ""
    for part in parts:
        if out and not (out.endswith("-") or is_cjk(out[-1]) or is_cjk(part[0])):
            out += " "
        out += part
    return out
