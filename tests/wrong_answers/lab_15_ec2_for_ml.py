"""Lab 15's plausible mistakes, one or two things wrong in an otherwise right answer."""

from wrong_answers import Mistake, edit

LAB = "15-ec2-for-ml"

MISTAKES = [
    # Exercise 1: the DLAMI by query
    Mistake(
        "one call instead of a paginator, and the wrong path",
        {"ex1-answer": edit(LAB, "ex1-answer", ('Path=f"/aws/service/deeplearning/ami/{architecture}"',
                                                'Path="/aws/service/deeplearning/ami/x86_64"'))},
        {"ex1-tests": 0},
        {"ex1-tests": "architecture argument"},
    ),
    Mistake(
        "returns None instead of raising",
        {"ex1-answer": edit(LAB, "ex1-answer", ('raise LookupError(f"no DLAMI for {framework} on {os_name} ({architecture})")',
                                                "return None"))},
        {"ex1-tests": 0},
        {"ex1-tests": "raise LookupError"},
    ),
    # Exercise 2: the cluster
    Mistake(
        "user data not base64-encoded in the launch template",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            '"UserData": base64.b64encode(USER_DATA.format(world_size=num_instances).encode()).decode(),',
            '"UserData": USER_DATA.format(world_size=num_instances),'))},
        {"ex2-tests": 0},
        {"ex2-tests": "InvalidUserData.Malformed"},
    ),
    Mistake(
        "no placement group on the launch",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            ',\n                                    Placement={"GroupName": "lab15-cluster"})', ")"))},
        {"ex2-tests": 0},
        {"ex2-tests": "placement group lab15-cluster"},
    ),
    Mistake(
        "an ordinary network interface instead of EFA",
        {"ex2-answer": edit(LAB, "ex2-answer", ('"InterfaceType": "efa", ', ""))},
        {"ex2-tests": 0},
        {"ex2-tests": "EFA network interface"},
    ),
    Mistake(
        "counts MinCount as a problem of the seed",
        {"ex2-answer": edit(LAB, "ex2-answer", ('"master-addr-is-self", "no-efa"]', '"master-addr-is-self", "no-efa", "min-count-too-low"]'))},
        {"ex2-tests": 0},
        {"ex2-tests": "MinCount equals MaxCount"},
    ),
    # Exercise 3: capacity
    Mistake(
        "retries every error",
        {"ex3-answer": edit(LAB, "ex3-answer", ('            if err.response["Error"]["Code"] == "InsufficientInstanceCapacity":\n'
                                                "                continue\n            raise\n",
                                                "            continue\n"))},
        {"ex3-tests": 0},
        {"ex3-tests": "not about capacity must be raised"},
    ),
    Mistake(
        "MinCount 1: a partial cluster",
        {"ex3-answer": edit(LAB, "ex3-answer", ("MinCount=count, MaxCount=count", "MinCount=1, MaxCount=count"))},
        {"ex3-tests": 0},
        {"ex3-tests": "skip the zones that refuse"},
    ),
    Mistake(
        "returns None when nothing fits",
        {"ex3-answer": edit(LAB, "ex3-answer", ('raise RuntimeError(f"no capacity for {count} instances in {choices}")',
                                                "return None"))},
        {"ex3-tests": 0},
        {"ex3-tests": "raise RuntimeError"},
    ),
    # Exercise 4: Batch
    Mistake(
        "retries a failing job too",
        {"ex4-answer": edit(LAB, "ex4-answer", (',\n                                                         {"onReason": "*", "action": "EXIT"}]',
                                                "]"))},
        {"ex4-tests": 0},
        {"ex4-tests": "must not be retried"},
    ),
    Mistake(
        "no retry strategy",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            'retryStrategy={"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"},\n'
            '                                                         {"onReason": "*", "action": "EXIT"}]})["jobDefinitionArn"]',
            ')["jobDefinitionArn"]'))},
        {"ex4-tests": 0},
        {"ex4-tests": "a reclaimed host is retried"},
    ),
    Mistake(
        "the bulk queue on On-Demand first",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            '{"order": 1, "computeEnvironment": "lab15-spot"}, {"order": 2, "computeEnvironment": "lab15-ondemand"}',
            '{"order": 1, "computeEnvironment": "lab15-ondemand"}, {"order": 2, "computeEnvironment": "lab15-spot"}'))},
        {"ex4-tests": 0},
        {"ex4-tests": "exactly the child whose host was reclaimed"},
    ),
    # Exercise 5: Fargate or SageMaker
    Mistake(
        "no headroom: units at 100% load",
        {"ex5-answer": edit(LAB, "ex5-answer", ("math.ceil(peak_rps / (0.6 * per_unit_rps))", "math.ceil(peak_rps / per_unit_rps)"))},
        {"ex5-tests": 0},
        {"ex5-tests": "kept at 60%"},
    ),
    Mistake(
        "Fargate memory priced per MB of 4096",
        {"ex5-answer": edit(LAB, "ex5-answer", ("units * (2 * vcpu + 4 * memory) * 730", "units * (2 * vcpu + 4096 * memory) * 730"))},
        {"ex5-tests": 0},
        {"ex5-tests": "4 GB x GB-hour price"},
    ),
    Mistake(
        "a single unit allowed",
        {"ex5-answer": edit(LAB, "ex5-answer", ("return max(2, math.ceil(", "return max(1, math.ceil("))},
        {"ex5-tests": 0},
        {"ex5-tests": "never fewer than 2 units"},
    ),
    # Exercise 6: warm pools
    Mistake(
        "no keep-alive on the second job",
        {"ex6-answer": edit(LAB, "ex6-answer", ('train(ITERATE_JOB, keep_alive=600)', 'train(ITERATE_JOB)'),
                            ('    sm.update_training_job(TrainingJobName=ITERATE_JOB, ResourceConfig={"KeepAlivePeriodInSeconds": 0})\n', ""))},
        {"ex6-tests": 0},
        {"ex6-tests": "a keep-alive on both"},
    ),
    Mistake(
        "leaves the new pool running",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            '    sm.update_training_job(TrainingJobName=ITERATE_JOB, ResourceConfig={"KeepAlivePeriodInSeconds": 0})\n', ""))},
        {"ex6-tests": 0},
        {"ex6-tests": "a kept pool is billed"},
    ),
    # Exercise 7: Inference Recommender
    Mistake(
        "a P99 limit instead of P95",
        {"ex7-answer": edit(LAB, "ex7-answer", ('"Percentile": "P95"', '"Percentile": "P99"'))},
        {"ex7-tests": 0},
        {"ex7-tests": "P95 latency limit of 100 ms"},
    ),
    Mistake(
        "one candidate only",
        {"ex7-answer": edit(LAB, "ex7-answer", ('"SupportedInstanceTypes": ["ml.c5.large", "ml.c5.xlarge", "ml.m5.xlarge"]',
                                                '"SupportedInstanceTypes": ["ml.c5.large"]'))},
        {"ex7-tests": 0},
        {"ex7-tests": "the three candidate instance types"},
    ),
]
