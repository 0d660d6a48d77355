"""Lab 04's plausible mistakes."""

from wrong_answers import Mistake, edit

LAB = "04-endpoints"

MISTAKES = [
    # Exercise 1: inference.py
    Mistake(
        "model file name the container does not have",
        {"ex1-answer": edit(LAB, "ex1-answer", ('return joblib.load(os.path.join(model_dir, "model.joblib"))',
                                                'return joblib.load(os.path.join(model_dir, "model.pkl"))'))},
        {"ex1-tests": 0, "ex1-contract": 0, "ex1-errors": 0},
        {"ex1-tests": "the endpoint did not come up"},
    ),
    Mistake(
        "one model call per record",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            "return model.predict_proba(input_data)[:, 1]",
            "return np.array([model.predict_proba(input_data.iloc[[i]])[0, 1] for i in range(len(input_data))])"))},
        {"ex1-contract": 0},
        {"ex1-contract": "once per record"},
    ),
    Mistake(
        "true accepted as a number",
        {"ex1-answer": edit(LAB, "ex1-answer", ("if isinstance(value, bool) or not isinstance(value, (int, float)):",
                                                "if not isinstance(value, (int, float)):"))},
        {"ex1-errors": 0},
        {"ex1-errors": "true is not a number"},
    ),
    # Exercise 2: autoscaling
    Mistake(
        "capacity of one worker",
        {"ex2-answer": edit(LAB, "ex2-answer", ("return workers * 60_000 / p99_ms * headroom", "return 60_000 / p99_ms * headroom"))},
        {"ex2-target": 0},
        {"ex2-target": "4 workers"},
    ),
    Mistake(
        "cooldowns swapped",
        {"ex2-answer": edit(LAB, "ex2-answer", ('"ScaleOutCooldown": 60, "ScaleInCooldown": 300',
                                                '"ScaleOutCooldown": 300, "ScaleInCooldown": 60'))},
        {"ex2-policy": 0},
        {"ex2-policy": "scale out quickly"},
    ),
    Mistake(
        "instances rounded down",
        {"ex2-answer": edit(LAB, "ex2-answer", ("math.ceil(invocations_per_minute / target_value)",
                                                "int(invocations_per_minute / target_value)"))},
        {"ex2-desired": 0},
        {"ex2-desired": "3 instances"},
    ),
    # Exercise 3: serverless sizing
    Mistake(
        "concurrency rounded down",
        {"ex3-answer": edit(LAB, "ex3-answer", ("concurrency = math.ceil(peak_rps * seconds_per_request)",
                                                "concurrency = int(peak_rps * seconds_per_request)"))},
        {"ex3-sizing": 0},
        {"ex3-sizing": "rounded up"},
    ),
    Mistake(
        "memory not one of the sizes",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            '    memory = next((size for size in SERVERLESS_MEMORY_SIZES if size >= 1024 + model_mb), None)\n'
            '    if memory is None:\n'
            '        raise ValueError(f"a {model_mb} MB model does not fit the largest serverless size (6144 MB)")\n',
            "    memory = int(1024 + model_mb)\n"))},
        {"ex3-sizing": 0, "ex3-tests": 0},
        {"ex3-sizing": "MemorySizeInMB must be one of", "ex3-tests": "MemorySizeInMB"},
    ),
    Mistake(
        "no limit of 200 concurrent requests",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            '    if concurrency > 200:\n'
            '        raise ValueError(f"{concurrency} concurrent requests at peak: serverless takes at most 200, use instances")\n',
            ""))},
        {"ex3-sizing": 0},
        {"ex3-sizing": "raise ValueError"},
    ),
    # Exercise 4: multi-model
    Mistake(
        "TargetModel without the file's extension",
        {"ex4-answer": edit(LAB, "ex4-answer", ('TargetModel=f"{tenant}.tar.gz"', "TargetModel=tenant"))},
        {"ex4-tenant": 0},
        {"ex4-tenant": "Failed to download model data"},
    ),
    Mistake(
        "unknown tenant sent to the endpoint",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            '    if tenant not in TENANTS:\n'
            '        raise ValueError(f"unknown tenant {tenant!r}: the tenants are {\', \'.join(TENANTS)}")\n', ""))},
        {"ex4-tenant": 0},
        {"ex4-tenant": "must raise ValueError"},
    ),
    Mistake(
        "single-model container",
        {"ex4-answer": edit(LAB, "ex4-answer", ('"Mode": "MultiModel", ', ""))},
        {"ex4-container": 0, "ex4-tenant": 0},
        {"ex4-container": "did not come up"},
    ),
    # Exercise 5: the failing transform job
    Mistake(
        "input filtered, prediction not joined",
        {"ex5-answer": edit(LAB, "ex5-answer", ('"DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},',
                                                '"DataProcessing": {"InputFilter": "$[1:]"},'))},
        {"ex5-output": 0},
        {"ex5-output": "join each prediction to its input"},
    ),
    Mistake(
        "joined row kept whole",
        {"ex5-answer": edit(LAB, "ex5-answer", ('"JoinSource": "Input", "OutputFilter": "$[0,-1]"}', '"JoinSource": "Input"}'))},
        {"ex5-output": 0},
        {"ex5-output": "only the customer id and the probability"},
    ),
    Mistake(
        "output filter keeps the first feature, not the prediction",
        {"ex5-answer": edit(LAB, "ex5-answer", ('"OutputFilter": "$[0,-1]"', '"OutputFilter": "$[0,1]"'))},
        {"ex5-tests": 0},
        {"ex5-tests": "churn probability"},
    ),
    # Exercise 6: costs and the choice
    Mistake(
        "a 30-day month of instance hours",
        {"ex6-answer": edit(LAB, "ex6-answer", ('"real-time": 730 * hosting,', '"real-time": 720 * hosting,'))},
        {"ex6-costs": 0},
        {"ex6-costs": "730 instance-hours"},
    ),
    Mistake(
        "payload limits ignored",
        {"ex6-answer": edit(LAB, "ex6-answer", ("    if payload_mb <= 4 and latency_slo_s >= COLD_START_S:",
                                                "    if latency_slo_s >= COLD_START_S:"))},
        {"ex6-choice": 0},
        {"ex6-choice": "4 MB limit"},
    ),
    Mistake(
        "cold start ignored",
        {"ex6-answer": edit(LAB, "ex6-answer", ("    if payload_mb <= 4 and latency_slo_s >= COLD_START_S:",
                                                "    if payload_mb <= 4:"))},
        {"ex6-choice": 0},
        {"ex6-choice": "cold start"},
    ),
    # Exercise 7: teardown
    Mistake(
        "deletes every model in the account",
        {"ex7-answer": edit(LAB, "ex7-answer", ('sm.list_models(NameContains="lab04-")', "sm.list_models()"))},
        {"ex7-tests": 0},
        {"ex7-tests": "another team's model was deleted"},
    ),
    Mistake(
        "scalable targets left registered",
        {"ex7-answer": edit(LAB, "ex7-answer", (
            '    for target in autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]:\n'
            '        if target["ResourceId"].startswith("endpoint/lab04-"):\n'
            '            autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=target["ResourceId"],\n'
            '                                                   ScalableDimension=target["ScalableDimension"])\n', ""))},
        {"ex7-tests": 0},
        {"ex7-tests": "scalable targets left registered"},
    ),
]
