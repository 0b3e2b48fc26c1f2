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
                                          ("its", "their"), ("his", "their"), ("her", "their"),
                                          ("it", "they"), ("this", "these"),
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


# ---------------------------------------------------------------- the rules backend's plausibility
# The validator above types any edit; the rules backend writes only edits a person would accept
# and a painter could draw. These lists say which substitutions make sense for which nouns.
RULES_COLORS = "red blue green yellow black white gray brown orange pink purple".split()
ANIMAL_COLORS = "black white brown gray orange".split()
# tight substitution classes: an animal for an animal of the same kind, a seat for a seat
SUBSTITUTES: list[list[str]] = [
    ["man", "woman"], ["boy", "girl"], ["men", "women"], ["boys", "girls"],
    ["dog", "cat"], ["dogs", "cats"], ["horse", "cow", "donkey"], ["horses", "cows", "donkeys"],
    ["elephant", "giraffe", "zebra", "bear"], ["elephants", "giraffes", "zebras", "bears"],
    ["duck", "swan", "goose"], ["ducks", "swans", "geese"],
    ["car", "truck", "van"], ["cars", "trucks", "vans"], ["bicycle", "motorcycle", "scooter"],
    ["bicycles", "motorcycles", "scooters"], ["bike", "motorcycle"], ["bikes", "motorcycles"], ["boat", "canoe"], ["airplane", "helicopter"],
    ["pizza", "sandwich", "burger", "cake", "pie"], ["donut", "bagel", "muffin", "cookie"],
    ["apple", "orange", "banana", "pear", "lemon"], ["apples", "oranges", "bananas", "pears", "lemons"],
    ["chair", "stool", "bench"], ["bed", "couch"], ["table", "desk"],
    ["ball", "frisbee"], ["racket", "bat"], ["skateboard", "scooter"], ["surfboard", "kayak"],
    ["cup", "mug", "glass"], ["bottle", "jar"],
    ["hat", "cap", "helmet"], ["jacket", "coat", "sweater", "shirt"], ["dress", "skirt"],
    ["laptop", "book"], ["television", "monitor"], ["broccoli", "carrots"],
]
RULES_CATEGORY: dict[str, list[str]] = {}
for _g in SUBSTITUTES:
    for _w in _g:
        RULES_CATEGORY.setdefault(_w, []).extend(x for x in _g if x != _w)
ANIMALS = set("dog cat horse cow donkey sheep goat pig elephant giraffe zebra bear bird duck swan goose rabbit deer "
              "lamb calf puppy kitten".split())
ANIMALS |= {pluralize(a) for a in ANIMALS}
BIRDS = {"bird", "birds", "duck", "ducks", "pigeon", "pigeons", "seagull", "seagulls", "parrot", "eagle"}
PEOPLE = PERSON | {"player", "players", "skier", "skiers", "surfer", "surfers", "skateboarder", "rider",
                   "chef", "worker", "officer", "couple", "crowd", "group", "family", "team"}
VEHICLES = set("car truck bus van bicycle bike motorcycle scooter train tram boat ship airplane plane tractor "
               "taxi".split())
VEHICLES |= {pluralize(v) for v in VEHICLES}
PETS = {"dog", "cat", "dogs", "cats", "puppy", "kitten", "puppies", "kittens"}
# what something can be under (on X -> under X) and what it can be on (under X -> on X)
COVERS = set("table desk chair bench bed couch sofa stool car truck van bus bridge tree trees umbrella "
             "blanket towel sheet counter shelf tent clouds cloud branch leaves sign".split())
SURFACES = set("table desk chair bench bed couch sofa stool car truck van bus blanket towel counter shelf box "
               "boxes pillow rug mat bag boat branch log rock tray plate leaf fence".split())
# the nouns of a material edit, and the materials that make sense for them
MATERIAL_FOR: dict[str, list[str]] = {}
for _nouns, _mats in [
    ("table desk chair bench stool shelf door fence cabinet cabinets bed", "wooden metal plastic glass"),
    ("building house wall walls tower church bridge floor", "brick stone wooden concrete"),
    ("cup mug bowl plate vase jar pot", "ceramic glass plastic metal"),
    ("box crate basket tray", "wooden metal plastic cardboard"),
    ("jacket coat bag boots shoes hat", "leather denim woolen"),
    ("bottle", "glass plastic metal"),
]:
    for _n in _nouns.split():
        MATERIAL_FOR[_n] = _mats.split()
# nouns that name an amount or a part of something ("a couple of", "the side of"), places and
# stuff: never counted, never swapped for another noun
COLLECTIVES = set("couple pair group herd flock bunch lot number crowd set row pile stack slice piece side "
                  "corner middle edge top bottom end front back half kind type variety team view close-up "
                  "picture photo image shot".split())
NON_COUNT = set("water grass snow food hair sand dirt air sky sun rain ice fog smoke traffic furniture "
                "day night time weather field street road beach park kitchen room bathroom bedroom city "
                "restaurant station hillside lake river ocean sea court area yard zoo market store shop".split())
# words that make a fixed expression with the noun after them ("living room", "hot dog")
FIXED_MODIFIERS = set("living dining hot teddy fire stop wedding parking traffic city tennis baseball "
                      "computer coffee kitchen clock cell toilet ice birthday police school double".split())
# verb changes: which change, for which kind of subject (animate, vehicle, bird)
VERB_CHANGES: dict[str, list[tuple[str, str, str]]] = {
    "standing": [("sitting", "state", "person"), ("sitting", "state", "pet"), ("lying", "state", "animal"),
                 ("walking", "movement", "animate")],
    "sitting": [("standing", "state", "animate"), ("lying", "state", "animate")],
    "lying": [("sitting", "state", "person"), ("sitting", "state", "pet"), ("standing", "state", "animate")],
    "walking": [("standing", "movement", "animate"), ("running", "movement", "animate")],
    "running": [("walking", "movement", "animate"), ("standing", "movement", "animate")],
    "jumping": [("standing", "movement", "animate")],
    "galloping": [("standing", "movement", "animate"), ("walking", "movement", "animate")],
    "grazing": [("lying", "state", "animate")],
    "sleeping": [("sitting", "state", "animate")],
    "parked": [("driving", "movement", "vehicle")],
    "driving": [("parked", "movement", "vehicle")],
    "traveling": [("stopped", "movement", "vehicle")],
    "moving": [("parked", "movement", "vehicle")],
    "stands": [("sits", "state", "animate")], "sits": [("stands", "state", "animate")],
    "walks": [("runs", "movement", "animate")], "runs": [("walks", "movement", "animate")],
}
# directional causal changes (the outcome of an action flips); not the other way round
RULES_CAUSAL: dict[str, list[str]] = {
    "hits": ["misses"], "hitting": ["missing"], "kicks": ["misses"], "kicking": ["missing"],
    "catches": ["drops"], "catching": ["dropping"], "holding": ["dropping"], "holds": ["drops"],
    "pushing": ["pulling"], "pulling": ["pushing"], "pushes": ["pulls"], "pulls": ["pushes"],
    "wins": ["loses"], "winning": ["losing"], "opening": ["closing"], "closing": ["opening"],
    "lifting": ["dropping"], "chasing": ["following"], "throwing": ["dropping"],
}
RULES_POSITION: dict[str, tuple[str, bool]] = {       # word -> (flip, vertical: needs a FLIP_OBJECTS object)
    "on": ("under", True), "under": ("on", True), "over": ("under", True), "above": ("below", True),
    "below": ("above", True), "beneath": ("above", True), "underneath": ("on top of", True),
    "atop": ("beneath", True), "behind": ("in front of", False), "near": ("far from", False),
    "inside": ("outside", False), "outside": ("inside", False), "into": ("out of", False),
    "beside": ("behind", False),
}
RULES_STATE_ADJ: dict[str, list[str]] = {
    "open": ["closed"], "closed": ["open"], "empty": ["full"], "full": ["empty"], "wet": ["dry"],
    "dry": ["wet"], "dirty": ["clean"], "clean": ["dirty"], "ripe": ["unripe"], "lit": ["unlit"],
    "sleeping": ["awake"], "broken": ["intact"], "sliced": ["whole"], "raw": ["cooked"],
}
AGE_ADJ = {"old": ["young"], "young": ["old"], "elderly": ["young"]}          # people only
OBJECT_AGE_ADJ = {"old": ["new"], "new": ["old"]}                             # things only
# after these a motion verb is part of a path ("walking through the water"): no resting verb fits
PATH_PREPOSITIONS = set("through across down up along into toward towards past around onto out".split())
ABSTRACT = set("smile look view game meal day time trip ride way moment shot picture photo".split())
