"""The `rules` backend: one-edit rewrites from a spaCy dependency parse and the lexicons.

No model, no GPU: the embedded default. For each caption it lists every edit the lexicons
allow (attribute swaps, category swaps, counts of the head noun with agreement through the
clause, relations the scene allows, acts on the same object), then picks K of them spread over
as many edit types as possible, seeded per anchor. Every candidate must pass the validator
(which also judges plausibility), so what is written is what the stage keeps.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from . import lexicon as L
from .backends import Backend, Generation
from .nlp import load_nlp
from .validate import Validator

PHRASES: list[tuple[tuple[str, ...], list[str], bool]] = [     # (words, new relations, vertical)
    (("on", "top", "of"), ["underneath"], True),
    (("in", "front", "of"), ["behind"], False),     # not "next to": one photo often shows both (blind round 3)
    (("to", "the", "left", "of"), ["to the right of"], False),
    (("to", "the", "right", "of"), ["to the left of"], False),
]
NOUN = ("NOUN", "PROPN")
LOCATIVE_OK = {"with"}          # a counted noun may sit after these; after "in", "on", "at" it is a place
HOLDING_VERBS = {"holding", "holds", "carrying", "carries", "has", "have", "shows", "showing"}   # not "eating two bananas"


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
            or (after is not None and (after.pos_ in NOUN or (after.pos_ == "ADJ" and not after.text.endswith("ed")))))


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
    if noun is not None and noun.i > 0 and noun.doc[noun.i - 1].text.lower() in ("teddy", "stuffed", "toy"):
        return kinds                         # a teddy bear neither lies nor walks
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
    if w in L.ROAD_VEHICLES:
        kinds.add("road")
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


def words_after(doc, i: int, n: int) -> str:
    return " ".join(t.text.lower() for t in doc[i:i + n])


def _flippable(doc, i: int, n: int, vertical: bool) -> bool:
    """A relation worth flipping: it has an object, and a vertical flip makes physical sense (a cat
    on a blanket can be under it; a bus on the side of the road cannot be under it; nobody sits
    under a bench)."""
    obj = _pobj(doc, i, n)
    if obj is None or words_after(doc, i + n, 2) in ("each other", "one another") or obj.pos_ == "PRON":
        return False                         # "smoke behind it": what "it" is, the parse does not say
    located = doc[i].head if doc[i].head.pos_ in NOUN else _subject(doc, i)
    if located is not None and located.text.lower() in L.NON_COUNT | L.BACKGROUNDS:
        return False                         # the sky is behind everything, it cannot be put in front
    w = L.singular(obj.text.lower())
    if not vertical:
        return not (words_after(doc, i, n) == "in front of" and w in L.FACED)   # not behind a toilet one uses
    if w in L.SHAPE_NOUN:
        return True
    if i > 0 and doc[i - 1].text.lower() in L.CLIMB:
        return False                         # "climbing on top of a shelf" has no "climbing underneath"
    down = doc[i].text.lower() in ("on", "over", "above", "atop")
    subject = _subject(doc, i)
    if down and ("person" in _kinds(subject) or (i > 0 and doc[i - 1].text.lower() == "perched")):
        return False                         # nobody sits under a bench; a bird perches on top
    if down and "animate" not in _kinds(subject) and L.ROOM_UNDER.get(w, 0) < 4:
        return False                         # a vase of flowers goes on a table, not under it
    if down and subject is not None and L.SIZE_CLASS.get(L.singular(subject.text.lower()), 3) >= L.ROOM_UNDER.get(w, 9):
        return False                         # a dog on a couch does not fit under it; a kitten might
    return w in (L.COVERS if down else L.SURFACES)


def _visible(doc, i: int, n: int, relations: list[str]) -> list[str]:
    """Relations that keep the thing in the photo: nothing stands behind a wall or a building
    (it would be hidden), nor in front of or behind the water or a field (they have no front)."""
    obj = _pobj(doc, i, n)
    o = obj.text.lower() if obj is not None else ""
    if o in L.OPAQUE:
        relations = [r for r in relations if r != "behind"]
    if o in L.NON_COUNT:
        relations = [r for r in relations if r not in ("behind", "in front of")]
    if o in L.PLACES or L.singular(o) in L.PLACES:
        relations = [r for r in relations if r not in ("behind", "in front of", "next to", "far from")]
    if L.SIZE_CLASS.get(o, 0) < 2:           # behind a microphone, a cup: hidden, or another act
        relations = [r for r in relations if r != "behind"]
    return relations


def _in_color_list(doc, words: list[str], i: int) -> bool:
    """"red white and blue", "black and white": a colour scheme, not one object's colour."""
    near = [k for k in (i - 2, i - 1, i + 1, i + 2) if 0 <= k < len(words)]
    return any(words[k] in L.COLOR for k in near) and any(words[k] in ("and", ",", "&") for k in near)


def _two_tone(doc, words: list[str], i: int):
    """The noun a two-colour scheme at i paints ("a red and white bus": "bus"), when the scheme is
    exactly two colours joined by "and" right before it; one of the two can change and the thing
    stays two-toned. None for a longer list, a style ("a black and white photo") or a pattern."""
    j = i + 2 if words[i + 1:i + 2] == ["and"] else i - 2 if i >= 2 and words[i - 1] == "and" else None
    if j is None or not (0 <= j < len(words)) or words[j] not in L.COLOR:
        return None
    first, last = min(i, j), max(i, j)
    if (first > 0 and (words[first - 1] in L.COLOR or words[first - 1] in L.COLOR_SHADES or words[first - 1] in (",", "&"))) \
            or last + 1 >= len(doc) or doc[last + 1].pos_ not in NOUN:
        return None                          # "red, white and blue"; "navy and white"; "black and white."
    head = _np_head(doc, last)
    if head is None or head.text.lower() in L.TWO_TONE_STYLES or set(words) & L.PATTERNS:
        return None                          # a black and white photo is a style; a striped shirt keeps its stripes
    return head


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
                    opts.append(Option("position", i, i + n, _visible(doc, i, n, [r for r in repl
                                                                                 if r not in " ".join(words)])))
    quoted = {k for k in range(len(words)) if sum(x in ('"', "“", "”") for x in words[:k]) % 2}
    for i, t in enumerate(doc):
        w = words[i]
        if i in covered or i in quoted or not t.text.isalpha():
            continue                         # a quoted name ("Ball In The Bog") is not the scene
        if w in L.RULES_ACTION and t.pos_ == "VERB":
            opts.extend(_action_options(doc, words, i))
            continue
        opt = _word_option(doc, words, present, i)
        if isinstance(opt, list):
            opts.extend(o for o in opt if o.choices)
        elif opt is not None and opt.choices:
            opts.append(opt)
        elif w in L.NUMBERS and i + 1 < len(doc):
            opts.extend(_number_options(doc, words, i))
        elif w in L.ARTICLES:                  # not "the": "the dog is" -> "two dogs are" reads as another dog
            opts.extend(_article_options(doc, words, i))
    return opts + _swap_options(doc, words, opts)


def _word_option(doc, words: list[str], present: set[str], i: int) -> Option | list[Option] | None:
    """The one-word edit a person would accept at i, if there is one."""
    t, w = doc[i], words[i]
    fresh = lambda xs: [x for x in xs if x not in present and L.pluralize(x) not in present   # noqa: E731
                        and L.singular(x) not in present]        # no "white white", no "two dogs and a dog"
    if t.pos_ in ("ADJ", "NOUN", "VERB") and w in L.COLOR and t.pos_ != "VERB":
        if "black and white" in " ".join(words) and set(words) & (L.TWO_TONE_STYLES | {"color", "colour"}):
            return None                      # a black and white photo with one colour kept: that colour is the point
        head = _np_head(doc, i) if t.pos_ == "ADJ" or t.dep_ in ("amod", "compound", "conj") else None
        if _in_color_list(doc, words, i):
            head = _two_tone(doc, words, i)
        if head is None or (i > 0 and words[i - 1] in L.COLOR_SHADES):
            return None                      # "mustard yellow" is one colour name
        if head.text.lower() in L.NON_COUNT | {"sign", "signs"}:
            return None                      # green grass, blue sky, a red no-parking sign: not a colour to change
        h = head.text.lower()
        if not ({h, L.singular(h)} & (L.ANY_COLOR | set(L.ANIMAL_PALETTE) | L.ANIMALS | set(L.SHAPE_NOUN))) \
                or head.i <= i:
            return None                      # a street sign, a banana: a thing of its own colour
        if any(c.dep_ == "conj" and not any(d.dep_ in ("det", "poss", "nummod") for d in c.children)
               for c in head.children):
            return None                      # "white cabinets and appliances": purple appliances (not "and a sink")
        palette = L.ANIMAL_COLORS if h in L.ANIMALS else L.RULES_COLORS
        if L.singular(h) in ("toilet", "sink", "bathtub", "tub", "urinal"):
            palette = ["white", "black", "gray"]                   # no orange toilet
        if h in L.ANIMALS and w in ("white", "gray", "grey"):
            palette = [c for c in palette if c not in ("white", "gray", "grey")]    # a white horse is gray
        for given in (h, *words[i + 1:head.i]):      # a giraffe's, a stop sign's, a polar bear's own colour
            palette = [c for c in palette if c in L.ANIMAL_PALETTE.get(given, palette)
                       and c in L.USUAL_COLORS.get(given, palette)]
        return Option("color", i, i + 1, fresh(palette))
    if w in L.MATERIAL and t.pos_ in ("ADJ", "NOUN"):
        if i > 0 and words[i - 1] in L.MATERIAL_PREFIXES:
            return None                      # "wrought iron" is not "wrought wooden"
        head = _np_head(doc, i)
        mats = L.MATERIAL_FOR.get(_base(head.text.lower()), []) if head is not None else []
        return Option("material", i, i + 1, fresh(mats))
    if w in L.SIZE and t.pos_ == "ADJ":
        head = _np_head(doc, i)
        if head is None or head.text.lower() in L.ABSTRACT | L.FIXED_SIZE | L.INHERENT_SIZE \
                or (i > 0 and words[i - 1] in ("extra", "super")):
            return None                      # an elephant's trunk is long; a kitten is small; "extra long" is a kind
        sizes = fresh(L.RULES_SIZE.get(w, []))
        if any((words[k] in L.SIZE and words[k] != w) or words[k] in L.SIZE_HINTS | {"sized", "oversized"}
               for k in range(max(0, i - 3), min(len(words), i + 5))):
            return None                      # "large and small giraffes": the sizes are a contrast
        if i > 0 and words[i - 1] == "other":
            return None                      # "giraffes and other large animals": the size says giraffes are large
        if sum(L.singular(x) == L.singular(head.text.lower()) for x in words) > 1:
            return None                      # "a very large elephant next to a baby elephant"
        if "person" in _kinds(head):
            sizes = [x for x in sizes if x in ("tall", "short")]      # no "a large girl", no "a big child"
        return Option("size", i, i + 1, sizes)
    if w in L.SHAPE:
        if t.pos_ in NOUN:
            if _fixed(doc, i) or (i + 1 < len(doc) and words[i + 1] == "of"):
                return None
            return Option("shape", i, i + 1, fresh(L.SHAPE_NOUN.get(w, [])))
        head = _np_head(doc, i)
        if t.pos_ != "ADJ" or head is None or head.i <= i or head.text.lower() in L.PLACES or w in ("flat", "curved"):
            return None                      # "a mud flat": no round mud; a flat screen is a kind of screen
        shapes = [x for x in fresh(L.SHAPE_ADJ.get(w, [])) if x not in ("flat", "curved", "pointed")
                  and {w, x} != {"square", "rectangular"}]          # a square is rectangular
        return Option("shape", i, i + 1, shapes)
    if w in L.EMOTION:
        who = _np_head(doc, i) if t.pos_ == "ADJ" else _subject(doc, i)
        moods = [x for x in fresh(L.EMOTION[w]) if x.endswith("ing") == w.endswith("ing")]    # "smiling while" stays a verb
        return Option("emotion", i, i + 1, moods) if "person" in _kinds(who) else None
    if w in L.VERB_CHANGES and t.pos_ in ("VERB", "AUX", "NOUN", "ADJ") and t.dep_ != "amod":
        if any(c.dep_ in ("dobj", "iobj") for c in t.children):
            return None                      # "walking two dogs": the new verb would need the object too
        if i > 0 and doc[i - 1].pos_ == "VERB":
            return None                      # "sit parked" cannot become "sit driving"
        if "air" in words[i + 1:i + 4] or words[i + 1:i + 2] == ["up"]:
            return None                      # "jumping in the air" has no "standing in the air"; "standing up"
        subj = _subject(doc, i)
        kinds = _kinds(subj)
        pairs = [(x, typ) for x, typ, need in L.VERB_CHANGES[w] if need in kinds
                 and not (x == "lying" and "bird" in kinds)]         # a bird perches, it does not lie
        if "bird" in kinds:                  # a bird sitting or standing on a perch looks the same
            pairs = [p for p in pairs if p[1] != "state"]
        place = _place_of(doc, i)
        if place is not None and place in L.SEATS:
            pairs = [p for p in pairs if p[0] not in ("standing", "stands")]    # nobody stands in a chair
        if place is not None and (place in L.RIDDEN or place in ("skis", "ski")) and place not in L.SEATS:
            pairs = [p for p in pairs if p[0] not in ("sitting", "sits", "lying", "lies")]   # nor sits on skis
        if any(p[0] in ("lying", "lies") for p in pairs):
            plural = subj is not None and subj.tag_ == "NNS"
            if (place is None and ("person" in kinds or (plural and "animal" not in kinds))) \
                    or (place is not None and place not in L.LIE_ON):
                pairs = [p for p in pairs if p[0] not in ("lying", "lies")]      # nobody lies on a toilet
        if not pairs:
            return None
        nxt = next((x for x in words[i + 1:i + 3] if x not in ("right", "slowly", "quickly", "straight")), "")
        if w == "sitting" and nxt == "at":
            pairs = [p for p in pairs if p[0] == "standing"]          # not "lying at a desk"
        if nxt in (L.PATH_PREPOSITIONS | {"away"}) - {"around"}:
            pairs = [p for p in pairs if p[0] in L.MOTION]             # not "standing through the water"
        if nxt in ("over", "above") or (nxt == "to" and w in L.MOTION):
            return None                      # not "sitting over a toilet"; "jumping to catch" has no "standing to catch"
        if {"skis", "ski", "snowboard", "skates"} & set(words):
            pairs = [p for p in pairs if p[0] not in ("running", "runs")]       # nobody runs on skis
        if w in ("standing", "stands") and {"playing", "plays", "play", "swinging", "swings", "throwing", "throws",
                                             "hitting", "hits", "serving", "kicking", "podium"} & set(words):
            return None                      # "standing on a field playing disc golf" is not done sitting
        if w == "parked" and ({"side", "lot", "each", "row", "rows"} & set(words[i + 1:]) or
                              not L.ROADS & set(words[i + 1:]) or subj is not None and subj.tag_ == "NNS"):
            return None                      # a bus moving on the side of the street; a lot of trains all moving
        if {"fours", "grazing", "grazes", "graze", "eating", "eats", "piss", "peeing", "urinating", "poised"} & set(words):
            pairs = [p for p in pairs if p[0] not in ("sitting", "sits", "sit", "lying", "lies", "lie")]
        if w in ("standing", "stands", "stand") and (place not in L.WALKABLE | {None} or nxt in (
                "under", "beneath", "underneath", "below", "inside", "still") or L.STILL_ACTS & set(words)):
            pairs = [p for p in pairs if p[1] != "movement"]    # a giraffe standing in a field can as well walk
        if any(words[k] in L.VERB_CHANGES for k in (i - 2, i + 2) if 0 <= k < len(words) and k != i) \
                and "and" in words[max(0, i - 1):i + 2]:
            return None                      # "standing and sitting next to each other": both are there
        if not pairs:                                            # there; not one standing on a surfboard
            return None
        by_type = {ty: fresh([x for x, t2 in pairs if t2 == ty]) for _, ty in pairs}
        return [Option(ty, i, i + 1, xs) for ty, xs in by_type.items()]
    if w in L.RULES_STATE_ADJ and t.pos_ in ("ADJ", "VERB") and (t.pos_ == "ADJ" or t.dep_ == "amod"):
        noun = _predicated(doc, i) if t.dep_ == "acomp" else _np_head(doc, i)
        if noun is None or (i > 0 and doc[i - 1].dep_ == "advmod" and doc[i - 1].head.i == i):
            return None                      # "over ripe": the adverb would be left describing the new state
        if w in L.CLUTTER and (set(words) - {w}) & L.CLUTTER:
            return None                      # "a crowded kitchen that is cluttered and messy": they go together
        states = fresh(L.RULES_STATE_ADJ[w])
        head = noun.text.lower()
        if w in ("busy", "crowded", "full") and set(words) & {"many", "lots", "several", "crowd", "crowds", "packed"}:
            return None                      # "many trains in a busy station": not an empty one
        if w == "empty" and head not in L.CONTAINERS:
            if head not in L.BUSY_PLACES:
                return None                  # an empty bathroom is not a busy one
            states = ["busy"]                # an empty street is a busy one, not a full one
        if w in L.WEATHER and L.singular(head) not in L.WEATHER_HEADS and head not in L.WEATHER_HEADS:
            return None                      # "a rainy lens" has no sunny one
        if w in ("dark", "bright") and head not in L.LIT_PLACES:
            return None                      # a dark room can be bright; bright lights cannot be dark
        if w in ("open", "closed") and L.singular(head) not in L.OPENABLE:
            return None                      # "an open area", "an open field" cannot be closed
        if w in ("open", "cluttered", "messy", "crowded", "busy", "full") and set(words[i + 2:]) & {
                "with", "including", "full", "filled", "showing", "containing", "inside", "of"}:
            return None                      # a closed fridge shows no bottles; a tidy room is not filled with things
        if (w, words[i + 1] if i + 1 < len(words) else "") in L.FIXED_STATE:
            return None                      # a wet suit is a garment, not a wet one
        return Option("state", i, i + 1, states)
    if (w in L.AGE_ADJ or w in L.OBJECT_AGE_ADJ) and t.pos_ == "ADJ":
        head = _np_head(doc, i)
        if head is None:
            return None
        h = head.text.lower()
        if h in ("man", "woman", "men", "women", "person", "people", "lady", "ladies", "couple"):
            return None                      # a person's age is not a state (and not a pose)
        if _kinds(head) or h in L.ADULT_ONLY or h in L.CHILD_NOUNS:
            return None                      # "a new bride" is a newlywed, not a new thing
        if {"pile", "piles", "junk", "abandoned", "discarded", "broken", "rusty", "rusted"} & set(words):
            return None                      # a pile of old fridges is junk: no pile of new ones
        return Option("state", i, i + 1, fresh(L.OBJECT_AGE_ADJ.get(w, [])))
    if w in L.RULES_SIDES and i > 0 and words[i - 1] in ("the", "his", "her", "its", "their") \
            and (w in ("left", "right") or words[i + 1:i + 2] == ["of"]) and L.RULES_SIDES[w] not in present \
            and not set(words[i + 1:i + 5]) & (L.ONE_PER_BODY | {"face", "body", "head"}) \
            and not any("animate" in _kinds(doc[k]) for k in range(i + 1, min(i + 5, len(doc)))) \
            and not set(words[i + 1:i + 5]) & L.NO_OTHER_END and words[i + 1:i + 3] not in (["of", "it"], ["of", "them"]):
        return Option("position", i, i + 1, [L.RULES_SIDES[w]])     # "the top of the hill" -> "the bottom of"
    if w in L.RULES_POSITION and t.pos_ in ("ADP", "ADV", "SCONJ"):
        choices, vertical = L.RULES_POSITION[w]
        choices = list(choices) if _flippable(doc, i, 1, vertical) else []
        obj = _pobj(doc, i)
        if i > 0 and ((w == "on" and words[i - 1] in L.FEEDING | {"hanging", "hangs", "hung", "growing", "grows"})
                      or (w == "in" and words[i - 1] in L.RIDE_VERBS | {"looking", "looks", "peering", "reaching"})):
            return None                      # "feeding on leaves", "ride in a train": not a place to move
        if w == "into" and (i == 0 or words[i - 1] not in L.MOTION):
            return None                      # "cuts into a cake" has no "out of"
        if w == "outside" and (obj is None or L.singular(obj.text.lower()) not in L.ROOM_INSIDE
                               or set(words) & L.OUTDOOR):
            return None                      # "a sign outside of a closed road" has no inside
        if w == "in" and obj is not None and L.ROOM_INSIDE.get(obj.text.lower(), 9) <= 3 \
                and (i == 0 or words[i - 1] not in L.MOTION) and "animate" in _kinds(_subject(doc, i)):
            choices.append("next to")        # a cat in a box can as well sit next to it
        if w in ("on", "under") and obj is not None and obj.text.lower() in L.SURFACES | L.COVERS \
                and "animate" in _kinds(_subject(doc, i)) and obj.text.lower() not in L.PLACES \
                and not (set(words[max(0, i - 3):i]) & L.SIT_VERBS
                         and L.singular(obj.text.lower()) in L.SEATS | L.LIE_ON):
            choices.append("next to")        # a cat on a couch can as well be next to it; one sits on a bench
        choices = [c for c in _visible(doc, i, 1, choices) if f" {c} " not in f" {' '.join(words)} "]
        return Option("position", i, i + 1, choices) if choices else None    # no "next to a bed next to a laptop"
    if w in L.RULES_CATEGORY and t.pos_ in NOUN:
        if _fixed(doc, i) or (i + 1 < len(doc) and words[i + 1] == "of" and (L.singular(w) not in L.CONTAINERS
                                                                    or L.singular(w) == "bottle")):
            return None                      # "a herd of": not a thing; "plates of food" are plates
        of = t.head if t.dep_ == "pobj" and t.head.text.lower() == "of" else None
        framed = of is not None and of.head.text.lower() == "up" and of.head.i > 0 \
            and doc[of.head.i - 1].text.lower() == "close"          # "a close up of a dog"
        if of is not None and not framed and of.head.text.lower() not in L.OF_ANY_KIND | L.COLLECTIVES | L.FRAMING \
                | L.PICTURES | L.CONTAINERS:
            return None                      # "a slice of pizza", "a branch of a tree": the part belongs to it
        if t.dep_ == "pobj" and not any(c.dep_ in ("det", "poss", "nummod") for c in t.children) and t.tag_ == "NN" \
                and of is None:
            return None                      # "in bed", "at school": a fixed phrase, not an object
        if sum(L.singular(x) == L.singular(w) for x in words) > 1 or (w in L.SPORT_GEAR and present & L.SPORT_WORDS):
            return None                      # "another woman" names the same kind; a soccer game keeps its ball
        if t.dep_ == "dobj" and t.head.lemma_ == "wear" and L.singular(w) not in L.WORN:
            return None                      # "wearing a cat": a typo of hat, not a pet to swap
        if any(w in L.YOUNG_OF.get(x, ()) for x in words) or words[i + 1:i + 2] == ["off"]:
            return None                      # "a calf nursing a cow"; "with his shirt off"
        if (w == "ball" and words[max(0, i - 2):i] in (["into", "a"], ["in", "a"])) or \
                (t.dep_ == "pobj" and t.head.text.lower() == "for") or words[i + 1:i + 2] in (["'s"], ["'"], ["’s"]):
            return None                      # "curled into a ball" is a pose; "a spot for women", "a woman's bag" show no one
        if _compound_before(doc, i) or _named_by_user(words, i) or any(c.text.lower() in L.TIED_ADJ for c in t.children):
            return None                      # "a chili dog", "a skateboarder on a skateboard", "woolly sheep"
        choices = [c for c in fresh(L.RULES_CATEGORY[w]) if _fits_context(words, i, c)]
        if "in" in words[max(0, i - 3):i]:
            choices = [c for c in choices if c not in ("stool", "bench", "stools", "benches", "couch", "sofa",
                                                       "couches", "sofas")]   # no "in a stool", "in a couch"
        if w in L.SEATS and any(x in L.COLLECTIVES or (x != L.singular(x) and L.singular(x) in L.COUNTABLE)
                                or x in ("people", "men", "women", "children") for x in words[:i]):
            choices = [c for c in choices if c in L.SHAREABLE]     # "a group of people sitting on a stool"
        headline = all(x.pos_ in ("ADJ", "NOUN", "PROPN") for x in doc[:i])       # "Brown dog lying on a bed"
        listed = t.dep_ == "conj" and any(c.dep_ in ("det", "poss", "nummod") for c in t.head.children)
        if t.tag_ == "NN" and not headline and not listed and of is None \
                and not any(c.dep_ in ("det", "poss", "nummod") for c in t.children):
            choices = [c for c in choices if c in L.MASS_FOOD] if w in L.MASS_FOOD else []    # no "eating burger"
        if any(x in L.CHILD_NOUNS for k, x in enumerate(words) if k != i) or \
                any(words[k:k + 2] in (["her", "child"], ["his", "child"], ["her", "baby"], ["his", "baby"],
                                       ["her", "son"], ["her", "daughter"], ["his", "son"], ["his", "daughter"])
                    for k in range(len(words))):
            choices = [c for c in choices if c not in L.CHILD_NOUNS]    # "a boy and a child", "a girl and her child"
        if w in L.PERSON_SUBSTITUTES and any(c.dep_ == "amod" and c.text.lower() in L.AGE_WORDS for c in t.children):
            choices = choices[:1]            # "a little girl" -> "a little boy", not "a little woman"
        one = any(c.text.lower() in ("a", "an", "another", "one", "this", "that", "each") for c in t.children)
        plural = any(c.text.lower() in ("some", "many", "several", "these", "those", "all", "both", "few")
                     for c in t.children) or (t.tag_ == "NNS" or (of is not None and of.head.text.lower() in L.COUNT_COLLECTIVES) or any(c.dep_ == "nummod" and c.text.lower() in L.NUMBERS[1:]
                                                           for c in t.children)) and not one
        if plural or any(c.dep_ == "nummod" for c in t.children):
            choices = [c for c in choices if c not in L.MASS_ONLY]       # "three fish" are not "three meats"
        if L.singular(w) == w:                 # "sheep" says its number only through its words
            choices = [L.pluralize(c) if plural and L.singular(c) == c else c for c in choices]   # "a herd of goats"
            choices = list(dict.fromkeys(c for c in choices if plural or L.singular(c) == c))
        if t.tag_ == "NNS" and any(c.text.lower() in ("a", "an") for c in t.children):
            return None                      # "A women who is": the original's slip, not a plural to keep
        choices = [c for c in choices if not any(len(c) > len(x) + 2 >= 5 and c.endswith(x) for x in words)]
        if w not in _SEX:                    # no "bathtub" beside a "spa tub"
            return Option("category", i, i + 1, choices)
        sexed = {L.SEXED_ADJ[c.text.lower()] for c in t.children if c.text.lower() in L.SEXED_ADJ}
        choices = [c for c in choices if not sexed or _SEX.get(c) in sexed]     # no "a pretty boy"
        same = [c for c in choices if _SEX.get(c) == _SEX[w]]
        other = [c for c in choices if c not in same]     # only a change of sex moves the pronouns
        if w not in _GENDER and set(words) & (set(_PRONOUN) | {"her"}):
            other = []                       # "two women ..., one looking over her shoulder": the pronoun stays
        if set(words) & set(_PRONOUN) | {"her"} & set(words) and \
                any(k != i and (x in L.PERSON or x in L.PEOPLE) for k, x in enumerate(words)):
            other = []                       # "the man kisses the woman as she laughs": whose pronoun?
        if any((x in _PRONOUN or x == "her") and any(y in L.ANIMALS for y in words[i + 1:k])
               for k, x in enumerate(words) if k > i):
            other = []                       # "a man next to an elephant ... his trunk": whose?
        return [Option("category", i, i + 1, same), Option("category", i, i + 1, other, _gender_flips(doc, words, i))]
    return None


def _predicated(doc, i: int):
    """The noun a predicative adjective at i says something of ("a bathroom that is clean",
    "the tray is empty"), or None."""
    cop = doc[i].head
    subj = next((c for c in cop.children if c.dep_ in ("nsubj", "nsubjpass")), None)
    if subj is not None and subj.text.lower() in ("that", "which") and cop.dep_ == "relcl":
        subj = cop.head
    return subj if subj is not None and subj.pos_ in NOUN else None


def _place_of(doc, i: int) -> str | None:
    """Where the subject of the verb at i is ("sitting on a bench" -> "bench"), or None."""
    for c in doc[i].children:
        if c.dep_ == "prep" and c.text.lower() in ("on", "in", "at", "atop", "upon", "inside", "across"):
            o = next((x for x in c.children if x.dep_ == "pobj"), None)
            if o is not None:
                return L.singular(o.text.lower()) if o.text.lower() not in L.LIE_ON else o.text.lower()
    return None


def _compound_before(doc, i: int) -> bool:
    """A modifier before noun i that may make a fixed compound with it ("chili dog", "police horse"):
    anything but an article, a number, a possessive or a plain adjective of colour, size, age..."""
    k = i - 1
    while k >= 0 and doc[k].pos_ in ("ADJ", "NOUN", "PROPN", "VERB") and doc[k].dep_ in ("amod", "compound", "nmod"):
        w = doc[k].text.lower()
        if doc[k].tag_ in ("VBN", "VBG") and doc[k].dep_ == "amod" and w not in L.KIND_PARTICIPLES:
            k -= 1                           # "a decorated truck", "a parked car": any of them can be so
            continue
        if w in L.FIXED_MODIFIERS or (w not in L.PLAIN_ADJ and not (doc[k].pos_ == "ADJ" and w.endswith(
                ("ed", "ing", "ful", "ous", "ish", "y", "al", "ic", "ive", "less", "able", "ent", "ant")))):
            return True
        k -= 1
    return False


def _named_by_user(words: list[str], i: int) -> bool:
    """Another word of the caption names what noun i is used for ("a skateboarder on a skateboard",
    "a surfer carrying a surfboard"): the thing cannot change alone."""
    base = L.singular(words[i])
    users = L.USER_OF.get(base, set()) | L.USER_OF.get(words[i], set())
    return any(k != i and (x in users or (len(base) >= 4 and x != words[i] and x.startswith(base)
                                          and x not in (L.pluralize(base), base)))
               for k, x in enumerate(words))


def _fits_context(words: list[str], i: int, new: str) -> bool:
    """The rest of the caption stays true of the new thing: a herd is of grazing animals, candles
    stand on a cake, a jockey rides a horse (`lexicon.CONTEXT_FITS`)."""
    old = words[i]
    for k, x in enumerate(words):
        fits = L.CONTEXT_FITS.get(x)
        if k != i and fits and (old in fits or L.singular(old) in fits) and new not in fits \
                and L.singular(new) not in fits:
            return False
    return True


_GENDER = {"man": "male", "boy": "male", "woman": "female", "girl": "female"}
_SEX = {**_GENDER, "men": "male", "boys": "male", "guy": "male", "women": "female", "girls": "female", "lady": "female"}
_PRONOUN = {"his": "her", "he": "she", "him": "her", "himself": "herself",
            "she": "he", "hers": "his", "herself": "himself"}


OUTCOME_PREPOSITIONS = {"into", "to", "toward", "towards", "onto", "through", "over", "at"}


def _action_options(doc, words: list[str], i: int) -> list[Option]:
    """Another act on the same object by a subject that can do it (holding a pizza -> eating it,
    riding a bike -> pushing it), or the outcome of an attempt (catching a frisbee -> dropping it:
    an action too, by both blind judges of round 8). Not where a preposition names the act's target ("kicks the ball into the goal")."""
    t = doc[i]
    obj = next((c for c in t.children if c.dep_ == "dobj"), None)
    if obj is None or any(c.dep_ == "prep" and c.text.lower() in OUTCOME_PREPOSITIONS | {"with"} for c in t.children):
        return []                            # "holding it with her mouth": the new act would need another tool
    o = obj.text.lower()
    kind = L.OBJECT_KIND.get(o) or L.OBJECT_KIND.get(L.singular(o))
    who = _kinds(_subject(doc, i))
    by_type: dict[str, list[str]] = {}
    if any(c.dep_ == "prt" for c in t.children):
        return []                            # "holding up a kite" has no "flying up a kite"
    compound = any(c.dep_ == "compound" for c in obj.children)
    for new, typ, objs, subj in L.RULES_ACTION[words[i]]:
        if kind not in objs or subj not in who or new in words:
            continue
        if new.startswith("wear") and compound:
            continue                         # "holding wine glasses" are not worn
        if words[i].startswith("wear") and (any(c.dep_ == "conj" for c in obj.children) or L.SPORTS_ACTS & set(words)):
            continue                         # nobody snowboards holding a hat and a coat
        if new.startswith("carr") and {"wave", "waves", "ocean", "sea", "water", "surf"} & set(words):
            continue                         # a surfboard on a wave is ridden, not carried
        if new.startswith("swing") and {"ready", "about", "waiting", "waits"} & set(words):
            continue                         # "getting ready for the pitch" is before the swing
        if new.startswith("watch") and any(x.tag_ == "VBG" and x.i != i for x in doc):
            continue                         # "watching tennis and going to return the ball"
        by_type.setdefault(typ, []).append(new)
    return [Option(typ, i, i + 1, news) for typ, news in by_type.items()]


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
            if o.type != p.type or a == b or (o.type == "size" and _same_size(a, b)):
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
    if typ == "size":       # "long" fits a tongue, not a bear: only sizes that fit anything trade places
        return noun not in L.PEOPLE and noun not in L.ABSTRACT and attr in ("big", "small", "large", "little")
    return True


def _same_size(a: str, b: str) -> bool:
    """Two words for one size ("large" and "big"): trading them changes nothing."""
    return {a, b} <= {"big", "large", "huge", "giant"} or {a, b} <= {"small", "little", "tiny"}


def _count_head(doc, i: int):
    """The noun a number or article at i counts, from the parse: the head of its phrase, never a
    modifier ("a wall urinal" counts urinals, "a lime green bus" buses) nor a framing noun."""
    h = doc[i].head
    if doc[i].dep_ not in ("det", "nummod") or h.pos_ not in NOUN or h.i <= i or h.dep_ == "compound" \
            or h.tag_ not in ("NN", "NNS") or h.text.lower().endswith("ing"):
        return None
    after = doc[h.i + 1] if h.i + 1 < len(doc) else None
    if after is not None and after.pos_ in ("NOUN", "PROPN", "ADJ") and not after.text.lower().endswith(("ing", "ed")):
        return None                          # the parse may have stopped at a modifier ("a wall urinal")
    if (after is not None and after.text.lower() != L.singular(after.text.lower())
                                               and L.singular(after.text.lower()) in L.COUNTABLE):
        return None                          # "teddy bears" with "bears" parsed as a verb
    if any((doc[k].pos_ in NOUN and not h.is_ancestor(doc[k])) or doc[k].dep_ in ("acl", "relcl", "prep", "dobj")
           or doc[k].tag_ in ("VBG", "VBN") and doc[k].dep_ == "compound"
           for k in range(i + 1, h.i)):
        return None                          # another noun's phrase or a clause in between ("a ray holding sandwich")
    if any(c.dep_ == "case" for c in h.children) or any(doc[k].like_num or doc[k].text.lower() in L.NUMBERS
                                                        for k in range(i + 1, h.i)):
        return None                          # "a man's lap"; "a two layered cake"
    if i + 1 < len(doc) and doc[i + 1].text.lower() in ("layered", "tiered", "story", "storey", "toned", "tone",
                                                        "tier", "layer", "level", "piece", "other",
                                                        "sided", "legged", "wheeled", "storied", "headed", "seater"):
        return None                          # "a two tier cake", "two other cows"
    return h


def _in_hand(words: list[str], j: int) -> bool:
    """Noun j is held "in one hand", "in his hand": one of it."""
    after = " ".join(words[j + 1:j + 5])
    return any(after.startswith(f"in {x} hand") for x in ("one", "his", "her", "a", "their", "the"))


def _named(words: list[str], j: int) -> bool:
    """Noun j is one named thing ("a road sign labeled bodacious drive", "a sign that reads stop")."""
    return bool(set(words[j + 1:j + 4]) & L.NAMING)


def _countable(doc, words: list[str], h) -> bool:
    """A noun that can be counted here: a thing a photo shows several of (a known object noun, so
    that a wrong parse cannot put the count on a modifier), an object or the subject, not a place,
    an amount, stuff, a framing noun ("a close up"), nor one of two nouns sharing a determiner
    ("a mother and child")."""
    w, j = words[h.i], h.i
    base = L.singular(w)
    if base not in L.COUNTABLE or {w, base} & (L.ABSTRACT | L.COLLECTIVES | L.NON_COUNT | L.FRAMING) or _named(words, j) \
            or _in_hand(words, j):
        return False
    if j + 1 < len(doc) and words[j + 1] == "of":
        return False                         # "a plate of food": the container is not the point
    if base in L.ONE_PER_BODY or base in L.WORN or any(not any(d.dep_ in ("det", "nummod") for d in x.children)
                                     for x in [h, *h.children] if x.dep_ == "conj"):
        return False                         # "a mother and child": one determiner for two nouns
    top = _conj_top(h)                       # "on white paper and a large plate": the plate is where the pizza is
    if top.dep_ == "pobj" and top.head.text.lower() not in LOCATIVE_OK and not (
            top.head.text.lower() == "of" and top.head.head.text.lower() in L.PICTURES):
        return False                         # "in three bathrooms", "on two sidewalks"; but "a view of two planes"
    if h.dep_ == "dative":
        return False                         # "handing two women a bag": one bag for two
    if h.dep_ == "dobj" and h.head.text.lower() not in HOLDING_VERBS:
        return False                         # "swinging three bats", "riding three waves"
    return True


def _is_subject(doc, j: int) -> bool:
    return doc[j].dep_ in ("nsubj", "nsubjpass", "ROOT") or not any(doc[k].pos_ in NOUN for k in range(j))


def _pronoun_agreement(doc, words: list[str], j: int, plural: bool) -> dict[int, str] | None:
    """Possessives that refer to the subject follow its number; None when that cannot be made right."""
    if not _is_subject(doc, j):
        return {}
    out: dict[int, str] = {}
    person = words[j] in L.PEOPLE or L.singular(words[j]) in L.PEOPLE
    # a creature after a person: "a man ... while a cat sits on his lap": his/her is the man's
    person_first = not person and any(x in L.PEOPLE for x in words[:j])
    if plural and {"it", "itself"} & set(words[j + 1:]):
        return None                          # "two planes ... the sun shines behind it": whose "it"?
    if plural and any(w == "their" and k + 1 < len(doc) and doc[k + 1].tag_ == "NN" and words[k + 1] not in L.BODY_PARTS
                      for k, w in enumerate(words) if k > j):
        return None                          # "a rider takes their horse": two riders, one horse
    others = False                           # an animate noun between: "a man next to an elephant ... his trunk"
    for k in range(j + 1, len(words)):
        w = words[k]
        if plural and others and w in ("his", "her", "its", "he", "she", "him"):
            return None
        others = others or (doc[k].pos_ in NOUN and "animate" in _kinds(doc[k]))
        if doc[k].dep_ in ("nsubj", "nsubjpass") and doc[k].pos_ in NOUN:
            if plural and set(words[k:]) & {"his", "her", "he", "she", "him", "himself", "herself"}:
                return None                  # whose "his" it is, the parse cannot tell
            break                            # "a man ... while a cat sits on his lap": his is the man's
        if plural and w in ("it", "itself", "he", "she", "him"):
            return None
        if plural and w in ("its", "his", "her") and k + 1 < len(words) and words[k + 1] in L.BODY_PARTS \
                and not (person_first and w != "its"):
            out[k] = "their"                 # "four dogs rest their heads", not "his head" nor "their head"
            out[k + 1] = L.pluralize(words[k + 1])
        elif plural and w == "its":
            out[k] = "their"
        elif plural and w in ("his", "her", "its") and k + 1 < len(doc) and doc[k + 1].tag_ == "NN" and (
                words[k + 1] in L.RIDDEN | L.WORN | L.ONE_EACH or L.SIZE_CLASS.get(words[k + 1], 9) <= 1):
            return None                      # "two men with their skateboard": one board for two
        elif plural and w in ("his", "her"):
            if person_first:
                return None
            out[k] = "their"                 # "four dogs rest their heads", not "his head"
        elif plural and w in ("himself", "herself", "itself"):
            out[k] = "themselves"
        elif not plural and w in ("their", "they", "them", "themselves"):
            if person or w != "their":
                return None
            out[k] = "its"
    return out


_BE = {("is", True): "are", ("are", False): "is", ("was", True): "were", ("were", False): "was",
       ("has", True): "have", ("have", False): "has", ("does", True): "do", ("do", False): "does"}


def _inflect(tok, plural: bool) -> str | None:
    """The verb form that agrees with a subject of this number, or None if it already does."""
    w = tok.text.lower()
    if tok.i > 0 and tok.doc[tok.i - 1].pos_ in ("ADJ", "NOUN") and w not in L.VERBS_3SG and tok.dep_ != "aux" \
            and not any(c.dep_ in ("nsubj", "nsubjpass") for c in tok.children):
        return None                          # "big rocks boulders": a noun the parse took for a verb
    if (w, plural) in _BE:
        return _BE[(w, plural)]
    if plural and tok.tag_ == "VBZ":
        return L.plural_verb(w)
    if not plural and tok.tag_ == "VBP":
        if w.endswith(("s", "sh", "ch", "x", "z", "o")):
            return w + "es"
        return w[:-1] + "ies" if w.endswith("y") and w[-2:-1] not in "aeiou" else w + "s"
    return None


def _verbs_of(h):
    """The finite verbs whose subject is noun h: its own verb (and the verbs coordinated with it,
    with their auxiliaries), a relative clause's ("a truck that travels"), a copula before it
    ("there is a dog")."""
    out = []
    if any(c.dep_ == "conj" for c in h.children):
        return out                           # "a dog and a cat are": the verb agrees with both
    if h.dep_ in ("nsubj", "nsubjpass"):
        verbs = [h.head] + [c for c in h.head.children if c.dep_ == "conj" and c.pos_ in ("VERB", "AUX")
                            and not any(x.dep_ in ("nsubj", "nsubjpass") for x in c.children)]   # "and the dog is"
        for v in verbs:
            out += [v] + [c for c in v.children if c.dep_ in ("aux", "auxpass")]
    if h.dep_ == "attr" and h.head.lemma_ == "be":
        out.append(h.head)
    for c in h.children:
        if c.dep_ == "relcl" and any(x.dep_ in ("nsubj", "nsubjpass") and x.text.lower() in ("that", "which", "who")
                                     for x in c.children):
            out += [c] + [x for x in c.children if x.dep_ in ("aux", "auxpass")]
    return out


def _agreement(doc, words, h, plural: bool) -> dict[int, str] | None:
    """Every change the clause needs when noun h changes number: its verbs and the pronouns that
    refer to it. None when a singular cannot stand ("together", "each other", "both")."""
    if plural and L.ONE_ONLY & set(words):
        return None                          # "four elephants walk alone"
    if "cross country" in " ".join(words):
        return None                          # "two people cross country skiing": "cross" is no verb to inflect
    if any(words[k] in L.NUMBERS and (doc[k].head.pos_ not in NOUN or doc[k].dep_ in ("appos", "nsubj", "npadvmod"))
           for k in range(h.i + 1, len(words))):
        return None                          # "three people ..., two skiing, one walking": a sum to keep
    if plural and L.singular(words[h.i]) in L.FIXTURES and any(w in L.ROOMS | {"room"} for w in words):
        return None                          # "four stoves in a kitchen"
    if not plural and (L.PLURAL_ONLY & set(words[h.i + 1:]) or "side by side" in " ".join(words)
                       or "one another" in " ".join(words)):
        return None
    if plural and any(c.dep_ == "prep" and any(o.dep_ == "pobj" and o.tag_ in ("NN", "NNP") and o.text.islower()
                                                and o.text.lower() not in
                                                L.NON_COUNT and not any(d.dep_ in ("det", "poss", "nummod")
                                                                        for d in o.children) for o in c.children)
                      for c in h.children):
        return None                          # "two players in red shirt": the bare singular stays one
    out: dict[int, str] = {}
    start = next((c.i for c in h.children if c.dep_ in ("det", "nummod")), h.i)
    if start >= 2 and words[start - 2] == "there" and (words[start - 1], plural) in _BE:
        out[start - 1] = _BE[(words[start - 1], plural)]      # "there is a clock" -> "there are two clocks"
    for v in _verbs_of(h):
        if v.text.lower() in ("'s", "’s", "'re", "’re"):
            return None                      # "a dog that's been": is or has? no count that would need to know
        new = _inflect(v, plural)
        if new:
            out[v.i] = new
    if plural:
        for v in doc[h.i + 1:]:
            subj = [c for c in v.children if c.dep_ in ("nsubj", "nsubjpass")]
            if (v.tag_ == "VBZ" or v.text.lower() in L.VERBS_3SG) and v.i not in out and (
                    any(c.i == h.i for c in subj) or not subj):
                return None                  # "four women in black sits": the parse lost the verb
            if any(c.pos_ in NOUN and c.i != h.i for c in subj):
                break                        # another subject's clause: its verbs are its own
    pron = _pronoun_agreement(doc, words, h.i, plural)
    return None if pron is None else {**out, **pron}


def _number_options(doc, words, i: int) -> list[Option]:
    h = _count_head(doc, i)
    if h is None or not _countable(doc, words, h):
        return []
    n = L.NUMBERS.index(words[i]) + 1
    typ = "parts" if words[h.i] in L.PARTS else "quantity"
    out = []
    reciprocal = bool(L.RECIPROCAL & set(words))
    room = _shares_small(h)
    shared = _acts_on_one(h) or reciprocal   # more of h would share one act, or join a pair's
    for m in sorted({max(1, n - 1), n + 1, n + 2} - {n}):
        if m > 10 or (m > n and (room == 0 or (room == 1 and m > 2) or shared)) \
                or (m == n + 2 and not _open_scene(doc, h)):
            continue
        if m == 1 and (reciprocal or _has_many(h)):
            continue                         # "one person riding surf boards", "a person hugging"
        agree = _agreement(doc, words, h, plural=m > 1)
        if agree is None:
            continue
        extra = {**agree, h.i: L.singular(words[h.i]) if m == 1 else L.pluralize(L.singular(words[h.i]))}
        if extra[h.i] == words[h.i]:
            del extra[h.i]
        after = extra.get(i + 1, words[i + 1])
        new = [L.NUMBERS[m - 1]] if m > 1 else ["an" if after[:1] in "aeiou" else "a", "one"]
        out.append(Option(typ, i, i + 1, new, extra))
    return out


def _shares_one(h) -> bool:
    """Noun h wears or rides one thing of its own ("a woman in a red coat", "a man on a
    motorcycle"): more of them would share that one coat or motorcycle."""
    nxt = [t.text.lower() for t in h.doc[h.i + 1:h.i + 4]]
    if len(nxt) == 3 and nxt[0] in ("on", "in", "atop") and nxt[1] in ("a", "an", "the", "his", "her") \
            and nxt[2] in L.WORN | L.RIDDEN:
        return True                          # read from the words too: the small parser may miss the phrase
    for c in h.children:
        if c.dep_ in ("prep", "acl"):
            for o in c.children:
                if o.dep_ in ("pobj", "dobj") and o.text.lower() in L.WORN | L.RIDDEN \
                        and any(d.text.lower() in ("a", "an", "the") for d in o.children):
                    return True
    return False


def _shares_small(h) -> int:
    """How many of noun h the caption allows, given the singular things it gives h (reached from h
    or its verb through "on", "in", "with", "out of" or a verb's object, not through another noun):
    0 = no more than there are (a seat for one: "a man on a toilet", a bun, a plate's salad, one
    look on a face, "his head", a person kissed), 1 = two at most (a bed, a dog on a leash),
    9 = any."""
    size = L.SIZE_CLASS.get(L.singular(h.text.lower()), 3)
    roots = [h] + ([h.head] if h.dep_ in ("nsubj", "nsubjpass") else [])
    most = 9
    for root in roots:
        for o in root.subtree:
            if o.i == h.i or o.pos_ not in NOUN or o.tag_ != "NN":
                continue
            dets = {d.text.lower() for d in o.children}
            if not dets & {"a", "an", "the", "one", "his", "her", "its", "this", "that"}:
                continue
            thing = o.text.lower()
            if thing in L.ONE_PER_BODY and dets & {"his", "her", "its"}:
                continue                     # "its head" becomes "their heads" (_pronoun_agreement)
            while o.dep_ == "conj" and o.head.pos_ in NOUN and o.head.i != h.i:
                o = o.head                   # "glasses and a hat": the hat is had like the glasses
            up, ok = o.head, True
            while up.i != root.i and up.i != up.head.i:
                if up.pos_ in NOUN and up.i != h.i:
                    ok = False               # "a man next to a woman with a cup": her cup
                    break
                up = up.head
            if not ok or up.i != root.i:
                continue
            prep = o.head if o.dep_ == "pobj" else None
            via = prep.text.lower() if prep is not None else ("<obj>" if o.dep_ == "dobj" else "")
            if via == "of" and prep.i > 1 and prep.doc[prep.i - 1].text.lower() == "top":
                via = "on"                   # "on top of a laptop" is on it
            if via == "of" and not (prep.i > 0 and prep.doc[prep.i - 1].text.lower() == "out"):
                continue
            if via not in ("on", "in", "inside", "atop", "with", "onto", "into", "upon", "from", "of", "over", "<obj>"):
                continue
            if thing in L.PLACES or (thing in L.SHAREABLE and via not in ("<obj>", "with")):
                continue                     # three people fit on a couch, at a table, on a boat
            if "animate" in _kinds(o):
                if via in ("<obj>", "on", "atop", "upon", "onto"):
                    return 0                 # "two men kissing a woman"; "two cats lying on a cat"
                most = min(most, 1)
                continue
            if dets & {"his", "her", "its"}:
                return 0                     # "two batters tapping their bat"
            if thing in L.ONE_EACH or thing in L.WORN or thing in L.RIDDEN or thing in L.ONE_PER_BODY \
                    or (via != "<obj>" and thing not in L.SHAREABLE and L.SIZE_CLASS.get(thing, 9) <= size):
                return 0
            most = min(most, 1)
    return most


def _article_options(doc, words, i: int) -> list[Option]:
    h = _count_head(doc, i)
    if h is None or h.tag_ != "NN" or not _countable(doc, words, h) or _shares_one(h):
        return []
    room = _shares_small(h)
    if _holds_one(h) or room == 0 or _acts_on_one(h):
        return []
    agree = _agreement(doc, words, h, plural=True)
    if agree is None:
        return []
    extra = {h.i: L.pluralize(words[h.i]), **agree}
    top = _conj_top(h)                       # "with pink flowers and a vase": the vase is with them
    held = top.dep_ == "dobj" or (top.dep_ == "pobj" and top.head.text.lower() == "with")   # "with four umbrellas"
    if held and L.SIZE_CLASS.get(words[h.i], 9) > 1:
        return []
    if L.SIZE_CLASS.get(words[h.i], 0) >= 5 and "vehicle" not in _kinds(h) and "animal" not in _kinds(h):
        return []                            # "four bridges", "three churches": one structure is the scene
    if {"riding", "rides", "ride"} & set(words) and any(
            x.tag_ == "NN" and x.text.lower() in L.RIDDEN for x in doc[h.i + 1:]):
        return []                            # "two women riding on the back of a horse"
    if L.singular(words[h.i]) in ("train", "tram", "locomotive") and any(
            x in ("track", "rail", "railroad", "railway") and k > 0 and words[k - 1] in ("a", "the", "railroad")
            for k, x in enumerate(words)):
        return []                            # one train on one track
    few = _handles_one(h) or room == 1 or held or L.singular(words[h.i]) in L.FIXTURES | {"refrigerator", "fridge"} \
        or not _open_scene(doc, h)
    return [Option("quantity", i, i + 1, ["two"] if few else ["two", "three", "four"], extra)]


def _conj_top(h):
    """The first of the coordinated nouns h belongs to ("paper and a plate": paper): it carries
    the relation (the preposition, the verb) all of them share."""
    while h.dep_ == "conj" and h.head.i != h.i:
        h = h.head
    return h


def _clause_verbs(h):
    """The verbs noun h is the subject of, through coordination, purpose and adverbial clauses
    ("a man is playing tennis and is going to return the ball"), not into another subject's clause."""
    todo = [h.head] if h.dep_ in ("nsubj", "nsubjpass") else [c for c in h.children if c.dep_ in ("acl", "relcl")]
    todo += [x for c in h.children if c.dep_ in ("prep", "amod", "acomp") for x in c.children
             if x.dep_ in ("xcomp", "pcomp", "advcl")]           # "a boy about to hit a baseball"
    out = []
    seen = set()
    while todo:
        v = todo.pop()
        if v.i in seen:
            continue
        seen.add(v.i)
        if v.pos_ in ("VERB", "AUX"):
            out.append(v)                    # a non-verb head ("a boy about to kick") still leads to its clause
        todo += [c for c in v.children if c.dep_ in ("conj", "xcomp", "advcl", "acl", "ccomp")
                 and not any(x.dep_ in ("nsubj", "nsubjpass") and x.i != h.i for x in c.children)]
        todo += [x for c in v.children if c.dep_ in ("acomp", "prep") for x in c.children
                 if x.dep_ in ("xcomp", "pcomp", "advcl")]       # "ready to serve", "about to hit"
    return out


def _acts_on_one(h) -> bool:
    """Noun h does something to one thing or one person, or has one thing, that several of h could
    not all do or have ("returning a serve", "handing a woman a bag", "holding a controller",
    "about to hit a baseball", "with a cigarette": two of them holding one thing was judged
    implausible in both blind reads)."""
    verbs = _clause_verbs(h)
    for c in [x for v in [h] + verbs for x in v.children]:
        if c.dep_ == "prep" and c.text.lower() == "with" and any(
                o.dep_ == "pobj" and o.tag_ == "NN" and o.text.lower() not in L.PLACE_NOUNS | L.BACKGROUNDS | L.NON_COUNT
                and "animate" not in _kinds(o)                        # two boys may wait with their dog
                and any(d.text.lower() in ("a", "an", "the", "his", "her", "its", "one") for d in o.children)
                for o in c.children):
            return True                      # "two women with a cigarette"
    for v in verbs:
        preps = [c for c in v.children if c.dep_ == "prep"] + [p for c in v.children if c.dep_ == "acomp"
                                                                for p in c.children if p.dep_ == "prep"]
        targets = [x for c in preps if _aimed_at(c) for x in c.children]     # "getting ready for the pitch"
        for o in list(v.children) + targets:                   # "bunting at a baseball"
            if o.dep_ in ("dobj", "dative", "pobj") and o.tag_ == "NN" and o.text.lower() not in L.NON_COUNT | L.BODY_PARTS \
                    and any(d.text.lower() in ("a", "an", "the", "his", "her", "its") for d in o.children):
                return True
    return False


def _aimed_at(prep) -> bool:
    """A preposition that names what a verb acts on ("bunting at a ball", "reaching for a cup",
    "sitting at a desk" with its one keyboard), not where ("at a table", "at the airport")."""
    w, obj = prep.text.lower(), _w_of(prep)
    if w == "at":
        return obj == "desk" or (L.SIZE_CLASS.get(obj, 0) < 3 and obj not in L.PLACES | {"counter"})
    return w == "for" and (L.SIZE_CLASS.get(obj, 9) <= 2 or obj in L.ONE_EVENTS)


def _w_of(prep) -> str:
    """The object word of a preposition ("for a low ball" -> "ball"), or ""."""
    return next((x.text.lower() for x in prep.children if x.dep_ == "pobj"), "")


def _has_many(h) -> bool:
    """What noun h does or has is plural ("two people riding surf boards"): one of h would have one."""
    for v in [h] + _clause_verbs(h):
        for o in v.subtree:
            if o.i != h.i and o.tag_ == "NNS" and o.text.lower() not in L.PLACES and o.dep_ in ("dobj", "pobj") and (
                    "animate" not in _kinds(o) or o.text.lower() in {"horses", "elephants", "camels", "donkeys"}):
                return True
    return False


def _open_scene(doc, h) -> bool:
    """Nothing else in the caption is one countable thing that three or four of h would crowd
    ("four trains on a track", "four toilets next to a trash can", "three cats on a pair of shoes"),
    and h is not a big machine that rarely comes three at a time ("three trains in the countryside")."""
    hw = h.text.lower()
    if L.SIZE_CLASS.get(hw, L.SIZE_CLASS.get(L.singular(hw), 0)) >= 5 and "animal" not in _kinds(h):
        return False
    for t in doc:
        if t.i == h.i or t.pos_ not in NOUN:
            continue
        w = t.text.lower()
        if w in L.COLLECTIVES and t.i + 1 < len(doc) and doc[t.i + 1].text.lower() == "of":
            if h.i > t.i and h.head.i == t.i + 1:
                continue                     # "a group of people": h itself
            if t.i > 0 and doc[t.i - 1].text.lower() in ("a", "an", "one"):
                return False                 # "a pair of shoes": one thing
            continue
        if t.tag_ != "NN" or w in (L.PLACES - {"track", "runway"}) | L.ABSTRACT | L.FRAMING or not any(
                d.text.lower() in ("a", "an", "the", "one") for d in t.children):
            continue
        if t.dep_ == "pobj" and t.head.text.lower() in ("in", "across", "along", "through", "near", "down", "into"):
            continue                         # "three dogs in a field": the place holds any number
        return False
    return True


HELD = {"hold", "carry", "use", "wear", "ride", "swing", "eat", "drink", "read", "fly", "throw", "push", "pull", "talk"}


def _holds_one(h) -> bool:
    """Noun h holds, wears or rides one thing of its own ("a man holding a phone to his face"):
    more of them would hold that one phone."""
    doc = h.doc
    for v in doc[h.i + 1:]:                  # read from the words too: the parse may hang the verb elsewhere
        if v.pos_ in NOUN and "animate" in _kinds(v):
            break                            # another doer: what follows is its own
        if v.lemma_ in HELD and v.tag_ == "VBG" and v.i + 2 < len(doc) \
                and doc[v.i + 1].text.lower() in ("a", "an", "his", "her") \
                and L.singular(doc[v.i + 2].text.lower()) in L.OBJECT_KIND:
            return True
    verbs = [h.head] if h.dep_ in ("nsubj", "nsubjpass") else [c for c in h.children if c.dep_ in ("acl", "relcl")]
    for v in verbs + [c for v in verbs for c in v.children if c.dep_ in ("advcl", "conj")]:
        if v.lemma_ not in HELD:
            continue
        objs = [o for o in v.children if o.dep_ == "dobj"] + [x for o in v.children if o.dep_ == "prep"
                                                              for x in o.children if x.dep_ == "pobj"]
        for o in objs:
            thing = L.singular(o.text.lower())
            if (thing in L.OBJECT_KIND or thing in L.WORN or thing in L.RIDDEN or L.SIZE_CLASS.get(thing, 9) <= 2) \
                    and any(d.text.lower() in ("a", "an", "the", "his", "her", "its") for d in o.children):
                return True
    return False


def _handles_one(h) -> bool:
    """Noun h does something with one thing ("a man holding an umbrella"): two of them may share
    it, four would not."""
    verbs = [h.head] if h.dep_ in ("nsubj", "nsubjpass") else [c for c in h.children if c.dep_ in ("acl", "relcl")]
    for v in verbs:
        for o in list(v.children) + [x for c in v.children if c.dep_ == "prep" for x in c.children]:
            if o.dep_ in ("dobj", "pobj") and any(d.text.lower() in ("a", "an") for d in o.children):
                return True
    return any(c.dep_ == "prep" and any(x.dep_ == "pobj" and any(d.text.lower() in ("a", "an") for d in x.children)
                                          for x in c.children) for c in h.children if c.text.lower() == "with")


def _cased(new: str, old: str, caps: bool, first: bool = True) -> str:
    """`new` written in the case of the word it replaces (an ALL-CAPS caption stays all caps)."""
    if caps:
        return new.upper()
    if old.isupper() and len(old) > 1:
        return old + new[len(old):] if new.lower().startswith(old.lower()) else new.upper()   # "TV" -> "TVs"
    return new[:1].upper() + new[1:] if old[:1].isupper() and first else new    # "a Frisbee" -> "a ball"


def _realize(doc, opt: Option, choice: str) -> str:
    toks = [t.text for t in doc]
    ws = [t.whitespace_ for t in doc]
    caps = any(c.isalpha() for c in doc.text) and doc.text.upper() == doc.text
    new = list(toks)
    new[opt.start] = _cased(choice, toks[opt.start], caps, opt.start == 0)
    for k in range(opt.start + 1, opt.stop):
        new[k] = ""
    for k, v in (opt.extra or {}).items():
        new[k] = _cased(v, toks[k], caps, k == 0)
    # fix a/an before every changed word
    for p in [opt.start, *(opt.extra or {})] if opt.type != "quantity" else []:
        if p > 0 and toks[p - 1].lower() in L.ARTICLES and new[p]:
            art = "an" if new[p][:1].lower() in "aeiou" else "a"
            new[p - 1] = _cased(art, toks[p - 1], caps)
    out = "".join(w + (s if w else "") for w, s in zip(new, ws))
    return " ".join(out.split())


class RulesBackend(Backend):
    """Rewrites without a model (see module doc): no judge."""

    name = "rules"

    def __init__(self, k: int = 4, seed: int = 0, batch_size: int = 256,
                 vocab: dict[str, list[str]] | None = None):
        """`vocab`: optional {edit type: allowed target words}, e.g. a renderer's colours."""
        self.k = k
        self.seed = seed
        self.batch_size = batch_size
        self.vocab = {t: set(ws) for t, ws in (vocab or {}).items()}
        self.nlp = load_nlp(parser=True)
        self.validator = Validator()

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
            by_type[t].sort(key=lambda o: o.extra is None)      # a change of person's sex last: it is the commonest
        out: list[str] = []
        original = " ".join(doc.text.split()).lower()
        again: list[tuple[Option, list[str]]] = []       # options with choices left: used once all were tried

        def take(opt: Option, choices: list[str]) -> None:
            while choices:
                text = _realize(doc, opt, choices.pop())
                if text.lower() != original and text not in out and self.validator(doc.text, text, out).ok:
                    out.append(text)
                    if choices:
                        again.append((opt, choices))
                    return

        while len(out) < self.k and any(by_type.values()):
            for t in types:
                if len(out) < self.k and by_type[t]:
                    opt = by_type[t].pop()
                    take(opt, rng.sample(opt.choices, len(opt.choices)))
        again.sort(key=lambda x: x[0].type in ("quantity", "parts"))     # another colour before another count
        while len(out) < self.k and again:
            take(*again.pop(0))
        return out

    def generate(self, captions: list[str], keys: list[str]) -> list[Generation]:
        docs = self.nlp.pipe(captions, batch_size=self.batch_size)
        return [Generation([{"text": t} for t in self.rewrite(d, k)]) for d, k in zip(docs, keys)]
