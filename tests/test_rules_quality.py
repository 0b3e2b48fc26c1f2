"""The rules backend does not write the failures a blind read of its COCO rewrites found (issue
#27 item 1): one caption of each kind, written for cfgen, with every rewrite the backend can
make (K = 20) checked."""
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from cfgen.captions import validate
from cfgen.captions.rules import RulesBackend


def rewrites(caption: str, seeds=range(4)) -> list[str]:
    """Every rewrite the backend makes of `caption` under a few seeds (choices are drawn per seed)."""
    return list(dict.fromkeys(c["text"] for seed in seeds
                              for c in RulesBackend(k=20, seed=seed).generate([caption], ["x"])[0].candidates))


@pytest.mark.parametrize("caption,never,some", [
    # a count lands on the head noun, not on a modifier or a framing noun
    ("A stone garden bench under an oak tree.", ["stones", "gardens bench", "two garden bench "],
     ["garden benches"]),
    ("A zoomed in close up of a cupcake.", ["closes", "close ups", "two zoomed"], []),
    ("A lime green bus parked on a street.", ["limes"], []),
    # the whole clause agrees with the new count: verbs, and no count over a shared determiner
    ("A truck travels along a country road.", ["trucks travels"], ["trucks travel "]),
    ("A woman who carries a basket walks home.", ["women who carries", "women who carry a basket walks"],
     ["women who carry a basket walk "]),
    ("A father and son fishing from a pier.", ["fathers and son"], []),
    ("Three ducks swimming together in a pond.", ["one duck", "a duck swimming together"], []),
    ("Two giraffes standing together near a fence.", ["one giraffe", "a giraffe standing together"], []),
    # verb changes are acts on the same object, typed `action`, and make sense with it
    ("A girl holding a slice of cake at a party.", ["dropping a slice"], []),
    # relations only where the scene allows them
    ("A helicopter hovering over a pickup truck.", ["under a pickup"], []),
    ("A man napping on a sofa in the afternoon.", ["under a sofa"], []),
    ("A woman peering into a microwave.", ["out of a microwave"], []),
    ("A bird perched on a wire.", ["under a wire"], []),
    # a category change keeps the rest of the caption true
    ("A bearded man playing a guitar on stage.", ["woman", "girl", "boy"], []),
    ("An elephant spraying water with its trunk.", ["giraffe", "zebra", "bear"], []),
    ("A black bear climbing a tree.", ["black elephant", "black giraffe", "black zebra"], []),
    ("A brown giraffe eating leaves.", ["black giraffe", "white giraffe", "gray giraffe"], []),
    ("A sofa with two dogs and a cat asleep on it.", ["and a dog", "two cats and"], []),
    ("A lamb beside another sheep in a barn.", ["another goats", "a goats"], []),
    # antonyms that contradict the context, extreme sizes for big things
    ("A man reaching into an open fridge.", ["closed fridge"], []),
    ("A little compact car parked by a curb.", ["big compact", "large compact", "huge compact"], []),
    ("A big truck on a highway.", ["tiny truck"], ["small truck"]),
    ("A large bus parked by the curb.", ["tiny bus"], ["small bus"]),
    # near-synonyms change nothing a photo shows
    ("A laptop on a wooden desk.", ["wooden table"], []),
    ("A slice of pizza on a paper plate.", ["slice of pie", "paper pie"], []),
    # blind read of #27, round 2 (one written case per kind):
    # 1. a count that would share one small thing: a seat for one, a bun, one look
    ("A girl perched on a stool by the window.", ["two girls", "three girls", "four girls"], []),
    ("A woman with a puzzled expression holding a phone.", ["women", "three"], []),
    ("A stove and a kettle in a small kitchen.", ["two stoves", "three stoves", "four stoves"], []),
    # 2. a swap the rest of the caption does not fit: candles, a surfer's board, a compound
    ("A birthday cake with lit candles on a table.", ["pizza with", "sandwich with", "burger with", "salad with",
                                                      "donut with", "pie with"], []),
    ("A surfer paddling out on his surfboard.", ["kayak"], []),
    ("A corn dog on a stick at the fair.", ["corn cat"], []),
    # 3. a narrower or near-same kind changes nothing a photo shows
    ("A person flying a kite on a beach.", ["child"], []),
    ("A red boat on a calm lake.", ["canoe"], []),
    ("A cup of coffee next to a laptop.", ["glass of coffee"], []),
    # 4. relations of a place, a pronoun, or that leave the photo
    ("A fire hydrant next to the street.", ["far from", "behind the street", "in front of the street"], []),
    ("A girl standing near the kitchen.", ["far from", "in front of the kitchen", "behind the kitchen"], []),
    ("A jet with a trail of smoke behind it.", ["in front of it", "next to it"], []),
    # 5. agreement after a count: pronouns, "side by side", a verb the parse lost
    ("A horse flicks his tail in the barn.", ["horses flick his", "horses flick their tail "],
     ["horses flick their tails "]),
    ("Three puppies sleeping side by side on a blanket.", ["one puppy", "a puppy"], []),
    ("A man in blue sits on a park bench.", ["men in blue sits"], []),
    ("Three hikers on a snowy trail, two skiing, one walking.", ["four hikers", "two hikers on"], []),
    ("A dog rests its paw on a ball.", ["dogs rest their paw "], []),
    # 6. attributes the thing cannot have: a polar bear's colour, a giraffe's neck, a pose, an age
    ("A white polar bear resting on the ice.", ["brown polar", "black polar", "gray polar"], []),
    ("A giraffe stretching its long neck.", ["short neck"], []),
    ("A man sitting on a toilet reading a newspaper.", ["lying on a toilet", "standing on a toilet"], []),
    ("An old man feeding pigeons in a park.", ["young man"], []),
    ("Birds resting on a mud flat at low tide.", ["round", "square"], []),
    # blind read of #27, round 2 (cases written for cfgen, one per kind):
    # 7. more of a thing than the one thing beside it, or the one act, allows
    ("A plane docked at the gate.", ["three planes", "four planes"], []),
    ("A woman handing a boy a kite.", ["two women", "three women", "four women"], []),
    ("A player is running to catch the ball.", ["two players", "three players"], []),
    ("Two kids flying kites on a hill.", ["one kid", "a kid flying"], []),
    ("A soccer player in blue jersey on the grass.", ["players in blue jersey"], []),
    ("A boy doing a jump with his bike.", ["their bike"], []),
    # 8. a person, an animal or an object the rest of the caption does not fit
    ("A man drinking beer at a pub.", ["boy", "girl"], []),
    ("A fluffy sheep in a pen.", ["fluffy goat"], []),
    ("A girl flies a kite in the park.", ["flies a balloon"], []),
    ("A zebra beside a giraffe at the zoo.", ["bear"], []),
    ("A plane docked at the gate.", ["helicopter"], []),
    # 9. an act a photo cannot tell apart, or that the rest contradicts
    ("A man holding his phone on a bus.", ["using his phone"], []),
    ("A man holding wine glasses.", ["wearing"], []),
    ("A batter holding a bat, ready for the pitch.", ["swinging"], []),
    # 10. motions and poses the place does not allow
    ("A van parked on the side of the road.", ["driving on the side", "moving on the side"], []),
    ("A boy standing up on a chair.", ["walking up", "running up"], []),
    ("Cows grazing in a meadow.", ["lying"], []),
    ("A man standing over a sink.", ["sitting over", "walking over", "lying over"], []),
    # 11. relations and sides with no room, no inside, no other end; no relation said twice
    ("A dog lying on a sofa.", ["under a sofa"], []),
    ("A squirrel at the top of a tree.", ["bottom of a tree"], []),
    ("A bench outside of a parking lot.", ["inside of"], []),
    ("A cat asleep on a chair next to a lamp.", ["next to a chair next to"], []),
    # 12. a state its own caption contradicts, a size beside its own contrast, a compound colour
    ("An open fridge with bottles inside.", ["closed fridge"], []),
    ("A big and over-sized pillow on a bed.", ["small and over"], []),
    ("A navy blue car on the street.", [f"navy {c}" for c in ("red", "green", "white", "black", "yellow", "gray",
                                                              "brown", "orange", "pink", "purple")], []),
    # blind read of #27, round 3 (cases written for cfgen, one per kind):
    # 13. a shape a thing never has, or always has ("a flat screen" is a kind of screen)
    ("A flat screen monitor on a desk.", [f"{x} screen" for x in ("round", "square", "triangular", "oval",
                                                                   "circular", "rectangular")], []),
    # 14. more people than one held thing, one act, a worn thing or a reciprocal act allows
    ("A woman holding a game controller in a living room.", ["two women", "three women"], []),
    ("A boy about to kick a ball.", ["two boys", "three boys"], []),
    ("A man with a cane crossing the street.", ["two men", "three men"], []),
    ("Two tennis players shaking hands at the net.", ["three tennis players"], []),
    ("Two people hugging on a beach.", ["a person hugging", "one person hugging", "three people"], []),
    ("Two horses, one running toward the fence, one grazing.", ["a horse,", "one horse,", "three horses"], []),
    ("There is a clock right outside of the tall tower.", ["there is two"], ["there are two clocks"]),
    # 15. a quoted name is not the scene
    ('A booth at a fair called "Cat In The Hat"', ['"dog in', "helmet"], []),
    # 16. relations one photo cannot tell apart, or that leave the seat, the meal or the vehicle
    ("A bike next to a tree.", ["in front of a tree", "behind a tree"], []),
    ("A dog beside a chair.", ["behind a chair", "in front of a chair"], []),
    ("A woman sitting quietly on a bench.", ["next to a bench"], []),
    ("Giraffes feeding on a tree.", ["next to a tree"], []),
    ("Passengers ride in a train through the hills.", ["next to a train"], []),
    # 17. a parked vehicle moves only on a road
    ("A truck parked in a field.", ["driving", "moving"], []),
    # 18. a kind the rest of the caption rules out: the mother of a young one, a garment taken off, a mount
    ("A lamb nursing from a sheep.", ["goat"], []),
    ("A man with his jacket off.", ["sweater off", "shirt off"], []),
    ("Men riding horses in a river.", ["riding cows", "riding sheep", "riding goats"], []),
    # 19. a colour shared by two things, a colour a photo shows the same, a size against its own contrast
    ("Black chairs and tables on a patio.", [f"{c} chairs and tables" for c in ("red", "blue", "green", "white", "yellow", "gray", "brown", "orange", "pink", "purple")], []),
    ("A white horse in a stable.", ["gray horse", "grey horse"], []),
    ("A large bear standing near a baby bear.", ["small bear standing"], []),
    # 20. a state its own caption contradicts, a garment's name, a person's age
    ("A cluttered desk filled with papers.", ["tidy desk"], []),
    ("A surfer in a wet suit.", ["dry suit"], []),
    ("A groom kissing his new bride.", ["old bride"], []),
    # 21. an act that only generalises the original; a name's capital on an ordinary word
    ("A boy eating an apple.", ["holding an apple"], []),
    # blind read of #27, round 4 (cases written for cfgen, one per kind):
    # 22. a dish or a seat the rest of the caption does not fit; an idiom, a place named for people
    ("A sandwich on toasted bread with chips.", ["pizza on toasted", "cake on toasted", "salad on toasted"], []),
    ("A wooden bench in a grassy park.", ["stool"], []),
    ("A cat lying on top of a bathroom sink.", ["dog lying", "puppy lying"], []),
    ("A small room with two made up beds.", ["made up sofas", "made up couches"], []),
    ("People racing on horses at a track.", ["on cows", "on sheep"], []),
    ("A microwave with a cup inside it.", ["toaster with a cup"], []),
    ("A puppy curled into a ball on the rug.", ["into a frisbee"], []),
    ("A gym for women on a busy street.", ["for men", "for girls"], []),
    # 23. a material that only generalises, or that the thing is never made of
    ("A steel pot on the stove.", ["metal pot", "wooden pot", "plastic pot"], []),
    # 24. relations that leave a bed, or put a person behind a fridge
    ("A dog sleeping on a bed with a toy.", ["next to a bed"], []),
    ("A woman kneeling in front of a stove.", ["behind a stove"], []),
    # 25. counts against one target, one name, and agreement of a count down
    ("A batter swinging at a pitch.", ["two batters", "three batters"], []),
    ("Two street signs are sitting on the pole.", ["a street sign are", "one street sign are"], []),
    ("A road sign labeled main street.", ["two road signs", "three road signs"], []),
    # 26. sizes that are part of the thing or of its kind; a pose a sport rules out; synonyms traded
    ("An extra long bus on a city street.", ["extra short"], []),
    ("A small puppy on a couch.", ["big puppy", "large puppy"], []),
    ("Kids standing on a field playing soccer.", ["sitting on a field"], []),
    ("A large glass vase near a big window.", ["big glass vase near a large window"], []),
    ("A man watching a woman cutting a cake.", ["eating a cake"], []),
    # blind read of #27, round 5 (cases written for cfgen, one per kind):
    # 27. a possessor, a number said by "some", a pronoun of the old sex
    ("A girl's bike leaning on a wall.", ["boy's bike", "woman's bike"], []),
    ("Three horse's heads over a fence.", ["cows's", "donkeys's"], []),
    ("some brown sheep in a field", ["some brown goat "], []),
    ("Two girls on a bench, one holding her phone.", ["two boys", "two men"], []),
    # 28. a kind the room, the occasion, the sport, the food or the rider rules out
    ("A living room with a couch and a chair.", ["with a bed"], []),
    ("A man standing at a podium giving a speech.", ["a boy standing", "sitting at a podium"], []),
    ("A spotty banana on a counter.", ["spotty apple", "spotty orange", "spotty lemon", "spotty pear"], []),
    ("A rider takes their horse over a jump.", ["cow", "two riders", "three riders"], []),
    ("A boy standing at home plate swinging a bat.", ["racket", "sitting at home"], []),
    ("A piece of broccoli on a fork.", ["on a knife"], []),
    # 29. a colour a sign keeps; a material word's prefix
    ("A yellow sign warning of deer.", ["blue sign", "red sign", "black sign", "green sign", "white sign"], []),
    ("A wrought iron bench in a garden.", ["wrought wooden", "wrought stone", "wrought plastic"], []),
    # 30. motions, acts and relations the words around them rule out
    ("Cows walking away from a barn.", ["standing away"], []),
    ("A dog is walking right across a street.", ["standing right across"], []),
    ("A boy holding up a kite on a hill.", ["flying up"], []),
    ("A cat sitting on the back of a chair.", ["front of a chair"], []),
    ("Apples hanging on the tree.", ["under the tree"], []),
    ("A woman looking in the oven.", ["next to the oven"], []),
    ("A girl outside of a house near a parked car.", ["inside of a house"], []),
    # 31. counts of sides, of a thing an "it" refers to, of a conversation
    ("A large three sided clock on a building.", ["clocks"], []),
    ("A plane flying as the sun sets behind it.", ["two planes", "three planes"], []),
    ("Two men having a conversation on a bench.", ["a man having", "one man having"], []),
    # 32. sizes a tower or a collection keeps; room states that go together
    ("A very tall tower over the city.", ["very short tower"], []),
    ("A thick collection of books on a shelf.", ["thin collection"], []),
    ("A busy kitchen that is messy and cluttered.", ["tidy", "empty kitchen"], []),
    # blind read of #27, round 6 (cases written for cfgen, one per kind):
    # 33. acts a scene rules out: watching a game nobody plays, carrying a board on a wave
    ("A boy playing a video game on a big tv.", ["watching a video game"], []),
    ("A surfer riding a surfboard on a big wave.", ["carrying a surfboard"], []),
    # 34. kinds a part, a lap, a game, a river, a cover or a pitch rules out
    ("A cow with horns near a fence.", ["horse with horns", "donkey with horns"], []),
    ("A dog jumping to catch a frisbee.", ["cat jumping", "standing to catch"], []),
    ("An elephant emerging from a river near people.", ["zebra emerging", "giraffe emerging"], []),
    ("A man asleep with a blanket covering him.", ["pillow covering"], []),
    ("A man is swinging a bat as a ball is pitched.", ["racket", "frisbee is pitched"], []),
    ("A bus parked in a grass field.", ["tram"], []),
    ("A cat sitting in a little chair.", ["little bench", "little stool"], []),
    ("A bathroom with a hot tub and a sink.", ["bathtub"], []),
    # 35. people: a child beside a child, a child getting married, a plural after "a"
    ("A woman and a child feeding ducks.", ["a girl and a child", "a boy and a child"], []),
    ("A man and a woman getting married in a church.", ["a boy and", "and a girl"], []),
    ("A men who is riding a horse.", ["a women who", "a boys who"], []),
    # 36. colours a fixture is not, motion on skis, the back of "it", shapes that are one shape
    ("A white sink in a small bathroom.", [f"{c} sink" for c in ("orange", "red", "green", "blue", "yellow",
                                                                  "purple", "pink", "brown")], []),
    ("A woman walking in the snow on skis.", ["running in the snow"], []),
    ("A tower with a clock on the front of it.", ["back of it"], []),
    ("Two birds on a curved branch.", ["oval branch", "circular branch", "round branch"], []),
    ("A square mirror on a wall.", ["rectangular mirror"], []),
    # 37. counts: a thing in one hand, riders on one horse, a phone, fridges
    ("A woman riding on the back of a horse.", ["two women", "three women"], []),
    ("A woman talking on a cellphone on a bus.", ["two women", "three women"], []),
    ("A refrigerator with a few bottles inside.", ["three refrigerators", "four refrigerators"], []),
    # 38. round 8: a contraction a count cannot inflect, colours of hydrants and big vehicles, metal
    # structures and cabinets, kinds the scene rules out, a kind that only generalises, stuff counted,
    # walking while doing something still, the other end of a wave, a size another word already gives,
    # tidy beside unmade, two riders on one board
    ("A cat that's been sleeping on a rug.", ["that' ", "cats that"], []),
    ("A red and white fire hydrant by a road.", ["pink", "purple", "brown"], []),
    ("A blue train pulling into a station.", ["pink train", "purple train"], ["red train"]),
    ("A steel bridge over a river.", ["brick bridge", "stone bridge", "concrete bridge"], []),
    ("A kitchen with wooden cabinets and a stove.", ["plastic cabinets"], ["metal cabinets"]),
    ("A dog that is playing in the water.", ["cat that", "cats that"], []),
    ("An elephant with a seat on its back.", ["giraffe with", "zebra with"], []),
    ("A pizza topped with broccoli and cheese.", ["with carrots"], []),
    ("A sandwich on a plate next to a cup.", ["burger"], []),
    ("Two fish on a plate with lemon.", ["meat"], []),
    ("Three women standing around a table eating cake.", ["walking"], []),
    ("A surfer on the top of a wave.", ["bottom of a wave"], []),
    ("A big burly bear in the grass.", ["small burly", "little burly"], []),
    ("A messy, unmade bed in a room.", ["tidy", "clean,"], []),
    ("A man on a skateboard riding past a shop.", ["two men", "three men", "four men"], []),
    # 39. round 9: the one colour of a black and white photo, a pronoun after another animal, a held
    # thing the parse hangs elsewhere, riders of many animals, one pitch, a decorated cake, poses
    # grazing and all fours rule out, weather of a lens, the back of what one faces, "other large",
    # talking on a phone, a cat's sill, a dog's hydrant, standing to pee
    ("A black and white photo where only the red umbrella is in color.", ["blue umbrella", "green umbrella",
                                                                          "yellow umbrella"], []),
    ("a woman standing next to an elephant with her trunk up", ["their trunks", "his trunk"], []),
    ("A boy standing on top of a baseball field holding a bat.", ["two boys", "three boys"], []),
    ("Two women riding on the back of horses on a beach.", ["a woman riding", "one woman riding"], []),
    ("A batter getting ready for the pitch at home plate.", ["two batters", "three batters"], []),
    ("A lavishly decorated cake on a stand.", ["pie"], []),
    ("Some zebras standing and grazing on a hill.", ["lying and grazing", "sitting and grazing", "giraffes"], []),
    ("A dog standing on all fours on a rug.", ["sitting on all fours", "lying on all fours"], []),
    ("A photo taken through a rainy window.", ["sunny window", "cloudy window"], []),
    ("A man standing in front of a toilet in a small bathroom.", ["behind a toilet"], []),
    ("Lions and other large animals in a park.", ["other small animals"], []),
    ("A man talking on the phone at a desk.", ["on the remote"], []),
    ("A cat sitting on a window sill.", ["dog sitting"], []),
    ("A dog sniffing a fire hydrant on a street.", ["cat sniffing"], []),
    ("A man standing at a urinal peeing.", ["sitting at a urinal"], []),
    # 40. round 10: things one does with a phone, a dog's hat, a board's surfer, a bridal dress, "in
    # a couch", the front of what is ridden, the brush of the bush, a see-through bag, poised,
    # two poses side by side, "cross country", one track, one cat under another, a jammed street,
    # many trains in a busy station, a pile of old things, a hat held while snowboarding
    ("A man taking a photo of a bridge with his phone.", ["remote"], []),
    ("A dog wearing a hat on a porch.", ["helmet"], []),
    ("A surfer on a blue board riding a wave.", ["swimmer"], []),
    ("A girl and a woman in a bridal gown.", [" a man in a bridal", " a boy in a bridal"], []),
    ("A cat sleeping in a bed with a pillow.", ["in a couch", "in a sofa"], []),
    ("Two boys riding on the back of bicycles.", ["front of"], []),
    ("A deer standing in the green brush.", ["red brush", "blue brush", "pink brush"], []),
    ("A close up of an apple in a plastic bag.", ["denim bag", "woolen bag"], []),
    ("A woman stands poised with a tennis racket.", ["walks poised", "sits poised"], []),
    ("Some people standing and sitting on a porch.", ["walking and sitting", "standing and lying"], []),
    ("Two people cross country skiing on a trail.", ["crosses country"], []),
    ("A freight train sitting on a railroad track.", ["two freight trains", "three freight trains"], []),
    ("A gray cat lying on a black cat on a rug.", ["two gray cats", "three gray cats"], []),
    ("Bicycles are jammed into a small alley.", ["large alley", "big alley"], []),
    ("Many buses in a busy bus station.", ["empty bus station"], []),
    ("A woman next to a pile of old refrigerators.", ["pile of new"], []),
    ("A man wearing a black hat and coat skiing down a hill.", ["holding a black hat"], []),
])
def test_rules_backend_avoids_the_failure_kinds(caption, never, some):
    texts = rewrites(caption)
    low = [t.lower() for t in texts]
    for bad in never:
        assert not any(bad.lower() in t for t in low), (bad, texts)
    for good in some:
        assert any(good.lower() in t for t in low), (good, texts)


def test_verb_changes_are_typed_action_and_keep_the_object():
    caption = "A boy holding a frisbee in a park."
    texts = rewrites(caption)
    verbs = [validate(caption, t).edit for t in texts if validate(caption, t).edit.from_ == "holding"]
    assert verbs and {e.type for e in verbs} == {"action"}, texts
    assert {e.to for e in verbs} <= {"throwing", "catching"}, verbs


def test_a_capital_inside_a_caption_is_not_given_to_the_new_word():
    """Round 3 of the blind read: "a Frisbee" (a brand's capital) became "a Ball"."""
    texts = [t for t in rewrites("Kids playing with a Frisbee in the park.") if "Frisbee" not in t]
    assert texts and not any("Ball" in t or "Disc" in t for t in texts), texts


def test_a_motion_verb_with_an_object_is_an_action():
    """Round 4 of the blind read: "holding a kite" -> "flying a kite" was typed movement."""
    assert validate("A boy holding a kite on the beach.", "A boy flying a kite on the beach.").edit.type == "action"
    assert validate("A boy walking on the beach.", "A boy running on the beach.").edit.type == "movement"
    # round 6: "into" -> "out of" after a motion is a direction of motion, not a place
    assert validate("A boat sailing into a tunnel.", "A boat sailing out of a tunnel.").edit.type == "movement"


def test_all_caps_captions_get_all_caps_rewrites():
    texts = rewrites("TWO DOGS PLAYING WITH A RED BALL ON THE BEACH")
    assert texts and all(t == t.upper() for t in texts), texts


def test_variety_within_each_type():
    """No single change dominates its type. Before #27 a blind read found a third of category edits
    man <-> woman, three quarters of counts "a -> two/three", half of relations "next to -> far
    from" (on these captions the pre-#27 backend wrote "a -> two/three" in 83% of its counts)."""
    from tests.test_captions import PHOTO_CAPTIONS
    caps = PHOTO_CAPTIONS + [line for line in (Path(__file__).parent / "data" / "photo_captions.txt")
                             .read_text().splitlines() if line.strip() and not line.startswith("#")]
    by_type: dict[str, Counter] = defaultdict(Counter)
    for cap, g in zip(caps, RulesBackend(k=4, seed=0).generate(caps, [str(i) for i in range(len(caps))])):
        for c in g.candidates:
            e = validate(cap, c["text"]).edit
            by_type[e.type][(e.from_, e.to)] += 1
    share = {t: {p: v / sum(c.values()) for p, v in c.items()} for t, c in by_type.items()}
    assert share["category"].get(("man", "woman"), 0) + share["category"].get(("woman", "man"), 0) <= .2
    # counts: since the second blind read, three or four of a thing appear only where nothing else in the
    # scene is one of a kind ("four trains on a track" was judged implausible), so "a -> two" is now most
    # counts (69% of a/an -> two/three, 56% a -> two on these captions); the bound says it stays well below
    # the 83% before #27 and that counts of numbers ("two -> three", "three -> two") remain
    assert sum(v for (f, t), v in share["quantity"].items() if f in ("a", "an") and t in ("two", "three")) <= .75
    assert sum(v for (f, t), v in share["quantity"].items() if f not in ("a", "an")) >= .15
    assert share["position"].get(("next to", "far from"), 0) <= .2
    # relations: since the third blind read "next to" <-> "in front of" / "behind" / "beside" is out (one photo
    # often shows both), so relations are fewer (5 on these captions); no single one may dominate
    for typ, least in (("category", 10), ("quantity", 10), ("position", 5)):
        most = .6 if typ == "quantity" else .5
        assert sum(by_type[typ].values()) >= least and max(share[typ].values()) <= most, (typ, by_type[typ].most_common(3))


@pytest.mark.parametrize("caption,some", [
    # kinds of edit the rules make since session 11 (each missing before): one colour of a two-tone
    # scheme, a colour beside a noun with its own article, a thing under a participle or after a
    # collective's "of" or "close up of", containers before "of", a count at a table or on a couch,
    # plural present verbs, standing on open ground turned to walking, more materials and plurals
    ("A red and white bus on a street.", ["blue and white bus"]),
    ("A white toilet and a sink in a bathroom.", ["black toilet"]),
    ("A decorated truck parked on a street.", ["decorated van"]),
    ("A herd of zebra in a field.", ["herd of giraffes"]),
    ("A close up of a dog on a rug.", ["close up of a cat"]),
    ("Two plates of food on a table.", ["bowls of food"]),
    ("A woman standing at a table in a kitchen.", ["two women standing at a table"]),
    ("Two people sitting on a couch.", ["three people sitting on a couch"]),
    ("Two cows stand in a field.", ["cows walk in a field"]),
    ("A giraffe standing in a field.", ["giraffe walking in a field"]),
    ("A dog on a wooden surface.", ["metal surface"]),
    ("Three surfboards on the sand.", ["kayaks"]),
])
def test_rules_backend_makes_the_wider_edits(caption, some):
    low = [t.lower() for t in rewrites(caption)]
    for good in some:
        assert any(good in t for t in low), (good, low)
