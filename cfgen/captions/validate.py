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
not the attributes), or as a causal flip (cause and effect verbs both change). A binding swap is
also found when the rewrite says the same words in another order, two phrases having traded
places (A x B -> B x A), unless they trade across a symmetric relation ("a dog and a cat").
A whole noun phrase replaced by another ("a long racquet" -> "an oar") is one object replacement.

Before any of this both texts are normalised (NFKC, Cyrillic/Greek lookalikes), so a homoglyph is
no change; an edit whose two sides mean the same (car -> automobile, two -> 2), or where one
names the kind of the other (dog -> animal) or includes it (on -> on top of), is no
counterfactual; and `implausible` refuses what a photo could not show (see there).
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from ..datamodel import Edit
from . import lexicon as L
from .nlp import english_words, load_nlp

_TOKEN = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*|[^\s\w]|_")
GLOBAL_TYPES = {"position", "causal", "movement", "action"}
_NUMBER_WORDS = {str(i + 1): w for i, w in enumerate(L.NUMBERS)}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    edit: Edit | None = None


@lru_cache(maxsize=65536)
def canonical(text: str) -> str:
    """What a reader sees: NFKC (full-width letters, ligatures), lookalike letters of other
    scripts mapped to Latin, invisible format characters dropped. Remembered: every check of a
    candidate canonicalises its original and the candidates kept before it again."""
    text = unicodedata.normalize("NFKC", text).translate(L.CONFUSABLES)
    if text.isascii():
        return text                          # no format characters in ASCII
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


@lru_cache(maxsize=65536)
def _mixed_script(word: str) -> bool:
    """A Latin word with a letter of another script in it (a lookalike we do not know)."""
    latin = [c.isascii() or unicodedata.name(c, "").startswith("LATIN") for c in word if c.isalpha()]
    return any(latin) and not all(latin)


def tokens(text: str) -> list[tuple[str, int]]:
    """Lowercased word tokens with character offsets; punctuation is not part of the diff."""
    return [(m.group(0).lower(), m.start()) for m in _TOKEN.finditer(text) if m.group(0)[0].isalnum()]


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    return " ".join(t for t, _ in tokens(text))


@lru_cache(maxsize=16384)
def _read_cached(max_span: int, original: str, rw: str) -> "Verdict":
    """`Validator._read`, remembered: a backend checks its candidates as it writes them and the stage
    checks the kept ones again; the answer depends only on these three (Verdict is frozen)."""
    return Validator(max_span=max_span)._read(original, rw)


@lru_cache(maxsize=4096)
def _tagged(text: str) -> dict[int, tuple[str, str]]:
    """Char offset -> (coarse POS, lemma) from spaCy, computed only when the lexicons cannot judge an edit."""
    nlp = load_nlp()
    return {t.idx: (t.pos_, t.lemma_.lower()) for t in nlp(text)}


def _pos_map(text: str) -> dict[int, str]:
    return {k: v[0] for k, v in _tagged(text).items()}


def _next_tag(original: str, a: list[tuple[str, int]], i: int, f: list[str]) -> str:
    """The tag of the word after the edit's span in the original, or ""."""
    return _pos_map(original).get(a[i + len(f)][1], "") if i + len(f) < len(a) else ""


def _agreement(a: str, b: str) -> bool:
    return (a == b or frozenset((a, b)) in L.AGREEMENT_PAIRS or L.pluralize(a) == b
            or L.pluralize(b) == a)


def _verbish(pos: str, word: str) -> str:
    """The small tagger often calls a participle a noun ("a motorcycle speeding down")."""
    return "VERB" if pos == "NOUN" and word.endswith("ing") and len(word) > 5 else pos


def _tag(pos: dict[int, str], toks: list[tuple[str, int]], k: int) -> str:
    """Token k's tag, with the small tagger's verbs-as-nouns repaired: a participle, or a present
    form of a verb captions use, right after its subject ("a dog lying on", "a skateboarder
    balances on", "two horses stand in") is a verb; after an article, a number, an adjective,
    a preposition or a possessive it stays a noun ("in the park", "on skis", "his head")."""
    w, x = toks[k][0], pos.get(toks[k][1], "")
    x = _verbish(x, w)
    if x not in ("NOUN", "ADJ") or not (w in L.VERBS_3SG or w in L.VERBS_PL or w in L.MOTION
                                        or (x == "NOUN" and w.endswith("ing") and len(w) >= 5)):
        return x
    prev_w, prev_x = (toks[k - 1][0], pos.get(toks[k - 1][1], "")) if k > 0 else ("", "")
    return x if prev_x in ("DET", "NUM", "ADJ", "ADP") or prev_w in _POSSESSIVES else "VERB"


def _motion(w: str) -> bool:
    """A verb of motion in any present form ("gallop", "gallops", "runs", "galloping")."""
    stem = w[:-1] if w.endswith("s") and not w.endswith("ss") else w
    return any(x in L.MOTION for x in (w, stem + "ing", stem + stem[-1:] + "ing"))


def _predicates(tags: list[str]) -> list[str]:
    """An adjective before its preposition is a predicate, read like a verb ("empty of", "free
    from", "bent over")."""
    return ["VERB" if x == "ADJ" and k + 1 < len(tags) and tags[k + 1] == "ADP" else x for k, x in enumerate(tags)]


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
        rw = canonical(" ".join((rewrite or "").split()).strip().strip('"').strip())
        if not rw:
            return Verdict(False, "empty")
        original = canonical(original)
        a, b = tokens(original), tokens(rw)
        if len(rw) > self.max_chars or len(b) > self.max_len_ratio * len(a) + 10:
            return Verdict(False, "too_long")
        if not b:
            return Verdict(False, "unparseable")
        aw, bw = [t for t, _ in a], [t for t, _ in b]
        if aw == bw:
            return Verdict(False, "no_change")
        if any(_mixed_script(w) for w in bw):
            return Verdict(False, "mixed_script")
        if " ".join(bw) in {normalize(canonical(o)) for o in others}:
            return Verdict(False, "duplicate")
        return _read_cached(self.max_span, original, rw)

    def _read(self, original: str, rw: str) -> Verdict:
        """The edit a rewrite makes, and whether it is refused (same meaning, implausible)."""
        a, b = tokens(original), tokens(rw)
        v, span = self._judge(original, a, rw, b)
        if not v.ok and v.reason in ("multi_edit", "edit_too_large", "untyped_edit"):
            v, span = self._restructured(original, a, rw, b, v)
        if not v.ok:
            return v
        why = _same_meaning(v.edit) or implausible([t for t, _ in b], span, v.edit.type,
                                                    lambda: [_pos_map(rw).get(o, "") for _, o in b])
        return Verdict(False, why, v.edit) if why else v       # the edit read stays on the refusal

    def _judge(self, original: str, a: list[tuple[str, int]], rw: str, b: list[tuple[str, int]],
               blocks: list | None = None) -> tuple[Verdict, tuple[int, int]]:
        """One edit found by the token diff, and where it sits in the rewrite."""
        aw, bw = [t for t, _ in a], [t for t, _ in b]
        blocks = self._blocks(aw, bw) if blocks is None else blocks
        none = (0, 0)
        if not blocks:
            return Verdict(False, "no_change"), none
        if len(blocks) == 1 and self._relation_phrase(original, a, rw, b, *blocks[0]):
            i, f, t, j = blocks[0]
            return self._relation(original, a, i, f, t), (j, j + len(t))
        spans = [(j, j + len(t)) for _, _, t, j in blocks]
        blocks = [blk[:3] for blk in blocks]
        if any(len(f) > self.max_span or len(t) > self.max_span for _, f, t in blocks):
            return Verdict(False, "edit_too_large"), none
        if len(blocks) == 1:
            i, f, t = blocks[0]
            whole = any(" ".join(f) in lex and " ".join(t) in lex for _, lex in L.TYPED_LEXICONS)
            if len(f) == len(t) > 1 and not whole:
                per = {self._type(original, a, i + k, [f[k]], [t[k]])
                       for k in range(len(f)) if not _agreement(f[k], t[k])}
                if len(per) > 1 or None in per:
                    return Verdict(False, "multi_edit"), none
            typ = self._type(original, a, i, f, t)
            if typ == "causal":
                typ = "action"                   # one outcome verb ("catching" -> "dropping") is what the subject
            if (not f or not t) and typ != "quantity":   # does; a causal flip changes cause and effect both
                return Verdict(False, "insert_or_delete"), none
            if typ is None:
                return Verdict(False, "untyped_edit"), none
            return Verdict(True, edit=Edit(typ, " ".join(f), " ".join(t),
                                           self._scope(typ, original, a, i, f))), spans[0]
        if len(blocks) == 2:
            (i1, f1, t1), (i2, f2, t2) = blocks
            whole = (spans[0][0], spans[1][1])
            if f1 and f2 and f1 == t2 and f2 == t1:
                typ = self._type(original, a, i1, f1, f2)
                if typ and typ not in ("causal", "position"):      # a binding swap: its own type
                    if _symmetric(aw, i1, i1 + len(f1), i2, i2 + len(f2)):
                        return Verdict(False, "symmetric_swap"), none
                    return Verdict(True, edit=Edit("swap", f"{' '.join(f1)} ... {' '.join(f2)}",
                                                   f"{' '.join(t1)} ... {' '.join(t2)}", "local")), whole
            types = [self._type(original, a, i, f, t) for i, f, t in blocks]
            verbish = [self._is_verb(original, a, i, f) for i, f, _ in blocks]
            if all(verbish) and "causal" in types:
                return Verdict(True, edit=Edit("causal", f"{' '.join(f1)} ... {' '.join(f2)}",
                                               f"{' '.join(t1)} ... {' '.join(t2)}", "global")), whole
        return Verdict(False, "multi_edit"), none

    def _relation(self, original: str, a: list[tuple[str, int]], i: int, f: list[str], t: list[str]) -> Verdict:
        pos = _pos_map(original)
        moving = any(_motion(w) for w in f + t)
        if not moving and len(f) > 1 and (pos.get(a[i][1]) == "ADJ" or f[0].endswith("ed")) \
                and pos.get(a[i + 1][1]) == "ADP":
            typ = "state"                    # "filled with" -> "empty of", "bent over" -> "standing up"
        elif f[0] in L.STATE and t[0] in L.STATE:
            typ = "state"                    # a posture: "sitting by" -> "lying on"
        elif moving or any(w in L.MOVEMENT for w in f + t) or \
                {" ".join(f), " ".join(t)} & {"into", "out of", "onto", "off"}:      # a direction of motion
            typ = "movement"
        elif any(self._is_verb(original, a, i + k, [w]) for k, w in enumerate(f)) \
                and not all(w in _LINKS for w in t):
            typ = "action"                   # a verb on both sides ("sitting on" -> "next to" is a place)
        else:
            typ = "position"
        return Verdict(True, edit=Edit(typ, " ".join(f), " ".join(t), "global"))

    def _restructured(self, original: str, a: list[tuple[str, int]], rw: str, b: list[tuple[str, int]],
                      failed: Verdict) -> tuple[Verdict, tuple[int, int]]:
        """Edits the word diff sees as several places: phrases that traded places (a swap), a
        noun phrase replaced whole (one object), a relation phrase with its article ("in the
        middle" -> "on the side")."""
        a = _joined_as_in(a, {w for w, _ in b})
        aw, bw = [t for t, _ in a], [t for t, _ in b]
        pa, pb = _pos_map(original), _pos_map(rw)
        ta, tb = _tagged(original), _tagged(rw)
        attr = {"ADJ", "NUM"}
        attr_a = {k for k, (w, o) in enumerate(a) if pa.get(o) in attr or w in _ATTRIBUTE_WORDS}
        attr_b = {k for k, (w, o) in enumerate(b) if pb.get(o) in attr or w in _ATTRIBUTE_WORDS}
        for verbs in (None, ("VERB", "AUX"), ()):     # the tagger's lemmas; singulars with verb lemmas; singulars
            lemma = lambda toks, tags: [tags.get(o, ("", ""))[1] if verbs is None or tags.get(o, ("",))[0]  # noqa: E731
                                        in verbs else L.singular(w) for w, o in toks]
            swap = _traded_places(aw, bw, lemma(a, ta), lemma(b, tb), attr_a, attr_b)
            if swap is not None:
                return swap
        acts_a, acts_b = _acts_unnamed(a, ta), _acts_unnamed(b, tb)
        if acts_a is not None and acts_b is not None:    # "a surfer rides as a sailboat sails" ->
            swap = _traded_places(aw, bw, acts_a, acts_b, attr_a, attr_b)    # "a sailboat rides as a surfer surfs"
            if swap is not None:
                return swap
        blocks = self._blocks(aw, bw, grammar=True)
        if blocks and len(blocks) <= 2:
            v, span = self._judge(original, a, rw, b, blocks)
            if v.ok or v.reason == "symmetric_swap":
                return v, span
        if len(blocks) == 2:
            frame = self._verb_frame(original, a, rw, b, blocks)
            if frame is not None:
                return frame
        if len(blocks) == 2 and blocks[1][0] - (blocks[0][0] + len(blocks[0][1])) <= 2 \
                and all(w in _FUNCTION for w in aw[blocks[0][0] + len(blocks[0][1]):blocks[1][0]]):
            (i, f1, _, j), (i2, f2, t2, j2) = blocks
            blocks = [(i, aw[i:i2 + len(f2)], bw[j:j2 + len(t2)], j)]
        if len(blocks) != 1:
            return failed, (0, 0)
        [(i, f, t, j)] = blocks
        if not f or not t or max(len(f), len(t)) > self.max_span:
            return failed, (0, 0)
        if self._relation_phrase(original, a, rw, b, i, f, t, j, wide=True):
            return self._relation(original, a, i, f, t), (j, j + len(t))
        if self._object_phrase(original, a, rw, b, i, f, t, j):
            return Verdict(True, edit=Edit("category", " ".join(f), " ".join(t), "local")), (j, j + len(t))
        placed = self._placed(original, a, rw, b, i, f, t, j)
        return (placed, (j, j + len(t))) if placed else (failed, (0, 0))

    def _placed(self, original: str, a: list[tuple[str, int]], rw: str, b: list[tuple[str, int]],
                i: int, f: list[str], t: list[str], j: int) -> Verdict | None:
        """An object or a place replaced with the preposition it takes ("on a plate" -> "in a
        bowl", "at a zoo" -> "in the wilderness"): one change when the old preposition cannot go
        with the new noun, so that grammar moved it; "on a bench" -> "by a fountain" chooses a new
        relation as well and stays two; and only when the two places exclude each other (see
        `lexicon.SCENE_GROUPS`). Typed `position` (where something is), or `category` when one dish
        replaces another."""
        pf, pt = _leading_preposition(f), _leading_preposition(t)
        if not pf or not pt:
            return None
        nf, nt = len(pf.split()), len(pt.split())
        old, new = (w if w in L.TAKES else L.singular(w) for w in (f[-1], t[-1]))
        takes_old, takes_new = L.TAKES.get(old, set()), L.TAKES.get(new, set())
        po, pn = L.PLACED_IN[pf], L.PLACED_IN[pt]
        if nf == len(f) or nt == len(t) or po not in takes_old or pn not in takes_new or po in takes_new:
            return None
        if set(f[nf:] + t[nt:]) & L.PLACE_NOUNS \
                or not self._object_phrase(original, a, rw, b, i + nf, f[nf:], t[nt:], j + nt):
            return None                      # "in front of a store" is a relation of its own
        dish = {old, new} <= L.DISHES        # the dish changed ("on a plate" -> "in a bowl"), not where
        scenes = [next((k for k, g in enumerate(L.SCENE_GROUPS) if w in g), None) for w in (old, new)]
        if scenes[0] is not None or scenes[1] is not None:
            exclusive = None not in scenes and scenes[0] != scenes[1]      # not "in the park" -> "on a bench"
        else:
            exclusive = dish or not ((takes_old | takes_new) & {"in"}           # supports; not a basket and a shelf
                                     or "at" in (po, pn) and {old, new} & L.SEATS)   # nor "at a table", "on a bench"
        if not exclusive:
            return None
        return Verdict(True, edit=Edit("category" if dish else "position", " ".join(f), " ".join(t),
                                       "global" if None not in scenes else "local"))

    def _object_phrase(self, original: str, a: list[tuple[str, int]], rw: str, b: list[tuple[str, int]],
                       i: int, f: list[str], t: list[str], j: int) -> bool:
        """One object replaced by another with its own words ("two planters" -> "a statue"), but
        not a second change of a property both have (colour -> colour, "two boys" -> "three girls")."""
        pa, pb = _pos_map(original), _pos_map(rw)
        tf = [pa.get(a[i + k][1], "") for k in range(len(f))]
        tt = [pb.get(b[j + k][1], "") for k in range(len(t))]
        ok = {"DET", "NUM", "ADJ", "NOUN", "PROPN"}
        if not all(x in ok or w == "of" or w in _POSSESSIVES for x, w in zip(tf + tt, f + t)):
            return False
        nf = {w for w, x in zip(f, tf) if x in ("NOUN", "PROPN")}
        nt = {w for w, x in zip(t, tt) if x in ("NOUN", "PROPN")}
        if not nf or not nt or nf & nt or tf[-1] not in ("NOUN", "PROPN") or tt[-1] not in ("NOUN", "PROPN"):
            return False
        if any(_is_quantity(w) and w not in ("a", "an", "one", "the") for w in set(t) - set(f)):
            return False
        gone, new = set(f) - set(t), set(t) - set(f)
        return not any(x in lex and y in lex for _, lex in L.TYPED_LEXICONS[:5] + [("state", L.STATE)]
                       for x in gone for y in new)

    def _blocks(self, aw: list[str], bw: list[str], grammar: bool = False) -> list[tuple[int, list[str], list[str], int]]:
        """Changed places as (start in original, from words, to words, start in rewrite),
        agreement dropped: grammatical agreement, pronouns a person change drags along, and the
        repeats of one change made at every mention. With `grammar`, also articles and
        auxiliaries put in or left out ("sitting" -> "is standing", "Black cat" -> "A black cat"),
        words only joined ("lap top" -> "laptop"), and pronouns that follow a changed noun."""
        out = []
        for i1, i2, j1, j2 in _changes(aw, bw):
            f, t = aw[i1:i2], bw[j1:j2]
            if grammar:
                if "".join(f) == "".join(t) or _respelled(f, t):
                    continue
                while f and t and f[0] != t[0] and (f[0] in _GRAMMAR) != (t[0] in _GRAMMAR):
                    if f[0] in _GRAMMAR:
                        f, i1 = f[1:], i1 + 1
                    else:
                        t, j1 = t[1:], j1 + 1
                if all(w in _GRAMMAR for w in f + t):
                    continue
            if len(f) == len(t):
                keep = [k for k in range(len(f)) if not _agreement(f[k], t[k])
                        and not (grammar and _respelled([f[k]], [t[k]], strict=True))]
                if not keep:
                    continue
                lo, hi = keep[0], keep[-1] + 1
                f, t, i1, j1 = f[lo:hi], t[lo:hi], i1 + lo, j1 + lo
            out.append((i1, f, t, j1))
        if any(len(f) == len(t) == 1 and f[0] in L.PERSON and t[0] in L.PERSON for _, f, t, _ in out):
            out = [blk for blk in out if not (len(blk[1]) == len(blk[2]) == 1
                                             and frozenset((blk[1][0], blk[2][0])) in L.GENDER_PAIRS)]
        if grammar and len(out) > 1 and len({_gender_turn(f, t) for _, f, t, _ in out} - {None}) == 1 \
                and all(_gender_turn(f, t) for _, f, t, _ in out):
            out = [blk for blk in out if blk[1][0] in ("he", "she")][:1] or out   # "she ... her" -> "he ... him"
        if grammar and len(out) > 1:
            rest = [blk for blk in out if not (len(blk[1]) == len(blk[2]) == 1 and blk[1][0] in _PRONOUNS
                                               and blk[2][0] in _PRONOUNS) and not _respelled(blk[1], blk[2])]
            out = rest or out
        if len(out) > 1 and all(self._only_agreement(f, t) for _, f, t, _ in out[1:]):
            out = out[:1]
        if len(out) > 1 and all((f, t) == (out[0][1], out[0][2]) for _, f, t, _ in out):
            out = out[:1]                 # the same change at every mention: one edit
        return out

    def _relation_phrase(self, original: str, a: list[tuple[str, int]], rewrite: str, b: list[tuple[str, int]],
                         i: int, f: list[str], t: list[str], j: int, wide: bool = False) -> bool:
        """A 2-3 word relation or action constituent replaced by another: verbs, particles and
        prepositions only, on both sides, with a preposition in each (so it stays a relation).
        `wide`: up to the span limit, with articles, possessives and the nouns that name a place
        on something ("in her arms" -> "on her shoulder", "at the bottom of" -> "near the top of")."""
        if not ((2 if not wide else 1) <= max(len(f), len(t)) <= (3 if not wide else self.max_span) and f and t):
            return False
        pa, pb = _pos_map(original), _pos_map(rewrite)
        tags_f = [_tag(pa, a, i + k) for k in range(len(f))]
        tags_t = [_tag(pb, b, j + k) for k in range(len(t))]
        ok = {"VERB", "AUX", "ADP", "ADV", "PART", "SCONJ"}
        tags_f, tags_t = _predicates(tags_f), _predicates(tags_t)
        if wide:
            ok |= {"DET", "PRON"}
            tags_f = [x if x in ok or w not in L.PLACE_NOUNS else "ADP" for x, w in zip(tags_f, f)]
            tags_t = [x if x in ok or w not in L.PLACE_NOUNS else "ADP" for x, w in zip(tags_t, t)]
            tags_f = [("ADV" if w in ("next", "close") else x) for x, w in zip(tags_f, f)]
            tags_t = [("ADV" if w in ("next", "close") else x) for x, w in zip(tags_t, t)]
        return (all(x in ok for x in tags_f + tags_t) and any(x in ("ADP", "ADV") for x in tags_f)
                and any(x in ("ADP", "ADV") for x in tags_t))

    def _verb_frame(self, original: str, a: list[tuple[str, int]], rw: str, b: list[tuple[str, int]],
                    blocks: list[tuple[int, list[str], list[str], int]]) -> tuple[Verdict, tuple[int, int]] | None:
        """One action replaced around its unchanged object: the verb and its preposition or
        particle change on either side of the object ("holding the leash by" -> "dropping the
        leash from", "offers a treat to" -> "takes a treat from"). The verb changes on both
        sides; the second place holds only the prepositions that tie the act to the object's
        source, goal or means (from, to, with, by, at; a place it leaves, "in" -> "from"), never a
        new place or path ("on the beach" -> "across the beach" is a second change); the object
        between is a short noun phrase."""
        (i1, f1, t1, j1), (i2, f2, t2, j2) = blocks
        pa, pb = _pos_map(original), _pos_map(rw)
        tag_a = lambda k: _tag(pa, a, k)      # noqa: E731
        tag_b = lambda k: _tag(pb, b, k)      # noqa: E731
        between = range(i1 + len(f1), i2)
        if not f1 or not t1 or not 1 <= len(between) <= 5 or max(len(f1), len(t1), len(f2), len(t2)) > 3:
            return None
        if not all(tag_a(k) in ("DET", "ADJ", "NOUN", "PROPN", "PRON", "NUM") or aw_k == "of"
                   for k, aw_k in ((k, a[k][0]) for k in between)) \
                or not any(tag_a(k) in ("NOUN", "PROPN", "PRON") for k in between):
            return None
        rel = {"VERB", "AUX", "ADP", "ADV", "PART"}
        first_a, first_b = [tag_a(i1 + k) for k in range(len(f1))], [tag_b(j1 + k) for k in range(len(t1))]
        second = [tag_a(i2 + k) for k in range(len(f2))] + [tag_b(j2 + k) for k in range(len(t2))]
        if not ("VERB" in first_a and "VERB" in first_b and all(x in rel for x in first_a + first_b)
                and second and all(x in ("ADP", "ADV", "PART") for x in second)):
            return None
        if not (set(f2 + t2) <= _FRAME_PREPOSITIONS and set(f2 + t2) & _FRAME_ENDS):
            return None
        v = self._relation(original, a[i1:i1 + len(f1)] + a[i2:i2 + len(f2)], 0, f1 + f2, t1 + t2)
        e = v.edit
        return Verdict(True, edit=Edit(e.type, f"{' '.join(f1)} ... {' '.join(f2)}".strip(" ."),
                                       f"{' '.join(t1)} ... {' '.join(t2)}".strip(" ."), e.scope)), \
            (j1, j2 + len(t2))

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
        if f[0] in ("he", "she") and _gender_turn(f, t):
            return "category"                # the person named by the subject pronoun
        if len(f) == 1 and len(t) == 1 and f[0] in L.CATEGORY and t[0] not in L.COLOR:
            return "category"
        pos = _pos_map(original).get(a[i][1], "")
        if pos == "X" and len(f) == len(t) == 1 and not (t[0].endswith("ing") or t[0] in L.VERBS_3SG
                                                         or t[0] in L.VERBS_PL):
            pos = "NOUN"                     # a word the tagger does not know ("a fedora") is a thing
        if any(_motion(w) for w in f + t) and (pos == "VERB" or f[0].endswith("ing")):     # "stand" -> "walk" too
            nxt = a[i + len(f)][0] if i + len(f) < len(a) else ""
            transitive = nxt in ("a", "an", "the", "his", "her", "their", "its", "some", "two")
            return "action" if transitive else "movement"    # "flying a kite" is done to a thing
        nxt = _next_tag(original, a, i, f)
        verb = t[1] if len(t) > 1 and t[0] in ("is", "are") else t[0]      # "playing soccer" -> "are watching"
        acts = f[0].endswith("ing") and verb.endswith("ing") and len(verb) > 4 and verb not in _KNOWN_THINGS
        if pos in ("VERB", "ADJ") and len(f) > 1 and not acts \
                and _pos_map(original).get(a[i + len(f) - 1][1]) == "NOUN":
            return "category"            # a noun phrase replaced ("stuffed animal" -> "plant", "frying pan" -> "wok")
        if pos == "VERB" and nxt in ("NOUN", "PROPN") and f[0].endswith("ed"):
            return "state"               # a participle before its noun is an attribute ("stuffed bears")
        return {"ADJ": "state", "NOUN": "category", "PROPN": "category", "VERB": "action",
                "ADP": "position", "NUM": "quantity", "ADV": "state"}.get(pos)

    def _is_verb(self, original: str, a: list[tuple[str, int]], i: int, f: list[str]) -> bool:
        if not f:
            return False
        if any(w in L.CAUSAL or w in L.MOVEMENT or w in L.MOTION for w in f):
            return True
        pos = _pos_map(original)
        return any(_tag(pos, a, k) in ("VERB", "AUX") for k in range(i, i + len(f)))

    def _scope(self, typ: str, original: str, a: list[tuple[str, int]], i: int, f: list[str]) -> str:
        if typ in GLOBAL_TYPES:
            return "global"
        if typ == "state" and f and f[0] not in L.STATE and _pos_map(original).get(a[i][1]) == "VERB":
            nxt = _next_tag(original, a, i, f)
            if nxt not in ("NOUN", "PROPN"):
                return "global"  # an action change, not a maskable attribute ("stuffed bears" is one)
        return "local"


_DRESS_THINGS = {"shirt", "shirts", "shoes", "pants", "code", "tie", "suit", "uniform", "coat", "jacket", "socks"}
_GRAMMAR = {"a", "an", "the", "is", "are", "was", "were", "be", "being", "that", "who", "which"}
_FRAME_ENDS = {"from", "to", "with", "by", "at", "off", "into", "onto"}   # source, goal, means of an act
_FRAME_PREPOSITIONS = _FRAME_ENDS | {"in", "on", "out", "of"}
_POSSESSIVES = {"his", "her", "its", "their", "my", "your", "our"}
_PRONOUNS = {"his", "her", "its", "their", "he", "she", "it", "they", "him", "them", "hers", "theirs",
             "himself", "herself", "itself", "themselves"}
_LINKS = set("in on at with near by of for from to under over above below behind beside next inside outside "
             "into onto around across along through down up out off together nearby while as or but".split())
_FUNCTION = {"a", "an", "the", "this", "that", "these", "those", "is", "are", "was", "were", "be", "been",
             "being", "has", "have", "had", "its", "his", "her", "their", "them", "they", "it", "he", "she",
             "him", "there", "of", "and", "which", "who", "while"}
_SLIP_TARGETS = set(L.NUMBERS) | {"a", "an", "the", "to", "and", "or", "of", "in", "on", "at", "by", "for", "from",
                                   "with", "near", "into", "onto", "over", "under", "is", "are", "was", "were"}


def _content(words: list[str], lemmas: list[str], articles: bool) -> list[tuple[str, int]]:
    """Content words as comparable forms (lemmas, numbers as words; with `articles`, "a"
    counts as one), each with its index: what a binding swap keeps and reorders."""
    out = []
    for k, w in enumerate(words):
        w = _NUMBER_WORDS.get(w, w)
        if w not in ("a", "an") and w not in _FUNCTION:
            w = lemmas[k] or w
        if w in ("a", "an") and articles:
            w = "one"
        elif w in _FUNCTION:
            continue
        out.append((w, k))
    return out


def _traded_places(aw: list[str], bw: list[str], la_: list[str], lb_: list[str], attr_a: set[int],
                   attr_b: set[int]) -> tuple[Verdict, tuple[int, int]] | None:
    """The same content words in another order, so that what belongs to what changes (a
    binding swap): two phrases trade places (A x B -> B x A), attributes move to another
    noun, or the same attributes are dealt out again to the same nouns. `attr_a`, `attr_b`: the
    indices of attribute words (adjectives, numbers). A swap across a symmetric relation ("a dog
    and a cat") is no edit."""
    for articles in (True, False):
        ca, cb = _content(aw, la_, articles), _content(bw, lb_, articles)
        xa, xb = [w for w, _ in ca], [w for w, _ in cb]
        if xa == xb or set(xa) != set(xb):
            continue
        p0, q0 = _common_ends(xa, xb)
        # a repeated word ("a pizza on a pizza box") can make the common ends too long: back off
        for p, q in [(p, q) for p in range(p0, max(p0 - 3, -1), -1) for q in range(q0, max(q0 - 3, -1), -1)]:
            found = _one_reordering(aw, bw, ca, cb, xa, xb, p, q, attr_a, attr_b)
            if found is not None:
                return found
    for articles in (True, False):
        ca, cb = _content(aw, la_, articles), _content(bw, lb_, articles)
        if ca and cb and ca[0][0] != cb[0][0]:      # the subject changed: "a woman feeding a boy fries" ->
            ca, cb = [x for x in ca if x[0] != "to"], [x for x in cb if x[0] != "to"]   # "a boy feeding fries to a woman"
        found = _permuted(aw, bw, ca, cb)
        if found is not None:
            return found
    return None


def _acts_unnamed(toks: list[tuple[str, int]], tags: dict[int, tuple[str, str]]) -> list[str] | None:
    """The tagger's lemmas with each verb named after a noun of the same caption ("sails" beside
    "sailboat", "rows" beside "rower") made one placeholder: the act follows its doer when two
    doers trade places, so it is not a word of its own in the swap. None if there is no such verb."""
    words = [w for w, _ in toks]
    out = [tags.get(o, ("", ""))[1] for _, o in toks]
    named = lambda stem, j: (words[j].startswith(stem) and len(words[j]) > len(stem) + 1   # noqa: E731
                             and tags.get(toks[j][1], ("",))[0] in ("NOUN", "PROPN"))
    for k, (w, o) in enumerate(toks):
        pos, stem = tags.get(o, ("", ""))
        if len(stem) < 3:
            continue
        if (pos == "VERB" and any(named(stem, j) for j in range(len(words)) if j != k)) or (
                pos == "NOUN" and w.endswith("s") and k > 0 and named(L.singular(w), k - 1)):
            out[k] = "<act>"             # the small tagger calls a verb right after its doer a noun: "a sailboat sails"
    return out if "<act>" in out else None


def _common_ends(xa: list[str], xb: list[str]) -> tuple[int, int]:
    """How many words the two sequences share at the start, and then at the end."""
    p = 0
    while p < min(len(xa), len(xb)) and xa[p] == xb[p]:
        p += 1
    q = 0
    while q < min(len(xa), len(xb)) - p and xa[-1 - q] == xb[-1 - q]:
        q += 1
    return p, q


def _permuted(aw, bw, ca, cb) -> tuple[Verdict, tuple[int, int]] | None:
    """The same content words (a spelling slip mended counts as the same word) in an order no two
    phrases trading places explains ("a woman in high heels leading a white horse" -> "a woman in
    white leading a high horse"): still one binding swap, because nothing is added or taken away.
    What sits before the first and after the last moved word must be the same."""
    xa, xb = [w for w, _ in ca], [_mended(w, ca) for w, _ in cb]
    if xa == xb or Counter(xa) != Counter(xb):
        return None
    p, q = _common_ends(xa, xb)
    if len(xa) - p - q < 2:
        return None
    ia, ea = ca[p][1], ca[len(ca) - q - 1][1] + 1
    span = (cb[p][1], cb[len(cb) - q - 1][1] + 1)
    if any(w in L.SYMMETRIC_AND for w in aw[ia:ea]) and _symmetric(aw, ia, ia + 1, ea - 1, ea):
        return Verdict(False, "symmetric_swap"), (0, 0)
    return Verdict(True, edit=Edit("swap", " ".join(aw[ia:ea]), " ".join(bw[span[0]:span[1]]), "local")), span


def _respelled(f: list[str], t: list[str], strict: bool = False) -> bool:
    """One word spelled anew, not a new word: a slip mended or an apostrophe moved ("toliet" ->
    "toilet", "siting" -> "sitting", "theres" -> "there's", "it's" -> "its"). Long words with the
    same first two letters and nearly the same letters, where the original's word is none the
    lexicons know ("chair" -> "chain" is a new thing, not a mended slip; with `strict`, for a word
    inside a larger change, none the English model knows either: "red track" -> "blue truck"); or a
    short non-word one slip away from an article, preposition or number ("twp" -> "two", "on s
    field" -> "on a field")."""
    if len(f) != 1 or len(t) != 1 or f == t:
        return False
    x, y = f[0], t[0]
    if x.replace("'", "") == y.replace("'", ""):
        return True
    if max(len(x), len(y)) < 5:
        return _non_word(x) and y in _SLIP_TARGETS and _one_slip(x, y)   # "twp" -> "two", "on s field" -> "on a field"
    if x in _KNOWN or (strict and not _non_word(x)):
        return False                         # "chair" -> "chain"; beside another change, "track" -> "truck"
    return x[:2] == y[:2] and difflib.SequenceMatcher(None, x, y).ratio() >= .8


def _non_word(x: str) -> bool:
    """No English word: a stray letter, or a word neither our lexicons nor the English model know."""
    if len(x) == 1:
        return x not in ("a", "i")
    words = english_words()
    return bool(words) and x not in _KNOWN and x not in words


def _leading_preposition(words: list[str]) -> str:
    """The preposition of place a phrase starts with ("inside of", "on top of", "at"), or ""."""
    for n in (3, 2, 1):
        if " ".join(words[:n]) in L.PLACED_IN:
            return " ".join(words[:n])
    return ""


def _gender_turn(f: list[str], t: list[str]) -> str | None:
    """'m' or 'f' when a pronoun turns to the other gender ("she" -> "he", "her" -> "him")."""
    if len(f) != 1 or len(t) != 1 or frozenset((f[0], t[0])) not in L.GENDER_PAIRS:
        return None
    return "m" if t[0] in ("he", "him", "his", "himself") else "f"


def _one_slip(x: str, y: str) -> bool:
    """One letter wrong, missing, extra, or two neighbours swapped."""
    if abs(len(x) - len(y)) > 1:
        return False
    if len(x) == len(y):
        diff = [k for k in range(len(x)) if x[k] != y[k]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and x[diff[0]] == y[diff[1]] and x[diff[1]] == y[diff[0]])
    short, long_ = sorted((x, y), key=len)
    return any(long_[:k] + long_[k + 1:] == short for k in range(len(long_)))


def _joined_as_in(a: list[tuple[str, int]], words: set[str]) -> list[tuple[str, int]]:
    """`a` with each pair of words the rewrite writes as one ("lap top" -> "laptop", "sky
    scraper" -> "skyscraper") joined, at the first word's place."""
    out: list[tuple[str, int]] = []
    k = 0
    while k < len(a):
        if k + 1 < len(a) and a[k][0] + a[k + 1][0] in words and a[k][0] not in words:
            out.append((a[k][0] + a[k + 1][0], a[k][1]))
            k += 2
        else:
            out.append(a[k])
            k += 1
    return out


def _mended(w: str, ca: list[tuple[str, int]]) -> str:
    """`w`, or the original's word it mends a slip of ("pattern" for "patters", "keyboard" for
    "keybord"): long words, same first two letters, nearly the same letters."""
    if len(w) < 5 or any(x == w for x, _ in ca):
        return w
    near = [x for x, _ in ca if len(x) >= 5 and x[:2] == w[:2] and difflib.SequenceMatcher(None, x, w).ratio() >= .85]
    return near[0] if len(near) == 1 else w


def _one_reordering(aw, bw, ca, cb, xa, xb, p, q, attr_a, attr_b) -> tuple[Verdict, tuple[int, int]] | None:
    """The reordering of `_traded_places` with the first p and last q content words in common."""
    m1, m2 = xa[p:len(xa) - q], xb[p:len(xb) - q]
    if not m1 or not m2:
        return None
    ia, ib = ca[p][1], cb[p][1]
    span = (ib, cb[len(cb) - q - 1][1] + 1)
    edit = Edit("swap", " ".join(aw[ia:ca[len(ca) - q - 1][1] + 1]), " ".join(bw[span[0]:span[1]]), "local")
    if sorted(m1) == sorted(m2):
        n = len(m1)
        for la in range(1, n):
            for lb in range(1, n - la + 1):
                if m2 != m1[n - lb:] + m1[la:n - lb] + m1[:la]:
                    continue
                if la + lb == n:        # a part moved, nothing between: only attributes moving bind anew
                    if not any(all(k in attr_a for _, k in moved) for moved in (ca[p:p + la], ca[p + la:p + n])):
                        continue
                elif _symmetric(aw, ia, ca[p + la - 1][1] + 1, ca[p + n - lb][1], ca[p + n - 1][1] + 1):
                    return Verdict(False, "symmetric_swap"), (0, 0)
                return Verdict(True, edit=edit), span
    if len(m1) == len(m2) and all((x == y) or (ca[p + k][1] in attr_a and cb[p + k][1] in attr_b)
                                  for k, (x, y) in enumerate(zip(m1, m2))):
        return Verdict(True, edit=edit), span       # the same attributes dealt out again
    return None


_KNOWN = {w for _, lex in L.TYPED_LEXICONS for w in lex} | set(L.CATEGORY) | set(L.SIZE_CLASS) | L.ANIMALS \
    | L.VEHICLES | L.PARTS | L.MOTION | L.VERBS_3SG | L.VERBS_PL
_SEXED = (L.MALE_ONLY | L.FEMALE_ONLY) - _PRONOUNS      # a pregnant person, a bearded one: one sex only
_SEXED_MARKS = (L.FEMALE_ONLY - L.FEMALE_NOUNS - _PRONOUNS) | (L.MALE_ONLY - L.MALE_NOUNS - _PRONOUNS)  # a beard, a bridal dress
_SEXED_NOUNS = L.MALE_NOUNS | L.FEMALE_NOUNS
_PRONOUN_NAMES = L.PEOPLE | L.ANIMALS | {"teddy", "toy", "toys", "doll", "dolls", "statue", "robot"}  # a pronoun's antecedents
_KNOWN_THINGS = set(L.CATEGORY) | set(L.SIZE_CLASS) | L.ANY_COLOR | {"building", "buildings", "painting", "paintings",
                                                                   "clothing", "ceiling", "railing", "wedding"}
_ATTRIBUTE_WORDS = set(L.COLOR) | set(L.MATERIAL) | set(L.SIZE) | set(L.SHAPE) | set(L.STATE) | set(L.EMOTION) \
    | set(L.NUMBERS) | {"one"}


def _symmetric(aw: list[str], ia: int, ea: int, ib: int, eb: int) -> bool:
    """Two whole phrases that trade places across "and" (anywhere), or across "next to", "near" ...
    between two subjects: the same scene ("a dog and a cat", "a cat next to a dog")."""
    between = " ".join(w for w in aw[ea:ib] if w not in ("a", "an", "the", "one"))
    k = ia - 1
    while k >= 0 and aw[k] in ("a", "an", "the", "one"):
        k -= 1
    before = aw[k] if k >= 0 else ""
    after = aw[eb] if eb < len(aw) else ""
    if before in _ATTRIBUTE_WORDS or before == "of" or not (after in _LINKS or after in _FUNCTION or not after
                                                           or after.endswith(("ing", "ed"))):
        return False                         # "a cane and a roller bag": the second is not a whole phrase
    return between in L.SYMMETRIC_AND or (between in L.SYMMETRIC and not before)


def _meaning(w: str) -> str:
    return _NUMBER_WORDS.get(w, "one" if w in ("a", "an") else w)


def _same_meaning(edit: Edit) -> str:
    """'synonym', 'hypernym' or 'includes' when the edit's two sides show the same thing."""
    if edit.type in ("swap", "causal"):
        return ""
    f, t = edit.from_.split(), edit.to.split()
    fs, ts = " ".join(map(_meaning, f)), " ".join(map(_meaning, t))
    if fs == ts or ts in L.SYNONYMS.get(fs, ()) or L.singular(ts) in L.SYNONYMS.get(L.singular(fs), ()):
        return "synonym"
    if ts in L.HYPERNYMS.get(fs, ()) or (edit.type == "material" and fs in L.HYPERNYMS.get(ts, ())):
        return "hypernym"          # a dog is an animal, a metal statue may be bronze: the same photo fits both
    if f and t and (set(f) < set(t) or set(t) < set(f)):
        return "includes"
    return ""


def _noun_after(bw: list[str], k: int) -> int | None:
    """The first word at or after k that is not an article or an attribute: the head it describes."""
    while k < len(bw) and (bw[k] in _ATTRIBUTE_WORDS or bw[k] in ("a", "an", "the", "other", "more")):
        k += 1
    return k if k < len(bw) else None


def _noun_before(bw: list[str], k: int) -> str | None:
    for w in reversed(bw[max(0, k - 7):k]):
        if w in L.SIZE_CLASS:
            return w
    return None


def implausible(bw: list[str], span: tuple[int, int], typ: str, tags=None) -> str:
    """Why a rewrite (its lowercased words, the edit at `span`) could not be a photo's caption,
    or "": a man's beard on a woman, a black giraffe, a tiny bus, a huge compact car, a closed
    fridge looked into, a man under a bed, a count of a framing noun or without agreement.
    Shared by every backend; looks only near the edit, so that the caption's own oddities pass.
    `tags`: a callable giving the rewrite's POS per word, asked only when the words cannot tell."""
    j1, j2 = span
    near = set(bw[max(0, j1 - 3):j2 + 3])
    new = bw[j1:j2]
    words = set(bw)
    if any(w in ("dress", "dresses") and not set(bw[k + 1:k + 2]) & _DRESS_THINGS for k, w in enumerate(bw)):
        words = words | {"skirt"}            # a dress (not a dress shirt) is worn by a woman or a girl
    if typ in ("category", "state", "swap") and words & (L.MALE_ONLY | L.FEMALE_ONLY):
        male, female = words & L.MALE_NOUNS, words & L.FEMALE_NOUNS
        if (male and not female and words & (L.FEMALE_ONLY - L.FEMALE_NOUNS - {"her", "hers", "herself", "she"})) \
                or (female and not male and words & (L.MALE_ONLY - L.MALE_NOUNS - {"his", "him", "himself", "he"})):
            return "implausible_gender"
        for k, w in enumerate(bw):           # "a girl ... and a man in a bridal dress": the nearest person wears it
            if w not in _SEXED_MARKS:
                continue
            at = next((i for i in range(k - 1, max(0, k - 5) - 1, -1) if bw[i] in _SEXED_NOUNS), None)
            if at is not None and (bw[at] in L.MALE_NOUNS) != (w in L.MALE_ONLY) and j1 <= at < j2:
                return "implausible_gender"
    if typ == "category" and set(new) & {"he", "she"} and (words & _SEXED or set(bw[:j1]) & _PRONOUN_NAMES or (
            tags is not None and {"NOUN", "PROPN"} & set(tags()[:j1]))):
        return "ambiguous_pronoun"           # "a girl ... while he runs", "a dog ... he": whose, or no sex shown
    if set(new) & L.CHILD_NOUNS and (words & L.ADULT_CONTEXT or (words & L.ADULT_ONLY and not words & L.ADULT_NOUNS)):
        return "implausible_age"             # "a boy with a beard", "a boy smoking", "a man and a girl getting married"
    if typ == "category" and any(w in L.ANIMALS or w in L.VEHICLES for w in new):
        for k, w in enumerate(bw):
            owners = L.PART_OWNERS.get(w)
            if owners and not owners & words and (w not in L.AMBIGUOUS_PARTS or bw[k - 1] in ("its", "their") or (
                    words & L.ANIMALS and bw[k - 1] in ("his", "her")) or (
                    words & L.ANIMALS and "with" in bw[max(0, k - 3):k])):     # "a giraffe with a long trunk"
                return "implausible_part"         # "a giraffe with its trunk"
    rooms = words & L.ROOMS
    if typ == "category" and rooms and any(L.ROOM_OF.get(w, next(iter(rooms))) not in rooms for w in new):
        return "implausible_context"         # "a kitchen with a bathtub"
    for k in range(max(1, j1 - 1), min(len(bw), j2 + 2)):
        w, prev = bw[k], bw[k - 1]
        if w in L.ANIMAL_PALETTE and prev in L.COLOR and (prev not in L.ANIMAL_PALETTE[w] or (
                w in L.TWO_TONE and bw[k - 2] != "and")):
            return "implausible_color"       # a green horse; a black zebra (zebras are black and white)
        size = L.SIZE_CLASS.get(w)
        if size and ((size == 5 and prev in L.TOO_SMALL_FOR_BIG) or (size == 1 and prev in L.TOO_BIG_FOR_SMALL)):
            return "implausible_size"
    for w in new if typ != "swap" else ():
        if set(L.CONTRADICTIONS.get(w, ())) & near:
            return "contradiction"
        if L.STATE_CONFLICTS.get(w, set()) & set(bw[max(0, j1 - 3):j1] + bw[j2:j2 + 3]):
            return "contradiction"
    if typ in ("position", "movement"):      # "out of an oven" as a place or as a way out
        rel = " ".join(new)
        k = _noun_after(bw, j2)
        obj = bw[k] if k is not None else ""
        subj = L.SIZE_CLASS.get(_noun_before(bw, j1) or "", 0)
        if rel in ("under", "beneath", "underneath", "below") and obj in L.SIZE_CLASS \
                and subj > L.ROOM_UNDER.get(obj, 0):
            return "implausible_place"
        if rel in ("into", "inside", "out of", "inside of") and obj in L.SIZE_CLASS \
                and subj > L.ROOM_INSIDE.get(obj, 0):
            return "implausible_place"
        if rel in ("on", "on top of", "atop") and subj > L.SIZE_CLASS.get(obj, 5) + 1:
            return "implausible_place"
    if typ in ("quantity", "parts"):
        return _count_problem(bw, j1, j2, tags)
    return ""


def _count_problem(bw: list[str], j1: int, j2: int, tags=None) -> str:
    """A count must land on the head noun and the clause must agree with it."""
    k = _noun_after(bw, j2)
    if k is None:
        return ""
    while k + 1 < len(bw) and L.singular(bw[k + 1]) != bw[k + 1] and bw[k + 1] not in L.VERBS_3SG \
            and not bw[k + 1].endswith("ings") and bw[k + 1] not in _FUNCTION:
        k += 1                               # "clock towers": the head is the last noun
    head, nxt = bw[k], (bw[k + 1] if k + 1 < len(bw) else "")
    number = _meaning(bw[j2 - 1]) if j2 > j1 else ""
    made_plural = L.singular(head) != head
    plural = number in L.NUMBERS[1:] or number in ("several", "many", "multiple", "few") or \
        (number not in L.NUMBERS[:1] + ["single"] and made_plural)
    if L.singular(head) in L.FRAMING or head in ("close", "closes"):
        return "count_of_frame"
    if plural and L.singular(head) in L.ONE_PER_BODY:
        return "implausible_count"
    if plural and nxt in ("in", "with", "wearing") and k + 2 < len(bw) and bw[k + 2] in ("a", "an") \
            and any(w in L.WORN for w in bw[k + 3:k + 6]):
        return "agreement"                   # "four women in a red coat" would share one coat
    if number in L.NUMBERS[1:] and not made_plural and L.pluralize(head) != head and \
            (head in L.SIZE_CLASS or head in L.CATEGORY):
        return "agreement"                   # "three tall giraffe standings"
    if plural and nxt in L.VERBS_3SG:
        return "agreement"
    if not plural and (nxt in ("are", "were", "have") or (nxt in L.VERBS_PL and nxt not in L.SIZE_CLASS)
                       or L.PLURAL_ONLY & set(bw[k + 1:])):
        return "agreement"
    if plural and nxt == "and" and k + 2 < len(bw):
        w3 = bw[k + 2]
        if L.singular(w3) == w3 and L.pluralize(w3) != w3 and w3 not in _FUNCTION and w3 not in _LINKS and \
                (w3 in L.SIZE_CLASS or w3 in L.CATEGORY or (tags is not None and tags()[k + 2] == "NOUN")):
            return "agreement"               # "two mothers and child": the count covers one of two nouns
    if made_plural and nxt and nxt not in L.VERBS_PL and nxt not in _FUNCTION and nxt not in _LINKS \
            and not nxt.endswith(("ing", "ed")):
        pos = tags() if tags is not None else [""] * len(bw)
        m = k + 1
        while m < len(bw) and (bw[m] in _ATTRIBUTE_WORDS or pos[m] == "ADJ"):
            m += 1
        if m == len(bw) or bw[m] in L.SIZE_CLASS or pos[m] in ("NOUN", "PROPN"):
            return "count_of_modifier"        # "two walls urinal": the count went to a modifier
    return ""


_DEFAULT = Validator()


def validate(original: str, rewrite: str, others: Iterable[str] = ()) -> Verdict:
    """Validate one rewrite of `original` (see `Validator`)."""
    return _DEFAULT(original, rewrite, others)
