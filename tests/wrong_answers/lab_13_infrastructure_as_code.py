"""Lab 13's plausible mistakes, one or two things wrong in an otherwise right answer."""

from wrong_answers import Mistake, edit

LAB = "13-infrastructure-as-code"

MISTAKES = [
    # Exercise 1: capacity numbers and the change set's replacements
    Mistake(
        "target value per second, not per minute",
        {"ex1-answer": edit(LAB, "ex1-answer", ("return per_instance * 60,", "return per_instance,"))},
        {"ex1-tests": 0},
        {"ex1-tests": "per MINUTE"},
    ),
    Mistake(
        "max capacity rounded down",
        {"ex1-answer": edit(LAB, "ex1-answer", ("math.ceil(peak_rps / per_instance)", "int(peak_rps / per_instance)"))},
        {"ex1-tests": 0},
        {"ex1-tests": "round up"},
    ),
    Mistake(
        "the endpoint predicted as replaced",
        {"ex1-answer": edit(LAB, "ex1-answer", ('"Endpoint": "False"', '"Endpoint": "True"'))},
        {"ex1-tests": 0},
        {"ex1-tests": "a Replacement value is wrong"},
    ),
    Mistake(
        "only the resources whose own properties change",
        {"ex1-answer": edit(LAB, "ex1-answer", ('"Config": "True", "Endpoint": "False", ', '"Config": "True", '))},
        {"ex1-tests": 0},
        {"ex1-tests": "name exactly the resources the change set changes"},
    ),
    # Exercise 2: drift
    Mistake(
        "every resource in the report, drifted or not",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            ', StackResourceDriftStatusFilters=["MODIFIED", "DELETED"]', ""))},
        {"ex2-tests": 0},
        {"ex2-tests": "only the scalable target drifted"},
    ),
    Mistake(
        "deleted resources left out",
        {"ex2-answer": edit(LAB, "ex2-answer", ('["MODIFIED", "DELETED"]', '["MODIFIED"]'))},
        {"ex2-tests": 0},
        {"ex2-tests": "deleted outside the stack"},
    ),
    # Exercise 3: the root cause, and the fix
    Mistake(
        "the newest failure, the stack's own included",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            'for e in sorted(rows, key=lambda e: e["Timestamp"]):', "for e in rows:"), (
            'if (e["ResourceStatus"].endswith("_FAILED") and e["LogicalResourceId"] != stack\n',
            'if (e["ResourceStatus"].endswith("_FAILED")\n'))},
        {"ex3-root-cause": 0},
        {"ex3-root-cause": "not the stack or a cancelled one"},
    ),
    Mistake(
        "the first reason that mentions a failure",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            'if (e["ResourceStatus"].endswith("_FAILED") and e["LogicalResourceId"] != stack\n'
            '                and "cancelled" not in reason.lower()):',
            'if "failed" in reason.lower():'))},
        {"ex3-root-cause": 0},
        {"ex3-root-cause": "the first resource that failed on its own is the scalable target"},
    ),
    Mistake(
        "only the lint error fixed",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            '.replace(\n    "    Type: AWS::ApplicationAutoScaling::ScalableTarget\\n",\n'
            '    "    Type: AWS::ApplicationAutoScaling::ScalableTarget\\n    DependsOn: Endpoint\\n")', ""))},
        {"ex3-fixed": 0},
        {"ex3-fixed": "the fixed stack did not create"},
    ),
    Mistake(
        "the literal ResourceId rewritten instead of a DependsOn",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            '.replace(\n    "    Type: AWS::ApplicationAutoScaling::ScalableTarget\\n",\n'
            '    "    Type: AWS::ApplicationAutoScaling::ScalableTarget\\n    DependsOn: Endpoint\\n")',
            '.replace(\n    "ResourceId: endpoint/lab13-colleague/variant/AllTraffic",\n'
            '    "ResourceId: !Sub endpoint/${Endpoint.EndpointName}/variant/AllTraffic")'))},
        {"ex3-fixed": 0},
        {"ex3-fixed": "keep the colleague's literal ResourceId"},
    ),
    # Exercise 4: the CDK app
    Mistake(
        "the bootstrap version rule kept",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            'synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False))',
            'synthesizer=cdk.DefaultStackSynthesizer())'))},
        {"ex4-tests": 0},
        {"ex4-tests": "generate_bootstrap_version_rule=False"},
    ),
    Mistake(
        "a maximum capacity of its own",
        {"ex4-answer": edit(LAB, "ex4-answer", ("min_capacity=1, max_capacity=2)", "min_capacity=1, max_capacity=4)"))},
        {"ex4-tests": 0},
        {"ex4-tests": "AWS::ApplicationAutoScaling::ScalableTarget differs"},
    ),
    Mistake(
        "a literal ResourceId: nothing orders the target after the endpoint",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            'resource_id=f"endpoint/{endpoint.attr_endpoint_name}/variant/AllTraffic"',
            'resource_id="endpoint/lab13-cdk/variant/AllTraffic"'))},
        {"ex4-tests": 0},
        {"ex4-tests": "the CDK stack did not create"},
    ),
    # Exercise 5: the new fleet's alarm and the canary
    Mistake(
        "the alarm watches the whole endpoint",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            ',\n                    {"Name": "EndpointConfigName", "Value": config}]', "]"))},
        {"ex5-tests": 0},
        {"ex5-tests": "the alarm watches the new fleet only"},
    ),
    Mistake(
        "missing data treated as breaching",
        {"ex5-answer": edit(LAB, "ex5-answer", ('TreatMissingData="notBreaching"', 'TreatMissingData="breaching"'))},
        {"ex5-tests": 0},
        {"ex5-tests": "TreatMissingData"},
    ),
    Mistake(
        "no automatic rollback configured",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            '        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},\n', ""))},
        {"ex5-tests": 0},
        {"ex5-tests": "the broken version must be rolled back"},
    ),
    Mistake(
        "the baking period in minutes",
        {"ex5-answer": edit(LAB, "ex5-answer", ('"WaitIntervalInSeconds": 300', '"WaitIntervalInSeconds": 5'))},
        {"ex5-tests": 0},
        {"ex5-tests": "bake 300 s"},
    ),
    # Exercise 6: the logs, and the fix
    Mistake(
        "startTime in seconds",
        {"ex6-answer": edit(LAB, "ex6-answer", ("int(since.timestamp() * 1000)", "int(since.timestamp())"))},
        {"ex6-tests": 0},
        {"ex6-tests": "in milliseconds"},
    ),
    Mistake(
        "the whole traceback returned",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            'if re.match(r"^[\\w.]*Error: ", e["message"].strip())',
            'if "Error" in e["message"] or "Traceback" in e["message"]'))},
        {"ex6-tests": 0},
        {"ex6-tests": "only the exception lines"},
    ),
    Mistake(
        "labels at 0.5, not the model's threshold",
        {"ex6-code": edit(LAB, "ex6-code", ('(probabilities >= model["threshold"])', "(probabilities >= 0.5)"))},
        {"ex6-tests": 0},
        {"ex6-tests": "labels apply the threshold stored with the model"},
    ),
    Mistake(
        "v2's bug kept",
        {"ex6-code": edit(LAB, "ex6-code", ('probabilities = model["model"].predict_proba(data)[:, 1]',
                                            "probabilities = model.predict_proba(data)[:, 1]"))},
        {"ex6-tests": 0},
        {"ex6-tests": "v3 did not complete"},
    ),
    # Exercise 7: the rollout decision
    Mistake(
        "rolling pays for a whole second fleet",
        {"ex7-answer": edit(LAB, "ex7-answer", ("extra_instances = n * step_share", "extra_instances = n"))},
        {"ex7-tests": 0},
        {"ex7-tests": "rolling pays for one batch"},
    ),
    Mistake(
        "no termination wait",
        {"ex7-answer": edit(LAB, "ex7-answer", (
            "duration = provision_min + steps * bake_min + termination_min", "duration = provision_min + steps * bake_min"))},
        {"ex7-tests": 0},
        {"ex7-tests": "provision + one bake + termination"},
    ),
    Mistake(
        "the cheapest strategy, whatever its risk",
        {"ex7-answer": edit(LAB, "ex7-answer", ("CHOICE = fits.extra_cost_usd.idxmin()",
                                                "CHOICE = TABLE.extra_cost_usd.idxmin()"))},
        {"ex7-tests": 0},
        {"ex7-tests": "only the canary is under 60 minutes"},
    ),
    # Exercise 8: champion and challenger
    Mistake(
        "latency left in microseconds",
        {"ex8-answer": edit(LAB, "ex8-answer", ('"latency_ms": latency_sum / count / 1000,',
                                                '"latency_ms": latency_sum / count,'))},
        {"ex8-tests": 0},
        {"ex8-tests": "in milliseconds"},
    ),
    Mistake(
        "promoted on accuracy alone",
        {"ex8-answer": edit(LAB, "ex8-answer", (
            "return bool(challenger.accuracy >= champion.accuracy + 0.02 and challenger.error_rate <= 0.01\n"
            "                and challenger.latency_ms <= 50)",
            "return bool(challenger.accuracy >= champion.accuracy + 0.02)"))},
        {"ex8-tests": 0},
        {"ex8-tests": "blocks promotion"},
    ),
    Mistake(
        "the decision not applied",
        {"ex8-answer": edit(LAB, "ex8-answer", (
            'sm.update_endpoint_weights_and_capacities(EndpointName=AB, DesiredWeightsAndCapacities=[\n'
            '    {"VariantName": winner, "DesiredWeight": 1.0}, {"VariantName": loser, "DesiredWeight": 0.0}])\n', ""))},
        {"ex8-tests": 0},
        {"ex8-tests": "apply the decision"},
    ),
]
