"""The design checker: constraints computed from the price catalogue, feedback that names what is missing."""

from __future__ import annotations

import pytest

from labkit.checks.designs import Compute, Design, check, practice, scenario, scenarios
from labkit.cost import catalogue as cat


def everything(name: str) -> set[str]:
    return set(scenario(name)["required"])


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
}


def test_every_seed_scenario_is_there():
    assert {s["id"] for s in scenarios()["scenarios"]} == set(GOOD)
    for s in scenarios()["scenarios"]:
        assert s["question"] and s["required"] and s["exams"]
    assert "retired" in scenarios()["exams"]["MLS-C01"]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_designs_pass(name):
    verdict = check(GOOD[name])
    assert verdict.passed, str(verdict)
    assert verdict.missing == []


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_missing_component_is_named_with_its_reason(name):
    spec = scenario(name)
    key, why = next(iter(spec["required"].items()))
    design = GOOD[name]
    broken = Design(**{**design.__dict__, "components": design.components - {key}})
    verdict = check(broken)
    assert not verdict.passed
    assert any(key in f.check and why in f.detail for f in verdict.findings if not f.ok)


def test_fraud_costs_come_from_the_catalogue():
    verdict = check(GOOD["fraud-realtime"])
    hourly = cat.load().sagemaker_instance("ml.c5.2xlarge", "hosting").price_usd
    assert verdict.figures["cost_usd_month"] == pytest.approx(6 * hourly * 730)


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
    assert gpu.passed  # faster and still in budget: the checker judges constraints, not one answer
    unknown = check(Design("fraud-realtime", serving="realtime", inference=Compute("ml.p5.48xlarge", 2),
                           multi_az=True, components=everything("fraud-realtime")))
    assert any("planning figure" in m for m in unknown.missing)


def test_llm_memory_time_and_spot():
    no_shard = check(Design("llm-100b", training=Compute("ml.p5.48xlarge", 64),
                            components=everything("llm-100b") - {"sharding"}))
    assert any("without sharding" in m for m in no_shard.missing)
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
