"""Lab 05's plausible mistakes (two per exercise: every submission runs pipelines and a monitor)."""

from wrong_answers import Mistake, edit

LAB = "05-mlops"

MISTAKES = [
    # Exercise 1: evaluate.py
    Mistake(
        "report without the metrics nesting",
        {"ex1-answer": edit(LAB, "ex1-answer", ('json.dump({"metrics": {"accuracy": {"value": round(accuracy, 4)}}}, f)',
                                                'json.dump({"accuracy": round(accuracy, 4)}, f)'))},
        {"ex1-tests": 0},
        {"ex1-tests": "expected metrics.accuracy.value"},
    ),
    Mistake(
        "container path instead of the base argument",
        {"ex1-answer": edit(LAB, "ex1-answer", ('    with tarfile.open(os.path.join(base, "model", "model.tar.gz")) as tar:',
                                                '    base = BASE\n    with tarfile.open(os.path.join(base, "model", "model.tar.gz")) as tar:'))},
        {"ex1-tests": 0},
        {"ex1-tests": "/opt/ml/processing"},
    ),
    # Exercise 2: the quality gate
    Mistake(
        "gate still reads the wrong JSON path",
        {"ex2-answer": edit(LAB, "ex2-answer", ('json_path="metrics.accuracy.value"', 'json_path="accuracy.value"'))},
        {"ex2-gate": 0, "ex2-pipeline": 0},
        {"ex2-gate": "path 'accuracy.value'", "ex2-pipeline": "the pipeline failed"},
    ),
    Mistake(
        "gate compares with a number",
        {"ex2-answer": edit(LAB, "ex2-answer", ("right=threshold)],", "right=0.75)],"))},
        {"ex2-gate": 0},
        {"ex2-gate": "compare with the threshold parameter"},
    ),
    # Exercise 3: approve only what is better
    Mistake(
        "approves the newest version whatever its accuracy",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            "better = current is None or accuracy_of(sm, candidate) >= accuracy_of(sm, current) + min_gain",
            "better = True"))},
        {"ex3-tests": 0},
        {"ex3-tests": "expected Rejected"},
    ),
    Mistake(
        "a rejected version left pending",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            "    sm.update_model_package(ModelPackageArn=candidate, ModelApprovalStatus=status, ApprovalDescription=note)\n",
            "    if better:\n"
            "        sm.update_model_package(ModelPackageArn=candidate, ModelApprovalStatus=status, ApprovalDescription=note)\n"))},
        {"ex3-tests": 0},
        {"ex3-tests": "must be set to Rejected"},
    ),
    # Exercise 4: the monitoring run
    Mistake(
        "analysis window still the hour before",
        {"ex4-answer": edit(LAB, "ex4-answer", ('data_analysis_start_time="-PT1H", data_analysis_end_time="-PT0H"',
                                                'data_analysis_start_time="-PT2H", data_analysis_end_time="-PT1H"'))},
        {"ex4-tests": 0},
        {"ex4-tests": "no records in the analysis window"},
    ),
    Mistake(
        "no constraints to check against",
        {"ex4-answer": edit(LAB, "ex4-answer", (" constraints=monitor.suggested_constraints(),", ""))},
        {"ex4-tests": 0},
        {"ex4-tests": "what does the job check the data against"},
    ),
    # Exercise 5: records for the Feature Store
    Mistake(
        "missing values sent as text",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            "        if value is None or (not isinstance(value, str) and pd.isna(value)):\n            continue\n", ""))},
        {"ex5-tests": 0},
        {"ex5-tests": "records were refused"},
    ),
    Mistake(
        "integers written as floats",
        {"ex5-answer": edit(LAB, "ex5-answer", ("text = str(int(value))", "text = str(float(value))"))},
        {"ex5-tests": 0},
        {"ex5-tests": "Integral"},
    ),
    # Exercise 6: the point-in-time join
    Mistake(
        "nearest record, past or future",
        {"ex6-answer": edit(LAB, "ex6-answer", ('direction="backward"', 'direction="nearest"'))},
        {"ex6-tests": 0},
        {"ex6-tests": "a feature from the future leaked in"},
    ),
    Mistake(
        "labels come back sorted by time",
        {"ex6-answer": edit(LAB, "ex6-answer", ('return joined.sort_values("_order").drop(columns=["_t", "_order"]).reset_index(drop=True)',
                                                'return joined.drop(columns=["_t", "_order"]).reset_index(drop=True)'))},
        {"ex6-tests": 0},
        {"ex6-tests": "in the labels' order"},
    ),
]
