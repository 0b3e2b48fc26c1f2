"""Mutation check: does the test suite notice a plausible one-line bug in the core modules?

Each mutant is (name, kind, file, exact original snippet, replacement, the tests that must catch
it). The script copies the repository to a temporary folder (never touching the working tree),
checks the selected tests pass on the unmutated copy, then for each mutant writes the
replacement into the copy, runs its tests there with this Python (the project's venv), and
restores the file. A mutant is `killed` when its tests fail, `survived` when they pass; a
snippet that is missing or appears more than once is an `error` (the code moved: fix the
mutant), never skipped. Mutants marked `equivalent` (no observable difference) are reported but
left out of the score.

    .venv/bin/python bench/mutants.py                  # all mutants, ~5 min on 2 cores
    .venv/bin/python bench/mutants.py -k filter -v     # names containing "filter", with pytest output
    .venv/bin/python bench/mutants.py --list

Exit status 0 when every non-equivalent mutant is killed and there is no error.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPY = ["cfgen", "tests", "prompts", "pipelines", "bench", "pyproject.toml", "setup.cfg", "README.md"]


@dataclass
class Mutant:
    name: str
    kind: str
    file: str
    old: str
    new: str
    tests: list[str]
    equivalent: str = ""          # why no test can tell it apart (left out of the score)
    notes: list[str] = field(default_factory=list)


HC = "tests/test_hand_computed.py"
ACC = "tests/test_accounting_exact.py"
VC = "tests/test_validator_counterfactual.py"
RQ = "tests/test_rules_quality.py"
TR = "cfgen/train/trainer.py"
LO = "cfgen/train/losses.py"

MUTANTS = [
    # ---------------------------------------------------------------- how the losses are combined
    Mutant("weights-csd-fcd-swapped", "loss combination", LO,
           'cfg.beta * out["csd"] + cfg.gamma * out["fcd"]', 'cfg.gamma * out["csd"] + cfg.beta * out["fcd"]',
           [HC, "-k", "compute_losses"]),
    Mutant("alpha-ignored", "loss combination", LO,
           'cfg.alpha * out["align"] + cfg.beta', 'out["align"] + cfg.beta', [HC, "-k", "compute_losses"]),
    Mutant("fcd-uses-every-counterfactual", "loss combination", LO,
           "s_anchor, local, cfg.m2)", "s_anchor, mask, cfg.m2)", [HC, "-k", "compute_losses"]),
    Mutant("csd-uses-local-only", "loss combination", LO,
           "s_anchor, mask, cfg.m1)", "s_anchor, local, cfg.m1)", [HC, "-k", "compute_losses"]),
    Mutant("csd-margin-is-m2", "loss combination", LO,
           "s_anchor, mask, cfg.m1)", "s_anchor, mask, cfg.m2)", [HC, "-k", "compute_losses"]),
    Mutant("hinge-space-inverted", "loss combination (hinge_space)", LO,
           'if cfg.hinge_space == "logit" else 1.0', 'if cfg.hinge_space == "cosine" else 1.0',
           [HC, "-k", "compute_losses"]),
    Mutant("hinge-space-trains-tau", "loss combination (hinge_space)", LO,
           "hs = logit_scale.exp().detach()", "hs = logit_scale.exp()", [HC, "-k", "compute_losses"]),
    Mutant("text-negatives-one-is-all", "loss combination (text_negatives)", LO,
           "tm[:, 1:] = False", "tm[:, 2:] = False", [HC, "-k", "compute_losses"]),
    Mutant("text-negatives-unmasked", "loss combination (text_negatives)", LO,
           "cf_txt.reshape(-1, cf_txt.shape[-1]), tm.reshape(-1)",
           "cf_txt.reshape(-1, cf_txt.shape[-1]), torch.ones_like(tm).reshape(-1)", [HC, "-k", "compute_losses"]),
    Mutant("image-negatives-local-only", "loss combination (image_negatives)", LO,
           "cf_img.reshape(-1, cf_img.shape[-1]), mask.reshape(-1)",
           "cf_img.reshape(-1, cf_img.shape[-1]), local.reshape(-1)", [HC, "-k", "compute_losses"]),
    Mutant("cf-in-batch-ignored", "loss combination (cf_in_batch)", LO,
           "b_img, b_txt = torch.cat([a_img, cf_img[mask]]), torch.cat([a_txt, cf_txt[mask]])",
           "b_img, b_txt = a_img, a_txt", [HC, "-k", "compute_losses"]),
    Mutant("dense-cf-wrong-slot", "loss combination (masks)", LO,
           "index_put((owner, slot), feats[n:])", "index_put((owner, torch.zeros_like(slot)), feats[n:])",
           [HC, "-k", "compute_losses"]),
    Mutant("collator-local-is-mask", "loss combination (masks)", "cfgen/train/data.py",
           "local[i, j] = is_local", "local[i, j] = True", [HC, "-k", "collator"]),
    # ---------------------------------------------------------------- the loss functions
    Mutant("csd-mean-over-K", "loss function", LO,
           "per = hinge.sum(1) / n_valid.clamp(min=1)", "per = hinge.sum(1) / mask.shape[1]",
           ["tests/test_losses.py"]),
    Mutant("csd-mask-ignored", "loss function", LO,
           "hinge = torch.clamp(s_cf - s_anchor[:, None] + m1, min=0) * mask",
           "hinge = torch.clamp(s_cf - s_anchor[:, None] + m1, min=0)", ["tests/test_losses.py"]),
    Mutant("fcd-mean-not-hardest", "loss function", LO,
           'hardest = s_cf_anchor_txt.masked_fill(~mask, float("-inf")).max(1).values',
           "hardest = (s_cf_anchor_txt * mask).sum(1) / mask.sum(1).clamp(min=1)", ["tests/test_losses.py"]),
    Mutant("align-one-direction", "loss function", LO,
           "return (F.cross_entropy(logits_i, labels) + F.cross_entropy(logits_t, labels)) / 2",
           "return F.cross_entropy(logits_i, labels)", ["tests/test_losses.py"]),
    Mutant("align-extra-mask-ignored", "loss function", LO,
           'ex = ex.masked_fill(~extra_txt_mask[None, :], float("-inf"))', "ex = ex", ["tests/test_losses.py"]),
    # ---------------------------------------------------------------- gradient accumulation
    Mutant("accumulation-not-divided", "gradient accumulation", TR,
           'acc.backward(losses["total"] / run.accum)', 'acc.backward(losses["total"])',
           [HC, "-k", "accumulation"]),
    Mutant("accumulation-drops-earlier-micro-batches", "gradient accumulation", TR,
           '        state["batches_in_epoch"] += 1\n',
           '        state["batches_in_epoch"] += 1\n        run.opt.zero_grad(set_to_none=True)\n',
           [HC, "-k", "accumulation"]),
    Mutant("accumulation-logs-the-sum", "gradient accumulation", TR,
           "sums[kname] = sums.get(kname, 0.0) + v.detach() / run.accum",
           "sums[kname] = sums.get(kname, 0.0) + v.detach()", [HC, "-k", "accumulation"]),
    # ---------------------------------------------------------------- metrics
    Mutant("pope-precision-is-recall", "metrics", "cfgen/eval/benchmarks.py",
           "prec = tp / (tp + fp) if tp + fp else 0.0", "prec = tp / (tp + fn) if tp + fn else 0.0",
           [HC, "-k", "pope"]),
    Mutant("pope-f1-halved", "metrics", "cfgen/eval/benchmarks.py",
           '"f1": 2 * prec * rec / (prec + rec)', '"f1": prec * rec / (prec + rec)', [HC, "-k", "pope"]),
    Mutant("generative-pope-yes-inverted", "metrics (generative POPE)", "cfgen/eval/run.py",
           "bool(x > 0.5)", "bool(x < 0.5)", [HC, "-k", "generative"]),
    Mutant("generative-pope-half-is-yes", "metrics (generative POPE)", "cfgen/eval/run.py",
           "bool(x > 0.5)", "bool(x >= 0.5)", [HC, "-k", "generative"]),
    Mutant("p-yes-inverted", "metrics (generative POPE)", "cfgen/eval/generative.py",
           "torch.sigmoid(y - n)", "torch.sigmoid(n - y)", [HC, "-k", "generative"]),
    Mutant("p-yes-at-the-last-position", "metrics (generative POPE)", "cfgen/eval/generative.py",
           "last - (mask.shape[1] - keep)]", "keep - 1]", [HC, "-k", "generative"]),
    Mutant("bootstrap-90-percent", "metrics (bootstrap)", "cfgen/eval/stats.py",
           "np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))",
           "np.percentile(boots, 5.0)), float(np.percentile(boots, 95.0))", [HC, "-k", "bootstrap"]),
    Mutant("mme-acc-plus-any", "metrics", "cfgen/eval/benchmarks.py",
           "[all(v) for v in imgs.values()]", "[any(v) for v in imgs.values()]", [HC, "-k", "mme"]),
    # ---------------------------------------------------------------- the CLIP filter
    Mutant("filter-min-cf-score-wrong-similarity", "filter", "cfgen/images/filter.py",
           'if scores["s_cf_tcf"] < cfg.min_cf_score:', 'if scores["s_cf_ta"] < cfg.min_cf_score:',
           [HC, "-k", "filter"]),
    Mutant("filter-margin-boundary", "filter", "cfgen/images/filter.py",
           'if scores["margin"] < cfg.min_margin:', 'if scores["margin"] <= cfg.min_margin:', [HC, "-k", "filter"]),
    Mutant("filter-copy-boundary", "filter", "cfgen/images/filter.py",
           'if scores["s_img"] > cfg.max_img_sim:', 'if scores["s_img"] >= cfg.max_img_sim:', [HC, "-k", "filter"]),
    Mutant("filter-far-wrong-threshold", "filter", "cfgen/images/filter.py",
           'if scores["s_img"] < cfg.min_img_sim:', 'if scores["s_img"] < cfg.min_cf_score:', [HC, "-k", "filter"]),
    Mutant("scorer-s-img-against-caption", "filter", "cfgen/images/filter.py",
           "icf @ ta, icf @ ia, float(ia @ ta)", "icf @ ta, icf @ ta, float(ia @ ta)", [HC, "-k", "clip_scorer"]),
    Mutant("scorer-many-offset", "filter", "cfgen/images/filter.py",
           "at += 1 + n", "at += n", [HC, "-k", "clip_scorer"]),
    Mutant("scorer-margin-sign", "filter", "cfgen/images/filter.py",
           '"margin": round(float(a - b), 5)', '"margin": round(float(b - a), 5)', [HC, "-k", "clip_scorer"]),
    Mutant("finalize-ignores-verdict", "filter", "cfgen/images/stage.py",
           'keep, why = verdict(sc, cfg) if (cfg.filter and sc) else (True, "")', 'keep, why = (True, "")',
           ["tests/test_images.py::test_filter_scores_stored_and_refilter_without_regenerating"]),
    # ---------------------------------------------------------------- input accounting
    Mutant("reader-drops-partly-read-sample", "input accounting", "cfgen/io/reader.py",
           "yield current, fields\n            current = None", "current = None", [ACC]),
    Mutant("reader-no-end-marker-check", "input accounting", "cfgen/io/reader.py",
           'if len(tail) < 1024 or tail.strip(b"\\0"):', 'if tail.strip(b"\\0"):', [ACC]),
    Mutant("reader-no-cut-short-check", "input accounting", "cfgen/io/reader.py",
           "if m.offset_data + m.size > size:", "if False:", [ACC]),
    Mutant("reader-duplicate-member-kept", "input accounting", "cfgen/io/reader.py",
           'fields["__reject__"] = "duplicate_member"', "pass", [ACC]),
    Mutant("reader-duplicate-key-kept", "input accounting", "cfgen/io/reader.py",
           "seen.add(rec.anchor.key)", "pass", ["tests/test_inputs.py::test_bad_samples_are_counted_with_reasons"]),
    # ---------------------------------------------------------------- the validator
    Mutant("validator-span-ten-times", "validator", "cfgen/captions/validate.py",
           "len(f) > self.max_span or len(t) > self.max_span",
           "len(f) > 10 * self.max_span or len(t) > 10 * self.max_span", [HC, "-k", "validator"]),
    Mutant("validator-default-span-ten-times", "validator", "cfgen/captions/validate.py",
           "max_span: int = 5)", "max_span: int = 50)", [HC, "-k", "validator"]),
    Mutant("validator-span-off-by-one", "validator", "cfgen/captions/validate.py",
           "len(f) > self.max_span or len(t) > self.max_span",
           "len(f) >= self.max_span or len(t) >= self.max_span", [HC, "-k", "validator"]),
    Mutant("validator-length-limit-loose", "validator", "cfgen/captions/validate.py",
           "len(b) > self.max_len_ratio * len(a) + 10", "len(b) > self.max_len_ratio * len(a) + 100",
           [HC, "-k", "validator"]),
    Mutant("validator-swap-not-checked", "validator", "cfgen/captions/validate.py",
           "if f1 and f2 and f1 == t2 and f2 == t1:", "if f1 and f2:",
           ["tests/test_captions.py", "-k", "validator_still_rejects_two_edits or validator_rejects_with_reason"]),
    Mutant("validator-slip-of-a-known-word", "validator", "cfgen/captions/validate.py",
           "if x in _KNOWN or (strict and not _non_word(x)):", "if strict and not _non_word(x):",
           [VC, "-k", "two_changes_stay_two"]),
    Mutant("validator-frame-any-preposition", "validator", "cfgen/captions/validate.py",
           "if not (set(f2 + t2) <= _FRAME_PREPOSITIONS and set(f2 + t2) & _FRAME_ENDS):", "if False:",
           [VC, "-k", "two_changes_stay_two"]),
    Mutant("validator-noun-after-article-read-as-verb", "validator", "cfgen/captions/validate.py",
           'return x if prev_x in ("DET", "NUM", "ADJ", "ADP") or prev_w in _POSSESSIVES else "VERB"',
           'return "VERB"', [VC, "-k", "nouns_here"]),
    Mutant("validator-placed-scene-holds-object", "validator", "cfgen/captions/validate.py",
           "exclusive = None not in scenes and scenes[0] != scenes[1]", "exclusive = True",
           [VC, "-k", "hide_no_second"]),
    Mutant("validator-placed-container-on-support", "validator", "cfgen/captions/validate.py",
           'exclusive = dish or not ((takes_old | takes_new) & {"in"}', "exclusive = dish or not (False",
           [VC, "-k", "hide_no_second"]),
    Mutant("validator-slip-of-an-english-word", "validator", "cfgen/captions/validate.py",
           "return bool(words) and x not in _KNOWN and x not in words", "return x not in _KNOWN",
           [VC, "-k", "hide_no_second"]),
    Mutant("validator-placed-preposition-not-forced", "validator", "cfgen/captions/validate.py",
           "or pn not in takes_new or po in takes_new:", "or pn not in takes_new:", [VC, "-k", "hide_no_second"]),
    Mutant("validator-short-slip-of-a-real-word", "validator", "cfgen/captions/validate.py",
           "return _non_word(x) and y in _SLIP_TARGETS and _one_slip(x, y)",
           "return y in _SLIP_TARGETS and _one_slip(x, y)",
           [VC, "-k", "hide_no_second"]),
    Mutant("validator-he-for-a-girl", "validator", "cfgen/captions/validate.py",
           "(words & _SEXED or set(bw[:j1]) & _PRONOUN_NAMES or (", "(False or (", [VC, "-k", "hide_no_second"]),
    Mutant("validator-dative-alone-read-as-swap", "validator", "cfgen/captions/validate.py",
           'if ca and cb and ca[0][0] != cb[0][0]:', "if ca and cb:", [VC, "-k", "dative"]),
    Mutant("validator-refusal-drops-its-edit", "validator", "cfgen/captions/validate.py",
           "return Verdict(False, why, v.edit) if why else v", "return Verdict(False, why) if why else v",
           [VC, "-k", "refusal_keeps or sugarcrepe"]),
    Mutant("validator-outcome-verb-typed-causal", "validator", "cfgen/captions/validate.py",
           'typ = "action"                   # one outcome verb', 'typ = "causal"                   # one outcome verb',
           [VC, "-k", "same_shapes"]),
    Mutant("rules-count-through-a-contraction", "rules", "cfgen/captions/rules.py",
           """if v.text.lower() in ("'s", "’s", "'re", "’re"):""", """if v.text.lower() in ("<none>",):""",
           [RQ, "-k", "failure_kinds"]),
    Mutant("rules-walking-while-doing-something-still", "rules", "cfgen/captions/rules.py",
           ' or L.STILL_ACTS & set(words)):', "):", [RQ, "-k", "failure_kinds"]),
    Mutant("rules-any-colour-for-a-big-vehicle", "rules", "cfgen/captions/rules.py",
           "and c in L.USUAL_COLORS.get(given, palette)]", "]", [RQ, "-k", "failure_kinds"]),
    Mutant("rules-no-two-tone-schemes", "rules", "cfgen/captions/rules.py",
           "head = _two_tone(doc, words, i)", "head = None", [RQ, "-k", "wider"]),
    Mutant("rules-nobody-walks-on-open-ground", "rules", "cfgen/captions/rules.py",
           "place not in L.WALKABLE | {None}", "place not in {None}", [RQ, "-k", "wider"]),
    Mutant("validator-bridal-wear-on-a-man", "validator", "cfgen/captions/validate.py",
           "and j1 <= bw.index(owner, max(0, k - 5)) < j2:", "and False:", [RQ, "-k", "bridal"]),
    Mutant("validator-act-not-moved-with-its-doer", "validator", "cfgen/captions/validate.py",
           'return out if "<act>" in out else None', "return None", [VC, "-k", "act_named"]),
    Mutant("validator-every-verb-an-act-of-its-doer", "validator", "cfgen/captions/validate.py",
           "any(named(stem, j) for j", "any(True for j", [VC, "-k", "act_named"]),
]


def make_copy(dest: Path) -> None:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        elif src.exists():
            shutil.copy2(src, dest / name)


def pytest_cmd(python: str, tests: list[str]) -> list[str]:
    return [python, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", "-p", "no:randomly",
            "-o", "addopts=", *tests]


def run_tests(copy: Path, python: str, tests: list[str], timeout: float) -> tuple[str, str, float]:
    """('pass' | 'fail' | 'timeout' | 'error:<rc>', output, seconds) of the tests in the copy."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.time()
    try:
        p = subprocess.run(pytest_cmd(python, tests), cwd=copy, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return "timeout", out, time.time() - t0
    out = p.stdout + p.stderr
    status = {0: "pass", 1: "fail"}.get(p.returncode, f"error:{p.returncode}")
    return status, out, time.time() - t0


def first_failure(out: str) -> str:
    m = re.search(r"^FAILED (\S+)", out, re.M)
    return m.group(1) if m else "?"


def apply(copy: Path, m: Mutant) -> str | None:
    """Write the mutant into the copy; the error text when its snippet is not there exactly once."""
    path = copy / m.file
    if not path.is_file():
        return f"file not found: {m.file}"
    text = path.read_text()
    n = text.count(m.old)
    if n != 1:
        return f"snippet found {n} times in {m.file} (want exactly 1): {m.old!r}"
    path.write_text(text.replace(m.old, m.new))
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="only mutants whose name or kind contains this text")
    ap.add_argument("--python", default=sys.executable, help="the interpreter with cfgen's test dependencies")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per mutant's test run (timeout = killed)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print pytest's output of each run")
    a = ap.parse_args()
    chosen = [m for m in MUTANTS if a.k in m.name or a.k in m.kind]
    if a.list:
        for m in chosen:
            print(f"{m.name:45s} {m.kind:40s} {m.file}  ->  {' '.join(m.tests)}")
        return 0
    t_all = time.time()
    with tempfile.TemporaryDirectory(prefix="cfgen-mutants-") as d:
        copy = Path(d) / "repo"
        copy.mkdir()
        make_copy(copy)
        env = {**os.environ, "PYTHONPATH": str(copy)}
        where = subprocess.run([a.python, "-c", "import cfgen; print(cfgen.__file__)"], cwd=copy, env=env,
                               capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(copy)):
            print(f"error: cfgen imports from {where!r}, not from the copy {copy}", file=sys.stderr)
            return 2
        # the selected tests must pass on the unmutated copy, or a 'kill' means nothing
        selections = []
        for m in chosen:
            if m.tests not in selections:
                selections.append(m.tests)
        baseline_bad = {}
        for sel in selections:
            status, out, secs = run_tests(copy, a.python, sel, a.timeout)
            if status != "pass":
                baseline_bad[tuple(sel)] = f"{status} ({first_failure(out)})"
                print(f"BASELINE {status}: {' '.join(sel)}\n{out[-3000:]}")
        results = []
        for m in chosen:
            if tuple(m.tests) in baseline_bad:
                results.append((m, "error", f"tests fail without the mutant: {baseline_bad[tuple(m.tests)]}", 0.0))
                continue
            path = copy / m.file
            original = path.read_text() if path.is_file() else None
            err = apply(copy, m)
            if err:
                results.append((m, "error", err, 0.0))
                print(f"{'error':9s} {m.name}: {err}", flush=True)
                continue
            try:
                status, out, secs = run_tests(copy, a.python, m.tests, a.timeout)
            finally:
                path.write_text(original)
            if status in ("fail", "timeout"):
                verdict, why = "killed", (first_failure(out) if status == "fail" else "timeout")
            elif status == "pass":
                verdict, why = ("equivalent" if m.equivalent else "survived"), m.equivalent
            else:
                verdict, why = "error", f"pytest {status}: {out.strip().splitlines()[-1] if out.strip() else ''}"
            results.append((m, verdict, why, secs))
            print(f"{verdict:9s} {m.name:45s} {secs:5.1f}s  {why}", flush=True)
            if a.verbose:
                print(out)
    killed = sum(v == "killed" for _, v, _, _ in results)
    survived = [m.name for m, v, _, _ in results if v == "survived"]
    errors = [m.name for m, v, _, _ in results if v == "error"]
    equivalent = [m.name for m, v, _, _ in results if v == "equivalent"]
    eq_killed = [m.name for m, v, _, _ in results if v == "killed" and m.equivalent]
    scored = killed - len(eq_killed) + len(survived)
    print(f"\n{len(results)} mutants: {killed} killed, {len(survived)} survived, {len(equivalent)} equivalent, "
          f"{len(errors)} error(s) in {time.time() - t_all:.0f} s")
    if scored:
        print(f"mutation score: {killed - len(eq_killed)}/{scored} = {(killed - len(eq_killed)) / scored:.0%} "
              "(equivalent mutants left out)")
    for name in survived:
        print(f"SURVIVED: {name}")
    for name in errors:
        print(f"ERROR: {name}")
    for name in eq_killed:
        print(f"note: {name} is marked equivalent but was killed: drop the mark")
    return 0 if not survived and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
