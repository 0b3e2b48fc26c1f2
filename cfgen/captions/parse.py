"""Parsing LLM outputs into candidate rewrites: numbered lists (robust to chatter, quotes,
missing numbers, blank lines, one-line lists) and the structured JSON variant. Candidates come out
in canonical Unicode (NFKC, lookalike letters mapped to Latin), so what is stored is what was judged.
The judge's yes/no answer is parsed here too (`parse_verdict`)."""
from __future__ import annotations

import json
import re
from typing import Any

from .validate import canonical

_ITEM = re.compile(r"^\s*(?:\(?(\d{1,2})[\).:\]]|[-*\u2022])\s+(.*\S)\s*$")
_INLINE = re.compile(r"(?:^|\s)(\d{1,2})[\).]\s+")
_CHATTER = re.compile(r"^(here (are|is)|sure|okay|ok[,.!]|certainly|output|rewrites?|note|explanation|"
                      r"counterfactual|the (following|rewritten)|i (have|hope|changed)|input)\b", re.I)
_LABEL = re.compile(r"^\s*(?:\*\*|__)?(?:sentence|rewrite|counterfactual|output)\s*#?\d*\s*[:\-]\s*", re.I)
_TRAIL = re.compile(r"\s*[\(\[][^\)\]]*(?:changed|edit|attribute|causal|color|type)[^\)\]]*[\)\]]\s*$", re.I)


def _clean(s: str) -> str:
    s = canonical(s).strip().replace("**", "").replace("__", "")
    s = _LABEL.sub("", s)
    s = _TRAIL.sub("", s)
    s = re.sub(r"\s*(?:->|\u2192)\s*.*$", "", s) if s.count("\u2192") + s.count("->") == 1 and ":" in s else s
    s = s.strip().strip("\"'\u201c\u201d\u2018\u2019`").strip()
    return " ".join(s.split())


def parse_numbered(text: str) -> list[str]:
    """Candidates from a numbered (or bulleted) list; falls back to sentence-like lines."""
    if not text or not text.strip():
        return []
    lines = [ln for ln in text.replace("\r", "").split("\n")]
    items = [m.group(2) for ln in lines if (m := _ITEM.match(ln))]
    flat = " ".join(ln.strip() for ln in lines if ln.strip())
    parts = _INLINE.split(flat)
    if (len(parts) - 1) // 2 > len(items):     # "1. foo 2. bar 3. baz" on one line
        items = [parts[i + 1] for i in range(1, len(parts) - 1, 2)]
    if not items:
        items = [ln for ln in lines if ln.strip() and not ln.strip().endswith(":")
                 and not _CHATTER.match(ln.strip())]
    out = []
    for it in items:
        c = _clean(it)
        if c and not c.endswith(":") and not _CHATTER.match(c):
            out.append(c)
    return out


def parse_structured(text: str) -> list[dict[str, Any]]:
    """Candidates from the JSON variant: {"rewrites": [{"text", "type", "from", "to"}, ...]}."""
    if not text:
        return []
    s = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", s, re.S)
    if fence:
        s = fence.group(1)
    start = min((i for i in (s.find("{"), s.find("[")) if i >= 0), default=-1)
    if start < 0:
        return []
    try:
        obj, _ = json.JSONDecoder().raw_decode(s[start:])
    except json.JSONDecodeError:
        return []
    items = obj.get("rewrites", []) if isinstance(obj, dict) else obj
    out = []
    for it in items if isinstance(items, list) else []:
        if isinstance(it, str):
            out.append({"text": _clean(it)})
        elif isinstance(it, dict) and isinstance(it.get("text"), str):
            out.append({**it, "text": _clean(it["text"])})
    return out


REWRITES_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rewrites": {"type": "array", "items": {
        "type": "object",
        "properties": {"text": {"type": "string"}, "type": {"type": "string"},
                       "from": {"type": "string"}, "to": {"type": "string"}},
        "required": ["text", "type", "from", "to"]}}},
    "required": ["rewrites"],
}


JUDGE_REASON_CHARS = 120
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_VERDICT = re.compile(r"^(?:(?:final\s+)?(?:answer|verdict)\s*[:\-]\s*)?(yes|no)\b[\s.,;:!)\-\u2013\u2014]*(.*)$",
                      re.I | re.S)


def parse_verdict(text: str) -> tuple[bool | None, str]:
    """The judge's answer: (True, "") for yes, (False, reason) for no, (None, "") when it says
    neither first. Case, markdown, quotes, a label ("Answer:") and a reasoning block are ignored;
    the reason is the rest of the first line, capped, since it is stored with every rejection."""
    s = canonical(_THINK.sub("", text or "")).replace("**", "").replace("__", "").strip()
    s = s.lstrip("\"'\u201c\u2018`*#>- ").strip()
    m = _VERDICT.match(s)
    if not m:
        return None, ""
    if m.group(1).lower() == "yes":
        return True, ""
    first = (m.group(2).strip().splitlines() or [""])[0]
    reason = " ".join(first.strip("\"'\u201d\u2019` ").split())
    return False, reason[:JUDGE_REASON_CHARS]
