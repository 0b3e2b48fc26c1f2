"""Generative-likelihood scoring for VLMs that answer in text (LLaVA-1.5, Qwen2-VL, ...).

S_gen(I, T) = P("yes" | I, "Does this image show: T? Answer yes or no.") -- the VQAScore idea:
the probability mass of "yes" against "no" at the first answer token, so any multiple-choice
benchmark can be scored with a generative backbone; the same P(yes) answers the yes/no questions
of the hallucination benchmarks (POPE, MME) with the threshold 0.5. ConMe is also scored by its
own rule (`conme_scores`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .benchmarks import CONME_LETTERS, Item, _img_key, image_error, load_image

SHOW_PROMPT = "Does this image show: {text}? Answer yes or no."
YES = ("Yes", " Yes", "yes", " yes", "YES")
NO = ("No", " No", "no", " no", "NO")
# ConMe's multiple-choice prompt (jmiemirza/ConMe dec_vl_eval/src/models/score.py, score_options)
CONME_INSTRUCTION = "Answer with the option's letter from the given choices directly."


class GenerativeScorer:
    """P(yes) from a transformers image-text-to-text model and its processor (loaded once), an
    ItemScorer (scoring.py) that answers yes/no questions. A model folder that asks to run its own code
    (`auto_map`) is refused before anything is loaded."""

    generative = True

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 8, dtype: torch.dtype | None = None):
        from transformers import AutoModelForImageTextToText
        from ..hub import refuse_remote_code
        from ..train.vlm import load_processor
        refuse_remote_code(model)
        self.processor = load_processor(model)
        kw = {"dtype": dtype} if dtype is not None else {}
        self.model = AutoModelForImageTextToText.from_pretrained(model, trust_remote_code=False, **kw).to(device).eval()
        self.device, self.bs = device, batch_size
        tok = self.processor.tokenizer
        self.yes = self._first_tokens(tok, YES)
        self.no = self._first_tokens(tok, NO)
        if not self.yes or not self.no or set(self.yes) & set(self.no):
            raise ValueError(f"{model}: its tokenizer has no distinct first token for yes/no answers")
        self.unreadable: dict[tuple, str] = {}
        self.enc = None          # no embeddings: benchmarks that need them say so

    @staticmethod
    def _first_tokens(tok: Any, words: Sequence[str]) -> list[int]:
        ids = []
        for w in words:
            t = tok.encode(w, add_special_tokens=False)
            if t and t[0] != tok.unk_token_id and tok.decode(t[:1]).strip():     # not a bare space
                ids.append(t[0])
        return sorted(set(ids))

    def prompt(self, question: str) -> str:
        """The model's own chat template when it has one, else the LLaVA-1.5 format."""
        if getattr(self.processor, "chat_template", None):
            msg = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            return self.processor.apply_chat_template(msg, add_generation_prompt=True)
        return f"USER: <image>\n{question} ASSISTANT:"

    @torch.no_grad()
    def p_yes(self, images: Sequence[Image.Image], questions: Sequence[str]) -> np.ndarray:
        """P(yes) / (P(yes) + P(no)) at the first answer token, one per (image, question)."""
        out = []
        for b in range(0, len(questions), self.bs):
            enc = self.processor(images=list(images[b:b + self.bs]),
                                 text=[self.prompt(q) for q in questions[b:b + self.bs]],
                                 return_tensors="pt", padding=True).to(self.device)
            mask = enc["attention_mask"]
            last = mask.shape[1] - 1 - mask.flip(1).int().argmax(1)      # last real token, either padding side
            keep = int(mask.shape[1] - last.min())                       # logits only from the first last token on
            logits = self.model(**enc, logits_to_keep=keep).logits
            lp = torch.log_softmax(logits[torch.arange(len(last)), last - (mask.shape[1] - keep)].float(), -1)
            y, n = torch.logsumexp(lp[:, self.yes], -1), torch.logsumexp(lp[:, self.no], -1)
            out.append(torch.sigmoid(y - n).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    @torch.no_grad()
    def conme_scores(self, items: list[Item]) -> list[np.ndarray]:
        """ConMe's own scoring (score.py, score_options, the LLaVA branch): the question, then the
        options as "A. <option>" lines, then "Answer with the option's letter from the given choices
        directly.", in the model's chat prompt; each option scores minus the language-model loss
        (mean negative log-likelihood) of its letter as the answer. One image per forward, no padding."""
        tok = self.processor.tokenizer
        out = []
        for it in items:
            q = "\n".join([it.question, *(f"{L}. {t}" for L, t in zip(CONME_LETTERS, it.texts)), CONME_INSTRUCTION])
            enc = self.processor(images=[load_image(it.image, it.box)], text=[self.prompt(q)],
                                 return_tensors="pt").to(self.device)
            scores = []
            for letter in CONME_LETTERS[:len(it.texts)]:
                ans = torch.tensor([tok.encode(letter, add_special_tokens=False)], device=self.device)
                kw = {k: torch.cat([v, torch.ones_like(ans) if k == "attention_mask" else
                                    (ans if k == "input_ids" else torch.zeros_like(ans))], 1)
                      if torch.is_tensor(v) and v.shape == enc["input_ids"].shape else v for k, v in enc.items()}
                # logits only at the positions that predict the letter, plus the last one (dropped)
                logits = self.model(**kw, logits_to_keep=ans.shape[1] + 1).logits[0].float()
                lp = torch.log_softmax(logits[:-1], -1).gather(1, ans[0][:, None])
                scores.append(float(lp.mean()))
            out.append(np.array(scores))
        return out

    def item_scores(self, items: list[Item]) -> list[np.ndarray]:
        """S_gen of every option of every item (the multiple-choice benchmarks' interface); images
        are decoded a batch of items at a time."""
        self.unreadable = {}
        scores: list[list[float]] = [[] for _ in items]
        for b in range(0, len(items), self.bs):
            imgs, qs, owner = [], [], []
            for i, it in enumerate(items[b:b + self.bs], start=b):
                try:
                    im = load_image(it.image, it.box)
                except Exception as e:         # scored as nothing; the caller drops or reports it
                    self.unreadable[_img_key(it)] = image_error(e)
                    im = Image.new("RGB", (8, 8))
                for t in it.texts:
                    imgs.append(im)
                    qs.append(SHOW_PROMPT.format(text=t.strip().rstrip(".")))
                    owner.append(i)
            for o, v in zip(owner, self.p_yes(imgs, qs)):
                scores[o].append(float(v))
        return [np.array(s) for s in scores]
