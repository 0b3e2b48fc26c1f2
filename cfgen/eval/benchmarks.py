"""Compositional benchmarks read from local files in their official formats (never downloaded).

Every benchmark becomes multiple-choice items: one image (a path, optional crop box, or bytes),
candidate captions, the index of the right one, and group labels. Scoring uses the one
S(image, text) of `cfgen.train.model.DualEncoder`. An item counts as correct when the right
caption scores strictly higher than every other (a tie is wrong), except where the official
code takes np.argmax over the options in its own order: there the first of tied options wins
(ARO's COCO/Flickr30k-Order, whose first option is the true caption).
"""
from __future__ import annotations

import ast
import csv
import io
import json
import math
import os
import random
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

from ..io.images import MAX_PIXELS, decode_rgb
from ..io.reader import InputConfig, read_regular

# ARO (Yuksekgonul et al. 2023): relations whose swapped caption may also be true, dropped
# from the VG-Relation macro average as in the benchmark's published evaluation.
ARO_SYMMETRIC_RELATIONS = frozenset([
    'adjusting', 'attached to', 'between', 'bigger than', 'biting', 'boarding', 'brushing', 'chewing',
    'cleaning', 'climbing', 'close to', 'coming from', 'coming out of', 'contain', 'crossing', 'dragging',
    'draped over', 'drinking', 'drinking from', 'driving', 'driving down', 'driving on', 'eating from',
    'eating in', 'enclosing', 'exiting', 'facing', 'filled with', 'floating in', 'floating on', 'flying',
    'flying above', 'flying in', 'flying over', 'flying through', 'full of', 'going down', 'going into',
    'going through', 'grazing in', 'growing in', 'growing on', 'guiding', 'hanging from', 'hanging in',
    'hanging off', 'hanging over', 'higher than', 'holding onto', 'hugging', 'in between', 'jumping off',
    'jumping on', 'jumping over', 'kept in', 'larger than', 'leading', 'leaning over', 'leaving', 'licking',
    'longer than', 'looking in', 'looking into', 'looking out', 'looking over', 'looking through',
    'lying next to', 'lying on top of', 'making', 'mixed with', 'mounted on', 'moving', 'on the back of',
    'on the edge of', 'on the front of', 'on the other side of', 'opening', 'painted on', 'parked at',
    'parked beside', 'parked by', 'parked in', 'parked in front of', 'parked near', 'parked next to',
    'perched on', 'petting', 'piled on', 'playing', 'playing in', 'playing on', 'playing with', 'pouring',
    'reaching for', 'reading', 'reflected on', 'riding on', 'running in', 'running on', 'running through',
    'seen through', 'sitting behind', 'sitting beside', 'sitting by', 'sitting in front of', 'sitting near',
    'sitting next to', 'sitting under', 'skiing down', 'skiing on', 'sleeping in', 'sleeping on',
    'smiling at', 'sniffing', 'splashing', 'sprinkled on', 'stacked on', 'standing against',
    'standing around', 'standing behind', 'standing beside', 'standing in front of', 'standing near',
    'standing next to', 'staring at', 'stuck in', 'surrounding', 'swimming in', 'swinging', 'talking to',
    'topped with', 'touching', 'traveling down', 'traveling on', 'tying', 'typing on', 'underneath',
    'wading in', 'waiting for', 'walking across', 'walking by', 'walking down', 'walking next to',
    'walking through', 'working in', 'working on', 'worn on', 'wrapped around', 'wrapped in', 'by', 'of',
    'near', 'next to', 'with', 'beside', 'on the side of', 'around'])
SUGARCREPE_FILES = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


class BenchFileError(ValueError):
    """A benchmark file that cannot be read: the message names the file (and line)."""


MAX_BENCH_FILE_BYTES = 1 << 30      # an annotation file larger than this is refused, not read into memory
MAX_IMAGE_BYTES = InputConfig.max_image_bytes


def read_text(path: Path) -> str:
    """A benchmark file's text: only a regular file (a FIFO would block forever, /dev/zero fill
    memory) of at most MAX_BENCH_FILE_BYTES, in UTF-8; anything else is one line naming it."""
    try:
        data = read_regular(Path(path), MAX_BENCH_FILE_BYTES)
    except FileNotFoundError:
        raise BenchFileError(f"{path}: file not found") from None
    except ValueError as e:
        why = "not a regular file" if str(e) == "not_a_regular_file" else f"larger than {MAX_BENCH_FILE_BYTES} bytes"
        raise BenchFileError(f"{path}: {why}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BenchFileError(f"{path}: not UTF-8") from None


def parse_json(text: str, where: str) -> Any:
    """JSON, or one line naming `where` (malformed, or nested too deeply for the parser)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BenchFileError(f"{where}: line {e.lineno}: malformed JSON ({e.msg})") from None
    except RecursionError:
        raise BenchFileError(f"{where}: JSON nested too deeply") from None


def read_json(path: Path) -> Any:
    return parse_json(read_text(path), str(path))


def read_yaml(path: Path) -> Any:
    import yaml
    try:
        return yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise BenchFileError(f"{path}: line {mark.line + 1 if mark else '?'}: malformed YAML") from None
    except RecursionError:
        raise BenchFileError(f"{path}: YAML nested too deeply") from None


OUTSIDE_ROOT = "image_outside_root"


class ImageRoot:
    """A benchmark's image folder: an image path from a benchmark file resolves inside it
    (symlinks followed), or is counted in `skipped` as `image_outside_root` (an absolute path,
    `../`, or a link that leaves the folder) and never opened."""

    def __init__(self, root: str | Path, skipped: dict[str, int] | None):
        self.root, self.real = Path(root), os.path.realpath(root)
        self.skipped = skipped if skipped is not None else {}

    def __call__(self, rel: Any, sub: str | Path = "", weight: int = 1) -> str | None:
        """root / sub / rel, or None when it leaves the root or is not a path, counted `weight`
        times (the items that image would have served)."""
        if not isinstance(rel, str) or not rel or "\0" in rel:
            return self.skip("bad_image_path", weight)
        p = self.root / sub / rel
        if os.path.commonpath([self.real, os.path.realpath(p)]) != self.real:
            return self.skip(OUTSIDE_ROOT, weight)
        return str(p)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


@dataclass
class Item:
    image: str | bytes                      # a path, or encoded bytes
    texts: list[str]
    correct: int = 0
    box: tuple[float, float, float, float] | None = None     # crop (x0, y0, x1, y1)
    groups: dict[str, str] = field(default_factory=dict)
    id: str = ""                            # stable within the benchmark: pairs items across models
    question: str = ""                      # the benchmark's own question (ConMe), for VLM scoring


IMAGE_REASONS = ("not_a_regular_file", "image_file_too_large", "image_too_large")


def load_image(item_image: str | bytes, box: tuple | None = None) -> Image.Image:
    """Decoded RGB, cropped to `box`: only a regular file of at most MAX_IMAGE_BYTES, at most
    MAX_PIXELS decoded (checked from the header) and cropped (a box may reach past the image:
    PIL pads it); anything else is a ValueError whose message starts with its reason."""
    data = item_image if isinstance(item_image, bytes) else read_regular(Path(item_image), MAX_IMAGE_BYTES)
    im = decode_rgb(data)
    if box:
        w, h = box[2] - box[0], box[3] - box[1]
        if w * h > MAX_PIXELS:
            raise ValueError(f"image_too_large: crop box {w}x{h}")
        im = im.crop(box)
    return im


def image_error(e: Exception) -> str:
    """The reason an image could not be loaded: one of IMAGE_REASONS, else corrupt_image."""
    reason = str(e).split(":")[0] if isinstance(e, ValueError) else ""
    return reason if reason in IMAGE_REASONS else "corrupt_image"


def image_problems(paths: Iterable[str]) -> dict[str, str]:
    """Image paths that cannot be opened, with why: missing_image or not_a_regular_file."""
    out = {}
    for p in set(paths):
        try:
            mode = os.stat(p).st_mode
        except OSError:
            out[p] = "missing_image"
            continue
        if not stat.S_ISREG(mode):
            out[p] = "not_a_regular_file"
    return out


# ------------------------------------------------------------------------------- scoring
def _img_key(it: Item) -> tuple:
    ref = it.image if isinstance(it.image, str) else hash(it.image)
    return (ref, it.box)


def is_correct(scores: np.ndarray, correct: int, argmax: bool = False) -> bool:
    """Strictly highest: a tie with any other option counts as wrong. `argmax`: the official
    code's np.argmax over the options, where the first of tied options wins."""
    if argmax:
        return int(np.argmax(scores)) == correct
    others = np.delete(scores, correct)
    return bool(len(others) == 0 or scores[correct] > others.max())


def accuracy_by(items: list[Item], corrects: list[bool], group: str) -> dict[str, tuple[float, int]]:
    acc: dict[str, list[bool]] = {}
    for it, c in zip(items, corrects):
        acc.setdefault(it.groups.get(group, "all"), []).append(c)
    return {g: (float(np.mean(v)), len(v)) for g, v in sorted(acc.items())}


# ------------------------------------------------------------------------------- ARO
def _json_in(path: Path, name: str) -> Path:
    return path / name if path.is_dir() else path


def _aro_items(path: str | Path, image_root: str | None, name: str, group: str,
               skipped: dict[str, int] | None) -> list[Item]:
    """ARO's VG-Relation / VG-Attribution entries: the image cropped to the entry's box."""
    p = _json_in(Path(path), name)
    images = ImageRoot(image_root or p.parent / "images", skipped)
    items = []
    for i, d in enumerate(_entries(p, read_json(p))):
        try:
            box = tuple(d[k] for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
            texts = [d["true_caption"], d["false_caption"]]
            label = d["relation_name"] if group == "relation" else f"{d['attributes'][0]}_{d['attributes'][1]}"
            rel = d["image_path"]
            if not all(isinstance(t, str) for t in texts):
                raise TypeError("captions must be strings")
        except (KeyError, TypeError, IndexError) as e:
            raise BenchFileError(f"{p}: entry {i}: malformed ({type(e).__name__}: {e})") from None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box) \
                or box[2] <= 0 or box[3] <= 0:
            images.skip("bad_box")
            continue
        img = images(rel)
        if img is not None:
            x, y, w, h = box
            items.append(Item(img, texts, 0, (x, y, x + w, y + h), {group: label}, id=str(i)))
    return items


def load_vg_relation(path: str | Path, image_root: str | None = None,
                     skipped: dict[str, int] | None = None) -> list[Item]:
    return _aro_items(path, image_root, "visual_genome_relation.json", "relation", skipped)


def load_vg_attribution(path: str | Path, image_root: str | None = None,
                        skipped: dict[str, int] | None = None) -> list[Item]:
    return _aro_items(path, image_root, "visual_genome_attribution.json", "attributes", skipped)


def _entries(path: Path, data: Any, kind: type = list) -> Any:
    """A benchmark file's top level, checked to be a JSON list (or `kind`)."""
    if not isinstance(data, kind):
        raise BenchFileError(f"{path}: want a JSON {'list' if kind is list else 'object'} at the top level")
    return data


Counts = dict[str, tuple[int, str]]       # metric -> (n, what n counts: items, images, relations, ...)


def aro_relation_metrics(items: list[Item], corrects: list[bool]) -> tuple[dict[str, float], Counts]:
    """Macro average over relations, symmetric relations dropped (the paper-style figure), and
    micro; with how many relations and items each averages."""
    per = accuracy_by(items, corrects, "relation")
    kept = [a for r, (a, _) in per.items() if r not in ARO_SYMMETRIC_RELATIONS]
    return ({"macro": float(np.mean(kept)) if kept else float("nan"), "micro": float(np.mean(corrects))},
            {"macro": (len(kept), "relations"), "micro": (len(corrects), "items")})


def aro_attribution_metrics(items: list[Item], corrects: list[bool], min_count: int = 25
                            ) -> tuple[dict[str, float], Counts]:
    """Macro average over attribute pairs with at least `min_count` items, and micro; with how
    many pairs and items each averages."""
    per = accuracy_by(items, corrects, "attributes")
    kept = [a for _, (a, n) in per.items() if n >= min_count]
    return ({"macro": float(np.mean(kept)) if kept else float("nan"), "micro": float(np.mean(corrects))},
            {"macro": (len(kept), "pairs"), "micro": (len(corrects), "items")})


def pre_caption(caption: str, max_words: int = 30) -> str:
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption).rstrip("\n").strip(" ")
    return " ".join(caption.split(" ")[:max_words])


class Shuffler:
    """ARO's four order perturbations (dataset_zoo/perturbations.py, TextShuffler), drawn the way
    ARO draws them: one numpy and one Python random stream, seeded once (`seed_all` in main_aro.py,
    default seed 1) and consumed caption by caption in file order; nouns (spaCy tag NN*) shuffled
    among nouns and adjectives (JJ*) among adjectives; the trigram shuffles over NLTK word tokens.
    The same seed and spaCy model give ARO's own perturbations."""

    NOUN, ADJ = ("NN", "NNS", "NNP", "NNPS"), ("JJ", "JJR", "JJS")

    def __init__(self, seed: int = 1):
        from nltk.tokenize import NLTKWordTokenizer
        from ..captions.nlp import load_nlp
        self.nlp, self.words = load_nlp(), NLTKWordTokenizer()
        self.np, self.py = np.random.RandomState(seed), random.Random(seed)

    def tokens(self, text: str) -> list[str]:
        """`nltk.word_tokenize` without Punkt's downloadable data: a sentence ends at . ! or ? before
        a space (Punkt's rule, known abbreviations aside), and each is split by NLTK's word tokenizer."""
        return [t for sent in re.split(r"(?<=[.!?])\s+", text.strip()) if sent for t in self.words.tokenize(sent)]

    def nouns_and_adj(self, text: str) -> str:
        doc = self.nlp(text)
        words = np.array([t.text for t in doc])
        for tags in (self.NOUN, self.ADJ):
            idx = [i for i, t in enumerate(doc) if t.tag_ in tags]
            words[idx] = self.np.permutation(words[idx])
        return " ".join(words)

    def allbut_nouns_and_adj(self, text: str) -> str:
        doc = self.nlp(text)
        words = np.array([t.text for t in doc])
        other = np.array([t.tag_ not in self.NOUN + self.ADJ for t in doc], bool)
        words[other] = self.np.permutation(words[other])
        return " ".join(words)

    def within_trigrams(self, text: str) -> str:
        tri = _trigrams(self.tokens(text))
        for t in tri:
            self.py.shuffle(t)
        return " ".join(w for t in tri for w in t)

    def trigrams(self, text: str) -> str:
        tri = _trigrams(self.tokens(text))
        self.py.shuffle(tri)
        return " ".join(w for t in tri for w in t)

    def all(self, text: str) -> list[str]:
        """The four perturbations in ARO's order (aro_datasets.py, COCO_Order.__init__)."""
        return [self.nouns_and_adj(text), self.allbut_nouns_and_adj(text), self.within_trigrams(text),
                self.trigrams(text)]


def _trigrams(tokens: list[str]) -> list[list[str]]:
    return [tokens[i:i + 3] for i in range(0, len(tokens), 3)]


def load_order(path: str | Path, image_root: str | None = None, seed: int = 1, max_words: int = 30,
               skipped: dict[str, int] | None = None) -> list[Item]:
    """COCO-Order / Flickr30k-Order: Karpathy test json ([{"image", "caption": [...]}]); the true
    caption first, then its 4 perturbations (precision@1 by np.argmax, as ARO's evaluate_scores).
    Perturbations are drawn for every caption in file order, kept or not, so the draws stay ARO's."""
    p = Path(path)
    images = ImageRoot(image_root or p.parent, skipped)
    sh = Shuffler(seed)
    items, n = [], 0
    for i, ann in enumerate(_entries(p, read_json(p))):
        if not isinstance(ann, dict) or not isinstance(ann.get("caption"), list) \
                or not all(isinstance(c, str) for c in ann["caption"]):
            raise BenchFileError(f"{p}: entry {i}: needs an image path and a list of captions")
        img = images(ann.get("image"), weight=len(ann["caption"]))
        for cap in ann["caption"]:
            opts = [pre_caption(cap, max_words)] + [pre_caption(x, max_words) for x in sh.all(cap)]
            if img is not None:
                items.append(Item(img, opts, 0, id=str(n)))
            n += 1
    return items


# ------------------------------------------------------------------------------- SugarCrepe
def load_sugarcrepe(path: str | Path, image_root: str | None = None,
                    skipped: dict[str, int] | None = None) -> list[Item]:
    """The 7 category files ({id: {filename, caption, negative_caption}}) of the official data folder;
    images from COCO val2017 (`image_root`, i.e. `--coco-root`; by default DATA_DIR/val2017)."""
    p = Path(path)
    root = Path(image_root) if image_root else p / "val2017"
    if not root.is_dir():
        raise BenchFileError(f"SugarCrepe images: no folder {root}; give the COCO val2017 folder with "
                             "--coco-root DIR (or --image-root sugarcrepe=DIR)")
    images = ImageRoot(root, skipped)
    items = []
    found = False
    for cat in SUGARCREPE_FILES:
        f = p / f"{cat}.json"
        if not f.exists():
            continue
        found = True
        for k, d in _entries(f, read_json(f), dict).items():
            if not isinstance(d, dict) or not all(isinstance(d.get(c), str) for c in ("caption", "negative_caption")):
                raise BenchFileError(f"{f}: entry {k!r}: needs filename, caption and negative_caption")
            img = images(d.get("filename"))
            if img is not None:
                items.append(Item(img, [d["caption"], d["negative_caption"]], 0, groups={"category": cat},
                                  id=f"{cat}:{k}"))
    if not found:
        raise FileNotFoundError(f"no SugarCrepe category file ({', '.join(SUGARCREPE_FILES)}).json in {p}")
    return items


# ------------------------------------------------------------------------------- VL-CheckList
def _vlc_roots(root: Path) -> dict[str, str]:
    """ANNO_PATH -> IMG_ROOT from the corpus/ YAML files."""
    out: dict[str, str] = {}
    for y in sorted((root / "corpus").rglob("*.yaml")):
        d = read_yaml(y) or {}
        if isinstance(d, dict) and isinstance(d.get("ANNO_PATH"), str) and isinstance(d.get("IMG_ROOT"), str):
            out[str(Path(d["ANNO_PATH"]))] = d["IMG_ROOT"]
    return out


VLC_MAX_NUM = 2000      # the official config's MAX_NUM: itc scores the first MAX_NUM / 2 entries per corpus


def load_vl_checklist(path: str | Path, image_root: str | None = None, all_pairs: bool = False,
                      skipped: dict[str, int] | None = None) -> list[Item]:
    """data/<Type>/.../*.json lists of [image, {"POS": [...], "NEG": [...]}]; image roots from the
    corpus/ YAMLs.

    Official ITC protocol (default): one item per entry, POS[0] against NEG[0]; the cap of
    MAX_NUM / 2 entries per corpus file is applied by the caller after images are checked, as
    the official loader drops entries without an image before it truncates. `all_pairs`: every
    POS[i] against NEG[i] (not the official protocol); options without a partner are counted
    in `skipped` as `unpaired_option`."""
    root = Path(path)
    roots = _vlc_roots(root)
    images = ImageRoot(image_root or root, skipped)      # every corpus's IMG_ROOT must stay inside it
    items = []
    for f in sorted((root / "data").rglob("*.json")):
        rel = str(f.relative_to(root))
        typ = f.relative_to(root / "data").parts[0]
        sub = roots.get(rel, "")
        for e, entry in enumerate(_entries(f, read_json(f))):
            try:
                img, caps = entry
                pos, neg = caps["POS"], caps["NEG"]
            except (TypeError, ValueError, KeyError):
                pos = neg = None
            if not (isinstance(pos, list) and isinstance(neg, list) and all(isinstance(t, str) for t in pos + neg)):
                images.skip("malformed_entry")
                continue
            if not pos or not neg:
                images.skip("no_pos_or_neg")
                continue
            pairs = list(zip(pos, neg)) if all_pairs else [(pos[0], neg[0])]
            if all_pairs and len(pos) != len(neg):
                images.skip("unpaired_option", abs(len(pos) - len(neg)))
            path_ = images(img, sub, weight=len(pairs))
            for j, (p_, n_) in enumerate(pairs if path_ is not None else []):
                items.append(Item(path_, [p_, n_], 0, groups={"type": typ, "file": rel}, id=f"{rel}:{e}:{j}"))
    if not items:
        raise FileNotFoundError(f"no VL-CheckList json under {root}/data")
    return items


def cap_per_file(items: list[Item], max_num: int = VLC_MAX_NUM) -> list[Item]:
    """The official itc cap: the first max_num / 2 entries of each corpus file."""
    seen: dict[str, set[str]] = {}
    out = []
    for it in items:
        entries = seen.setdefault(it.groups["file"], set())
        entry = it.id.rsplit(":", 1)[0]
        if entry not in entries and len(entries) >= max_num // 2:
            continue
        entries.add(entry)
        out.append(it)
    return out


# ------------------------------------------------------------------------------- ConMe
_OPT = re.compile(r"\(?\b([AB])[\).:]\s*(.+?)(?=\s*\(?\b[AB][\).:]|$)", re.S)
CONME_QUESTION = "What is a suitable caption for this image?"   # ConMe benchmark_datasets.py, loss_score prompt


def _conme_options(low: dict[str, str]) -> tuple[list[str], int] | str:
    """(options, index of the right one) from a ConMe row, or the reason it has none. Real columns
    first: correct_option / incorrect_option (generated files), text_options (human-filtered files:
    a list literal of 2 to 8 options, the right one named by `correct_option` or `answer`), then
    A/B layouts (the right one named by `answer`)."""
    if low.get("correct_option") and low.get("incorrect_option"):
        return [low["correct_option"], low["incorrect_option"]], 0
    if low.get("text_options"):
        try:
            opts = ast.literal_eval(low["text_options"])
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return "no_parseable_options"
        if not isinstance(opts, (list, tuple)) or not 2 <= len(opts) <= len(CONME_LETTERS) \
                or not all(isinstance(x, str) and x.strip() for x in opts):
            return "no_parseable_options"
        right = _answer_index(low.get("correct_option") or low.get("answer") or "", list(opts))
        return right if isinstance(right, str) else (list(opts), right)
    a = low.get("option_a", low.get("a"))
    b = low.get("option_b", low.get("b"))
    if a is None or b is None:
        found = dict((m.group(1), m.group(2).strip()) for m in _OPT.finditer(low.get("question", "")))
        a, b = found.get("A"), found.get("B")
    if not a or not b:
        return "no_parseable_options"
    right = _answer_index(low.get("answer") or "", [a, b])
    return right if isinstance(right, str) else ([a, b], right)


def _answer_index(answer: str, opts: list[str]) -> int | str:
    """The option an answer names: its text (case and a final period aside), or its letter written
    `A`, `(A)`, `A)`, `A.` or `Option A`; else the reason (`no_answer`, `unparseable_answer`)."""
    def norm(t: str) -> str:
        return t.strip().rstrip(".").strip().casefold()
    if not answer.strip():
        return "no_answer"
    texts = [norm(o) for o in opts]
    if texts.count(norm(answer)) == 1:
        return texts.index(norm(answer))
    m = re.fullmatch(r"\(?\s*(?:option\s+)?([A-H])\s*\)?[.:]?", answer.strip(), re.I)
    if m and CONME_LETTERS.index(m.group(1).upper()) < len(opts):
        return CONME_LETTERS.index(m.group(1).upper())
    return "unparseable_answer"


CONME_LETTERS = "ABCDEFGH"      # ConMe's option letters (score.py); a row has at most this many options


def load_conme(path: str | Path, image_root: str | None = None,
               skipped: dict[str, int] | None = None, seed: int = 1) -> list[Item]:
    """ConMe replace-{att,obj,rel} CSVs, both kinds: the generated files (columns image, question,
    answer, base_question, correct_option, incorrect_option, question_format) and the
    `*_HUMAN_FILTER.csv` files (id, text_options, ...). Each file is its own category, named by
    its stem, so a score always says which kind it comes from. Rows without parseable options,
    or whose answer names no option (`_answer_index`), are counted in `skipped`
    (`no_parseable_options`, `no_answer`, `unparseable_answer`), never dropped silently or guessed.

    Scoring rule for a contrastive model: each option is scored on its own as a caption,
    S(image, option); the option with the higher score is the answer (ties wrong). The question
    stem (the row's `question` without any inline options, else ConMe's default prompt) is kept
    for ConMe's own VLM scoring, where the order of the options matters: as ConMe does, the
    options of each row are shuffled (seeded, per row)."""
    p = Path(path)
    images = ImageRoot(image_root or (p if p.is_dir() else p.parent), skipped)
    items = []
    files = sorted(p.glob("replace-*.csv")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"no replace-*.csv in {p}")
    for f in files:
        cat = f.stem
        try:
            rows = list(csv.DictReader(io.StringIO(read_text(f), newline="")))
        except csv.Error as e:
            raise BenchFileError(f"{f}: unreadable CSV ({e})") from None
        for r, row in enumerate(rows):
            low = {k.lower().strip(): v if isinstance(v, str) else "" for k, v in row.items() if isinstance(k, str)}
            got = _conme_options(low)
            rel = low.get("image") or low.get("image_path") or low.get("filename")
            if isinstance(got, str) or not rel:
                images.skip(got if isinstance(got, str) else "no_image_column")
                continue
            img = images(rel)
            if img is None:
                continue
            opts, right = got
            if random.Random(f"{seed}:{cat}:{r}").random() < 0.5:
                opts, right = opts[::-1], len(opts) - 1 - right
            m = _OPT.search(low.get("question", ""))
            question = (low.get("question", "")[:m.start()] if m else low.get("question", "")).strip()
            items.append(Item(img, opts, right, groups={"category": cat}, id=f"{cat}:{r}",
                              question=question or CONME_QUESTION))
    return items


# ------------------------------------------------------------------------------- Winoground
def load_winoground(path: str | Path, image_root: str | None = None,
                    skipped: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """examples.jsonl: one example a line; its id is the line's `id`, else `line:<n>` (ids pair
    examples across models, so each must be unique)."""
    p = Path(path)
    f = p / "examples.jsonl" if p.is_dir() else p
    images = ImageRoot(image_root or f.parent / "images", skipped)
    out, seen = [], {}
    for n, line in enumerate(read_text(f).splitlines(), start=1):
        if not line.strip():
            continue
        d = parse_json(line, f"{f}: line {n}")
        if not isinstance(d, dict) or not all(isinstance(d.get(k), str) for k in ("caption_0", "caption_1")):
            raise BenchFileError(f"{f}: line {n}: needs caption_0, caption_1, image_0 and image_1")
        ex_id = str(d["id"]) if d.get("id") is not None else f"line:{n}"
        if ex_id in seen:
            raise BenchFileError(f"{f}: line {n}: id {ex_id!r} repeats line {seen[ex_id]}")
        seen[ex_id] = n
        a = images(_with_ext(images, d.get("image_0")))
        b = images(_with_ext(images, d.get("image_1"))) if a is not None else None
        if a is not None and b is not None:
            out.append({"images": [a, b], "captions": [d["caption_0"], d["caption_1"]], "id": ex_id})
    return out


def _with_ext(images: ImageRoot, name: Any) -> Any:
    """The release names images without an extension (`ex_0`): the first of .png/.jpg/.jpeg that exists."""
    if not isinstance(name, str) or "\0" in name or Path(name).suffix:
        return name
    return next((name + e for e in (".png", ".jpg", ".jpeg") if (images.root / (name + e)).exists()), name + ".png")


def winoground_metrics(s: np.ndarray) -> dict[str, bool]:
    """s[c, i] = S(caption c, image i) for one example (2 x 2)."""
    text = s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1]
    image = s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]
    return {"text": bool(text), "image": bool(image), "group": bool(text and image)}


# ------------------------------------------------------------------------------- retrieval
def recall_at_k(sim: np.ndarray, gt: list[set[int]], ks: Iterable[int] = (1, 5, 10)) -> dict[int, float]:
    """sim[q, c]: query q vs candidate c; gt[q]: the right candidates. A query is a hit at k when
    fewer than k wrong candidates score at least as high as its best right one (ties are wrong)."""
    wrong_ahead = []
    for q in range(sim.shape[0]):
        right = list(gt[q])
        best = sim[q, right].max()
        wrong = np.ones(sim.shape[1], bool)
        wrong[right] = False
        wrong_ahead.append(int((sim[q, wrong] >= best).sum()))
    w = np.array(wrong_ahead)
    return {k: float((w < k).mean()) for k in ks}


def load_karpathy(path: str | Path, image_root: str | None = None, skipped: dict[str, int] | None = None
                  ) -> tuple[list[str], list[str], list[int]]:
    """Image paths, captions and each caption's image (an index into the paths); an image that
    leaves its root is counted and left out with its captions."""
    p = Path(path)
    root = ImageRoot(image_root or p.parent, skipped)
    images, texts, owner = [], [], []
    for i, ann in enumerate(_entries(p, read_json(p))):
        if not isinstance(ann, dict) or not isinstance(ann.get("caption"), list) or not ann["caption"] \
                or not all(isinstance(c, str) for c in ann["caption"]):
            raise BenchFileError(f"{p}: entry {i}: needs an image path and its captions")
        img = root(ann.get("image"))
        if img is None:
            continue
        for c in ann["caption"]:
            texts.append(c)
            owner.append(len(images))
        images.append(img)
    return images, texts, owner


IMAGENET_ZEROSHOT = Path(__file__).resolve().parent / "data" / "imagenet1k_zeroshot.json"


def load_image_folder(path: str | Path, skipped: dict[str, int] | None = None
                      ) -> tuple[list[str], list[int], list[str], list[str]]:
    """A zero-shot folder: one folder per class (the ImageFolder layout) -> image files, labels,
    class names and templates. Class names: `classnames.txt` (one per line, in sorted folder
    order) if present; else ImageNet-1k's standard names when the folders are its 1,000 WordNet
    ids; else the folder names. Templates: `templates.txt` ("{}" or "{c}" for the class) if
    present, else CLIP's 80 ImageNet templates (both shipped in data/imagenet1k_zeroshot.json,
    taken from clip_benchmark; the file names its source). An image that leaves the folder (a
    link) is counted as `image_outside_root` and left out."""
    p = Path(path)
    if not p.is_dir():
        raise BenchFileError(f"{p}: zero-shot folder not found")
    classes = sorted(d.name for d in p.iterdir() if d.is_dir())
    if not classes:
        raise BenchFileError(f"{p}: no class folder (one folder of images per class)")
    shipped = read_json(IMAGENET_ZEROSHOT)
    names = [c.replace("_", " ") for c in classes]
    if (p / "classnames.txt").exists():
        names = [ln.strip() for ln in read_text(p / "classnames.txt").splitlines() if ln.strip()]
        if len(names) != len(classes):
            raise BenchFileError(f"{p / 'classnames.txt'}: {len(names)} names for {len(classes)} class folders")
    elif len(classes) == len(shipped["classnames"]) and all(re.fullmatch(r"n\d{8}", c) for c in classes):
        names = shipped["classnames"]
    templates = shipped["templates"]
    if (p / "templates.txt").exists():
        templates = [t.strip() for t in read_text(p / "templates.txt").splitlines() if t.strip()]
        bad = [t for t in templates if not re.fullmatch(r"[^{}]*\{c?\}[^{}]*", t)]
        if bad or not templates:
            raise BenchFileError(f"{p / 'templates.txt'}: each line needs one {{}} (or {{c}}) for the class name"
                                 + (f", not {bad[0]!r}" if bad else ""))
    images = ImageRoot(p, skipped)
    files, labels = [], []
    for ci, c in enumerate(classes):
        for f in sorted((p / c).iterdir()):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") and images(f.name, c) is not None:
                files.append(str(f))
                labels.append(ci)
    return files, labels, names, templates


# ------------------------------------------------------------------------------- scene world
def load_world_test(path: str | Path) -> list[Item]:
    """The scene world's held-out test: one item per (image, test type): true vs negative caption."""
    from ..world.generate import load_test_items
    p = Path(path)
    tars = sorted(str(x) for x in ((p / "test") if (p / "test").is_dir() else p).glob("*.tar")) if p.is_dir() else [str(p)]
    tars = [str(Path(t).resolve()) for t in tars]
    items = []
    for d in load_test_items(tars):
        for typ, neg in d["tests"].items():
            items.append(Item(d["image"], [d["caption"], neg], 0, id=f"{d['key']}:{typ}",
                              groups={"test": typ, "split": "unseen" if d["heldout"] else "seen"}))
    return items


def world_accuracy(results: Iterable[tuple[str, str, bool]]) -> dict[str, tuple[float, int]]:
    """The scene world's held-out accuracy, the one definition behind the `world` benchmark and the
    stand-in's pretraining profile: (split, test type, chose the true caption) per item ->
    (accuracy, items) per `split:test`, the unseen split first, test types sorted."""
    by: dict[tuple[str, str], list[bool]] = {}
    for split, test, ok in results:
        by.setdefault((split, test), []).append(bool(ok))
    return {f"{split}:{test}": (float(np.mean(v)), len(v))
            for split in ("unseen", "seen") for (s, test), v in sorted(by.items()) if s == split}


# ------------------------------------------------------------------------ hallucination (yes/no)
@dataclass
class YesNo:
    """One yes/no question about an image (POPE, MME)."""

    image: str
    question: str
    answer: bool
    id: str
    group: str                   # POPE split (random / popular / adversarial) or MME subtask
    image_id: str = ""           # MME: the image a question pair belongs to (for acc+)


def _yes_no(text: str, where: str) -> bool:
    t = str(text).strip().lower().rstrip(".")
    if t not in ("yes", "no"):
        raise BenchFileError(f"{where}: answer must be yes or no, not {text!r}")
    return t == "yes"


def load_pope(path: str | Path, image_root: str | None = None, skipped: dict[str, int] | None = None
              ) -> list[YesNo]:
    """POPE question files (`coco_pope_{random,popular,adversarial}.json`, one JSON object per line
    with `question_id`, `image`, `text`, `label`; a JSON list is read too). A folder gives each file
    as its own split; images under `image_root` (COCO val2014), default the folder itself."""
    p = Path(path)
    files = sorted(p.glob("*pope*.json")) or sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not files:
        raise BenchFileError(f"{p}: no POPE question file (*pope*.json)")
    images = ImageRoot(image_root or (p if p.is_dir() else p.parent), skipped)
    out = []
    for f in files:
        split = re.sub(r"^.*pope_", "", f.stem)
        text = read_text(f)
        try:
            rows = parse_json(text, str(f))
            rows = rows if isinstance(rows, list) else [rows]
            lines = [(i + 1, r) for i, r in enumerate(rows)]
        except BenchFileError:                 # not one JSON document: one object per line
            lines = [(n, parse_json(line, f"{f}: line {n}")) for n, line in enumerate(text.splitlines(), 1)
                     if line.strip()]
        for n, r in lines:
            if not isinstance(r, dict) or not {"image", "text", "label"} <= set(r) or not isinstance(r["text"], str):
                raise BenchFileError(f"{f}: line {n}: needs image, text and label")
            answer = _yes_no(r["label"], f"{f}: line {n}")
            img = images(r["image"])
            if img is not None:
                out.append(YesNo(img, r["text"], answer, f"{split}:{r.get('question_id', n)}", split))
    return out


def pope_metrics(pred: list[bool], truth: list[bool]) -> dict[str, float]:
    """POPE's figures: accuracy, precision, recall and F1 of "yes", and the share of yes answers."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {"accuracy": float((p == t).mean()) if len(p) else 0.0, "precision": prec, "recall": rec,
            "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0, "yes_ratio": float(p.mean()) if len(p) else 0.0}


MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                  "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def load_mme(path: str | Path, skipped: dict[str, int] | None = None, skip_empty: bool = False) -> list[YesNo]:
    """MME's released folder (`MME_Benchmark_release_version/`, or the `MME_Benchmark/` some copies
    nest in it), one folder per subtask, read as LLaVA's `get_gt` reads it: a subtask with an
    `images/` folder keeps its question files in `questions_answers_YN/`, the others keep them
    beside the images (`<image stem>.txt`, lines "question<TAB>Yes|No"). Every question is kept
    with its image, for acc+. A subtask folder that yields no question is an error naming it, or,
    with `skip_empty` (`--skip-missing`), counted in `skipped` as `empty_subtask:<name>`. An image
    that leaves the MME folder (a link) is counted as `image_outside_root`, with its questions."""
    root = Path(path)
    if not root.is_dir():
        raise BenchFileError(f"{root}: MME folder not found")
    known = MME_PERCEPTION + MME_COGNITION
    if (root / "MME_Benchmark").is_dir() and not any((root / n).is_dir() for n in known):
        root = root / "MME_Benchmark"
    images = ImageRoot(root, skipped)
    out = []
    for d in sorted(x for x in root.iterdir() if x.is_dir()):
        name = d.name
        idir, qdir = (d / "images", d / "questions_answers_YN") if (d / "images").is_dir() else (d, d)
        asked = 0
        for txt in sorted(qdir.glob("*.txt")):
            ext = next((e for e in (".jpg", ".png", ".jpeg", ".JPG", ".PNG") if (idir / (txt.stem + e)).is_file()),
                       ".jpg")
            qs = []
            for n, line in enumerate(read_text(txt).splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.rsplit("\t", 1)
                if len(parts) != 2:
                    raise BenchFileError(f"{txt}: line {n}: want question<TAB>answer")
                qs.append((n, parts[0].strip(), _yes_no(parts[1], f"{txt}: line {n}")))
            asked += len(qs)
            img = images(txt.stem + ext, idir.relative_to(root), weight=len(qs)) if qs else None
            out += [YesNo(img, q, a, f"{name}:{txt.stem}:{n}", name, image_id=f"{name}:{txt.stem}")
                    for n, q, a in qs if img is not None]
        if not asked:
            if not skip_empty:
                raise BenchFileError(f"{d}: MME subtask {name!r} yields no question (no *.txt in {qdir}); "
                                     "--skip-missing to score the others")
            images.skip(f"empty_subtask:{name}")
    if not out:
        raise BenchFileError(f"{root}: no MME question file found")
    return out


def mme_metrics(items: list[YesNo], correct: list[bool]) -> tuple[dict[str, float], Counts]:
    """Per subtask: accuracy (per question), acc+ (per image: both questions right) and the
    official score 100 * (acc + acc+) (eval_tool/calculation.py); `perception` and `cognition`
    sum the scores of the subtasks present, and their counts say how many subtasks they sum."""
    out: dict[str, float] = {}
    counts: Counts = {}
    by: dict[str, dict[str, list[bool]]] = {}
    for it, c in zip(items, correct):
        by.setdefault(it.group, {}).setdefault(it.image_id, []).append(c)
    for g, imgs in sorted(by.items()):
        qs = [c for v in imgs.values() for c in v]
        acc, plus = float(np.mean(qs)), float(np.mean([all(v) for v in imgs.values()]))
        out[f"{g}:acc"], out[f"{g}:acc+"], out[f"{g}:score"] = acc, plus, 100 * (acc + plus)
        counts[f"{g}:acc"], counts[f"{g}:score"] = (len(qs), "questions"), (len(qs), "questions")
        counts[f"{g}:acc+"] = (len(imgs), "images")
    for total, names in (("perception", MME_PERCEPTION), ("cognition", MME_COGNITION)):
        present = [n for n in names if n in by]
        if present:
            out[total] = sum(out[f"{n}:score"] for n in present)
            counts[total] = (len(present), "subtasks")
    return out, counts
