"""The rewrite validator: is this candidate exactly one edit of the original, and of what kind?

Shared by every backend, the images stage and users:

    >>> validate("a red apple on a table", "a green apple on a table").edit
    Edit(type='color', from_='red', to='green', scope='local')

The diff is token-level. Agreement changes that a real edit drags along (a -> an, is -> are,
dog -> dogs, and his -> her when the person changes) are not counted as edits, and one change
made at every mention of a word ("pickup ... pickup" -> "sedan ... sedan") is one edit. A
relation or action phrase of up to three words replaced by another ("standing in" -> "running
across", "next to" -> "across from") is one edit, judged on the spaCy parse. Two changed places
are accepted only as an attribute swap between two objects (type `swap`: the binding changes,
not the attributes), or as a causal flip (cause and effect verbs both change).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from ..datamodel import Edit
from . import lexicon as L
from .nlp import load_nlp

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")
GLOBAL_TYPES = {"position", "causal", "movement"}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    edit: Edit | None = None


def tokens(text: str) -> list[tuple[str, int]]:
    """Lowercased word tokens with character offsets; punctuation is not part of the diff."""
    return [(m.group(0).lower(), m.start()) for m in _TOKEN.finditer(text) if m.group(0)[0].isalnum()]


def normalize(text: str) -> str:
    return " ".join(t for t, _ in tokens(text))


@lru_cache(maxsize=4096)
def _pos_map(text: str) -> dict[int, str]:
    """Char offset -> coarse POS from spaCy, computed only when the lexicons cannot type an edit."""
    nlp = load_nlp()
    return {t.idx: t.pos_ for t in nlp(text)}


def _agreement(a: str, b: str) -> bool:
    return (a == b or frozenset((a, b)) in L.AGREEMENT_PAIRS or L.pluralize(a) == b
            or L.pluralize(b) == a)


def _verbish(pos: str, word: str) -> str:
    """The small tagger often calls a participle a noun ("a motorcycle speeding down")."""
    return "VERB" if pos == "NOUN" and word.endswith("ing") and len(word) > 5 else pos


def _is_quantity(w: str) -> bool:
    return w in L.QUANTITY or w.isdigit()


def _changes(aw: list[str], bw: list[str]) -> list[tuple[int, int, int, int]]:
    """Changed spans (i1, i2, j1, j2). For captions of equal length the word-by-word diff is
    preferred when it needs no more places than difflib's: difflib aligns a swap ("a dog on a
    skateboard" -> "a skateboard on a dog") as an insertion plus a deletion."""
    ops = [(i1, i2, j1, j2) for op, i1, i2, j1, j2 in
           difflib.SequenceMatcher(None, aw, bw, autojunk=False).get_opcodes() if op != "equal"]
    if len(aw) != len(bw):
        return ops
    runs: list[tuple[int, int, int, int]] = []
    for k, (x, y) in enumerate(zip(aw, bw)):
        if x == y:
            continue
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1, runs[-1][2], k + 1)
        else:
            runs.append((k, k + 1, k, k + 1))
    return runs if len(runs) <= len(ops) else ops


def _in(lex: dict[str, list[str]], words: list[str]) -> bool:
    return " ".join(words) in lex or any(w in lex for w in words)


class Validator:
    """Checks one candidate rewrite against its original caption."""

    def __init__(self, max_chars: int = 400, max_len_ratio: float = 2.0, max_span: int = 5):
        self.max_chars = max_chars
        self.max_len_ratio = max_len_ratio
        self.max_span = max_span

    def __call__(self, original: str, rewrite: str, others: Iterable[str] = ()) -> Verdict:
        rw = " ".join((rewrite or "").split()).strip().strip('"').strip()
        if not rw:
            return Verdict(False, "empty")
        a, b = tokens(original), tokens(rw)
        if len(rw) > self.max_chars or len(b) > self.max_len_ratio * len(a) + 10:
            return Verdict(False, "too_long")
        if not b:
            return Verdict(False, "unparseable")
        aw, bw = [t for t, _ in a], [t for t, _ in b]
        if aw == bw:
            return Verdict(False, "no_change")
        if " ".join(bw) in {normalize(o) for o in others}:
            return Verdict(False, "duplicate")
        blocks = self._blocks(aw, bw)
        if not blocks:
            return Verdict(False, "no_change")
        if len(blocks) == 1 and self._relation_phrase(original, a, rw, b, *blocks[0]):
            i, f, t, _ = blocks[0]
            typ = "movement" if any(self._is_verb(original, a, i + k, [w]) for k, w in enumerate(f)) else "position"
            return Verdict(True, edit=Edit(typ, " ".join(f), " ".join(t), "global"))
        blocks = [blk[:3] for blk in blocks]
        if any(len(f) > self.max_span or len(t) > self.max_span for _, f, t in blocks):
            return Verdict(False, "edit_too_large")
        if len(blocks) == 1:
            i, f, t = blocks[0]
            whole = any(" ".join(f) in lex and " ".join(t) in lex for _, lex in L.TYPED_LEXICONS)
            if len(f) == len(t) > 1 and not whole:
                per = {self._type(original, a, i + k, [f[k]], [t[k]])
                       for k in range(len(f)) if not _agreement(f[k], t[k])}
                if len(per) > 1 or None in per:
                    return Verdict(False, "multi_edit")
            typ = self._type(original, a, i, f, t)
            if (not f or not t) and typ != "quantity":
                return Verdict(False, "insert_or_delete")
            if typ is None:
                return Verdict(False, "untyped_edit")
            return Verdict(True, edit=Edit(typ, " ".join(f), " ".join(t), self._scope(typ, original, a, i, f)))
        if len(blocks) == 2:
            (i1, f1, t1), (i2, f2, t2) = blocks
            if f1 and f2 and f1 == t2 and f2 == t1:
                typ = self._type(original, a, i1, f1, f2)
                if typ and typ not in ("causal", "position"):      # a binding swap: its own type
                    return Verdict(True, edit=Edit("swap", f"{' '.join(f1)} ... {' '.join(f2)}",
                                                   f"{' '.join(t1)} ... {' '.join(t2)}", "local"))
            types = [self._type(original, a, i, f, t) for i, f, t in blocks]
            verbish = [self._is_verb(original, a, i, f) for i, f, _ in blocks]
            if all(verbish) and "causal" in types:
                return Verdict(True, edit=Edit("causal", f"{' '.join(f1)} ... {' '.join(f2)}",
                                               f"{' '.join(t1)} ... {' '.join(t2)}", "global"))
        return Verdict(False, "multi_edit")

    def _blocks(self, aw: list[str], bw: list[str]) -> list[tuple[int, list[str], list[str], int]]:
        """Changed places as (start in original, from words, to words, start in rewrite),
        agreement dropped: grammatical agreement, pronouns a person change drags along, and the
        repeats of one change made at every mention."""
        out = []
        for i1, i2, j1, j2 in _changes(aw, bw):
            f, t = aw[i1:i2], bw[j1:j2]
            if len(f) == len(t):
                keep = [k for k in range(len(f)) if not _agreement(f[k], t[k])]
                if not keep:
                    continue
                lo, hi = keep[0], keep[-1] + 1
                f, t, i1, j1 = f[lo:hi], t[lo:hi], i1 + lo, j1 + lo
            out.append((i1, f, t, j1))
        if any(len(f) == len(t) == 1 and f[0] in L.PERSON and t[0] in L.PERSON for _, f, t, _ in out):
            out = [blk for blk in out if not (len(blk[1]) == len(blk[2]) == 1
                                             and frozenset((blk[1][0], blk[2][0])) in L.GENDER_PAIRS)]
        if len(out) > 1 and all(self._only_agreement(f, t) for _, f, t, _ in out[1:]):
            out = out[:1]
        if len(out) > 1 and all((f, t) == (out[0][1], out[0][2]) for _, f, t, _ in out):
            out = out[:1]                 # the same change at every mention: one edit
        return out

    def _relation_phrase(self, original: str, a: list[tuple[str, int]], rewrite: str, b: list[tuple[str, int]],
                         i: int, f: list[str], t: list[str], j: int) -> bool:
        """A 2-3 word relation or action constituent replaced by another: verbs, particles and
        prepositions only, on both sides, with a preposition in each (so it stays a relation)."""
        if not (2 <= max(len(f), len(t)) <= 3 and f and t):
            return False
        pa, pb = _pos_map(original), _pos_map(rewrite)
        tags_f = [_verbish(pa.get(a[i + k][1], ""), f[k]) for k in range(len(f))]
        tags_t = [_verbish(pb.get(b[j + k][1], ""), t[k]) for k in range(len(t))]
        ok = {"VERB", "AUX", "ADP", "ADV", "PART", "SCONJ"}
        return (all(x in ok for x in tags_f + tags_t) and any(x in ("ADP", "ADV") for x in tags_f)
                and any(x in ("ADP", "ADV") for x in tags_t))

    @staticmethod
    def _only_agreement(f: list[str], t: list[str]) -> bool:
        return len(f) == len(t) == 1 and _agreement(f[0], t[0])

    def _type(self, original: str, a: list[tuple[str, int]], i: int, f: list[str], t: list[str]) -> str | None:
        if (f or t) and all(_is_quantity(w) for w in f + t):
            nxt = a[i + len(f)][0] if i + len(f) < len(a) else ""
            return "parts" if nxt in L.PARTS else "quantity"
        for name, lex in L.TYPED_LEXICONS:
            if f and t and _in(lex, f) and _in(lex, t):
                return name
        if not f or not t:
            return None
        if len(f) == 1 and len(t) == 1 and f[0] in L.CATEGORY and t[0] not in L.COLOR:
            return "category"
        pos = _pos_map(original).get(a[i][1], "")
        if any(w in L.MOTION for w in f + t) and (pos == "VERB" or f[0].endswith("ing")):
            return "movement"
        return {"ADJ": "state", "NOUN": "category", "PROPN": "category", "VERB": "state",
                "ADP": "position", "NUM": "quantity", "ADV": "state"}.get(pos)

    def _is_verb(self, original: str, a: list[tuple[str, int]], i: int, f: list[str]) -> bool:
        if not f:
            return False
        if any(w in L.CAUSAL or w in L.MOVEMENT or w in L.MOTION for w in f):
            return True
        pos = _pos_map(original)
        return any(pos.get(a[k][1]) in ("VERB", "AUX") for k in range(i, i + len(f)))

    def _scope(self, typ: str, original: str, a: list[tuple[str, int]], i: int, f: list[str]) -> str:
        if typ in GLOBAL_TYPES:
            return "global"
        if typ == "state" and f and f[0] not in L.STATE and _pos_map(original).get(a[i][1]) == "VERB":
            return "global"      # an action change, not a maskable attribute
        return "local"


_DEFAULT = Validator()


def validate(original: str, rewrite: str, others: Iterable[str] = ()) -> Verdict:
    """Validate one rewrite of `original` (see `Validator`)."""
    return _DEFAULT(original, rewrite, others)
