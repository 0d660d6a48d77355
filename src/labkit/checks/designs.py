"""Check an ML system design against its scenario's constraints, and judge it with an answer key.

A design is answered in a fixed structure (:class:`Design`): which serving pattern, which
instances for training, processing and inference (or which foundation model and how many
retrieved chunks, :class:`GenAI`), and which components, named from the vocabulary of
``data/interview/scenarios.json``. Two judges:

- :func:`check` (what a learner runs): computes what the design implies, with prices from the
  course catalogue (:mod:`labkit.cost`, ``data/pricing/``) and the planning figures the scenario
  states as assumptions (a model's throughput per instance, a job's GB per vCPU-hour), and
  compares them with the constraints: latency, throughput, time window, availability, cost.
  Component names are checked against the vocabulary only: which ones a scenario needs is the
  answer key's business.
- :func:`judge` (what the grader runs): the same findings plus the answer key's: the components
  the scenario needs (each with why), the ones that contradict it, and a budget: a design that
  lists far more than the scenario needs (a kitchen sink) or buys far more than the constraints
  need (over-provisioned) fails the budget, even when it meets every constraint.

The answer keys of the graded scenarios are instructor-only (``autograder/interview-key.json``,
not in the learner copy that ``labkit release`` builds); the keys of the practice-only scenarios
ship with the scenarios (``data/interview/practice-key.json``), so practice mode gives full
feedback. Hidden tests import this module afresh and judge with the key written into them, so a
learner who redefines ``check`` in the notebook changes nothing that grades.

``practice()`` draws scenarios at random, optionally for one exam, and times the answer.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..cost import catalogue as cat

SERVING = ("realtime", "serverless", "async", "batch", "multi-model", "edge", "none")
PARTS = ("constraint", "component", "budget")


@dataclass(frozen=True)
class Compute:
    """A fleet of one instance type: ``ml.`` types for SageMaker, EC2 names for EMR/EC2."""

    instance_type: str
    count: int = 1
    spot: bool = False


@dataclass(frozen=True)
class GenAI:
    """A generative-AI answer path: which Bedrock model, and how many chunks retrieval adds to each prompt."""

    model_id: str
    chunks: int = 0


@dataclass
class Design:
    """A structured answer to a scenario."""

    scenario: str
    serving: str = "none"
    inference: Compute | None = None
    training: Compute | None = None
    processing: Compute | None = None
    components: set[str] = field(default_factory=set)
    multi_az: bool = False
    genai: GenAI | None = None
    notes: str = ""


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    part: str = "constraint"


@dataclass
class Verdict:
    """The findings for one design: constraints (numbers), and with a key, components and budget."""

    scenario: str
    findings: list[Finding]
    figures: dict[str, float] = field(default_factory=dict)
    keyed: bool = False

    def _ok(self, part: str) -> bool:
        return all(f.ok for f in self.findings if f.part == part)

    @property
    def constraints_met(self) -> bool:
        """Every computed constraint holds (latency, throughput, window, availability, cost)."""
        return any(f.part == "constraint" for f in self.findings) and self._ok("constraint")

    @property
    def components_met(self) -> bool:
        """Every component the key requires is named (True when judged without a key)."""
        return self._ok("component")

    @property
    def within_budget(self) -> bool:
        """Neither over-provisioned nor a kitchen sink, nothing contradicting the scenario."""
        return self._ok("budget")

    @property
    def passed(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    @property
    def missing(self) -> list[str]:
        """What to change: the detail of every failed check."""
        return [f.detail for f in self.findings if not f.ok]

    def __str__(self) -> str:
        head = "meets its constraints" if self.passed else "does not meet its constraints"
        if not self.keyed:
            head += " (components not judged: the answer key is the grader's)"
        lines = [f"{self.scenario}: {head}"]
        lines += [f"  {'ok  ' if f.ok else 'FAIL'} {f.check}: {f.detail}" for f in self.findings]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        rows = "\n".join(f"| {'✅' if f.ok else '❌'} | {f.check} | {f.detail} |" for f in self.findings)
        head = "meets its constraints" if self.passed else "does not meet its constraints"
        return f"**{self.scenario}**: {head}\n\n| | check | detail |\n|---|---|---|\n{rows}"


@lru_cache(maxsize=1)
def scenarios() -> dict[str, Any]:
    """The scenario file, ``data/interview/scenarios.json`` (what a learner sees: no answer key)."""
    from .. import data_path

    return json.loads(data_path("interview", "scenarios.json").read_text())


def scenario(name: str) -> dict[str, Any]:
    for s in scenarios()["scenarios"]:
        if s["id"] == name:
            return s
    known = ", ".join(s["id"] for s in scenarios()["scenarios"])
    raise KeyError(f"No scenario {name!r}: the scenarios are {known}.")


def vocabulary() -> dict[str, str]:
    """Every component name a design may use, with what it is (not which scenario needs it)."""
    return dict(scenarios()["vocabulary"])


def _instructor_key_path() -> Path:
    from ..authoring import REPO

    return REPO / "autograder" / "interview-key.json"


@lru_cache(maxsize=1)
def _practice_keys() -> dict[str, Any]:
    from .. import data_path

    return json.loads(data_path("interview", "practice-key.json").read_text())["keys"]


def load_key(name: str) -> dict[str, Any] | None:
    """The answer key of one scenario: the practice key, else the instructor's (None in a learner copy)."""
    if name in _practice_keys():
        return _practice_keys()[name]
    path = _instructor_key_path()
    if path.exists():
        return json.loads(path.read_text())["keys"].get(name)
    return None


# --- helpers ---------------------------------------------------------------------------------


def _hourly(compute: Compute, usage: str) -> float:
    """Price per hour of the fleet, on-demand or with the catalogue's typical Spot saving."""
    catalogue = cat.load()
    if compute.instance_type.startswith("ml."):
        price = catalogue.sagemaker_instance(compute.instance_type, usage).price_usd
    else:
        price = catalogue.ec2_instance(compute.instance_type).price_usd
    if compute.spot:
        price *= 1 - catalogue.spot_savings(compute.instance_type)[0]
    return price * compute.count


def _need(design: Design, attr: str, what: str) -> tuple[Compute | None, list[Finding]]:
    compute = getattr(design, attr)
    if not isinstance(compute, Compute) or compute.count < 1:
        return None, [Finding(attr, False, f"missing: give {attr}=Compute(instance_type=..., count=...) for {what}")]
    return compute, []


def _known(table: dict[str, Any], compute: Compute, what: str) -> Finding | None:
    if compute.instance_type not in table:
        return Finding(f"{what} figure", False, f"no planning figure for {compute.instance_type}: choose one of "
                       f"{', '.join(sorted(table))}")
    return None


# --- the scenarios ---------------------------------------------------------------------------


def _llm(design: Design, spec: dict[str, Any], v: Verdict) -> None:
    c, a, root = spec["constraints"], spec["assumptions"], scenarios()
    compute, missing = _need(design, "training", "the accelerators")
    v.findings += missing
    if compute is None:
        return
    specs = cat.load().instance_specs(compute.instance_type)
    accel = specs.get("accelerator")
    if accel not in root["peak_bf16_tflops_per_accelerator"]:
        v.findings.append(Finding("accelerator", False, f"{compute.instance_type} has no training accelerator "
                                  "the scenario knows (p4d, p5, trn1)"))
        return
    n_accel = specs["accelerators"] * compute.count
    state_tb = c["parameters"] * a["bytes_per_parameter"] * a["memory_headroom"] / 1e12
    memory_tb = n_accel * root["gpu_memory_gib"][accel] * 2**30 / 1e12
    sharded = "sharding" in design.components
    v.figures.update(state_tb=state_tb, accelerator_memory_tb=memory_tb, accelerators=n_accel)
    v.findings.append(Finding("memory", memory_tb >= state_tb and sharded,
                              f"model and optimiser states {state_tb:.2f} TB (with headroom) vs {memory_tb:.2f} TB of "
                              f"accelerator memory on {n_accel} x {accel}"
                              + ("" if sharded else "; unless the states are split across accelerators, each one "
                                 "must hold all of them, which none can")))
    flops = a["flops_per_token_per_parameter"] * c["parameters"] * c["tokens"]
    rate = n_accel * root["peak_bf16_tflops_per_accelerator"][accel] * 1e12 * a["mfu"]
    days = flops / rate / 86400
    cost = days * 24 * _hourly(compute, "training")
    v.figures.update(days=days, cost_usd=cost)
    v.findings.append(Finding("time", days <= c["deadline_days"], f"{flops:.2e} FLOPs at {a['mfu']:.0%} MFU on "
                              f"{n_accel} accelerators: {days:.1f} days (deadline {c['deadline_days']})"
                              + ("" if days <= c["deadline_days"] else ": add instances or faster accelerators")))
    v.findings.append(Finding("cost", cost <= c["budget_usd"], f"{days * 24:.0f} h x {compute.count} x "
                              f"{compute.instance_type}{' (Spot)' if compute.spot else ''} = ${cost:,.0f} "
                              f"(budget ${c['budget_usd']:,.0f})"))
    if compute.spot and "checkpointing" not in design.components:
        v.findings.append(Finding("spot safety", False, "Spot without checkpointing loses the run at each interruption"))


def _text(design: Design, spec: dict[str, Any], v: Verdict) -> None:
    c, a = spec["constraints"], spec["assumptions"]
    compute, missing = _need(design, "processing", "the processing cluster")
    v.findings += missing
    if compute is None:
        return
    catalogue = cat.load()
    vcpus = catalogue.instance_specs(compute.instance_type)["vcpu"] * compute.count
    hours = c["tb_per_day"] * 1000 / (vcpus * a["gb_per_vcpu_hour"])
    ec2 = compute.instance_type.removeprefix("ml.")
    uplift = catalogue.ec2_instance(ec2).price_usd * a["emr_uplift_fraction"] * compute.count
    cost = hours * (_hourly(Compute(ec2, compute.count, compute.spot), "processing") + uplift)
    v.figures.update(hours=hours, cost_usd_per_day=cost, vcpus=vcpus)
    v.findings.append(Finding("window", hours <= c["window_hours"], f"{c['tb_per_day']} TB at "
                              f"{a['gb_per_vcpu_hour']} GB per vCPU-hour on {vcpus} vCPUs: {hours:.1f} h "
                              f"(window {c['window_hours']} h)" + ("" if hours <= c["window_hours"] else
                                                                   ": add nodes")))
    v.findings.append(Finding("cost", cost <= c["budget_usd_per_day"], f"${cost:,.0f} per day with the EMR charge "
                              f"(budget ${c['budget_usd_per_day']})" + ("" if cost <= c["budget_usd_per_day"] else
                              ": use Spot for task nodes, or a cheaper family")))


def _fraud(design: Design, spec: dict[str, Any], v: Verdict) -> None:
    c, a = spec["constraints"], spec["assumptions"]
    if design.serving != "realtime":
        v.findings.append(Finding("serving", False, f"{design.serving!r} cannot answer each transaction within "
                                  f"{c['p99_latency_ms']} ms" + (f" (serverless cold starts take about "
                                  f"{a['serverless_cold_start_ms']} ms)" if design.serving == "serverless" else
                                  "") + ": use a real-time endpoint"))
        return
    compute, missing = _need(design, "inference", "the endpoint")
    v.findings += missing
    if compute is None:
        return
    unknown = _known(a["tps_per_instance"], compute, "throughput")
    if unknown:
        v.findings.append(unknown)
        return
    p99 = a["p99_ms_per_instance"][compute.instance_type] + a["online_feature_lookup_ms"] + a["network_ms"]
    capacity = compute.count * a["tps_per_instance"][compute.instance_type]
    need = c["peak_tps"] / a["target_utilisation"]
    cost = _hourly(compute, "hosting") * a["hours_per_month"]
    v.figures.update(p99_ms=p99, capacity_tps=capacity, cost_usd_month=cost)
    v.findings.append(Finding("latency", p99 <= c["p99_latency_ms"], f"p99 {p99} ms = model + feature look-up + "
                              f"network (SLA {c['p99_latency_ms']} ms)"))
    v.findings.append(Finding("throughput", capacity >= need, f"{compute.count} x {compute.instance_type} serve "
                              f"{capacity:,} TPS; {c['peak_tps']:,} TPS at {a['target_utilisation']:.0%} target "
                              f"utilisation needs {need:,.0f}" + ("" if capacity >= need else
                                                                  f": at least {math.ceil(need / a['tps_per_instance'][compute.instance_type])} instances")))
    v.findings.append(Finding("availability", design.multi_az and compute.count >= 2, "instances spread over at "
                              "least two Availability Zones" if design.multi_az and compute.count >= 2 else
                              "missing: at least 2 instances and multi_az=True (SageMaker spreads instances over "
                              "AZs when the endpoint's VPC subnets are in several)"))
    v.findings.append(Finding("cost", cost <= c["budget_usd_month"], f"${cost:,.0f} per month for the baseline "
                              f"fleet (budget ${c['budget_usd_month']:,})" + ("" if cost <= c["budget_usd_month"]
                                                                             else ": a cheaper type or fewer instances")))
    if compute.spot:
        v.findings.append(Finding("spot", False, "endpoints do not run on Spot; set spot=False"))


def _recs(design: Design, spec: dict[str, Any], v: Verdict) -> None:
    c, a = spec["constraints"], spec["assumptions"]
    if design.serving != "batch":
        v.findings.append(Finding("serving", False, f"{design.serving!r}: nightly scoring of every user is a batch "
                                  "job; a persistent endpoint bills all day for a few hours of work"))
        return
    compute, missing = _need(design, "inference", "the batch transform job")
    v.findings += missing
    if compute is None:
        return
    unknown = _known(a["users_per_instance_hour"], compute, "throughput")
    if unknown:
        v.findings.append(unknown)
        return
    hours = c["users"] / (a["users_per_instance_hour"][compute.instance_type] * compute.count)
    cost = hours * _hourly(Compute(compute.instance_type, compute.count, False), "transform")
    v.figures.update(hours=hours, cost_usd_per_night=cost)
    v.findings.append(Finding("window", hours <= c["window_hours"], f"{c['users']:,} users in {hours:.2f} h on "
                              f"{compute.count} x {compute.instance_type} (window {c['window_hours']} h)"))
    v.findings.append(Finding("cost", cost <= c["budget_usd_per_night"], f"${cost:,.2f} per night "
                              f"(budget ${c['budget_usd_per_night']})"))
    if compute.spot:
        v.findings.append(Finding("spot", False, "batch transform has no Spot option; put Spot on training"))


def _tenants(design: Design, spec: dict[str, Any], v: Verdict) -> None:
    c, a = spec["constraints"], spec["assumptions"]
    if design.serving != "multi-model":
        extra = ""
        if design.serving == "realtime":
            price = cat.load().sagemaker_instance("ml.t3.medium", "hosting").price_usd
            extra = (f": one endpoint per tenant costs at least {c['models']} x ml.t3.medium = "
                     f"${c['models'] * price * a['hours_per_month']:,.0f} per month")
        v.findings.append(Finding("serving", False, f"{design.serving!r} for {c['models']} tenant models{extra}; "
                                  "one fleet must serve them all"))
        return
    compute, missing = _need(design, "inference", "the multi-model endpoint")
    v.findings += missing
    if compute is None:
        return
    memory_mb = cat.load().instance_specs(compute.instance_type)["memory_gib"] * 1024 * compute.count
    hot_mb = c["hot_models"] * c["model_mb"]
    usable = memory_mb * a["memory_for_models_fraction"]
    cost = _hourly(compute, "hosting") * a["hours_per_month"]
    v.figures.update(hot_set_mb=hot_mb, usable_memory_mb=usable, cost_usd_month=cost)
    v.findings.append(Finding("memory", usable >= hot_mb, f"hot set {c['hot_models']} x {c['model_mb']} MB = "
                              f"{hot_mb:,} MB vs {usable:,.0f} MB usable for models "
                              f"({a['memory_for_models_fraction']:.0%} of {memory_mb:,} MB)"
                              + ("" if usable >= hot_mb else ": models would be evicted and reloaded constantly")))
    v.findings.append(Finding("latency", a["cold_load_ms"] <= c["p99_latency_ms"], f"cold load {a['cold_load_ms']} ms "
                              f"(SLA {c['p99_latency_ms']} ms)"))
    v.findings.append(Finding("availability", design.multi_az and compute.count >= 2, "two or more instances "
                              "across AZs" if design.multi_az and compute.count >= 2 else
                              "missing: at least 2 instances and multi_az=True"))
    v.findings.append(Finding("cost", cost <= c["budget_usd_month"], f"${cost:,.0f} per month "
                              f"(budget ${c['budget_usd_month']:,})"))


def _edge(design: Design, spec: dict[str, Any], v: Verdict) -> None:
    c, a = spec["constraints"], spec["assumptions"]
    if design.serving != "edge":
        upload = a["frames_per_day"] * a["frame_kb"] / 1024
        v.findings.append(Finding("serving", False, f"{design.serving!r}: inference in the cloud means uploading "
                                  f"every frame, {upload:,.0f} MB per camera per day (limit "
                                  f"{c['upload_mb_per_camera_day']} MB) and no answer while offline"))
        return
    upload = (a["alerts_per_day"] * a["frame_kb"] / 1024 if "alerts-only-upload" in design.components
              else a["frames_per_day"] * a["frame_kb"] / 1024)
    v.figures.update(upload_mb_per_camera_day=upload)
    v.findings.append(Finding("bandwidth", upload <= c["upload_mb_per_camera_day"], f"{upload:,.1f} MB per camera per "
                              f"day (limit {c['upload_mb_per_camera_day']} MB)"
                              + ("" if upload <= c["upload_mb_per_camera_day"] else
                                 ": what leaves the device must be much less than every frame")))


def _rag(design: Design, spec: dict[str, Any], v: Verdict) -> None:
    c, a = spec["constraints"], spec["assumptions"]
    if not isinstance(design.genai, GenAI):
        v.findings.append(Finding("genai", False, "missing: give genai=GenAI(model_id=..., chunks=...)"))
        return
    model, k = design.genai.model_id, design.genai.chunks
    if model not in a["time_to_first_token_ms"]:
        v.findings.append(Finding("model figure", False, f"no planning figure for {model}: choose one of "
                                  f"{', '.join(sorted(a['time_to_first_token_ms']))}"))
        return
    recall = a["recall_at_k"].get(str(k), 0.0) if k <= max(map(int, a["recall_at_k"])) else \
        a["recall_at_k"][str(max(map(int, a["recall_at_k"])))]
    catalogue = cat.load()
    tokens_in = a["prompt_tokens"] + k * a["chunk_tokens"]
    per_question = (tokens_in / 1000 * catalogue.bedrock(model, "input-tokens").price_usd
                    + a["output_tokens"] / 1000 * catalogue.bedrock(model, "output-tokens").price_usd)
    cost = per_question * c["questions_per_month"]
    latency = (a["retrieval_ms"] + a["time_to_first_token_ms"][model]
               + a["output_tokens"] / a["output_tokens_per_second"][model] * 1000)
    v.figures.update(recall=recall, cost_usd_month=cost, p95_latency_ms=latency, input_tokens=tokens_in)
    v.findings.append(Finding("retrieval", recall >= c["min_recall"], f"recall@{k} {recall:.2f} on the evaluation "
                              f"set (needed {c['min_recall']})" + ("" if recall >= c["min_recall"] else
                                                                   ": retrieve more chunks")))
    v.findings.append(Finding("latency", latency <= c["p95_latency_ms"], f"{a['retrieval_ms']} ms retrieval + "
                              f"{a['time_to_first_token_ms'][model]} ms to the first token + {a['output_tokens']} "
                              f"tokens at {a['output_tokens_per_second'][model]}/s = {latency:,.0f} ms "
                              f"(p95 target {c['p95_latency_ms']} ms)"))
    v.findings.append(Finding("cost", cost <= c["budget_usd_month"], f"{tokens_in} input + {a['output_tokens']} output "
                              f"tokens x {c['questions_per_month']:,} questions = ${cost:,.0f} per month "
                              f"(budget ${c['budget_usd_month']:,})"))


NUMERIC = {"llm-100b": _llm, "text-10tb": _text, "fraud-realtime": _fraud, "recs-nightly": _recs,
           "multi-tenant-1000": _tenants, "edge-10k": _edge, "genai-rag-assistant": _rag}


def _vocabulary_findings(design: Design) -> list[Finding]:
    unknown = sorted(set(design.components) - set(vocabulary()))
    if not unknown:
        return []
    return [Finding("component names", False, "not in the vocabulary (print vocabulary() for the names): "
                    + ", ".join(unknown))]


def check(design: Design) -> Verdict:
    """Every computed constraint of the design's scenario; component names checked against the vocabulary."""
    if not isinstance(design, Design):
        raise TypeError(f"check() takes a labkit.checks.designs.Design, not {type(design).__name__}")
    spec = scenario(design.scenario)
    if design.serving not in SERVING:
        raise ValueError(f"serving must be one of {', '.join(SERVING)}, not {design.serving!r}")
    verdict = Verdict(design.scenario, [])
    rule = NUMERIC.get(design.scenario)
    if rule:
        rule(design, spec, verdict)
    else:
        verdict.findings.append(Finding("constraints", True, "no numeric constraint: the components carry the answer"))
    verdict.findings += _vocabulary_findings(design)
    return verdict


def judge(design: Design, key: dict[str, Any]) -> Verdict:
    """:func:`check`, then the answer key: required and contradicting components, cost and complexity budget.

    ``key`` (one scenario's entry of an answer key): ``required`` {component: why}, ``wrong``
    {component: why not}, ``max_components``, and ``budget`` {figure: {"max": x} or {"min": x}, ...}
    beyond which the design buys more than its constraints need.
    """
    verdict = check(design)
    verdict.keyed = True
    for name, why in key["required"].items():
        ok = name in design.components
        verdict.findings.append(Finding(f"component {name}", ok, "present" if ok else f"missing: {why}", "component"))
    for name, why in key.get("wrong", {}).items():
        if name in design.components:
            verdict.findings.append(Finding(f"component {name}", False, f"does not fit: {why}", "budget"))
    count, most = len(set(design.components)), key["max_components"]
    verdict.findings.append(Finding("complexity", count <= most, f"{count} components (this scenario needs at most "
                                    f"{most})" + ("" if count <= most else ": name what the constraints need; a list of "
                                                  "everything shows no judgement"), "budget"))
    for figure, bound in key.get("budget", {}).items():
        value = verdict.figures.get(figure)
        if value is None:
            continue
        if "max" in bound and value > bound["max"]:
            verdict.findings.append(Finding("over-provisioned", False, f"{figure} {value:,.2f} is above "
                                            f"{bound['max']:,}: the constraints are met for much less", "budget"))
        elif "min" in bound and value < bound["min"]:
            verdict.findings.append(Finding("over-provisioned", False, f"{figure} {value:,.2f} is below "
                                            f"{bound['min']:,}: far more capacity than the constraints need",
                                            "budget"))
        else:
            verdict.findings.append(Finding("provisioning", True, f"{figure} {value:,.2f} within the budget", "budget"))
    return verdict


def _plain(value: Any, kind: type, what: str) -> Any:
    if type(value) is not kind:
        raise TypeError(f"{what} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _compute(value: Any, what: str) -> Compute | None:
    if value is None:
        return None
    return Compute(_plain(value.instance_type, str, f"{what}.instance_type"), _plain(value.count, int, f"{what}.count"),
                   _plain(value.spot, bool, f"{what}.spot"))


def from_answer(answer: Any) -> Design:
    """A fresh :class:`Design` rebuilt from a learner's object, its values read once and type-checked.

    Grading judges this copy, so an object with a changing property or an ``__eq__`` that always
    says True cannot pass for a design it is not.
    """
    components = answer.components
    if not isinstance(components, set | frozenset | list | tuple):
        raise TypeError("components must be a set of component names")
    names = {_plain(c, str, "a component name") for c in components}
    genai = answer.genai if hasattr(answer, "genai") else None
    if genai is not None:
        genai = GenAI(_plain(genai.model_id, str, "genai.model_id"), _plain(genai.chunks, int, "genai.chunks"))
    return Design(scenario=_plain(answer.scenario, str, "scenario"), serving=_plain(answer.serving, str, "serving"),
                  inference=_compute(answer.inference, "inference"), training=_compute(answer.training, "training"),
                  processing=_compute(answer.processing, "processing"), components=names,
                  multi_az=_plain(answer.multi_az, bool, "multi_az"), genai=genai)


# --- practice mode ----------------------------------------------------------------------------


@dataclass
class Practice:
    """Questions drawn at random, each with a time limit; ``submit`` checks and times an answer."""

    questions: list[dict[str, Any]]
    minutes: float
    started: float = field(default_factory=time.monotonic)
    answers: dict[str, tuple[Verdict, float]] = field(default_factory=dict)

    def remaining(self) -> float:
        """Minutes left (negative once over time)."""
        return self.minutes * len(self.questions) - (time.monotonic() - self.started) / 60

    def show(self) -> str:
        lines = [f"{len(self.questions)} question(s), {self.minutes:g} minutes each "
                 f"({self.remaining():.1f} min left)"]
        for i, q in enumerate(self.questions, 1):
            lines.append(f"{i}. [{q['id']}] {q['title']}\n   exam domains: {'; '.join(q['exams'])}\n"
                         f"   {q['question']}")
        return "\n".join(lines)

    def submit(self, design: Design) -> Verdict:
        """Judge with the scenario's key where this copy has one (practice scenarios do), else check."""
        if design.scenario not in {q["id"] for q in self.questions}:
            raise ValueError(f"{design.scenario!r} is not one of this session's questions: "
                             f"{', '.join(q['id'] for q in self.questions)}")
        key = load_key(design.scenario)
        verdict = judge(design, key) if key else check(design)
        used = (time.monotonic() - self.started) / 60
        self.answers[design.scenario] = (verdict, used)
        return verdict

    def summary(self) -> str:
        done = len(self.answers)
        good = sum(v.passed for v, _ in self.answers.values())
        over = self.remaining() < 0
        return (f"{good}/{len(self.questions)} designs meet their constraints, {done} answered, "
                f"{'over time' if over else f'{self.remaining():.1f} min to spare'}")


def exam_domains() -> dict[str, dict[str, str]]:
    """The current exams' domains: {exam: {"Domain 1": "name (weight)", ...}}."""
    return {code: exam["domains"] for code, exam in scenarios()["exams"].items() if exam.get("domains")}


def practice(n: int = 1, minutes: float = 15, seed: int | None = None, exam: str | None = None) -> Practice:
    """Draw ``n`` scenarios at random (``seed`` repeats a draw), optionally only those of ``exam`` (e.g. "AIP-C01")."""
    pool = scenarios()["scenarios"]
    if exam is not None:
        if exam not in scenarios()["exams"]:
            raise ValueError(f"exam must be one of {', '.join(scenarios()['exams'])}, not {exam!r}")
        pool = [s for s in pool if any(tag.startswith(exam) for tag in s["exams"])]
    if not 1 <= n <= len(pool):
        raise ValueError(f"n must be between 1 and {len(pool)}" + (f" for {exam}" if exam else ""))
    return Practice(random.Random(seed).sample(pool, n), minutes)


__all__ = ["Compute", "Design", "Finding", "GenAI", "Practice", "Verdict", "check", "exam_domains", "from_answer",
           "judge", "load_key", "practice", "scenario", "scenarios", "vocabulary"]
