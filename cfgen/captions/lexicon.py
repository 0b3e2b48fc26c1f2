"""Word lists for typing edits and for the `rules` backend.

Each attribute kind maps a word to the words it may become. Lists favour visually
decisive, maskable changes in COCO/CC3M-style photo captions.
"""
from __future__ import annotations

from typing import Iterable


def _group(words: Iterable[str]) -> dict[str, list[str]]:
    ws = list(dict.fromkeys(words))
    return {w: [x for x in ws if x != w] for w in ws}


def _pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a, b in pairs:
        out.setdefault(a, []).append(b)
        out.setdefault(b, []).append(a)
    return out


COLOR = _group("red blue green yellow black white gray grey brown orange pink purple silver "
               "golden beige teal navy maroon turquoise violet".split())
MATERIAL = _group("wooden metal metallic plastic glass stone brick leather paper ceramic concrete "
                  "steel iron cotton woolen marble rubber silk denim straw bamboo fabric felt cardboard wicker "
                  "canvas velvet tin aluminum copper bronze clay porcelain crystal wool".split())
SHAPE_ADJ = _group("round square rectangular circular triangular oval curved pointed flat".split())
SHAPE_NOUN = _group("circle square triangle diamond star heart rectangle oval ring cross".split())
SHAPE = {w: list(dict.fromkeys(SHAPE_ADJ.get(w, []) + SHAPE_NOUN.get(w, [])))
         for w in {**SHAPE_ADJ, **SHAPE_NOUN}}
SIZE = _pairs([("small", "large"), ("big", "small"), ("little", "big"), ("tiny", "huge"),
               ("tall", "short"), ("long", "short"), ("giant", "tiny"), ("wide", "narrow"),
               ("thin", "thick"), ("large", "tiny"), ("huge", "small")])
EMOTION = _pairs([("smiling", "frowning"), ("laughing", "crying"), ("happy", "sad"),
                  ("angry", "calm"), ("excited", "bored"), ("cheerful", "gloomy"),
                  ("surprised", "bored"), ("scared", "relaxed"), ("grinning", "scowling"),
                  ("smiles", "frowns"), ("laughs", "cries"), ("serious", "smiling")])
STATE = _pairs([("standing", "sitting"), ("sitting", "lying"), ("standing", "kneeling"),
                ("open", "closed"), ("empty", "full"), ("wet", "dry"), ("old", "young"),
                ("new", "old"), ("dirty", "clean"), ("ripe", "unripe"), ("lit", "unlit"),
                ("broken", "intact"), ("sleeping", "awake"), ("stands", "sits"), ("sits", "lies"),
                ("crouching", "standing"), ("leaning", "standing"), ("folded", "unfolded"),
                ("raw", "cooked"), ("frozen", "melted"), ("on", "off"), ("young", "elderly"),
                ("asleep", "awake"), ("sliced", "whole"), ("bare", "covered")])
MOVEMENT = _pairs([("running", "standing still"), ("walking", "standing"), ("jumping", "standing"),
                   ("flying", "perched"), ("swimming", "floating"), ("moving", "parked"),
                   ("driving", "parked"), ("galloping", "standing"), ("racing", "parked"),
                   ("rolling", "still"), ("climbing", "resting"), ("dancing", "standing"),
                   ("surfing", "paddling"), ("skating", "standing"), ("walks", "runs"),
                   ("runs", "stands"), ("jumps", "stands"), ("flies", "perches"),
                   ("stationary", "moving"), ("still", "moving")])
POSITION = _pairs([("left", "right"), ("above", "below"), ("on", "under"), ("over", "under"),
                   ("inside", "outside"), ("top", "bottom"), ("behind", "beside"),
                   ("front", "back"), ("near", "far from"), ("next to", "far from"), ("into", "out of"), ("upstairs", "downstairs"),
                   ("beneath", "above"), ("atop", "beneath"), ("underneath", "on top of"),
                   ("start", "end"), ("beginning", "end"), ("edge", "middle"), ("center", "edge")])
CAUSAL = _pairs([("hits", "misses"), ("hit", "missed"), ("hitting", "missing"),
                 ("catches", "drops"), ("catching", "dropping"), ("caught", "dropped"),
                 ("kicks", "misses"), ("kicking", "missing"), ("kicked", "missed"),
                 ("wins", "loses"), ("winning", "losing"), ("won", "lost"),
                 ("throws", "catches"), ("throwing", "catching"), ("pushes", "pulls"),
                 ("pushing", "pulling"), ("holding", "dropping"), ("holds", "drops"),
                 ("opens", "closes"), ("opening", "closing"), ("falling", "floating"),
                 ("falls", "floats"), ("sinking", "floating"), ("sinks", "floats"),
                 ("breaking", "fixing"), ("breaks", "fixes"), ("flew", "dropped"),
                 ("lands", "crashes"), ("landing", "crashing"), ("scores", "misses"),
                 ("scoring", "missing"), ("feeding", "ignoring"), ("chasing", "fleeing"),
                 ("eating", "refusing"), ("blocking", "missing"), ("lifting", "dropping")])
# verbs of locomotion: an edit that changes one of these is typed `movement`, not `state`
MOTION = set("running walking jogging strolling galloping jumping flying swimming driving riding racing rolling "
             "climbing dancing surfing skating skiing snowboarding paddling sliding crawling hopping speeding "
             "landing leaping marching sprinting hiking biking cycling moving traveling travelling taking "
             "walks runs jumps flies swims rides climbs drives skates skis slides crawls".split())
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
QUANTITY = _group(NUMBERS + ["several", "many", "few", "multiple", "a", "an", "single", "no"])
PARTS = set("legs leg wheels wheel arms arm wings wing windows window doors door heads head eyes eye "
            "handles handle leaves leaf petals petal horns horn tails tail candles candle "
            "stripes stripe buttons button floors floor layers layer spots spot".split())
CATEGORY_GROUPS: list[list[str]] = [
    "man woman boy girl child person lady guy kid baby".split(),
    "men women boys girls children people ladies guys kids".split(),
    "dog cat horse cow sheep bird elephant giraffe zebra bear goat deer pig duck rabbit".split(),
    "dogs cats horses cows sheep birds elephants giraffes zebras bears goats ducks rabbits".split(),
    "car truck bus bicycle motorcycle train boat airplane van scooter tractor".split(),
    "cars trucks buses bicycles motorcycles trains boats airplanes vans".split(),
    "apple banana orange pizza cake sandwich donut carrot broccoli hotdog pie".split(),
    "apples bananas oranges pizzas cakes sandwiches donuts carrots".split(),
    "table chair bed couch bench desk sofa stool".split(),
    "ball frisbee kite racket bat skateboard surfboard umbrella".split(),
    "cup bowl plate bottle glass vase mug jar".split(),
    "hat cap helmet scarf jacket shirt dress coat".split(),
    "tree flower bush plant".split(),
    "laptop phone television book clock lamp".split(),
    "street road beach field park kitchen room".split(),
]
CATEGORY: dict[str, list[str]] = {}
for _g in CATEGORY_GROUPS:
    for _w in _g:
        CATEGORY.setdefault(_w, []).extend(x for x in _g if x != _w)

# Attribute lexicons in the order used to type an edit whose words appear in several.
TYPED_LEXICONS: list[tuple[str, dict[str, list[str]]]] = [
    ("color", COLOR), ("material", MATERIAL), ("emotion", EMOTION), ("size", SIZE),
    ("shape", SHAPE), ("causal", CAUSAL), ("movement", MOVEMENT), ("position", POSITION),
    ("state", STATE), ("category", CATEGORY),
]
ARTICLES = {"a", "an"}
# pronouns a change of person drags along ("boy ... his" -> "girl ... her")
GENDER_PAIRS = {frozenset(p) for p in [("his", "her"), ("he", "she"), ("him", "her"), ("himself", "herself")]}
PERSON = set(CATEGORY_GROUPS[0]) | set(CATEGORY_GROUPS[1])
AGREEMENT_PAIRS = {frozenset(p) for p in [("a", "an"), ("is", "are"), ("was", "were"), ("has", "have"),
                                          ("its", "their"), ("it", "they"), ("this", "these"),
                                          ("that", "those")]}
IRREGULAR_PLURALS = {"man": "men", "woman": "women", "child": "children", "person": "people",
                     "foot": "feet", "tooth": "teeth", "mouse": "mice", "goose": "geese",
                     "sheep": "sheep", "fish": "fish", "deer": "deer", "leaf": "leaves",
                     "knife": "knives", "wolf": "wolves", "shelf": "shelves", "bus": "buses",
                     "glass": "glasses", "box": "boxes", "dress": "dresses", "sandwich": "sandwiches",
                     "bench": "benches", "watch": "watches", "peach": "peaches", "lady": "ladies",
                     "baby": "babies", "candy": "candies", "cherry": "cherries", "puppy": "puppies",
                     "guy": "guys", "kid": "kids", "toy": "toys", "boy": "boys", "tomato": "tomatoes",
                     "potato": "potatoes"}
SINGULAR = {v: k for k, v in IRREGULAR_PLURALS.items()}


def pluralize(noun: str) -> str:
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def singular(noun: str) -> str:
    if noun in SINGULAR:
        return SINGULAR[noun]
    if noun.endswith("ies") and len(noun) > 4:
        return noun[:-3] + "y"
    if noun.endswith(("ches", "shes", "xes", "zes", "sses")):
        return noun[:-2]
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun[:-1]
    return noun
