"""Lab 03's plausible mistakes (two per exercise: every submission runs two searches)."""

from wrong_answers import Mistake, edit

LAB = "03-hyperparameter-tuning"

MISTAKES = [
    # Exercise 1: the broken metric definitions
    Mistake(
        "validation regex fixed, the train regex still looks for a tab",
        {"ex1-answer": edit(LAB, "ex1-answer", ('r"train-auc=([0-9.]+)"', 'r"\\ttrain-auc=([0-9.]+)"'))},
        {"ex1-train": 0},
        {"ex1-train": "#011"},
    ),
    Mistake(
        "validation regex still unanchored (the dangerous one)",
        {"ex1-answer": edit(LAB, "ex1-answer", ('r"validation-auc=([0-9.]+)"', 'r"auc=([0-9.]+)"'))},
        {"ex1-validation": 0},
        {"ex1-validation": "not the validation value 0.8234"},
    ),
    # Exercise 2: parallelism and the tuner
    Mistake(
        "total minutes over the deadline, ignoring whole waves",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            "    for parallel in range(1, trials + 1):\n"
            "        if math.ceil(trials / parallel) * minutes_per_trial <= deadline_minutes:\n"
            "            return parallel\n"
            "    return None\n",
            "    return math.ceil(trials * minutes_per_trial / deadline_minutes)\n"))},
        {"ex2-parallel": 0},
        {"ex2-parallel": "trials run in whole waves"},
    ),
    Mistake(
        "objective minimised",
        {"ex2-answer": edit(LAB, "ex2-answer", ('objective_type="Maximize"', 'objective_type="Minimize"'))},
        {"ex2-tuner": 0},
        {"ex2-tuner": "maximise validation:auc"},
    ),
    # Exercise 3: reading the trials
    Mistake(
        "hyperparameters left as strings",
        {"ex3-answer": edit(LAB, "ex3-answer", ("row[name] = typed(name, value)", "row[name] = value"))},
        {"ex3-frame": 0},
        {"ex3-frame": "convert them"},
    ),
    Mistake(
        "best trial's hyperparameters as strings",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            'return best["TrainingJobName"], {name: typed(name, value) for name, value in best["TunedHyperParameters"].items()}',
            'return best["TrainingJobName"], dict(best["TunedHyperParameters"])'))},
        {"ex3-best": 0},
        {"ex3-best": "not strings"},
    ),
    # Exercise 4: cost and the verdict
    Mistake(
        "hourly price applied per second",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            '            total += job["BillableTimeInSeconds"] * job["ResourceConfig"]["InstanceCount"] * PRICE_PER_HOUR / 3600',
            '            total += job["BillableTimeInSeconds"] * job["ResourceConfig"]["InstanceCount"] * PRICE_PER_HOUR'))},
        {"ex4-cost": 0},
        {"ex4-cost": "/ 3600"},
    ),
    Mistake(
        "verdict from the whole searches' cost",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            "BAYES_COST, RANDOM_COST = cost_to_match(BAYES, TARGET), cost_to_match(RANDOM, TARGET)",
            "BAYES_COST, RANDOM_COST = search_cost(BAYES), search_cost(RANDOM)"))},
        {"ex4-verdict": 0},
        {"ex4-verdict": "not the whole search"},
    ),
]
