"""Lab 12's plausible mistakes: undersized, oversized, kitchen-sink and seed-copying designs."""

from wrong_answers import Mistake, edit

LAB = "12-interview-practice"
SINK = "components=set(vocabulary())"

MISTAKES = [
    Mistake(
        "fraud sized for the peak without the utilisation headroom",
        {"ex1-answer": edit(LAB, "ex1-answer", ('Compute("ml.c5.2xlarge", 6)', 'Compute("ml.c5.2xlarge", 5)'))},
        {"ex1-tests": 0, "ex1-budget": 0},
        {"ex1-tests": "at least 6 instances", "ex1-budget": "once the design meets its constraints"},
    ),
    Mistake(
        "fraud as a kitchen sink of every component",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            'components={"feature-store-online", "autoscaling", "model-monitor", "latency-alarm"}', SINK))},
        {"ex1-budget": 0},
        {"ex1-budget": "too many components"},
    ),
    Mistake(
        "fraud on GPUs: in budget but 2.3 times the cheapest fleet",
        {"ex1-answer": edit(LAB, "ex1-answer", ('Compute("ml.c5.2xlarge", 6)', 'Compute("ml.g5.xlarge", 4)'))},
        {"ex1-budget": 0},
        {"ex1-budget": "over-provisioned"},
    ),
    Mistake(
        "fraud without the online feature store",
        {"ex1-answer": edit(LAB, "ex1-answer", ('"feature-store-online", ', ""))},
        {"ex1-tests": 0},
        {"ex1-tests": "features reach the model at request time"},
    ),
    Mistake(
        "recommendations on a real-time endpoint",
        {"ex2-answer": edit(LAB, "ex2-answer", ('serving="batch"', 'serving="realtime"'))},
        {"ex2-tests": 0, "ex2-budget": 0},
        {"ex2-tests": "batch job"},
    ),
    Mistake(
        "recommendations with Spot on the batch transform",
        {"ex2-answer": edit(LAB, "ex2-answer", ('Compute("ml.c5.xlarge", 2)', 'Compute("ml.c5.xlarge", 2, spot=True)'))},
        {"ex2-tests": 0, "ex2-budget": 0},
        {"ex2-tests": "no Spot option"},
    ),
    Mistake(
        "recommendations the website cannot read",
        {"ex2-answer": edit(LAB, "ex2-answer", (', "serving-store"', ""))},
        {"ex2-tests": 0},
        {"ex2-tests": "where does the website read the results"},
    ),
    Mistake(
        "tenants on one instance in one zone",
        {"ex3-answer": edit(LAB, "ex3-answer", ('Compute("ml.m5.xlarge", 2), multi_az=True',
                                                'Compute("ml.m5.2xlarge", 1)'))},
        {"ex3-tests": 0, "ex3-budget": 0},
        {"ex3-tests": "multi_az=True"},
    ),
    Mistake(
        "tenants with an endpoint per tenant on top",
        {"ex3-answer": edit(LAB, "ex3-answer", ('"tenant-isolation"}', '"tenant-isolation", "endpoint-per-tenant"}'))},
        {"ex3-budget": 0},
        {"ex3-budget": "cannot each have their own fleet"},
    ),
    Mistake(
        "tenants on instances twice as large as needed",
        {"ex3-answer": edit(LAB, "ex3-answer", ('Compute("ml.m5.xlarge", 2)', 'Compute("ml.m5.2xlarge", 2)'))},
        {"ex3-budget": 0},
        {"ex3-budget": "over-provisioned"},
    ),
    Mistake(
        "the seed's 100B answer handed in as it is",
        {"ex4-answer": "LLM = SEED_LLM\n"},
        {"ex4-tests": 0, "ex4-budget": 0},
        {"ex4-tests": "split across accelerators"},
    ),
    Mistake(
        "a fixed fleet that keeps the seed's multi-model endpoint",
        {"ex4-answer": edit(LAB, "ex4-answer", ('"efa"}', '"efa", "multi-model-endpoint"}'))},
        {"ex4-budget": 0},
        {"ex4-budget": "contradicts what a 100B model needs"},
    ),
    Mistake(
        "a month-long run without checkpoints",
        {"ex4-answer": edit(LAB, "ex4-answer", ('"checkpointing", ', ""))},
        {"ex4-tests": 0},
        {"ex4-tests": "how does the run survive failures"},
    ),
    Mistake(
        "400 p5 instances: done in two days",
        {"ex4-answer": edit(LAB, "ex4-answer", ('Compute("ml.p5.48xlarge", 64)', 'Compute("ml.p5.48xlarge", 400)'))},
        {"ex4-budget": 0},
        {"ex4-budget": "over-provisioned"},
    ),
    Mistake(
        "the text pipeline on demand",
        {"ex5-answer": edit(LAB, "ex5-answer", ('Compute("m5.4xlarge", 60, spot=True)', 'Compute("m5.4xlarge", 60)'))},
        {"ex5-tests": 0, "ex5-budget": 0},
        {"ex5-tests": "use Spot for task nodes"},
    ),
    Mistake(
        "the text pipeline that keeps the seed's LZ4 claim",
        {"ex5-answer": edit(LAB, "ex5-answer", ('"transient-cluster"}', '"transient-cluster", "lz4-compression"}'))},
        {"ex5-budget": 0},
        {"ex5-budget": "does not do what the seed claims"},
    ),
    Mistake(
        "the seed's cluster size with Spot",
        {"ex5-answer": edit(LAB, "ex5-answer", ('Compute("m5.4xlarge", 60, spot=True)',
                                                'Compute("m5.4xlarge", 20, spot=True)'))},
        {"ex5-tests": 0, "ex5-budget": 0},
        {"ex5-tests": "add nodes"},
    ),
    Mistake(
        "a release path nobody approves",
        {"ex6-answer": edit(LAB, "ex6-answer", ('"manual-approval", ', ""))},
        {"ex6-tests": 0, "ex6-budget": 0},
        {"ex6-tests": "approved, by whom"},
    ),
    Mistake(
        "a release path with everything in it",
        {"ex6-answer": 'MLOPS = Design("mlops-cicd", serving="realtime", components=set(vocabulary()))\n'},
        {"ex6-budget": 0},
        {"ex6-budget": "too many components"},
    ),
]

# The whole lab answered with every component of the vocabulary: at most half the lab's points.
_SINKS = {
    "ex1-answer": 'FRAUD = Design("fraud-realtime", serving="realtime", inference=Compute("ml.c5.2xlarge", 6), '
                  'multi_az=True, components=set(vocabulary()))\n',
    "ex2-answer": 'RECS = Design("recs-nightly", serving="batch", inference=Compute("ml.c5.xlarge", 2), '
                  'components=set(vocabulary()))\n',
    "ex3-answer": 'TENANTS = Design("multi-tenant-1000", serving="multi-model", inference=Compute("ml.m5.xlarge", 2), '
                  'multi_az=True, components=set(vocabulary()))\n',
    "ex4-answer": 'LLM = Design("llm-100b", training=Compute("ml.p5.48xlarge", 64), components=set(vocabulary()))\n',
    "ex5-answer": 'TEXT = Design("text-10tb", processing=Compute("m5.4xlarge", 60, spot=True), '
                  'components=set(vocabulary()))\n',
    "ex6-answer": 'MLOPS = Design("mlops-cicd", serving="realtime", components=set(vocabulary()))\n',
}
MISTAKES.append(Mistake(
    "every answer a kitchen sink: half the lab's points at most",
    _SINKS,
    {f"ex{i}-budget": 0 for i in range(1, 7)},
    {f"ex{i}-budget": "too many components" for i in range(1, 7)},
))
