"""#28 item 3: the contract every captions backend meets, as the stage builds it (`make_backend`).

Each backend names `Backend` as a base and so declares its abilities (`whole_unit`, `judges`)
instead of being probed for them; `generate` gives one Generation per caption, in order, whose
status is REJECTED (the model's answer, candidates or the reason there are none: the validator
then keeps or rejects each candidate) and never FAILED without raising in the stage; a backend
with a model judges one verdict per rewrite, in order. Backends: rules; transformers with the
tiny causal LM; openai with tests/fake_openai_server.py; vllm with the stand-in engine of
tests/test_engine_faults.py (both judge "square" no and "green" neither).
"""
import subprocess
import sys
from pathlib import Path

import pytest

from cfgen.captions.backends import Backend, Generation, JudgeItem, JudgeVerdict
from cfgen.captions.stage import CaptionsConfig, backend_class, make_backend
from cfgen.datamodel import Edit, Status
from tests.test_engine_faults import engine  # noqa: F401  (the stand-in vLLM engine)

ABILITIES = {"rules": dict(whole_unit=False, judges=False), "transformers": dict(whole_unit=False, judges=True),
             "openai": dict(whole_unit=False, judges=True), "vllm": dict(whole_unit=True, judges=True)}
CAPTIONS = ["a red circle left of a blue square", "a dog on the grass", "!!!"]
ITEMS = [JudgeItem("a red circle", "a blue circle", Edit("color", "red", "blue", "local")),
         JudgeItem("a red circle", "a red square", Edit("shape", "circle", "square", "local")),
         JudgeItem("a blue square", "a green square", Edit("color", "blue", "green", "local"))]


@pytest.fixture(scope="module")
def server_url():
    p = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fake_openai_server.py"), "ok"],
                         stdout=subprocess.PIPE, text=True)
    yield f"http://127.0.0.1:{p.stdout.readline().strip()}/v1"
    p.kill()
    p.wait()


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from cfgen.testing import build_causal_lm
    return build_causal_lm(tmp_path_factory.mktemp("lm"), corpus=CAPTIONS * 10)


@pytest.fixture(params=sorted(ABILITIES))
def backend(request, tmp_path):
    kind = request.param
    cfg = CaptionsConfig(out=str(tmp_path), backend=kind, k=2, max_new_tokens=16)
    if kind == "transformers":
        cfg.model = str(request.getfixturevalue("tiny_lm"))
    if kind == "openai":
        cfg.base_url, cfg.model = request.getfixturevalue("server_url"), "fake"
    if kind == "vllm":
        request.getfixturevalue("engine")
    return kind, make_backend(cfg)


def test_every_backend_meets_the_contract(backend):
    kind, b = backend
    assert b.name == kind and Backend in type(b).__mro__ and type(b) is backend_class(kind)
    for ability, value in ABILITIES[kind].items():
        assert ability in Backend.__annotations__ and getattr(type(b), ability) is value
    gens = b.generate(CAPTIONS, ["k0", "k1", "k2"])
    assert len(gens) == len(CAPTIONS) and all(isinstance(g, Generation) for g in gens)
    for g in gens:
        assert g.status is Status.REJECTED and all(isinstance(c["text"], str) for c in g.candidates)
        assert not (g.candidates and g.error)                  # candidates, or the reason there are none
    if not b.judges:
        with pytest.raises(TypeError, match="no model to judge"):
            b.judge(ITEMS)
        return
    verdicts = b.judge(ITEMS)
    assert len(verdicts) == len(ITEMS) and all(isinstance(v, JudgeVerdict) for v in verdicts)
    assert all(v.prompt_tokens > 0 and 0 < v.completion_tokens for v in verdicts)
    if kind != "transformers":                                 # random weights: no telling what they say
        assert [v.ok for v in verdicts] == [True, False, None]
