"""Compositional benchmarks read from local files in their official formats (never downloaded).

Every benchmark becomes multiple-choice items: one image (a path, optional crop box, or bytes),
candidate captions, the index of the right one, and group labels. Scoring uses the one
S(image, text) of `cfgen.train.model.DualEncoder`. An item counts as correct only when the
right caption scores strictly higher than every other: ties count as wrong everywhere.
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


def is_correct(scores: np.ndarray, correct: int) -> bool:
    """Strictly highest: a tie with any other option counts as wrong."""
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


def aro_relation_metrics(items: list[Item], corrects: list[bool]) -> dict[str, float]:
    """Macro average over relations, symmetric relations dropped (the paper-style figure), and micro."""
    per = accuracy_by(items, corrects, "relation")
    kept = [a for r, (a, _) in per.items() if r not in ARO_SYMMETRIC_RELATIONS]
    return {"macro": float(np.mean(kept)) if kept else float("nan"), "micro": float(np.mean(corrects)),
            "relations": len(kept)}


def aro_attribution_metrics(items: list[Item], corrects: list[bool], min_count: int = 25) -> dict[str, float]:
    """Macro average over attribute pairs with at least `min_count` items, and micro."""
    per = accuracy_by(items, corrects, "attributes")
    kept = [a for _, (a, n) in per.items() if n >= min_count]
    return {"macro": float(np.mean(kept)) if kept else float("nan"), "micro": float(np.mean(corrects)),
            "pairs": len(kept)}


def pre_caption(caption: str, max_words: int = 30) -> str:
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption).rstrip("\n").strip(" ")
    return " ".join(caption.split(" ")[:max_words])


class Shuffler:
    """ARO's four order perturbations, seeded."""

    def __init__(self, seed: int = 0):
        from ..captions.nlp import load_nlp
        self.nlp, self.seed = load_nlp(), seed

    def _rng(self, text: str, kind: str) -> random.Random:
        return random.Random(f"{self.seed}:{kind}:{text}")

    def _permute_pos(self, text: str, kind: str, nouns_and_adj: bool) -> str:
        """Permute the nouns and adjectives among themselves, or every other word among themselves."""
        doc = self.nlp(text)
        toks = [t.text for t in doc]
        idx = [i for i, t in enumerate(doc) if (t.pos_ in ("NOUN", "ADJ")) == nouns_and_adj]
        perm = idx[:]
        self._rng(text, kind).shuffle(perm)
        out = list(toks)
        for i, j in zip(idx, perm):
            out[i] = toks[j]
        return " ".join(out)

    def nouns_and_adj(self, text: str) -> str:
        return self._permute_pos(text, "na", True)

    def allbut_nouns_and_adj(self, text: str) -> str:
        return self._permute_pos(text, "ab", False)

    def within_trigrams(self, text: str) -> str:
        words = text.split()
        rng = self._rng(text, "wt")
        tri = [words[i:i + 3] for i in range(0, len(words), 3)]
        for t in tri:
            rng.shuffle(t)
        return " ".join(w for t in tri for w in t)

    def trigrams(self, text: str) -> str:
        words = text.split()
        tri = [words[i:i + 3] for i in range(0, len(words), 3)]
        self._rng(text, "tr").shuffle(tri)
        return " ".join(w for t in tri for w in t)

    def all(self, text: str) -> list[str]:
        return [self.nouns_and_adj(text), self.allbut_nouns_and_adj(text), self.within_trigrams(text),
                self.trigrams(text)]


def load_order(path: str | Path, image_root: str | None = None, seed: int = 0, max_words: int = 30) -> list[Item]:
    """COCO-Order / Flickr30k-Order: Karpathy test json ([{"image", "caption": [...]}]); the true
    caption against its 4 seeded perturbations (precision@1)."""
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
               skipped: dict[str, int] | None = None) -> list[Item]:
    """ConMe replace-{att,obj,rel} CSVs, both kinds: the generated files (columns image, question,
    answer, base_question, correct_option, incorrect_option, question_format) and the
    `*_HUMAN_FILTER.csv` files (id, text_options, ...). Each file is its own category, named by
    its stem, so a score always says which kind it comes from. Rows without parseable options
    are counted in `skipped` (`no_parseable_options`), never dropped silently.

    Scoring rule for a contrastive model: each option is scored on its own as a caption,
    S(image, option); the option with the higher score is the answer (ties wrong). The question
    stem is not scored (CLIP-style models have no question answering)."""
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
            items.append(Item(str(root / img), opts, right, groups={"category": cat}, id=f"{cat}:{r}"))
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
        images.append(str(root / ann["image"]))
        for c in ann["caption"]:
            texts.append(c)
            owner.append(i)
    return images, texts, owner


def load_image_folder(path: str | Path) -> tuple[list[str], list[int], list[str]]:
    p = Path(path)
    classes = sorted(d.name for d in p.iterdir() if d.is_dir())
    names = classes
    if (p / "classnames.txt").exists():
        names = [ln.strip() for ln in (p / "classnames.txt").read_text().splitlines() if ln.strip()]
    files, labels = [], []
    for ci, c in enumerate(classes):
        for f in sorted((p / c).iterdir()):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
                files.append(str(f))
                labels.append(ci)
    return files, labels, [n.replace("_", " ") for n in names]


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


def load_mme(path: str | Path, subtasks: Iterable[str] | None = None) -> list[YesNo]:
    """MME's released folder (`MME_Benchmark_release_version/`): one folder per subtask holding
    either the images with a `<image stem>.txt` of "question<TAB>Yes|No" lines beside them, or
    `images/` and `questions_answer_YN/`. Every question is kept with its image, for acc+."""
    root = Path(path)
    names = list(subtasks) if subtasks else [d.name for d in sorted(root.iterdir()) if d.is_dir()]
    out = []
    for name in names:
        d = root / name
        if not d.is_dir():
            raise BenchFileError(f"{d}: MME subtask folder not found")
        qdir, idir = (d / "questions_answer_YN", d / "images") if (d / "questions_answer_YN").is_dir() else (d, d)
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
    if not out:
        raise BenchFileError(f"{root}: no MME question file found")
    return out


def mme_metrics(items: list[YesNo], correct: list[bool]) -> dict[str, float]:
    """Per subtask: accuracy (per question), acc+ (per image: every question right) and the
    official score 100 * (acc + acc+); `perception` and `cognition` sum the scores present."""
    out: dict[str, float] = {}
    by: dict[str, dict[str, list[bool]]] = {}
    for it, c in zip(items, correct):
        by.setdefault(it.group, {}).setdefault(it.image_id, []).append(c)
    for g, imgs in sorted(by.items()):
        qs = [c for v in imgs.values() for c in v]
        acc, plus = float(np.mean(qs)), float(np.mean([all(v) for v in imgs.values()]))
        out[f"{g}:acc"], out[f"{g}:acc+"], out[f"{g}:score"] = acc, plus, 100 * (acc + plus)
    for total, names in (("perception", MME_PERCEPTION), ("cognition", MME_COGNITION)):
        present = [n for n in names if n in by]
        if present:
            out[total] = sum(out[f"{n}:score"] for n in present)
    return out
