"""The validator refuses what is not a counterfactual at all, and finds the one edit in what is
(issue #27 item 3). Cases written for cfgen; the SugarCrepe figures come from a sample of the
official release (tests/data/sugarcrepe_sample.tsv, its header names the source files)."""
from collections import defaultdict
from pathlib import Path

import pytest

from cfgen.captions import validate


@pytest.mark.parametrize("orig,rw", [
    ("a blue kite over the beach", "a blue kit\u0435 over the beach"),          # Cyrillic ie
    ("a white horse in a field", "a white h\u03bfrse in a field"),             # Greek omicron
    ("two cats on a sofa", "\uff54\uff57\uff4f cats on a sofa"),                 # full-width letters
    ("a man on a bench", "a man on a be\u200bnch"),                           # zero-width space
])
def test_lookalike_letters_are_no_change(orig, rw):
    v = validate(orig, rw)
    assert not v.ok and v.reason in ("no_change", "mixed_script"), v


def test_parsed_candidates_are_stored_in_canonical_letters():
    from cfgen.captions.parse import parse_numbered
    assert parse_numbered("1. a gr\u0435en bus\n2. \uff41 red bus") == ["a green bus", "a red bus"]


def test_a_real_edit_written_with_lookalikes_is_still_read():
    v = validate("a gr\u0435en bus", "a yellow bus")
    assert v.ok and (v.edit.type, v.edit.from_, v.edit.to) == ("color", "green", "yellow")


@pytest.mark.parametrize("orig,rw,reason", [
    ("a truck parked by a bicycle", "a truck parked by a bike", "synonym"),
    ("a small boat on a lake", "a little boat on a lake", "synonym"),
    ("a lamp next to the bed", "a lamp beside the bed", "synonym"),
    ("a cat sleeping under a chair", "a cat sleeping beneath a chair", "synonym"),
    ("three sheep on a hill", "3 sheep on a hill", "synonym"),
    ("a grey cat on a rug", "a gray cat on a rug", "synonym"),
    ("a woman reading on a couch", "a woman reading on a sofa", "synonym"),
    ("a girl flying a kite", "a person flying a kite", "hypernym"),
    ("a horse eating hay", "an animal eating hay", "hypernym"),
    ("a bus on a bridge", "a vehicle on a bridge", "hypernym"),
    ("a cup on a table", "a cup on top of a table", "insert_or_delete"),  # "on top of" includes "on"
    ("a dog standing near a car", "a dog standing still near a car", "insert_or_delete"),
    ("a plate and a fork on a napkin", "a fork and a plate on a napkin", "symmetric_swap"),
    ("a lamp next to a clock", "a clock next to a lamp", "symmetric_swap"),
])
def test_edits_that_change_nothing_a_photo_shows_are_refused(orig, rw, reason):
    v = validate(orig, rw)
    assert not v.ok and v.reason == reason, v


@pytest.mark.parametrize("orig,rw,typ", [
    ("a person flying a kite", "a child flying a kite", "category"),        # a narrower kind can be false
    ("a plate and a fork on a napkin", "a plate and a spoon on a napkin", "category"),
    ("a plate on a fork", "a fork on a plate", "swap"),                     # "on" is not symmetric
    ("a black plate and a white fork", "a white plate and a black fork", "swap"),
    ("a lamp on a table next to a clock", "a clock on a table next to a lamp", "swap"),
    ("a man with a cane and a roller bag", "a man with a roller and a cane bag", "swap"),
    ("a woman holding a cup", "a woman dropping a cup", "action"),          # an act changes, no cause flips
    ("a dog catching a ball", "a dog dropping a ball", "action"),           # the outcome: what the dog does (both blind judges of round 8)
])
def test_the_same_shapes_with_a_real_change_are_kept(orig, rw, typ):
    v = validate(orig, rw)
    assert v.ok and v.edit.type == typ, v


@pytest.mark.parametrize("orig,rw", [
    # binding swaps the word diff sees as several places
    ("Two small dogs near a bowl and three large cats.", "Three large dogs near a bowl and two small cats."),
    ("A cat wearing a striped hat on a green couch.", "A cat wearing a green hat on a striped couch."),
    ("A boy pushing a girl on a swing.", "A girl pushing a boy on a swing."),
    ("A tall lamp beside a short plant.", "A short lamp beside a tall plant."),
])
def test_binding_swaps_are_one_swap(orig, rw):
    v = validate(orig, rw)
    assert v.ok and v.edit.type == "swap", v


@pytest.mark.parametrize("orig,rw,reason", [
    ("A man with a goatee reading a map.", "A woman with a goatee reading a map.", "implausible_gender"),
    ("A pregnant woman sitting on a bench.", "A pregnant man sitting on a bench.", "implausible_gender"),
    # the beard's owner is the nearest person before it, though the same word came earlier too
    ("A man beside a woman and man with a beard.", "A man beside a woman and woman with a beard.", "implausible_gender"),
    ("A man with a mustache at a desk.", "A boy with a mustache at a desk.", "implausible_age"),
    ("A gray elephant by a lake.", "A purple elephant by a lake.", "implausible_color"),
    ("A white swan on a pond.", "A green swan on a pond.", "implausible_color"),
    ("A black bear in a river.", "A black zebra in a river.", "implausible_color"),
    ("A black and white cow in a field.", "A black and white zebra in a field.", ""),
    ("A large train at a station.", "A tiny train at a station.", "implausible_size"),
    ("A small mug of tea.", "A gigantic mug of tea.", "implausible_size"),
    ("A wide flat screen.", "A narrow flat screen.", ""),                   # a control: no contradiction
    ("A tiny compact camera.", "A huge compact camera.", "contradiction"),
    ("A cat climbing into an open box.", "A cat climbing into a closed box.", "contradiction"),
    ("An empty bowl of soup.", "A full bowl of soup.", ""),
    ("A full bowl of soup.", "An empty bowl of soup.", "contradiction"),
    ("A helicopter flying over a car.", "A helicopter flying under a car.", "implausible_place"),
    ("A woman sitting on a couch.", "A woman sitting under a couch.", "implausible_place"),
    ("A dog looking into an oven.", "A dog looking out of an oven.", "implausible_place"),
    ("An elephant with its trunk raised.", "A giraffe with its trunk raised.", "implausible_part"),
    ("A kitchen with a sink and a stove.", "A kitchen with a bathtub and a stove.", "implausible_context"),
    ("A bus stops at a corner.", "Two buses stops at a corner.", "agreement"),
    ("Two horses graze side by side together.", "One horse graze side by side together.", "agreement"),
    ("A father and son fishing.", "Two fathers and son fishing.", "agreement"),
    ("A close up of a cake.", "Two closes up of a cake.", "count_of_frame"),
    ("A street lamp by a road.", "Two streets lamp by a road.", "count_of_modifier"),
    ("A man with a beard.", "A man with two beards.", "implausible_count"),
])
def test_plausibility_is_judged_for_every_backend(orig, rw, reason):
    v = validate(orig, rw)
    assert (v.reason if not v.ok else "") == reason, v


SAMPLE = Path(__file__).parent / "data" / "sugarcrepe_sample.tsv"
# measured on the sample (40 per file): .95/.90/.90 accepted, .75/.825 typed swap; before #27
# .95/.875/.85 and .45/.30. Some swap negatives are refused as implausible ("a green horse").
# "read": typed swap, counting swaps then refused as implausible (.90 / .875 on the sample).
FLOORS = {"replace_att": ("accepted", .90), "replace_obj": ("accepted", .85), "replace_rel": ("accepted", .85),
          "swap_att": ("swap", .70), "swap_obj": ("swap", .80)}
READ_FLOORS = {"swap_att": .85, "swap_obj": .85}


def test_sugarcrepe_negatives_are_one_edit_and_swaps_are_swaps():
    got: dict[str, dict[str, list[bool]]] = defaultdict(lambda: {"accepted": [], "swap": [], "read": []})
    for line in SAMPLE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        f, _, caption, negative = line.split("\t")
        v = validate(caption, negative)
        got[f]["accepted"].append(v.ok)
        got[f]["swap"].append(v.ok and v.edit.type == "swap")
        got[f]["read"].append(v.edit is not None and v.edit.type == "swap")
    for f, (what, floor) in FLOORS.items():
        share = sum(got[f][what]) / len(got[f][what])
        assert share >= floor, (f, what, share)
    for f, floor in READ_FLOORS.items():
        assert sum(got[f]["read"]) / len(got[f]["read"]) >= floor, (f, got[f]["read"])


# Issue #27 item 3, session 9: what the word diff saw as two places or as no relation, read as
# the one edit it is. Cases written for cfgen (none from SugarCrepe).
@pytest.mark.parametrize("orig,rw,typ,frm,to", [
    # a spelling slip of the original mended beside the edit is not a second edit
    ("a cat sleeping on the sofa in the livng room", "a dog sleeping on the sofa in the living room",
     "category", "cat", "dog"),
    ("a dog with a ball in it's mouth", "a dog with a bone in its mouth", "category", "ball", "bone"),
    # a compound the rewrite writes as one word, inside a binding swap
    ("a red car parked by a blue lamp post", "a blue car parked by a red lamppost", "swap", None, None),
    # an action replaced around its unchanged object: the verb and its preposition change
    ("a boy holding a red kite by its string", "a boy pulling a red kite with its string",
     "action", "holding ... by", "pulling ... with"),
    ("a chef hands a plate of soup to a waiter", "a chef grabs a plate of soup from a waiter",
     "action", "hands ... to", "grabs ... from"),
    # verbs the small tagger calls nouns, and adjectives before their preposition
    ("two horses stand in a field", "two horses gallop through a field", "movement", "stand in", "gallop through"),
    ("a woman balances on a wall", "a woman jumps off a wall", "movement", "balances on", "jumps off"),
    ("a basket filled with apples", "a basket empty of apples", "state", "filled with", "empty of"),
    ("a man bent over on the dock", "a man standing up on the dock", "state", "bent over", "standing up"),
    ("a dog sitting by a bike", "a dog lying on a bike", "state", "sitting by", "lying on"),
    # an object named with a possessive replaced by another object
    ("a girl eating soup with her fingers", "a girl eating soup with a spoon", "category", "her fingers", "spoon"),
])
def test_one_edit_the_word_diff_splits_is_read_whole(orig, rw, typ, frm, to):
    v = validate(orig, rw)
    assert v.ok and v.edit.type == typ, v
    if frm is not None:
        assert (v.edit.from_, v.edit.to) == (frm, to), v


@pytest.mark.parametrize("orig,rw", [
    ("a horse near the barn and a dog", "a house near the barn and a cat"),     # two known words: no slip
    ("a black cat on a chair", "a white cat on a chain"),                       # a known word: no slip
    ("a girl holding a cat by the tail", "a girl dropping a dog from the tail"),  # the object changes too
    ("a cup of coffee on a table", "a cup of tea under a table"),
    ("a dog chasing a ball on the beach", "a dog carrying a ball across the beach"),  # the act and a path
    ("a boy walks a dog past the shop", "a boy carries a dog towards the shop"),
])
def test_two_changes_stay_two(orig, rw):
    v = validate(orig, rw)
    assert not v.ok and v.reason == "multi_edit", v


def test_a_participle_before_its_noun_is_a_local_attribute():
    v = validate("a stuffed bear on a bed", "a real bear on a bed")
    assert v.ok and (v.edit.type, v.edit.scope) == ("state", "local"), v


def test_a_refusal_keeps_the_edit_it_read():
    v = validate("a brown horse in a green field", "a green horse in a brown field")
    assert not v.ok and v.reason == "implausible_color" and v.edit.type == "swap", v


@pytest.mark.parametrize("orig,rw,typ", [
    ("a teddy bear sitting on the bed", "a teddy bear next to the bed", "position"),   # the verb is gone: a place
    ("a chef hands a plate of soup to a waiter", "a chef takes a plate of soup from a waiter", "action"),
    ("a stuffed animal lying on a chair", "a lamp lying on a chair", "category"),      # a noun phrase replaced
    ("a frying pan on the stove", "a kettle on the stove", "category"),               # not an act: a thing
    ("a man eating pizza at a table", "a man sleeping at a table", "action"),         # an act and its object
    ("a cat beside building blocks", "a cat beside a park bench", "category"),
    ("a man holding a frying pan", "a man holding a big mixing bowl", "category"),
])
def test_the_type_names_the_change(orig, rw, typ):
    v = validate(orig, rw)
    assert v.ok and v.edit.type == typ, v


@pytest.mark.parametrize("orig,rw", [
    ("a boy in the park", "a boy on the swings"),          # nouns after an article or a preposition stay nouns
    ("a man on skis", "a man with skates"),
    ("a man with his head down", "a man with his stands down"),
])
def test_verb_forms_that_are_nouns_here_are_not_relations(orig, rw):
    v = validate(orig, rw)
    assert not (v.ok and v.edit.type in ("action", "movement", "position", "state")), v


@pytest.mark.parametrize("orig,rw,typ,frm,to", [
    # an object or a place replaced with the preposition its noun takes: grammar moved it
    ("a sandwich on a plate beside a cup", "a sandwich in a bowl beside a cup", "category",
     "on a plate", "in a bowl"),
    ("a toddler asleep at the desk", "a toddler asleep on the rug", "position", "at the desk", "on the rug"),
    ("two men eating at a table", "two men eating on a blanket", "position", "at a table", "on a blanket"),
    ("a dog running in the park with a stick", "a dog running on the beach with a stick", "position",
     "in the park", "on the beach"),
    # the original's own slips, mended anywhere, are no edit
    ("hte dog is sleeping on a green couch", "the dog is sleeping on a red couch", "color", "green", "red"),
    ("a man sitting on s bench with a red kite", "a man sitting on a bench with a blue kite", "color", "red", "blue"),
    ("a boy standign near a brown horse", "a girl standing near a brown horse", "category", "boy", "girl"),
    # a person named only by pronouns turns to the other gender: one change, the pronouns agreeing
    ("she is walking her dog in the rain", "he is walking his dog in the rain", "category", "she", "he"),
    # a gerund with its object replaced by another act is an act, not a thing
    ("three kids throwing snowballs in a yard", "three kids sitting in a yard", "action", None, None),
])
def test_edits_with_grammar_or_slips_around_them_are_one(orig, rw, typ, frm, to):
    v = validate(orig, rw)
    assert v.ok and v.edit.type == typ, v
    if frm is not None:
        assert (v.edit.from_, v.edit.to) == (frm, to), v


@pytest.mark.parametrize("orig,rw,reason", [
    ("a man sitting on a bench in the park", "a man sitting by a fountain in the park", "multi_edit"),  # a new relation
    ("a cat on a blue chair", "a cat in a green basket", "multi_edit"),       # the object and its colour
    ("a cat asleep in a box", "a cat asleep on a bed", "multi_edit"),          # "in a bed" fits: "on" was chosen
    ("a boy on a boat with a red kite", "a boy in a boat with a blue kite", "multi_edit"),  # a real word, no slip
    ("a train on a red track", "a train on a blue truck", "multi_edit"),      # track is a word: no slip
    ("a tow truck next to a red car", "two trucks next to a blue car", "multi_edit"),
    ("a dog sitting in the park", "a dog sitting on a bench", "multi_edit"),  # the bench may stand in the park
    ("kids playing on the grass", "kids playing in the yard", "multi_edit"),  # the yard has grass
    ("a dog in front of a store", "a dog on top of a bench", "multi_edit"),   # a relation and its object
    ("a cat in a suitcase", "a cat on the couch", "multi_edit"),              # the suitcase may lie on it
    ("a dog sleeping on a rug", "a dog sleeping at a table", "multi_edit"),   # "on a table" fits: "at" was chosen
    ("a family eating at a picnic table", "a family eating on a bench", "multi_edit"),  # one sits on it, at the table
    ("a camel walking on the sand", "a camel walking in the desert", "multi_edit"),   # a desert is sand
    ("a boat in the water", "a boat on a dock", "multi_edit"),                # a dock stands in the water
    ("a ballerina lifts her leg as she dances", "a ballerina lifts his leg as he dances", "ambiguous_pronoun"),
    ("a sandwich in a box on a desk", "a sandwich on a box on a desk", None),  # "on" fits a box: a place change
    ("apples in a basket", "apples on a shelf", "multi_edit"),               # a basket may stand on the shelf
    ("a girl and her puppy while she naps", "a girl and his puppy while he naps", "ambiguous_pronoun"),
    ("a boy talks to his mother while she cooks", "a boy talks to his mother while he cooks", "ambiguous_pronoun"),
    ("a puppy chasing its tail as she plays", "a puppy chasing its tail as he plays", "ambiguous_pronoun"),
    ("she is sitting in a bikini on the sand", "he is sitting in a bikini on the sand", "ambiguous_pronoun"),
    ("a woman holding her bag", "a woman holding his bag", "untyped_edit"),   # whose bag: nothing a photo shows
    ("a cat sitting on a mat", "a bat sitting on a mat", None),               # a known word is no slip
])
def test_grammar_and_slips_hide_no_second_change(orig, rw, reason):
    v = validate(orig, rw)
    if reason is None:                        # one edit, but not read through the new rules
        assert v.ok and v.edit.from_ != v.edit.to and " " not in v.edit.from_, v
    else:
        assert not v.ok and v.reason == reason, v


def test_a_dative_turned_round_is_still_a_swap():
    v = validate("a girl handing a man a cup of tea", "a man handing a cup of tea to a girl")
    assert v.ok and v.edit.type == "swap", v
    v = validate("a man giving his dog a bath", "a man giving a bath to his dog")   # the same act, reworded
    assert not v.ok, v


@pytest.mark.parametrize("orig,rw,ok", [
    # an act named after its doer follows the doer when two doers trade places: still one swap
    ("a rower paddles past as a swimmer swims nearby", "a swimmer paddles past as a rower rows nearby", True),
    ("a swimmer floats by the pier as a sailboat sails out", "a sailboat floats by the pier as a swimmer swims out", True),
    # the acts alone trade places (the doers keep theirs): the binding of act to doer changes
    ("a surfer surfs while a sailboat sails", "a surfer sails while a sailboat surfs", True),
    # a different act beside the swap is a second change
    ("a surfer rides a wave as a sailboat sails by", "a sailboat rides a wave as a surfer paddles by", False),
    ("a man rides a horse as a boy walks by", "a boy rides a horse as a man runs by", False),
])
def test_an_act_named_after_its_doer_moves_with_it_in_a_swap(orig, rw, ok):
    v = validate(orig, rw)
    assert v.ok == ok and (not ok or v.edit.type == "swap"), v
