"""The `rules` backend: one-edit rewrites from a spaCy POS tagging and the lexicons.

No model, no GPU: the embedded default. For each caption it lists every edit the lexicons
allow (attribute swaps, category swaps, quantity changes with agreement, relation and causal
flips), then picks K of them spread over as many edit types as possible, seeded per anchor.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from . import lexicon as L
from .nlp import load_nlp

PHRASES: list[tuple[tuple[str, ...], str, str]] = [
    (("on", "top", "of"), "underneath", "position"),
    (("in", "front", "of"), "behind", "position"),
    (("next", "to"), "far from", "position"),
    (("to", "the", "left", "of"), "to the right of", "position"),
    (("to", "the", "right", "of"), "to the left of", "position"),
]
_ATTR = [("color", L.COLOR), ("material", L.MATERIAL), ("size", L.SIZE), ("shape", L.SHAPE),
         ("emotion", L.EMOTION), ("movement", L.MOVEMENT), ("causal", L.CAUSAL)]


@dataclass
class Option:
    type: str
    start: int
    stop: int
    choices: list[str]
    extra: dict[int, str] | None = None     # agreement changes elsewhere (index -> new token)


def _options(doc) -> list[Option]:
    words = [t.text.lower() for t in doc]
    opts: list[Option] = []
    covered: set[int] = set()
    for phrase, repl, typ in PHRASES:
        n = len(phrase)
        for i in range(len(words) - n + 1):
            if tuple(words[i:i + n]) == phrase:
                opts.append(Option(typ, i, i + n, [repl]))
                covered.update(range(i, i + n))
    for i, t in enumerate(doc):
        w = words[i]
        if i in covered or not t.text.isalpha():
            continue
        for typ, lex in _ATTR:
            if typ == "shape":
                lex = L.SHAPE_NOUN if t.pos_ in ("NOUN", "PROPN") else L.SHAPE_ADJ
            if w in lex:
                opts.append(Option(typ, i, i + 1, lex[w]))
                break
        else:
            if w in L.STATE and t.pos_ in ("ADJ", "VERB") and w not in ("on", "off"):
                opts.append(Option("state", i, i + 1, L.STATE[w]))
            elif w in L.POSITION and t.pos_ in ("ADP", "ADV", "NOUN", "ADJ"):
                opts.append(Option("position", i, i + 1, L.POSITION[w]))
            elif w in L.CATEGORY and t.pos_ in ("NOUN", "PROPN"):
                opts.append(Option("category", i, i + 1, L.CATEGORY[w]))
            elif w in L.NUMBERS and i + 1 < len(doc):
                opts.extend(_number_options(doc, words, i))
            elif w in L.ARTICLES:
                opts.extend(_article_options(doc, words, i))
    return opts + _swap_options(doc, words, opts)


def _swap_options(doc, words: list[str], opts: list[Option]) -> list[Option]:
    """Attribute swaps between two places ("a red cube and a blue ball" -> "a blue cube
    and a red ball"): the words stay, their binding changes. Typed `swap` by the validator."""
    out = []
    single = [o for o in opts if o.stop == o.start + 1 and o.type in ("color", "material", "size", "shape")]
    for x in range(len(single)):
        for y in range(x + 1, len(single)):
            o, p = single[x], single[y]
            between = range(o.start + 1, p.start)
            if o.type == p.type and words[o.start] != words[p.start] \
                    and any(doc[i].pos_ in ("NOUN", "PROPN") for i in between):     # two objects, not "black and white"
                out.append(Option("swap", o.start, o.stop, [words[p.start]], {p.start: words[o.start]}))
    return out


def _head_noun(doc, i: int) -> int | None:
    for j in range(i + 1, min(i + 4, len(doc))):
        if doc[j].pos_ in ("NOUN", "PROPN") and doc[j].tag_ in ("NN", "NNS"):
            if j + 1 < len(doc) and doc[j + 1].pos_ == "NOUN":
                continue       # compound: the head comes later
            return j
        if doc[j].pos_ not in ("ADJ", "NOUN", "PROPN"):
            return None
    return None


def _verb_agreement(doc, words, j: int, plural: bool) -> dict[int, str] | None:
    """Agreement of the verb when noun j is the subject (the sentence's first noun).

    Returns the change to make, {} when none is needed, None when it cannot be made right
    without a full parse (the option is then dropped rather than written ungrammatically).
    """
    if any(doc[k].pos_ in ("NOUN", "PROPN") for k in range(j)):
        return {}
    flip = {"is": "are", "are": "is", "was": "were", "were": "was", "has": "have", "have": "has"}
    for k in range(j + 1, len(doc)):
        if words[k] in flip:
            want_plural = words[k] in ("are", "were", "have")
            return {} if want_plural == plural else {k: flip[words[k]]}
        if doc[k].tag_ in ("VBZ", "VBP"):
            return None
    return {}


def _number_options(doc, words, i: int) -> list[Option]:
    j = _head_noun(doc, i)
    if j is None:
        return []
    n = L.NUMBERS.index(words[i]) + 1
    typ = "parts" if words[j] in L.PARTS else "quantity"
    out = []
    for m in {max(1, n - 1), n + 1} - {n}:
        extra: dict[int, str] = {}
        agree = _verb_agreement(doc, words, j, plural=m > 1)
        if agree is None:
            continue
        extra.update(agree)
        if m == 1:
            extra[j] = L.singular(words[j])
        out.append(Option(typ, i, i + 1, [L.NUMBERS[m - 1] if m <= 10 else str(m)], extra or None))
    return out


def _article_options(doc, words, i: int) -> list[Option]:
    j = _head_noun(doc, i)
    if j is None or doc[j].tag_ != "NN" or words[j] in ("water", "grass", "snow", "food", "hair"):
        return []
    agree = _verb_agreement(doc, words, j, plural=True)
    if agree is None:
        return []
    extra = {j: L.pluralize(words[j]), **agree}
    return [Option("quantity", i, i + 1, ["two", "three"], extra)]


def _realize(doc, opt: Option, choice: str) -> str:
    toks = [t.text for t in doc]
    ws = [t.whitespace_ for t in doc]
    new = list(toks)
    new[opt.start] = choice
    for k in range(opt.start + 1, opt.stop):
        new[k] = ""
    for k, v in (opt.extra or {}).items():
        new[k] = v
    # fix a/an before every changed word
    for p in [opt.start, *(opt.extra or {})] if opt.type != "quantity" else []:
        if p > 0 and toks[p - 1].lower() in L.ARTICLES and new[p]:
            art = "an" if new[p][:1].lower() in "aeiou" else "a"
            new[p - 1] = art.capitalize() if toks[p - 1][0].isupper() else art
    if toks[opt.start][:1].isupper() and new[opt.start]:
        new[opt.start] = new[opt.start][0].upper() + new[opt.start][1:]
    out = "".join(w + (s if w else "") for w, s in zip(new, ws))
    return " ".join(out.split())


class RulesBackend:
    """Rewrites without a model (see module doc)."""

    name = "rules"

    def __init__(self, k: int = 4, seed: int = 0, batch_size: int = 256,
                 vocab: dict[str, list[str]] | None = None):
        """`vocab`: optional {edit type: allowed target words}, e.g. a renderer's colours."""
        self.k = k
        self.seed = seed
        self.batch_size = batch_size
        self.vocab = {t: set(ws) for t, ws in (vocab or {}).items()}
        self.nlp = load_nlp()

    def _allowed(self, opt: Option) -> list[str]:
        if opt.type not in self.vocab:
            return opt.choices
        return [c for c in opt.choices if c in self.vocab[opt.type]]

    def rewrite(self, doc, key: str) -> list[str]:
        rng = random.Random(f"rules-{self.seed}-{key}")
        by_type: dict[str, list[Option]] = {}
        for o in _options(doc):
            o.choices = self._allowed(o)
            if o.choices:
                by_type.setdefault(o.type, []).append(o)
        types = sorted(by_type)
        rng.shuffle(types)
        for t in types:
            rng.shuffle(by_type[t])
        out: list[str] = []
        original = " ".join(doc.text.split()).lower()
        rounds = 0
        while len(out) < self.k and any(by_type.values()) and rounds < 4 * self.k:
            rounds += 1
            for t in types:
                if len(out) >= self.k or not by_type[t]:
                    continue
                opt = by_type[t].pop()
                text = _realize(doc, opt, rng.choice(opt.choices))
                if text.lower() != original and text not in out:
                    out.append(text)
        return out

    def generate(self, captions: list[str], keys: list[str]) -> list["Generation"]:
        from .backends import Generation
        docs = self.nlp.pipe(captions, batch_size=self.batch_size)
        return [Generation([{"text": t} for t in self.rewrite(d, k)]) for d, k in zip(docs, keys)]
