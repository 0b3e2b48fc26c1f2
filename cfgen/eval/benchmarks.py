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
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

from ..io.images import decode_rgb

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


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchFileError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise BenchFileError(f"{path}: line {e.lineno}: malformed JSON ({e.msg})") from None
    except UnicodeDecodeError:
        raise BenchFileError(f"{path}: not UTF-8") from None


def read_yaml(path: Path) -> Any:
    import yaml
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise BenchFileError(f"{path}: line {mark.line + 1 if mark else '?'}: malformed YAML") from None


@dataclass
class Item:
    image: str | bytes                      # a path, or encoded bytes
    texts: list[str]
    correct: int = 0
    box: tuple[float, float, float, float] | None = None     # crop (x0, y0, x1, y1)
    groups: dict[str, str] = field(default_factory=dict)
    id: str = ""                            # stable within the benchmark: pairs items across models
    question: str = ""                      # the benchmark's own question (ConMe), for VLM scoring


def load_image(item_image: str | bytes, box: tuple | None = None) -> Image.Image:
    if isinstance(item_image, bytes):
        im = decode_rgb(item_image)
    else:
        with Image.open(item_image) as f:
            im = f.convert("RGB")
    return im.crop(box) if box else im


# ------------------------------------------------------------------------------- scoring
class Scorer:
    """Embeds each distinct image and caption once; S = cosine similarity."""

    def __init__(self, encoder: Any, batch_size: int = 64):
        self.enc, self.bs = encoder, batch_size

    def embed_items(self, items: list[Item]) -> tuple[np.ndarray, dict[tuple, int], np.ndarray, dict[str, int]]:
        from tqdm.auto import tqdm
        img_keys: dict[tuple, int] = {}
        for it in items:
            img_keys.setdefault(_img_key(it), len(img_keys))
        txt_keys: dict[str, int] = {}
        for it in items:
            for t in it.texts:
                txt_keys.setdefault(t, len(txt_keys))
        by_key = {k: it for it in items for k in [_img_key(it)]}
        keys = list(img_keys)
        img_emb = []
        self.unreadable: dict[tuple, str] = {}
        for b in tqdm(range(0, len(keys), self.bs), desc="images", leave=False):
            imgs = []
            for k in keys[b:b + self.bs]:
                try:
                    imgs.append(load_image(by_key[k].image, by_key[k].box))
                except Exception as e:          # scored as nothing; the caller drops or reports it
                    self.unreadable[k] = f"{type(e).__name__}"
                    imgs.append(Image.new("RGB", (8, 8)))
            img_emb.append(self.enc.embed_images(imgs, self.bs).numpy())
        txt_emb = self.enc.embed_texts(list(txt_keys), 256).numpy() if txt_keys else np.zeros((0, 1))
        return (np.concatenate(img_emb) if img_emb else np.zeros((0, 1))), img_keys, txt_emb, txt_keys

    def item_scores(self, items: list[Item]) -> list[np.ndarray]:
        ie, ik, te, tk = self.embed_items(items)
        return [te[[tk[t] for t in it.texts]] @ ie[ik[_img_key(it)]] for it in items]


def missing_images(items: list[Item]) -> list[str]:
    """Image paths of items that are not regular files."""
    return sorted({it.image for it in items if isinstance(it.image, str) and not os.path.isfile(it.image)})


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


def load_vg_relation(path: str | Path, image_root: str | None = None) -> list[Item]:
    p = _json_in(Path(path), "visual_genome_relation.json")
    root = Path(image_root) if image_root else p.parent / "images"
    return [Item(str(root / d["image_path"]), [d["true_caption"], d["false_caption"]], 0,
                 (d["bbox_x"], d["bbox_y"], d["bbox_x"] + d["bbox_w"], d["bbox_y"] + d["bbox_h"]),
                 {"relation": d["relation_name"]}, id=str(i)) for i, d in enumerate(read_json(p))]


def load_vg_attribution(path: str | Path, image_root: str | None = None) -> list[Item]:
    p = _json_in(Path(path), "visual_genome_attribution.json")
    root = Path(image_root) if image_root else p.parent / "images"
    return [Item(str(root / d["image_path"]), [d["true_caption"], d["false_caption"]], 0,
                 (d["bbox_x"], d["bbox_y"], d["bbox_x"] + d["bbox_w"], d["bbox_y"] + d["bbox_h"]),
                 {"attributes": f"{d['attributes'][0]}_{d['attributes'][1]}"}, id=str(i))
            for i, d in enumerate(read_json(p))]


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


def load_order(path: str | Path, image_root: str | None = None, seed: int = 1, max_words: int = 30) -> list[Item]:
    """COCO-Order / Flickr30k-Order: Karpathy test json ([{"image", "caption": [...]}]); the true
    caption first, then its 4 perturbations (precision@1 by np.argmax, as ARO's evaluate_scores)."""
    p = Path(path)
    data = read_json(p)
    root = Path(image_root) if image_root else p.parent
    sh = Shuffler(seed)
    items = []
    for ann in data:
        for cap in ann["caption"]:
            opts = [pre_caption(cap, max_words)] + [pre_caption(x, max_words) for x in sh.all(cap)]
            items.append(Item(str(root / ann["image"]), opts, 0, id=str(len(items))))
    return items


# ------------------------------------------------------------------------------- SugarCrepe
def load_sugarcrepe(path: str | Path, image_root: str | None = None) -> list[Item]:
    """The 7 category files ({id: {filename, caption, negative_caption}}) of the official data folder;
    images from COCO val2017 (`image_root`, i.e. `--coco-root`; by default DATA_DIR/val2017)."""
    p = Path(path)
    root = Path(image_root) if image_root else p / "val2017"
    if not root.is_dir():
        raise BenchFileError(f"SugarCrepe images: no folder {root}; give the COCO val2017 folder with "
                             "--coco-root DIR (or --image-root sugarcrepe=DIR)")
    items = []
    found = False
    for cat in SUGARCREPE_FILES:
        f = p / f"{cat}.json"
        if not f.exists():
            continue
        found = True
        for k, d in read_json(f).items():
            items.append(Item(str(root / d["filename"]), [d["caption"], d["negative_caption"]], 0,
                              groups={"category": cat}, id=f"{cat}:{k}"))
    if not found:
        raise FileNotFoundError(f"no SugarCrepe category file ({', '.join(SUGARCREPE_FILES)}).json in {p}")
    return items


# ------------------------------------------------------------------------------- VL-CheckList
def _vlc_roots(root: Path) -> dict[str, str]:
    """ANNO_PATH -> IMG_ROOT from the corpus/ YAML files."""
    out: dict[str, str] = {}
    for y in sorted((root / "corpus").rglob("*.yaml")):
        d = read_yaml(y) or {}
        if isinstance(d, dict) and "ANNO_PATH" in d and "IMG_ROOT" in d:
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
    base = Path(image_root) if image_root else root
    skipped = skipped if skipped is not None else {}
    items = []
    for f in sorted((root / "data").rglob("*.json")):
        rel = str(f.relative_to(root))
        typ = f.relative_to(root / "data").parts[0]
        img_root = base / roots.get(rel, "")
        for e, entry in enumerate(read_json(f)):
            try:
                img, caps = entry
                pos, neg = list(caps["POS"]), list(caps["NEG"])
            except (TypeError, ValueError, KeyError):
                skipped["malformed_entry"] = skipped.get("malformed_entry", 0) + 1
                continue
            if not pos or not neg:
                skipped["no_pos_or_neg"] = skipped.get("no_pos_or_neg", 0) + 1
                continue
            pairs = list(zip(pos, neg)) if all_pairs else [(pos[0], neg[0])]
            if all_pairs and len(pos) != len(neg):
                skipped["unpaired_option"] = skipped.get("unpaired_option", 0) + abs(len(pos) - len(neg))
            for j, (p_, n_) in enumerate(pairs):
                items.append(Item(str(img_root / img), [p_, n_], 0, groups={"type": typ, "file": rel},
                                  id=f"{rel}:{e}:{j}"))
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


def _conme_options(low: dict[str, str]) -> tuple[list[str], int] | None:
    """(options, index of the right one) from a ConMe row, or None. Real columns first:
    correct_option / incorrect_option (generated files), text_options (human-filtered files:
    a list literal, the right option named by `answer`/`correct_option`), then A/B layouts."""
    if low.get("correct_option") and low.get("incorrect_option"):
        return [low["correct_option"], low["incorrect_option"]], 0
    if low.get("text_options"):
        try:
            opts = [str(x) for x in ast.literal_eval(low["text_options"])]
        except (ValueError, SyntaxError):
            return None
        ans = (low.get("answer") or "").strip()
        right = low.get("correct_option") or ""
        if len(opts) >= 2 and right in opts:
            return opts, opts.index(right)
        if len(opts) >= 2 and ans[:1].upper() in "ABCD" and ans and "ABCD".index(ans[:1].upper()) < len(opts):
            return opts, "ABCD".index(ans[:1].upper())
        return None
    a = low.get("option_a", low.get("a"))
    b = low.get("option_b", low.get("b"))
    if a is None or b is None:
        opts = dict((m.group(1), m.group(2).strip()) for m in _OPT.finditer(low.get("question", "")))
        a, b = opts.get("A"), opts.get("B")
    if a is None or b is None:
        return None
    ans = (low.get("answer") or "A").strip().upper()[:1]
    return [a, b], 0 if ans == "A" else 1


def load_conme(path: str | Path, image_root: str | None = None,
               skipped: dict[str, int] | None = None, seed: int = 1) -> list[Item]:
    """ConMe replace-{att,obj,rel} CSVs, both kinds: the generated files (columns image, question,
    answer, base_question, correct_option, incorrect_option, question_format) and the
    `*_HUMAN_FILTER.csv` files (id, text_options, ...). Each file is its own category, named by
    its stem, so a score always says which kind it comes from. Rows without parseable options
    are counted in `skipped` (`no_parseable_options`), never dropped silently.

    Scoring rule for a contrastive model: each option is scored on its own as a caption,
    S(image, option); the option with the higher score is the answer (ties wrong). The question
    stem (the row's `question` without any inline options, else ConMe's default prompt) is kept
    for ConMe's own VLM scoring, where the order of the options matters: as ConMe does, the
    options of each row are shuffled (seeded, per row)."""
    p = Path(path)
    root = Path(image_root) if image_root else p
    skipped = skipped if skipped is not None else {}
    items = []
    files = sorted(p.glob("replace-*.csv")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"no replace-*.csv in {p}")
    for f in files:
        cat = f.stem
        try:
            with open(f, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except (UnicodeDecodeError, csv.Error) as e:
            raise BenchFileError(f"{f}: unreadable CSV ({type(e).__name__})") from None
        for r, row in enumerate(rows):
            low = {k.lower().strip(): (v or "") for k, v in row.items() if k}
            got = _conme_options(low)
            img = low.get("image") or low.get("image_path") or low.get("filename")
            if got is None or not img:
                skipped["no_parseable_options" if got is None else "no_image_column"] = \
                    skipped.get("no_parseable_options" if got is None else "no_image_column", 0) + 1
                continue
            opts, right = got
            if random.Random(f"{seed}:{cat}:{r}").random() < 0.5:
                opts, right = opts[::-1], len(opts) - 1 - right
            m = _OPT.search(low.get("question", ""))
            question = (low.get("question", "")[:m.start()] if m else low.get("question", "")).strip()
            items.append(Item(str(root / img), opts, right, groups={"category": cat}, id=f"{cat}:{r}",
                              question=question or CONME_QUESTION))
    return items


# ------------------------------------------------------------------------------- Winoground
def load_winoground(path: str | Path, image_root: str | None = None) -> list[dict[str, Any]]:
    p = Path(path)
    f = p / "examples.jsonl" if p.is_dir() else p
    root = Path(image_root) if image_root else f.parent / "images"
    out = []
    for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchFileError(f"{f}: line {n}: malformed JSON ({e.msg})") from None
            out.append({"images": [str(_with_ext(root, d["image_0"])), str(_with_ext(root, d["image_1"]))],
                        "captions": [d["caption_0"], d["caption_1"]], "id": d.get("id")})
    return out


def _with_ext(root: Path, name: str) -> Path:
    p = root / name
    if p.suffix:
        return p
    for ext in (".png", ".jpg", ".jpeg"):
        if (root / (name + ext)).exists():
            return root / (name + ext)
    return root / (name + ".png")


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


def load_karpathy(path: str | Path, image_root: str | None = None) -> tuple[list[str], list[str], list[int]]:
    p = Path(path)
    data = read_json(p)
    root = Path(image_root) if image_root else p.parent
    images, texts, owner = [], [], []
    for i, ann in enumerate(data):
        if not isinstance(ann, dict) or not isinstance(ann.get("image"), str) or not ann.get("caption"):
            raise BenchFileError(f"{p}: entry {i}: needs an image path and its captions")
        images.append(str(root / ann["image"]))
        for c in ann["caption"]:
            texts.append(c)
            owner.append(i)
    return images, texts, owner


IMAGENET_ZEROSHOT = Path(__file__).resolve().parent / "data" / "imagenet1k_zeroshot.json"


def load_image_folder(path: str | Path) -> tuple[list[str], list[int], list[str], list[str]]:
    """A zero-shot folder: one folder per class (the ImageFolder layout) -> image files, labels,
    class names and templates. Class names: `classnames.txt` (one per line, in sorted folder
    order) if present; else ImageNet-1k's standard names when the folders are its 1,000 WordNet
    ids; else the folder names. Templates: `templates.txt` ("{}" or "{c}" for the class) if
    present, else CLIP's 80 ImageNet templates (both shipped in data/imagenet1k_zeroshot.json,
    taken from clip_benchmark; the file names its source)."""
    p = Path(path)
    if not p.is_dir():
        raise BenchFileError(f"{p}: zero-shot folder not found")
    classes = sorted(d.name for d in p.iterdir() if d.is_dir())
    if not classes:
        raise BenchFileError(f"{p}: no class folder (one folder of images per class)")
    shipped = read_json(IMAGENET_ZEROSHOT)
    names = [c.replace("_", " ") for c in classes]
    if (p / "classnames.txt").exists():
        names = [ln.strip() for ln in (p / "classnames.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
        if len(names) != len(classes):
            raise BenchFileError(f"{p / 'classnames.txt'}: {len(names)} names for {len(classes)} class folders")
    elif len(classes) == len(shipped["classnames"]) and all(re.fullmatch(r"n\d{8}", c) for c in classes):
        names = shipped["classnames"]
    templates = shipped["templates"]
    if (p / "templates.txt").exists():
        templates = [t.strip() for t in (p / "templates.txt").read_text(encoding="utf-8").splitlines() if t.strip()]
        bad = [t for t in templates if not re.fullmatch(r"[^{}]*\{c?\}[^{}]*", t)]
        if bad or not templates:
            raise BenchFileError(f"{p / 'templates.txt'}: each line needs one {{}} (or {{c}}) for the class name"
                                 + (f", not {bad[0]!r}" if bad else ""))
    files, labels = [], []
    for ci, c in enumerate(classes):
        for f in sorted((p / c).iterdir()):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
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


def load_pope(path: str | Path, image_root: str | None = None) -> list[YesNo]:
    """POPE question files (`coco_pope_{random,popular,adversarial}.json`, one JSON object per line
    with `question_id`, `image`, `text`, `label`; a JSON list is read too). A folder gives each file
    as its own split; images under `image_root` (COCO val2014), default the folder itself."""
    p = Path(path)
    files = sorted(p.glob("*pope*.json")) or sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not files:
        raise BenchFileError(f"{p}: no POPE question file (*pope*.json)")
    root = Path(image_root) if image_root else (p if p.is_dir() else p.parent)
    out = []
    for f in files:
        split = re.sub(r"^.*pope_", "", f.stem)
        text = f.read_text(encoding="utf-8")
        try:
            rows = json.loads(text)
            rows = rows if isinstance(rows, list) else [rows]
            lines = [(i + 1, r) for i, r in enumerate(rows)]
        except json.JSONDecodeError:
            lines = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        lines.append((n, json.loads(line)))
                    except json.JSONDecodeError as e:
                        raise BenchFileError(f"{f}: line {n}: malformed JSON ({e.msg})") from None
        for n, r in lines:
            if not isinstance(r, dict) or not {"image", "text", "label"} <= set(r):
                raise BenchFileError(f"{f}: line {n}: needs image, text and label")
            out.append(YesNo(str(root / r["image"]), r["text"], _yes_no(r["label"], f"{f}: line {n}"),
                             f"{split}:{r.get('question_id', n)}", split))
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


def load_mme(path: str | Path, skipped: dict[str, int] | None = None) -> list[YesNo]:
    """MME's released folder (`MME_Benchmark_release_version/`, or the `MME_Benchmark/` some copies
    nest in it), one folder per subtask, read as LLaVA's `get_gt` reads it: a subtask with an
    `images/` folder keeps its question files in `questions_answers_YN/`, the others keep them
    beside the images (`<image stem>.txt`, lines "question<TAB>Yes|No"). Every question is kept
    with its image, for acc+. A subtask folder that yields no question is an error naming it, or,
    with `skipped` given (`--skip-missing`), counted there as `empty_subtask:<name>`."""
    root = Path(path)
    if not root.is_dir():
        raise BenchFileError(f"{root}: MME folder not found")
    known = MME_PERCEPTION + MME_COGNITION
    if (root / "MME_Benchmark").is_dir() and not any((root / n).is_dir() for n in known):
        root = root / "MME_Benchmark"
    out = []
    for d in sorted(x for x in root.iterdir() if x.is_dir()):
        name = d.name
        idir, qdir = (d / "images", d / "questions_answers_YN") if (d / "images").is_dir() else (d, d)
        found = len(out)
        for txt in sorted(qdir.glob("*.txt")):
            img = next((idir / (txt.stem + e) for e in (".jpg", ".png", ".jpeg", ".JPG", ".PNG")
                        if (idir / (txt.stem + e)).is_file()), idir / (txt.stem + ".jpg"))
            for n, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.rsplit("\t", 1)
                if len(parts) != 2:
                    raise BenchFileError(f"{txt}: line {n}: want question<TAB>answer")
                out.append(YesNo(str(img), parts[0].strip(), _yes_no(parts[1], f"{txt}: line {n}"),
                                 f"{name}:{txt.stem}:{n}", name, image_id=f"{name}:{txt.stem}"))
        if len(out) == found:
            if skipped is None:
                raise BenchFileError(f"{d}: MME subtask {name!r} yields no question (no *.txt in {qdir}); "
                                     "--skip-missing to score the others")
            skipped[f"empty_subtask:{name}"] = 1
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
