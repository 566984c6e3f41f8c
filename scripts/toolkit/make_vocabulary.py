#!/usr/bin/env python3
"""Build models/toolkit/vocabulary.json for Glimpse's "toolkit" backend.

The toolkit backend runs a COCO-80 detector and an ImageNet-1k classifier.
Prompts name things in everyday words ("the dogs", "animals", "a puppy",
"kitchen items"), so every class gets two word lists:

  terms      the class's own names: its label, the lemma names of its WordNet
             noun synset, hand-added everyday synonyms (COCO only, plus a few
             that propagate, see SYNSET_SYNONYMS), and their plurals;
  hypernyms  the lemma names of all WordNet ancestors (hypernyms and instance
             hypernyms, transitively) minus an over-general stop list, plus
             hand-written category words (CATEGORIES), and their plurals.
             Strings already in "terms" are not repeated here.

Inputs:  models/toolkit/coco.names     80 labels, detector index order
         models/toolkit/imagenet.tsv   1000 "wnid<TAB>name", classifier order
         WordNet 3.0 database (Debian package wordnet-base), default
         /usr/share/wordnet; override with --wordnet DIR or $WNHOME/dict.
Output:  models/toolkit/vocabulary.json

    {"coco": [{"name", "terms", "hypernyms"}, ... 80 in index order],
     "imagenet": [{"wnid", "name", "terms", "hypernyms"}, ... 1000]}

All strings are lowercase ASCII; every list is sorted and de-duplicated.
The WordNet files are parsed directly (no nltk needed).  Synsets are named
the nltk way: "<first lemma>.n.<sense number of that lemma>", with sense
numbers taken from the order of offsets in index.noun.

Run from the repository root:  python3 scripts/toolkit/make_vocabulary.py
The script is deterministic; re-running it reproduces the same file.  It
prints each COCO class's synset and gloss (to check the hand choices) and a
few sanity checks at the end.
"""

import argparse
import json
import os
import sys
import unicodedata
from collections import Counter

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL_DIR = os.path.join(REPO, "models", "toolkit")

# ---------------------------------------------------------------------------
# Hand-chosen WordNet synset for every COCO class (keyed by the canonical
# COCO name).  Each choice was checked against the gloss, which the script
# prints.
COCO_SYNSETS = {
    "person": "person.n.01",
    "bicycle": "bicycle.n.01",
    "car": "car.n.01",
    "motorcycle": "motorcycle.n.01",
    "airplane": "airplane.n.01",
    "bus": "bus.n.01",
    "train": "train.n.01",
    "truck": "truck.n.01",
    "boat": "boat.n.01",
    "traffic light": "traffic_light.n.01",
    "fire hydrant": "fireplug.n.01",
    "stop sign": "street_sign.n.01",        # WordNet has no "stop sign"
    "parking meter": "parking_meter.n.01",
    "bench": "bench.n.01",
    "bird": "bird.n.01",
    "cat": "domestic_cat.n.01",              # cat.n.01 is any feline
    "dog": "dog.n.01",
    "horse": "horse.n.01",
    "sheep": "sheep.n.01",
    "cow": "cattle.n.01",                    # cow.n.01 is "female of domestic cattle"
    "elephant": "elephant.n.01",
    "bear": "bear.n.01",
    "zebra": "zebra.n.01",
    "giraffe": "giraffe.n.01",
    "backpack": "backpack.n.01",
    "umbrella": "umbrella.n.01",
    "handbag": "bag.n.04",                   # bag, handbag, pocketbook, purse
    "tie": "necktie.n.01",
    "suitcase": "bag.n.06",                  # traveling bag, suitcase
    "frisbee": "frisbee.n.01",
    "skis": "ski.n.01",
    "snowboard": "snowboard.n.01",
    "sports ball": "ball.n.01",
    "kite": "kite.n.03",                     # the toy, not the hawk (ImageNet has that)
    "baseball bat": "baseball_bat.n.01",
    "baseball glove": "baseball_glove.n.01",
    "skateboard": "skateboard.n.01",
    "surfboard": "surfboard.n.01",
    "tennis racket": "tennis_racket.n.01",
    "bottle": "bottle.n.01",
    "wine glass": "wineglass.n.01",
    "cup": "cup.n.01",
    "fork": "fork.n.01",
    "knife": "knife.n.01",
    "spoon": "spoon.n.01",
    "bowl": "bowl.n.03",                     # the tableware dish (bowl.n.01 is any vessel)
    "banana": "banana.n.02",
    "apple": "apple.n.01",
    "sandwich": "sandwich.n.01",
    "orange": "orange.n.01",
    "broccoli": "broccoli.n.02",             # the vegetable, not the plant
    "carrot": "carrot.n.03",                 # the vegetable, not the root/plant
    "hot dog": "hotdog.n.02",
    "pizza": "pizza.n.01",
    "donut": "doughnut.n.02",
    "cake": "cake.n.03",
    "chair": "chair.n.01",
    "couch": "sofa.n.01",
    "potted plant": "pot_plant.n.01",
    "bed": "bed.n.01",
    "dining table": "dining_table.n.01",
    "toilet": "toilet.n.02",                 # the fixture, not the room
    "tv": "television_receiver.n.01",
    "laptop": "laptop.n.01",
    "mouse": "mouse.n.04",                   # the computer mouse
    "remote": "remote_control.n.01",
    "keyboard": "computer_keyboard.n.01",
    "cell phone": "cellular_telephone.n.01",
    "microwave": "microwave.n.02",
    "oven": "oven.n.01",
    "toaster": "toaster.n.02",
    "sink": "sink.n.01",
    "refrigerator": "refrigerator.n.01",
    "book": "book.n.02",                     # the physical object
    "clock": "clock.n.01",
    "vase": "vase.n.01",
    "scissors": "scissors.n.01",
    "teddy bear": "teddy.n.01",
    "hair drier": "hand_blower.n.01",
    "toothbrush": "toothbrush.n.01",
}

# Some coco.names files (darknet / VOC style) spell a few labels differently.
# The label from the file stays the entry's "name"; the canonical COCO name is
# added to its terms.
COCO_LABEL_ALIASES = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
    "hair dryer": "hair drier",
}

# Everyday synonyms users write, for the COCO class only (not propagated).
COCO_SYNONYMS = {
    "person": ["people", "man", "woman", "child", "kid", "boy", "girl", "human",
               "human being", "pedestrian", "adult", "baby", "guy", "lady"],
    "bicycle": ["pushbike", "push bike"],
    "car": ["sedan", "suv", "taxi", "hatchback"],
    "motorcycle": ["motorbike", "moped", "motor bike"],
    "airplane": ["plane", "aeroplane", "aircraft", "jet", "airliner"],
    "bus": ["school bus"],
    "train": ["locomotive", "tram", "railway train"],
    "truck": ["lorry", "pickup truck"],
    "boat": ["ship", "sailboat", "yacht", "canoe", "kayak", "ferry"],
    "traffic light": ["stop light", "traffic lights"],
    "fire hydrant": ["hydrant"],
    "stop sign": ["sign", "road sign", "traffic sign"],
    "parking meter": ["meter"],
    "bench": ["park bench"],
    "cat": ["kitten", "kitty"],
    "dog": ["puppy", "pup", "doggy", "doggie"],
    "horse": ["pony", "foal", "stallion", "mare"],
    "sheep": ["lamb", "ram", "ewe"],
    "cow": ["cow", "bull", "calf", "ox"],
    "backpack": ["rucksack"],
    "umbrella": ["parasol"],
    "handbag": ["purse", "bag"],
    "tie": ["necktie", "bow tie"],
    "suitcase": ["luggage", "baggage"],
    "frisbee": ["flying disc"],
    "skis": ["ski"],
    "sports ball": ["ball", "soccer ball", "football", "basketball", "baseball",
                    "tennis ball", "volleyball"],
    "baseball bat": ["bat"],
    "baseball glove": ["glove", "mitt", "baseball mitt"],
    "tennis racket": ["racket", "racquet"],
    "bottle": ["water bottle"],
    "wine glass": ["wineglass", "glass"],
    "cup": ["mug", "teacup", "coffee cup"],
    "hot dog": ["hotdog", "frankfurter"],
    "donut": ["doughnut"],
    "cake": ["cupcake"],
    "chair": ["armchair"],
    "couch": ["sofa", "settee"],
    "potted plant": ["houseplant", "house plant", "flowerpot", "plant"],
    "dining table": ["table", "kitchen table"],
    "toilet": ["toilet bowl"],
    "tv": ["television", "monitor", "tv monitor", "screen"],
    "laptop": ["notebook computer", "computer"],
    "mouse": ["computer mouse"],
    "remote": ["remote control", "tv remote"],
    "keyboard": ["keyboard", "computer keyboard"],
    "cell phone": ["phone", "smartphone", "mobile phone", "mobile", "cellphone"],
    "microwave": ["microwave oven"],
    "oven": ["stove"],
    "sink": ["washbasin", "kitchen sink"],
    "refrigerator": ["fridge"],
    "book": ["novel"],
    "clock": ["wall clock"],
    "scissors": ["shears"],
    "teddy bear": ["teddy", "stuffed animal", "plush toy", "soft toy"],
    "hair drier": ["hair dryer", "hairdryer", "blow dryer"],
}

# Everyday words attached to a synset wherever it occurs: as the class's own
# synset they are terms, as an ancestor they are hypernyms (so "puppy"
# reaches every ImageNet dog breed, "people" every ImageNet person class).
SYNSET_SYNONYMS = {
    "person.n.01": ["people", "human", "human being"],
    "dog.n.01": ["puppy", "pup", "doggy", "doggie"],
    "domestic_cat.n.01": ["kitten", "kitty"],
}

# ---------------------------------------------------------------------------
# Stop list: ancestors whose lemma names are never emitted as hypernyms
# (the closure is still walked through them).  These are the top of the tree
# or abstract / grab-bag nodes that would match nearly everything, or whose
# lemmas are common non-object words in prompts ("good", "way", "set", ...).
STOP_SYNSETS = {
    # top of the noun tree
    "entity.n.01", "physical_entity.n.01", "abstraction.n.06",
    "object.n.01",            # object, physical object
    "whole.n.02",             # whole, unit
    "thing.n.12", "thing.n.08",
    "matter.n.03", "substance.n.01", "substance.n.07", "solid.n.01",
    "material.n.01",          # material, stuff
    "part.n.01", "part.n.02", "piece.n.01",
    "natural_object.n.01",
    "artifact.n.01",          # artifact, artefact
    "instrumentality.n.03",   # instrumentality, instrumentation
    "living_thing.n.01",      # living thing, animate thing
    "organism.n.01",          # organism, being
    "causal_agent.n.01",      # causal agent, cause, causal agency
    "agent.n.03",
    "group.n.01", "relation.n.01", "attribute.n.02", "measure.n.02",
    "psychological_feature.n.01", "communication.n.02",
    # commerce / production grab-bags
    "commodity.n.01",         # commodity, trade good, good
    "article.n.02", "creation.n.02", "product.n.02", "work.n.02",
    # abstract spatial / structural nodes with ambiguous lemmas
    "way.n.06", "passage.n.03", "system.n.01", "location.n.01",
    "point.n.02", "geographic_point.n.01", "area.n.05", "surface.n.01",
    "horizontal_surface.n.01", "shape.n.02", "round_shape.n.01",
    "circle.n.08", "design.n.04", "support.n.10", "support.n.07",
    "upright.n.01", "bar.n.03", "bar.n.08", "set.n.13", "workplace.n.01",
    "institution.n.02", "establishment.n.04", "medium.n.01", "press.n.02",
    "peer.n.01", "associate.n.01",
}

# Individual lemma names dropped from specific synsets because they are slang,
# far more often mean something else in a prompt, or clash with another class
# (e.g. "plant" of the industrial plant vs. the potted plant).
LEMMA_EXCLUDE = {
    "car.n.01": {"machine"},
    "bicycle.n.01": {"wheel"},
    "cellular_telephone.n.01": {"cell"},
    "baseball_bat.n.01": {"lumber"},
    "dining_table.n.01": {"board"},
    "fireplug.n.01": {"plug"},
    "doughnut.n.02": {"sinker"},
    "toilet.n.02": {"can", "pot", "stool", "throne", "crapper"},
    "bag.n.06": {"grip"},
    "book.n.02": {"volume"},
    "sofa.n.01": {"lounge"},
    "person.n.01": {"soul", "mortal"},
    "plant.n.01": {"plant", "works"},
    "theater.n.01": {"house"},
    "savings_bank.n.02": {"bank"},
    "plate.n.14": {"plate", "scale", "shell"},
    "plate.n.02": {"plate"},                 # a sheet of metal (frisbee ancestor)
    "produce.n.01": {"garden truck"},
    "clothing.n.01": {"wear"},
    "hat.n.01": {"lid"},
    "top.n.09": {"top", "cover"},
    "screen.n.04": {"cover", "covert"},
    "bowed_stringed_instrument.n.01": {"string"},
    "wind_instrument.n.01": {"wind"},
    "woodwind.n.01": {"wood"},
    "toy_dog.n.01": {"toy"},
    "cetacean.n.01": {"blower"},
    "ball.n.03": {"ball"},
    "firearm.n.01": {"piece"},
    "weapon.n.01": {"arm"},
    "automatic_rifle.n.01": {"automatic"},
    "measuring_stick.n.01": {"measure"},
    "building_complex.n.01": {"complex"},
    "natural_depression.n.01": {"depression"},
    "spring.n.03": {"spring"},
    "feed.n.01": {"feed"},
    "fare.n.04": {"fare"},
    "course.n.07": {"course"},
    "game.n.04": {"game"},
    "game.n.09": {"game"},
    "runner.n.09": {"runner"},
    "apparatus.n.01": {"setup"},
    "sheet.n.06": {"sheet"},
    "hotdog.n.02": {"red hot"},
}

# Hypernym links not followed: WordNet files every wheeled vehicle (car,
# bicycle, truck, skateboard, ...) under "container", so "containers" would
# otherwise reach cars.
BLOCKED_EDGES = {
    ("wheeled_vehicle.n.01", "container.n.01"),
    # frisbee -> disk -> "rotating mechanism" -> "device" (disk.n.02 is
    # also a turntable-like part); keep frisbee under plaything only.
    ("frisbee.n.01", "disk.n.02"),
}

# ---------------------------------------------------------------------------
# Category words users say that WordNet's tree does not (fully) give.  Each
# category's words become hypernyms of the listed COCO classes and of every
# ImageNet class at or below one of the anchor synsets.  Kept deliberately
# small; materials ("wooden things") are left out.
CATEGORIES = [
    # WordNet puts bus and train under "public transport", not "vehicle".
    (["vehicle", "transport", "transportation"],
     ["bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"],
     ["vehicle.n.01", "public_transport.n.01", "train.n.01"]),
    (["animal", "creature"],
     ["bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear",
      "zebra", "giraffe"],
     ["animal.n.01"]),
    (["pet"], ["cat", "dog"], ["dog.n.01", "domestic_cat.n.01"]),
    (["food"],
     ["banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog",
      "pizza", "donut", "cake"],
     ["food.n.01", "food.n.02"]),
    (["fruit"], ["banana", "apple", "orange"], ["edible_fruit.n.01"]),
    (["vegetable"], ["broccoli", "carrot"], ["vegetable.n.01"]),
    (["kitchen item", "kitchenware", "kitchen utensil", "utensil", "dishware",
      "tableware"],
     ["fork", "knife", "spoon", "bowl", "cup", "wine glass", "bottle"],
     ["kitchen_utensil.n.01", "cooking_utensil.n.01", "tableware.n.01",
      "crockery.n.01", "cutlery.n.02", "drinking_vessel.n.01"]),
    (["electronics", "electronic device", "gadget"],
     ["tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
      "oven", "toaster"],
     ["electronic_equipment.n.01", "electronic_device.n.01", "computer.n.01",
      "peripheral.n.01", "telephone.n.01", "kitchen_appliance.n.01"]),
    (["appliance", "kitchen appliance"],
     ["microwave", "oven", "toaster", "refrigerator"],
     ["home_appliance.n.01"]),
    (["furniture"], ["chair", "couch", "bed", "dining table", "bench"],
     ["furniture.n.01"]),
    (["sports equipment", "sports gear"],
     ["frisbee", "skis", "snowboard", "sports ball", "baseball bat",
      "baseball glove", "skateboard", "surfboard", "tennis racket"],
     ["sports_equipment.n.01", "ball.n.01"]),
    (["bag"], ["backpack", "handbag", "suitcase"], ["bag.n.01"]),
    (["toy"], ["teddy bear", "kite", "frisbee"], ["plaything.n.01"]),
]

# ---------------------------------------------------------------------------
# Plurals.
# Last words that get no plural: already plural, collective, mass or
# pronoun-like nouns.
NO_PLURAL = {
    "people", "cattle", "kine", "oxen", "swine", "impedimenta", "cutlery",
    "furniture", "luggage", "baggage", "equipment", "gear", "paraphernalia",
    "jewelry", "jewellery", "produce", "apparel", "attire", "garb", "clothing",
    "hosiery", "electronics", "wildlife", "transportation", "livestock",
    "poultry", "fauna", "flora", "life", "crockery", "nutrition", "sustenance",
    "alimentation", "nourishment", "pipage", "piping", "tubing", "signaling",
    "signalling", "protection", "someone", "somebody", "veg", "victuals",
    "stuff", "food", "bedding", "footgear", "headgear", "music", "information",
}
# Endings of last words that get no plural: -ware/-wear mass nouns,
# adjectival names (Maltese, Siamese), -less names (Mexican hairless).
NO_PLURAL_SUFFIXES = ("ware", "wear", "ese", "less")
# Nouns whose plural is the same word (also as the last part of a compound).
ZERO_PLURAL = ("sheep", "deer", "moose", "bison", "aircraft", "spacecraft",
               "watercraft", "hovercraft", "craft", "salmon", "trout", "fish",
               "grouse", "quail", "species", "series", "offspring", "elk")
EXTRA_PLURALS = {"person": ["people", "persons"], "bus": ["buses", "busses"]}
# Words ending in -man that take a regular plural.
MAN_REGULAR = {"human", "german", "doberman", "ottoman", "roman", "shaman",
               "talisman", "caiman", "cayman", "desman", "walkman", "pullman",
               "dolman"}


def ascii_lower(s):
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c))
    s = s.encode("ascii", "ignore").decode("ascii")
    return " ".join(s.replace("_", " ").lower().split())


class WordNet:
    """Minimal reader for the WordNet 3.0 noun database."""

    def __init__(self, wndir):
        self.lemmas, self.hyper, self.gloss = {}, {}, {}
        with open(os.path.join(wndir, "data.noun"), encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):  # licence header
                    continue
                body, _, gloss = line.partition(" | ")
                p = body.split()
                off, wcnt = p[0], int(p[3], 16)
                self.lemmas[off] = [p[4 + 2 * i] for i in range(wcnt)]
                i = 4 + 2 * wcnt
                pcnt = int(p[i])
                i += 1
                hyp = []
                for _ in range(pcnt):
                    sym, target, pos = p[i], p[i + 1], p[i + 2]
                    i += 4
                    if sym in ("@", "@i") and pos == "n":
                        hyp.append(target)
                self.hyper[off] = hyp
                self.gloss[off] = gloss.strip()
        self.index = {}
        with open(os.path.join(wndir, "index.noun"), encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                p = line.split()
                ptr_cnt = int(p[3])
                self.index[p[0]] = p[6 + ptr_cnt:]
        self.genera = {w[len("genus_"):] for w in self.index if w.startswith("genus_")}
        # noun.exc reversed: singular -> irregular plurals
        self.irregular = {}
        with open(os.path.join(wndir, "noun.exc"), encoding="latin-1") as f:
            for line in f:
                p = line.split()
                if len(p) < 2:
                    continue
                plural = p[0]
                for singular in p[1:]:
                    if plural != singular:
                        self.irregular.setdefault(
                            ascii_lower(singular), set()).add(ascii_lower(plural))

    def offset(self, name):
        lemma, pos, num = name.rsplit(".", 2)
        assert pos == "n", name
        return self.index[lemma][int(num) - 1]

    def name(self, off):
        lemma = self.lemmas[off][0].lower()
        return "%s.n.%02d" % (lemma, self.index[lemma].index(off) + 1)

    def ancestors(self, off, blocked=frozenset()):
        """All hypernyms / instance hypernyms, transitively.  `blocked` holds
        (child offset, parent offset) links that are not followed."""
        seen, stack = set(), [(off, h) for h in self.hyper[off]]
        while stack:
            child, o = stack.pop()
            if (child, o) in blocked or o in seen:
                continue
            seen.add(o)
            stack.extend((o, h) for h in self.hyper[o])
        return seen

    def is_binomial(self, lemma):
        """Latin 'Genus_species' lemma (Canis_familiaris, Felis_catus)."""
        p = lemma.split("_")
        return len(p) == 2 and p[0][:1].isupper() and p[0].lower() in self.genera

    def words(self, off):
        """Usable lemma names of a synset, as (word, pluralise?) pairs."""
        name = self.name(off)
        excl = LEMMA_EXCLUDE.get(name, ())
        out = []
        for lemma in self.lemmas[off]:
            w = ascii_lower(lemma)
            if w and w not in excl:
                out.append((w, not self.is_binomial(lemma)))
        return out


def regular_plural(w):
    if w.endswith(("s", "x", "z", "ch", "sh")):
        return w + "es"
    if w.endswith("y") and len(w) > 1 and w[-2] not in "aeiou":
        return w[:-1] + "ies"
    return w + "s"


def plurals(term, wn):
    """Plural forms of a (possibly multi-word) term; [] if none apply."""
    words = term.split(" ")
    # "bird of prey" -> "birds of prey"
    head = words.index("of") - 1 if "of" in words[1:] else len(words) - 1
    w = words[head]
    if w in NO_PLURAL or w.endswith(NO_PLURAL_SUFFIXES):
        return []
    if w in EXTRA_PLURALS:
        forms = EXTRA_PLURALS[w]
    elif w in wn.irregular:
        forms = sorted(wn.irregular[w])
        # noun.exc also lists variant spellings that merely extend the word
        # (busses, taxies, camerae, fishes); then the regular form is also
        # right.  True irregulars (mice, knives, children, oxen) stand alone.
        if all(f[len(w):] in ("s", "es", "ses", "zes", "e", "ae")
               and f.startswith(w) for f in forms) and not w.endswith("o"):
            forms = sorted(set(forms) | {regular_plural(w)})
    elif w.endswith(ZERO_PLURAL):
        forms = [w]
    elif not w or not w[-1].isalpha():
        return []
    elif w.endswith("s") and not w.endswith(("ss", "us")):
        return []  # already plural ("skis", "scissors", "cows")
    elif w.endswith("man") and w not in MAN_REGULAR:
        forms = [w[:-3] + "men"]
    else:
        forms = [regular_plural(w)]
    out = []
    for f in forms:
        out.append(" ".join(words[:head] + [f] + words[head + 1:]))
    return [o for o in out if o != term]


def expand(pairs, wn):
    """(word, pluralise?) pairs -> set of words plus plural forms."""
    out = set()
    for w, pl in pairs:
        out.add(w)
        if pl:
            out.update(plurals(w, wn))
    return out


def hypernym_words(off, wn, blocked):
    pairs = []
    for a in wn.ancestors(off, blocked):
        name = wn.name(a)
        if name in STOP_SYNSETS:
            continue
        pairs.extend(wn.words(a))
        pairs.extend((s, True) for s in SYNSET_SYNONYMS.get(name, ()))
    return pairs


def category_words(off, coco_name, wn, anchors, blocked):
    """Category words for a class (COCO: by name; ImageNet: by anchors)."""
    lineage = wn.ancestors(off, blocked) | {off}
    pairs = []
    for words, coco_classes, anchor_names in CATEGORIES:
        hit = (coco_name in coco_classes if coco_name is not None
               else any(anchors[a] in lineage for a in anchor_names))
        if hit:
            pairs.extend((w, True) for w in words)
    return pairs


def entry_lists(term_pairs, hyper_pairs, wn):
    terms = expand(term_pairs, wn)
    hypers = expand(hyper_pairs, wn) - terms
    return sorted(terms), sorted(hypers)


def build(wn, coco_labels, imagenet_rows):
    anchors = {a: wn.offset(a) for _, _, names in CATEGORIES for a in names}
    blocked = {(wn.offset(c), wn.offset(p)) for c, p in BLOCKED_EDGES}
    coco = []
    for label in coco_labels:
        canon = COCO_LABEL_ALIASES.get(label, label)
        off = wn.offset(COCO_SYNSETS[canon])
        syn_name = wn.name(off)
        term_pairs = [(ascii_lower(label), True), (canon, True)]
        term_pairs += wn.words(off)
        term_pairs += [(s, True) for s in COCO_SYNONYMS.get(canon, ())]
        term_pairs += [(s, True) for s in SYNSET_SYNONYMS.get(syn_name, ())]
        hyper_pairs = hypernym_words(off, wn, blocked) + category_words(off, canon, wn, anchors, blocked)
        terms, hypers = entry_lists(term_pairs, hyper_pairs, wn)
        coco.append({"name": ascii_lower(label), "terms": terms, "hypernyms": hypers})
    imagenet = []
    for wnid, name in imagenet_rows:
        off = wnid[1:]
        assert wnid[0] == "n" and off in wn.lemmas, wnid
        term_pairs = [(ascii_lower(name), True)] + wn.words(off)
        term_pairs += [(s, True) for s in SYNSET_SYNONYMS.get(wn.name(off), ())]
        hyper_pairs = hypernym_words(off, wn, blocked) + category_words(off, None, wn, anchors, blocked)
        terms, hypers = entry_lists(term_pairs, hyper_pairs, wn)
        imagenet.append({"wnid": wnid, "name": ascii_lower(name),
                         "terms": terms, "hypernyms": hypers})
    return {"coco": coco, "imagenet": imagenet}


def dump(vocab):
    """One class per line: small, diff-friendly, deterministic."""
    def line(e):
        return json.dumps(e, ensure_ascii=True, separators=(",", ":"))
    parts = ["{\n\"coco\":[\n"]
    parts.append(",\n".join(line(e) for e in vocab["coco"]))
    parts.append("\n],\n\"imagenet\":[\n")
    parts.append(",\n".join(line(e) for e in vocab["imagenet"]))
    parts.append("\n]\n}\n")
    return "".join(parts)


def reach(entries, word):
    return [e["name"] for e in entries if word in e["terms"] or word in e["hypernyms"]]


def sanity(vocab):
    coco, imnet = vocab["coco"], vocab["imagenet"]
    print("\n== sanity: COCO classes reached by a prompt word "
          "(exact match on terms or hypernyms)")
    for w in ["animals", "vehicle", "vehicles", "people", "puppy", "furniture",
              "fruit", "kitchenware", "kitchen items", "electronics", "food",
              "dogs", "sofa", "plane", "bird", "cat", "phone"]:
        r = reach(coco, w)
        print("  %-14s %2d  %s" % (w, len(r), ", ".join(r)))
    print("\n== sanity: ImageNet classes reached")
    for w in ["dog", "dogs", "puppy", "german shepherd", "cat", "car", "vehicle",
              "fruit", "people", "bird"]:
        r = reach(imnet, w)
        shown = ", ".join(r[:14]) + (", ..." if len(r) > 14 else "")
        print("  %-16s %3d  %s" % (w, len(r), shown))
    hyp = Counter(h for e in imnet for h in e["hypernyms"])
    print("\n== most shared ImageNet hypernyms:",
          ", ".join("%s %d" % kv for kv in hyp.most_common(8)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_wn = os.path.join(os.environ["WNHOME"], "dict") if os.environ.get("WNHOME") \
        else "/usr/share/wordnet"
    ap.add_argument("--wordnet", default=default_wn, help="WordNet 3.0 dict directory")
    ap.add_argument("--models", default=MODEL_DIR, help="models/toolkit directory")
    ap.add_argument("--quiet", action="store_true", help="skip the synset/gloss listing")
    args = ap.parse_args()

    wn = WordNet(args.wordnet)
    with open(os.path.join(args.models, "coco.names"), encoding="utf-8") as f:
        coco_labels = [l.strip() for l in f if l.strip()]
    with open(os.path.join(args.models, "imagenet.tsv"), encoding="utf-8") as f:
        imagenet_rows = [tuple(l.rstrip("\n").split("\t", 1)) for l in f if l.strip()]
    assert len(coco_labels) == 80, len(coco_labels)
    assert len(imagenet_rows) == 1000, len(imagenet_rows)
    missing = [l for l in coco_labels if COCO_LABEL_ALIASES.get(l, l) not in COCO_SYNSETS]
    assert not missing, "no synset for COCO labels: %s" % missing
    for _, coco_classes, anchor_names in CATEGORIES:
        for c in coco_classes:
            assert c in COCO_SYNSETS, c
    edge_names = [n for e in BLOCKED_EDGES for n in e]
    for n in list(STOP_SYNSETS) + list(LEMMA_EXCLUDE) + list(SYNSET_SYNONYMS) + edge_names:
        off = wn.offset(n)  # raises if a name is wrong
        assert wn.name(off) == n, (n, wn.name(off))

    if not args.quiet:
        print("== COCO class -> WordNet synset (check the glosses)")
        for label in coco_labels:
            canon = COCO_LABEL_ALIASES.get(label, label)
            off = wn.offset(COCO_SYNSETS[canon])
            print("  %-14s %-26s %s" % (label, COCO_SYNSETS[canon], wn.gloss[off][:80]))

    vocab = build(wn, coco_labels, imagenet_rows)
    text = dump(vocab)
    json.loads(text)  # round-trip check
    assert text.isascii()
    out = os.path.join(args.models, "vocabulary.json")
    with open(out, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
    print("\nwrote %s (%d bytes)" % (os.path.relpath(out, REPO), len(text)))
    sanity(vocab)


if __name__ == "__main__":
    sys.exit(main())
