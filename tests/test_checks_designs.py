"""The design checker: constraints computed from the price catalogue, the answer key's judgement, feedback
that names what is missing, and a learner copy that holds no key."""

from __future__ import annotations

import ast
import importlib
import json
import sys

import pytest

from labkit.authoring import REPO
from labkit.checks import designs
from labkit.checks.designs import (
    Compute,
    Design,
    GenAI,
    check,
    judge,
    load_key,
    practice,
    scenarios,
)
from labkit.cost import catalogue as cat

GRADED = json.loads((REPO / "autograder" / "interview-key.json").read_text())["keys"]


def everything(name: str) -> set[str]:
    """The components the answer key requires (the instructor's key, or the practice key)."""
    return set(load_key(name)["required"])


GOOD = {
    "llm-100b": Design("llm-100b", training=Compute("ml.p5.48xlarge", 64), components=everything("llm-100b")),
    "text-10tb": Design("text-10tb", processing=Compute("m5.4xlarge", 60, spot=True), components=everything("text-10tb")),
    "fraud-realtime": Design("fraud-realtime", serving="realtime", inference=Compute("ml.c5.2xlarge", 6), multi_az=True,
                             components=everything("fraud-realtime")),
    "recs-nightly": Design("recs-nightly", serving="batch", inference=Compute("ml.c5.xlarge", 2),
                           components=everything("recs-nightly")),
    "multi-tenant-1000": Design("multi-tenant-1000", serving="multi-model", inference=Compute("ml.m5.xlarge", 2),
                                multi_az=True, components=everything("multi-tenant-1000")),
    "edge-10k": Design("edge-10k", serving="edge", components=everything("edge-10k")),
    "monitoring-retraining": Design("monitoring-retraining", serving="realtime",
                                    components=everything("monitoring-retraining")),
    "mlops-cicd": Design("mlops-cicd", serving="realtime", components=everything("mlops-cicd")),
    "genai-rag-assistant": Design("genai-rag-assistant", genai=GenAI("anthropic.claude-3-haiku-20240307-v1:0", 4),
                                  components=everything("genai-rag-assistant")),
    "genai-safe-assistant": Design("genai-safe-assistant", components=everything("genai-safe-assistant")),
}


def test_every_seed_scenario_is_there():
    assert {s["id"] for s in scenarios()["scenarios"]} == set(GOOD)
    for s in scenarios()["scenarios"]:
        assert s["question"] and s["exams"] and "required" not in s, s["id"]
        assert all(tag.split(" Domain ")[0] in scenarios()["exams"] for tag in s["exams"])
    assert "retired" in scenarios()["exams"]["MLS-C01"]["status"]
    assert {"MLA-C01", "AIP-C01"} <= {code for code, exam in scenarios()["exams"].items() if exam["domains"]}


def test_the_learner_facing_files_hold_no_graded_key():
    learner_text = (REPO / "data" / "interview" / "scenarios.json").read_text()
    practice_keys = json.loads((REPO / "data" / "interview" / "practice-key.json").read_text())["keys"]
    assert not set(practice_keys) & set(GRADED), "a graded scenario's key is in the learner-facing data"
    for name, key in GRADED.items():
        for why in key["required"].values():
            assert why not in learner_text, f"{name}: a required component's reason is in scenarios.json"
    every_key = {**GRADED, **practice_keys}
    assert set(every_key) == {s["id"] for s in scenarios()["scenarios"]}
    for key in every_key.values():
        assert set(key["required"]) | set(key.get("wrong", {})) <= set(designs.vocabulary())


def test_check_alone_judges_numbers_not_components():
    bare = check(Design("fraud-realtime", serving="realtime", inference=Compute("ml.c5.2xlarge", 6), multi_az=True))
    assert bare.passed and not bare.keyed and "answer key" in str(bare)
    typo = check(Design("fraud-realtime", serving="realtime", inference=Compute("ml.c5.2xlarge", 6), multi_az=True,
                        components={"feature-store"}))
    assert any("not in the vocabulary" in m for m in typo.missing)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_designs_pass(name):
    verdict = judge(GOOD[name], load_key(name))
    assert verdict.passed, str(verdict)
    assert verdict.missing == [] and verdict.constraints_met and verdict.components_met and verdict.within_budget


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_missing_component_is_named_with_its_reason(name):
    key = load_key(name)
    component, why = next(iter(key["required"].items()))
    design = GOOD[name]
    broken = Design(**{**design.__dict__, "components": design.components - {component}})
    verdict = judge(broken, key)
    assert not verdict.passed and not verdict.components_met
    assert any(component in f.check and why in f.detail for f in verdict.findings if not f.ok)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_kitchen_sink_design_meets_the_constraints_but_not_the_budget(name):
    sink = Design(**{**GOOD[name].__dict__, "components": set(designs.vocabulary())})
    verdict = judge(sink, load_key(name))
    assert verdict.components_met and not verdict.within_budget
    assert any("components" in m and "at most" in m for m in verdict.missing)
    if GOOD[name].scenario in designs.NUMERIC:
        assert verdict.constraints_met


def test_over_provisioned_and_contradicting_designs_lose_the_budget():
    key = load_key("fraud-realtime")
    double = Design("fraud-realtime", serving="realtime", inference=Compute("ml.c5.2xlarge", 12), multi_az=True,
                    components=everything("fraud-realtime"))
    verdict = judge(double, key)
    assert verdict.constraints_met and verdict.components_met and not verdict.within_budget
    assert any("much less" in m for m in verdict.missing)
    gpu = judge(Design("fraud-realtime", serving="realtime", inference=Compute("ml.g5.xlarge", 4), multi_az=True,
                       components=everything("fraud-realtime")), key)
    assert gpu.constraints_met and not gpu.within_budget  # in budget, but 2.3 times the cheapest fleet
    llm = load_key("llm-100b")
    seed_serving = Design("llm-100b", training=Compute("ml.p5.48xlarge", 64),
                          components=everything("llm-100b") | {"multi-model-endpoint"})
    assert any("does not fit" in m and "tensor parallelism" in m for m in judge(seed_serving, llm).missing)
    huge = judge(Design("llm-100b", training=Compute("ml.p5.48xlarge", 400), components=everything("llm-100b")), llm)
    assert huge.constraints_met and not huge.within_budget


def test_from_answer_rebuilds_plain_values_and_refuses_impostors():
    good = designs.from_answer(GOOD["fraud-realtime"])
    assert good == GOOD["fraud-realtime"] and good is not GOOD["fraud-realtime"]

    class Liar:
        scenario, serving, multi_az, genai = "fraud-realtime", "realtime", True, None
        inference = training = processing = None
        components = {"feature-store-online"}

        def __eq__(self, other):
            return True

    designs.from_answer(Liar())  # plain values: accepted, and judged on what they are
    assert not judge(designs.from_answer(Liar()), load_key("fraud-realtime")).passed
    Liar.multi_az = 1  # truthy, not a bool
    with pytest.raises(TypeError, match="multi_az must be a bool"):
        designs.from_answer(Liar())
    Liar.multi_az, Liar.inference = True, Compute("ml.c5.2xlarge", 6.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="count must be a int"):
        designs.from_answer(Liar())


def _private_copy():
    """The checker as the hidden tests load it: a private copy from its file, the learner's module untouched."""
    import importlib.util

    import labkit.checks

    spec = importlib.util.spec_from_file_location("labkit.checks._designs_grader",
                                                  f"{labkit.checks.__path__[0]}/designs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_a_private_copy_ignores_a_redefined_checker_and_leaves_the_learners_module_alone(monkeypatch):
    monkeypatch.setattr(designs, "judge", lambda design, key: designs.Verdict("x", [designs.Finding("x", True, "")]))
    monkeypatch.setattr(designs, "check", lambda design: designs.Verdict("x", [designs.Finding("x", True, "")]))
    fresh = _private_copy()
    verdict = fresh.judge(fresh.from_answer(Design("fraud-realtime")), load_key("fraud-realtime"))
    assert not verdict.passed
    assert fresh.judge(fresh.from_answer(GOOD["fraud-realtime"]), load_key("fraud-realtime")).passed
    assert importlib.import_module("labkit.checks.designs") is designs  # nothing replaced for the learner's cells


def _hidden_keys() -> dict[str, dict]:
    """The _KEY literals the lab's hidden tests judge with, by scenario."""
    nb = json.loads((REPO / "solutions" / "12-interview-practice" / "12-interview-practice.ipynb").read_text())
    found = {}
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if "### BEGIN HIDDEN TESTS" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_KEY":
                key = ast.literal_eval(node.value)
                found[key["scenario"]] = {k: v for k, v in key.items() if k != "scenario"}
    return found


def test_the_hidden_tests_judge_with_the_instructors_key():
    assert _hidden_keys() == GRADED, "the lab's hidden _KEY entries and autograder/interview-key.json differ"


def test_fraud_costs_come_from_the_catalogue():
    verdict = check(GOOD["fraud-realtime"])
    hourly = cat.load().sagemaker_instance("ml.c5.2xlarge", "hosting").price_usd
    assert verdict.figures["cost_usd_month"] == pytest.approx(6 * hourly * 730)


def test_rag_assistant_model_and_chunks():
    key = load_key("genai-rag-assistant")
    haiku, sonnet = "anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"
    few = check(Design("genai-rag-assistant", genai=GenAI(haiku, 2)))
    assert any("retrieve more chunks" in m for m in few.missing)
    slow = check(Design("genai-rag-assistant", genai=GenAI(sonnet, 4)))
    assert any("p95 target" in m for m in slow.missing) and any("budget" in m for m in slow.missing)
    tuned = judge(Design("genai-rag-assistant", genai=GenAI(haiku, 4), components=everything("genai-rag-assistant")
                         | {"fine-tuning"}), key)
    assert tuned.constraints_met and any("documentation changes" in m for m in tuned.missing)
    price = cat.load().bedrock(haiku, "input-tokens").price_usd
    assert check(GOOD["genai-rag-assistant"]).figures["cost_usd_month"] == pytest.approx(
        300000 * (1600 / 1000 * price + 250 / 1000 * cat.load().bedrock(haiku, "output-tokens").price_usd))


def test_fraud_failures_explain_the_fix():
    too_few = check(Design("fraud-realtime", serving="realtime", inference=Compute("ml.c5.2xlarge", 3), multi_az=True,
                           components=everything("fraud-realtime")))
    assert any("at least 6 instances" in m for m in too_few.missing)
    single = check(Design("fraud-realtime", serving="realtime", inference=Compute("ml.c5.2xlarge", 6),
                          components=everything("fraud-realtime")))
    assert any("multi_az" in m for m in single.missing)
    serverless = check(Design("fraud-realtime", serving="serverless", components=everything("fraud-realtime")))
    assert any("cold start" in m for m in serverless.missing)
    gpu = check(Design("fraud-realtime", serving="realtime", inference=Compute("ml.g5.xlarge", 4), multi_az=True,
                       components=everything("fraud-realtime")))
    assert gpu.passed  # faster and in budget: check() judges constraints; judge() adds the cost budget
    unknown = check(Design("fraud-realtime", serving="realtime", inference=Compute("ml.p5.48xlarge", 2),
                           multi_az=True, components=everything("fraud-realtime")))
    assert any("planning figure" in m for m in unknown.missing)


def test_llm_memory_time_and_spot():
    no_shard = check(Design("llm-100b", training=Compute("ml.p5.48xlarge", 64),
                            components=everything("llm-100b") - {"sharding"}))
    assert any("split across accelerators" in m for m in no_shard.missing)
    slow = check(Design("llm-100b", training=Compute("ml.p4d.24xlarge", 32), components=everything("llm-100b")))
    assert any("days" in m and "deadline" in m for m in slow.missing)
    risky = check(Design("llm-100b", training=Compute("ml.p5.48xlarge", 64, spot=True),
                         components=everything("llm-100b") - {"checkpointing"}))
    assert any("Spot without checkpointing" in m for m in risky.missing)


def test_text_pipeline_window_and_spot_savings():
    on_demand = check(Design("text-10tb", processing=Compute("m5.4xlarge", 60), components=everything("text-10tb")))
    spot = check(GOOD["text-10tb"])
    assert on_demand.figures["cost_usd_per_day"] > spot.figures["cost_usd_per_day"]
    assert not on_demand.passed and any("Spot" in m for m in on_demand.missing)
    small = check(Design("text-10tb", processing=Compute("m5.4xlarge", 10, spot=True), components=everything("text-10tb")))
    assert any("add nodes" in m for m in small.missing)


def test_wrong_serving_patterns_are_explained():
    recs = check(Design("recs-nightly", serving="realtime", components=everything("recs-nightly")))
    assert any("batch job" in m for m in recs.missing)
    tenants = check(Design("multi-tenant-1000", serving="realtime", components=everything("multi-tenant-1000")))
    assert any("one endpoint per tenant" in m for m in tenants.missing)
    edge = check(Design("edge-10k", serving="realtime", components=everything("edge-10k")))
    assert any("per camera per day" in m for m in edge.missing)
    small = check(Design("multi-tenant-1000", serving="multi-model", inference=Compute("ml.t3.medium", 2), multi_az=True,
                         components=everything("multi-tenant-1000")))
    assert any("evicted" in m for m in small.missing)


def test_bad_input_is_refused_clearly():
    with pytest.raises(KeyError, match="the scenarios are"):
        check(Design("nope"))
    with pytest.raises(ValueError, match="serving must be one of"):
        check(Design("fraud-realtime", serving="lambda"))
    with pytest.raises(TypeError):
        check({"scenario": "fraud-realtime"})  # type: ignore[arg-type]
    missing_compute = check(Design("recs-nightly", serving="batch", components=everything("recs-nightly")))
    assert any("give inference=Compute" in m for m in missing_compute.missing)


def test_practice_draws_and_times():
    session = practice(n=3, minutes=10, seed=7)
    assert len({q["id"] for q in session.questions}) == 3
    assert practice(n=3, seed=7).questions == session.questions  # a seed repeats the draw
    assert 29 < session.remaining() <= 30
    assert "question(s)" in session.show()
    first = session.questions[0]["id"]
    verdict = session.submit(GOOD[first])
    assert verdict.passed and first in session.answers
    assert session.summary().startswith("1/3 designs meet")
    other = next(n for n in GOOD if n not in {q["id"] for q in session.questions})
    with pytest.raises(ValueError):
        session.submit(GOOD[other])
    with pytest.raises(ValueError):
        practice(n=99)


def test_practice_by_exam_and_keys_only_where_the_copy_has_them():
    genai = practice(n=2, seed=1, exam="AIP-C01")
    assert {q["id"] for q in genai.questions} == {"genai-rag-assistant", "genai-safe-assistant"}
    assert "AIP-C01 Domain" in genai.show()
    verdict = genai.submit(GOOD["genai-safe-assistant"])
    assert verdict.keyed and verdict.passed
    assert len(practice(n=3, seed=2, exam="MLA-C01").questions) == 3
    with pytest.raises(ValueError, match="exam must be one of"):
        practice(exam="MLS-C02")
    assert set(designs.exam_domains()["AIP-C01"]) == {f"Domain {i}" for i in range(1, 6)}


def test_without_the_instructor_key_graded_scenarios_are_checked_not_judged(monkeypatch, tmp_path):
    monkeypatch.setattr(designs, "_instructor_key_path", lambda: tmp_path / "absent.json")
    assert load_key("fraud-realtime") is None and load_key("edge-10k") is not None
    session = practice(n=len(scenarios()["scenarios"]), seed=0)
    verdict = session.submit(GOOD["fraud-realtime"])
    assert not verdict.keyed and verdict.passed
