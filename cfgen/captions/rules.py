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

PHRASES: list[tuple[tuple[str, ...], str, bool]] = [     # (words, flip, vertical)
    (("on", "top", "of"), "underneath", True),
    (("in", "front", "of"), "behind", False),
    (("next", "to"), "far from", False),
    (("to", "the", "left", "of"), "to the right of", False),
    (("to", "the", "right", "of"), "to the left of", False),
]
NOUN = ("NOUN", "PROPN")
LOCATIVE_OK = {"with"}          # a counted noun may sit after these; after "in", "on", "at" it is a place
HOLDING_VERBS = {"holding", "holds", "carrying", "carries", "eating", "has", "have", "shows", "showing"}


@dataclass
class Option:
    type: str
    start: int
    stop: int
    choices: list[str]
    extra: dict[int, str] | None = None     # agreement changes elsewhere (index -> new token)


def _base(w: str) -> str:
    return L.singular(w) if w not in L.MATERIAL_FOR else w


def _np_head(doc, i: int):
    """The noun an adjective, number or determiner at i belongs to (a compound's head), or None."""
    t = doc[i]
    if t.dep_ in ("amod", "nummod", "det", "compound", "poss") and t.head.pos_ in NOUN and t.head.i > i:
        j = t.head.i
    else:
        j = None
        for k in range(i + 1, min(i + 5, len(doc))):
            if doc[k].pos_ in NOUN:
                j = k
            elif j is not None or doc[k].pos_ not in ("ADJ", "ADV", "CCONJ", "PUNCT", "NUM", "VERB"):
                break
        if j is None:
            return None
    while j + 1 < len(doc) and doc[j + 1].pos_ in NOUN and not doc[j + 1].text.lower().endswith("ing"):
        j += 1                              # "a coffee table": the head is "table"
    return doc[j]


def _fixed(doc, j: int) -> bool:
    """Noun j is part of a compound or a fixed expression ("living room", "coffee table", "hot dog")."""
    t = doc[j]
    before = doc[j - 1] if j > 0 else None
    after = doc[j + 1] if j + 1 < len(doc) else None
    return (t.dep_ == "compound" or any(c.dep_ == "compound" for c in t.children)
            or (before is not None and (before.pos_ in NOUN or before.text.lower() in L.FIXED_MODIFIERS))
            or (after is not None and after.pos_ in NOUN))


def _subject(doc, v: int):
    """The noun a verb at v says something about."""
    t = doc[v]
    found = t.head if t.dep_ in ("acl", "relcl", "amod") and t.head.pos_ in NOUN else \
        next((c for c in t.children if c.dep_ in ("nsubj", "nsubjpass")), None)
    if found is None:
        nouns = [x for x in doc[:v] if x.pos_ in NOUN]
        found = nouns[-1] if nouns else None
    if found is not None and found.i + 2 < len(doc) and doc[found.i + 1].text.lower() == "of":
        found = _np_head(doc, found.i + 1) or found       # "a couple of buckets": the buckets
    return found


def _kinds(noun) -> set[str]:
    w = noun.text.lower() if noun is not None else ""
    kinds = set()
    if w in L.PEOPLE:
        kinds |= {"animate", "person"}
    if w in L.PETS:
        kinds.add("pet")
    if w in L.ANIMALS or w in L.BIRDS:
        kinds |= {"animate", "animal"}
    if w in L.BIRDS:
        kinds.add("bird")
    if w in L.VEHICLES:
        kinds.add("vehicle")
    return kinds


def _pobj(doc, i: int, n: int = 1):
    """The object of the preposition that ends at i + n - 1."""
    for c in doc[i + n - 1].children:
        if c.dep_ == "pobj":
            return c
    for k in range(i + n, min(i + n + 5, len(doc))):
        if doc[k].pos_ in NOUN:
            return _np_head(doc, k - 1) if k > 0 and doc[k - 1].pos_ in ("DET", "ADJ") else doc[k]
    return None


def _flippable(doc, i: int, n: int, vertical: bool) -> bool:
    """A relation worth flipping: it has an object, and a vertical flip makes physical sense (a cat
    on a blanket can be under it; a bus on the side of the road cannot be under it; nobody sits
    under a bench)."""
    obj = _pobj(doc, i, n)
    if obj is None:
        return False
    if not vertical:
        return True
    w = L.singular(obj.text.lower())
    if w in L.SHAPE_NOUN:
        return True
    down = doc[i].text.lower() in ("on", "over", "above", "atop")
    if down and "person" in _kinds(_subject(doc, i)):
        return False
    return w in (L.COVERS if down else L.SURFACES)


def _in_color_list(doc, words: list[str], i: int) -> bool:
    """"red white and blue", "black and white": a colour scheme, not one object's colour."""
    near = [k for k in (i - 2, i - 1, i + 1, i + 2) if 0 <= k < len(words)]
    return any(words[k] in L.COLOR for k in near) and any(words[k] in ("and", ",", "&") for k in near)


def _options(doc) -> list[Option]:
    words = [t.text.lower() for t in doc]
    present = set(words)
    opts: list[Option] = []
    covered: set[int] = set()
    for phrase, repl, vertical in PHRASES:
        n = len(phrase)
        for i in range(len(words) - n + 1):
            if tuple(words[i:i + n]) == phrase:
                covered.update(range(i, i + n))
                if _flippable(doc, i, n, vertical):
                    opts.append(Option("position", i, i + n, [repl]))
    for i, t in enumerate(doc):
        w = words[i]
        if i in covered or not t.text.isalpha():
            continue
        opt = _word_option(doc, words, present, i)
        if opt is not None and opt.choices:
            opts.append(opt)
        elif w in L.NUMBERS and i + 1 < len(doc):
            opts.extend(_number_options(doc, words, i))
        elif w in L.ARTICLES:
            opts.extend(_article_options(doc, words, i))
    return opts + _swap_options(doc, words, opts)


def _word_option(doc, words: list[str], present: set[str], i: int) -> Option | None:
    """The one-word edit a person would accept at i, if there is one."""
    t, w = doc[i], words[i]
    fresh = lambda xs: [x for x in xs if x not in present]           # noqa: E731 - no "white white"
    if t.pos_ in ("ADJ", "NOUN", "VERB") and w in L.COLOR and t.pos_ != "VERB":
        head = _np_head(doc, i) if t.pos_ == "ADJ" or t.dep_ in ("amod", "compound") else None
        if head is None or _in_color_list(doc, words, i):
            return None
        if head.text.lower() in L.NON_COUNT:
            return None                      # green grass, blue sky: not an object's colour to change
        palette = L.ANIMAL_COLORS if head.text.lower() in L.ANIMALS else L.RULES_COLORS
        return Option("color", i, i + 1, fresh(palette))
    if w in L.MATERIAL and t.pos_ in ("ADJ", "NOUN"):
        head = _np_head(doc, i)
        mats = L.MATERIAL_FOR.get(_base(head.text.lower()), []) if head is not None else []
        return Option("material", i, i + 1, fresh(mats))
    if w in L.SIZE and t.pos_ == "ADJ":
        head = _np_head(doc, i)
        if head is None or head.text.lower() in L.ABSTRACT:
            return None
        return Option("size", i, i + 1, fresh(L.SIZE[w]))
    if w in L.SHAPE:
        if t.pos_ in NOUN:
            if _fixed(doc, i) or (i + 1 < len(doc) and words[i + 1] == "of"):
                return None
            return Option("shape", i, i + 1, fresh(L.SHAPE_NOUN.get(w, [])))
        return Option("shape", i, i + 1, fresh(L.SHAPE_ADJ.get(w, [])))
    if w in L.EMOTION:
        who = _np_head(doc, i) if t.pos_ == "ADJ" else _subject(doc, i)
        return Option("emotion", i, i + 1, fresh(L.EMOTION[w])) if "person" in _kinds(who) else None
    if w in L.VERB_CHANGES and t.pos_ in ("VERB", "AUX", "NOUN", "ADJ") and t.dep_ != "amod":
        if any(c.dep_ in ("dobj", "iobj") for c in t.children):
            return None                      # "walking two dogs": the new verb would need the object too
        kinds = _kinds(_subject(doc, i))
        pairs = [(x, typ) for x, typ, need in L.VERB_CHANGES[w] if need in kinds]
        if not pairs:
            return None
        nxt = words[i + 1] if i + 1 < len(doc) else ""
        if w == "sitting" and nxt == "at":
            pairs = [p for p in pairs if p[0] == "standing"]          # not "lying at a desk"
        if nxt in L.PATH_PREPOSITIONS:
            pairs = [p for p in pairs if p[0] in L.MOTION]             # not "standing through the water"
        if not pairs:
            return None
        typ = pairs[0][1]
        return Option(typ, i, i + 1, fresh([x for x, ty in pairs if ty == typ]))
    if w in L.RULES_CAUSAL and t.pos_ == "VERB":
        if any(c.dep_ == "prep" and c.text.lower() in ("into", "to", "toward", "towards", "onto", "through")
               for c in t.children):
            return None                      # "kicks the ball into the goal": the goal is the outcome
        return Option("causal", i, i + 1, fresh(L.RULES_CAUSAL[w]))
    if w in L.RULES_STATE_ADJ and t.pos_ in ("ADJ", "VERB") and (t.pos_ == "ADJ" or t.dep_ == "amod"):
        return Option("state", i, i + 1, fresh(L.RULES_STATE_ADJ[w])) if _np_head(doc, i) is not None else None
    if (w in L.AGE_ADJ or w in L.OBJECT_AGE_ADJ) and t.pos_ == "ADJ":
        head = _np_head(doc, i)
        if head is None:
            return None
        h = head.text.lower()
        if h in ("man", "woman", "men", "women", "person", "people", "lady", "ladies", "couple"):
            return Option("state", i, i + 1, fresh(L.AGE_ADJ.get(w, [])))
        return Option("state", i, i + 1, fresh(L.OBJECT_AGE_ADJ.get(w, []))) if not _kinds(head) else None
    if w in L.RULES_POSITION and t.pos_ in ("ADP", "ADV", "SCONJ"):
        flip, vertical = L.RULES_POSITION[w]
        return Option("position", i, i + 1, [flip]) if _flippable(doc, i, 1, vertical) else None
    if w in L.RULES_CATEGORY and t.pos_ in NOUN:
        if _fixed(doc, i) or (i + 1 < len(doc) and words[i + 1] == "of"):
            return None
        if i >= 2 and words[i - 1] == "of" and words[i - 2] not in ("group", "herd", "flock", "pair", "couple",
                                                                      "crowd", "team", "bunch"):
            return None                      # "a slice of pizza" -> "a slice of burger"
        return Option("category", i, i + 1, fresh(L.RULES_CATEGORY[w]), _gender_flips(doc, words, i))
    return None


_GENDER = {"man": "male", "boy": "male", "woman": "female", "girl": "female"}
_PRONOUN = {"his": "her", "he": "she", "him": "her", "himself": "herself",
            "she": "he", "hers": "his", "herself": "himself"}


def _gender_flips(doc, words: list[str], i: int) -> dict[int, str] | None:
    """A man who becomes a woman takes his pronouns along ("with his phone" -> "with her phone")."""
    if words[i] not in _GENDER:
        return None
    out = {}
    for k in range(i + 1, len(words)):
        w = words[k]
        if w in _PRONOUN:
            out[k] = _PRONOUN[w]
        elif w == "her":                    # possessive before a noun phrase, else object
            out[k] = "his" if k + 1 < len(doc) and doc[k + 1].pos_ in ("NOUN", "ADJ", "PROPN") else "him"
    return out or None


def _swap_options(doc, words: list[str], opts: list[Option]) -> list[Option]:
    """Attribute swaps between two objects ("a red cube and a blue ball" -> "a blue cube and a
    red ball"): the words stay, their binding changes. Typed `swap` by the validator. Only where
    each object can take the other's attribute (no red cat), and never between a person's size
    and a thing's."""
    out = []
    single = [o for o in opts if o.stop == o.start + 1 and o.type in ("color", "material", "size", "shape")]
    for x in range(len(single)):
        for y in range(x + 1, len(single)):
            o, p = single[x], single[y]
            a, b = words[o.start], words[p.start]
            if o.type != p.type or a == b:
                continue
            ha, hb = _np_head(doc, o.start), _np_head(doc, p.start)
            if o.type == "shape" and doc[o.start].pos_ in NOUN:
                ha, hb = doc[o.start], doc[p.start]
            if ha is None or hb is None or ha.i == hb.i:
                continue                      # "black and white" on one object
            if not _takes(o.type, ha.text.lower(), b) or not _takes(o.type, hb.text.lower(), a):
                continue
            out.append(Option("swap", o.start, o.stop, [b], {p.start: a}))
    return out


def _takes(typ: str, noun: str, attr: str) -> bool:
    if typ == "color":
        return attr in (L.ANIMAL_COLORS if noun in L.ANIMALS else L.RULES_COLORS) or noun in L.SHAPE_NOUN \
            or L.singular(noun) in L.SHAPE_NOUN
    if typ == "material":
        return attr in L.MATERIAL_FOR.get(_base(noun), [])
    if typ == "size":
        return noun not in L.PEOPLE and noun not in L.ABSTRACT
    return True


def _head_noun(doc, i: int) -> int | None:
    for j in range(i + 1, min(i + 4, len(doc))):
        if doc[j].pos_ in NOUN and doc[j].tag_ in ("NN", "NNS") and not doc[j].text.lower().endswith("ing"):
            nxt = doc[j + 1] if j + 1 < len(doc) else None
            if nxt is not None and (nxt.pos_ == "NOUN" or doc[j].text.lower() in L.FIXED_MODIFIERS) \
                    and nxt.text.isalpha() and not nxt.text.lower().endswith("ing"):
                continue       # compound: the head comes later
            return j
        if doc[j].pos_ not in ("ADJ", "NOUN", "PROPN"):
            return None
    return None


def _countable(doc, words: list[str], j: int) -> bool:
    """A noun that can be counted here: an object or the subject, not a place, an amount or stuff."""
    w = words[j]
    if w in L.ABSTRACT or L.singular(w) in L.ABSTRACT:
        return False
    if w in L.COLLECTIVES or w in L.NON_COUNT or L.singular(w) in L.COLLECTIVES or L.singular(w) in L.NON_COUNT:
        return False
    if j + 1 < len(doc) and words[j + 1] == "of":
        return False                         # "a plate of food": the container is not the point
    t = doc[j]
    if t.dep_ == "pobj" and t.head.text.lower() not in LOCATIVE_OK:
        return False                         # "in three bathrooms", "on two sidewalks"
    if t.dep_ == "dobj" and t.head.text.lower() not in HOLDING_VERBS:
        return False                         # "swinging three bats", "riding three waves"
    return True


def _is_subject(doc, j: int) -> bool:
    return not any(doc[k].pos_ in NOUN for k in range(j))


def _pronoun_agreement(doc, words: list[str], j: int, plural: bool) -> dict[int, str] | None:
    """Possessives that refer to the subject follow its number; None when that cannot be made right."""
    if not _is_subject(doc, j):
        return {}
    out: dict[int, str] = {}
    person = words[j] in L.PEOPLE or L.singular(words[j]) in L.PEOPLE
    for k in range(j + 1, len(words)):
        w = words[k]
        if plural and w in ("it", "itself", "he", "she", "him"):
            return None
        if plural and w == "its":
            out[k] = "their"
        elif plural and w in ("his", "her") and person:
            out[k] = "their"
        elif not plural and w in ("their", "they", "them", "themselves"):
            if person or w != "their":
                return None
            out[k] = "its"
    return out


def _verb_agreement(doc, words, j: int, plural: bool) -> dict[int, str] | None:
    """Agreement of the verb when noun j is the subject (the sentence's first noun).

    Returns the change to make, {} when none is needed, None when it cannot be made right
    without a full parse (the option is then dropped rather than written ungrammatically).
    """
    if not _is_subject(doc, j):
        return {}
    flip = {"is": "are", "are": "is", "was": "were", "were": "was", "has": "have", "have": "has"}
    for k in range(j + 1, len(doc)):
        if words[k] in flip:
            want_plural = words[k] in ("are", "were", "have")
            return {} if want_plural == plural else {k: flip[words[k]]}
        if doc[k].tag_ in ("VBZ", "VBP"):
            return None
    return {}


def _agreement(doc, words, j: int, plural: bool) -> dict[int, str] | None:
    verb = _verb_agreement(doc, words, j, plural)
    pron = _pronoun_agreement(doc, words, j, plural)
    return None if verb is None or pron is None else {**verb, **pron}


def _number_options(doc, words, i: int) -> list[Option]:
    j = _head_noun(doc, i)
    if j is None or not _countable(doc, words, j):
        return []
    n = L.NUMBERS.index(words[i]) + 1
    typ = "parts" if words[j] in L.PARTS else "quantity"
    out = []
    for m in {max(1, n - 1), n + 1} - {n}:
        extra: dict[int, str] = {}
        agree = _agreement(doc, words, j, plural=m > 1)
        if agree is None:
            continue
        extra.update(agree)
        if m == 1:
            extra[j] = L.singular(words[j])
        out.append(Option(typ, i, i + 1, [L.NUMBERS[m - 1] if m <= 10 else str(m)], extra or None))
    return out


def _article_options(doc, words, i: int) -> list[Option]:
    j = _head_noun(doc, i)
    if j is None or doc[j].tag_ != "NN" or not _countable(doc, words, j):
        return []
    agree = _agreement(doc, words, j, plural=True)
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
        self.nlp = load_nlp(parser=True)

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
