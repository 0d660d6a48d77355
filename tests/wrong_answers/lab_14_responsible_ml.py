"""Lab 14's plausible mistakes, one or two things wrong in an otherwise right answer."""

from wrong_answers import Mistake, edit

LAB = "14-responsible-ml"

MISTAKES = [
    # Exercise 1: pre-training metrics by hand
    Mistake(
        "class imbalance with the groups the wrong way round",
        {"ex1-answer": edit(LAB, "ex1-answer", ("ci = (n_a - n_d) / (n_a + n_d)", "ci = (n_d - n_a) / (n_a + n_d)"))},
        {"ex1-tests": 0},
        {"ex1-tests": "CI: (n_a - n_d) / n"},
    ),
    Mistake(
        "CDDL as the plain mean of the groups' disparities",
        {"ex1-answer": edit(LAB, "ex1-answer",
                            ("weighted += rows.sum() * (share_rejected - share_accepted)",
                             "weighted += (share_rejected - share_accepted) * len(frame) / frame[group].nunique()"))},
        {"ex1-tests": 0},
        {"ex1-tests": "by the group's size"},
    ),
    Mistake(
        "numpy floats instead of Python floats",
        {"ex1-answer": edit(LAB, "ex1-answer", ('return {"CI": float(ci), "DPL": float(dpl),',
                                                'return {"CI": ci, "DPL": dpl,'))},
        {"ex1-tests": 0},
        {"ex1-tests": "Python floats"},
    ),
    # Exercise 2: reweighing
    Mistake(
        "the inverse weight P(f, y) / (P(f) P(y))",
        {"ex2-answer": edit(LAB, "ex2-answer", ("p_f[f] * p_y[y] / p_fy[(f, y)]", "p_fy[(f, y)] / (p_f[f] * p_y[y])"))},
        {"ex2-tests": 0},
        {"ex2-tests": "the same weighted approval rate"},
    ),
    Mistake(
        "a list instead of an array",
        {"ex2-answer": edit(LAB, "ex2-answer", ("return np.array([", "return list(["))},
        {"ex2-tests": 0},
        {"ex2-tests": "as a numpy array"},
    ),
    # Exercise 3: the Clarify job
    Mistake(
        "no probability threshold",
        {"ex3-answer": edit(LAB, "ex3-answer", ("clarify.ModelPredictedLabelConfig(probability_threshold=0.5)",
                                                "clarify.ModelPredictedLabelConfig()"))},
        {"ex3-tests": 0},
        {"ex3-tests": "above a probability of 0.5"},
    ),
    Mistake(
        "the mean as the baseline",
        {"ex3-answer": edit(LAB, "ex3-answer", ("baseline = [train[FEATURES].median().tolist()]",
                                                "baseline = [train[FEATURES].mean().tolist()]"))},
        {"ex3-tests": 0},
        {"ex3-tests": "the training data's median of each feature"},
    ),
    Mistake(
        "the facet given as a string",
        {"ex3-answer": edit(LAB, "ex3-answer", ('facet_values_or_threshold=[1]', 'facet_values_or_threshold=["female"]'))},
        {"ex3-tests": 0},
        {"ex3-tests": "the data's encoding of women"},
    ),
    # Exercise 4: the colleague's report
    Mistake(
        "fixes the header only",
        {"ex4-answer": edit(LAB, "ex4-answer", ("FIXED_CONFIG = dict(COLLEAGUE_CONFIG, label_values_or_threshold=[1])",
                                                "FIXED_CONFIG = dict(COLLEAGUE_CONFIG)"),
                            ('CAUSES = ["header-row", "label-value"]', 'CAUSES = ["header-row"]'))},
        {"ex4-tests": 0},
        {"ex4-tests": "DPL about +0.21"},
    ),
    Mistake(
        "flips the facet instead of the label",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            "FIXED_CONFIG = dict(COLLEAGUE_CONFIG, label_values_or_threshold=[1])",
            'FIXED_CONFIG = dict(COLLEAGUE_CONFIG, facet=[{"name_or_index": "sex", "value_or_threshold": [0]}])'),
            ('CAUSES = ["header-row", "label-value"]', 'CAUSES = ["header-row", "facet-value"]'))},
        {"ex4-tests": 0},
        {"ex4-tests": "name every mistake"},
    ),
    # Exercise 5: the decision
    Mistake(
        "disparate impact the wrong way up",
        {"ex5-answer": edit(LAB, "ex5-answer", ('"DI": float(approved[WOMEN].mean() / approved[~WOMEN].mean())',
                                                '"DI": float(approved[~WOMEN].mean() / approved[WOMEN].mean())'))},
        {"ex5-tests": 0},
        {"ex5-tests": "OPTIONS does not match"},
    ),
    Mistake(
        "the most accurate model, whatever its disparate impact",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            "CHOICE = max(eligible, key=lambda k: eligible[k][\"accuracy\"]) if eligible else None",
            "CHOICE = max(OPTIONS, key=lambda k: OPTIONS[k][\"accuracy\"])"))},
        {"ex5-tests": 0},
        {"ex5-tests": "CHOICE does not follow from the policy"},
    ),
    Mistake(
        "ignores the threshold argument",
        {"ex5-answer": edit(LAB, "ex5-answer", ("approved = np.asarray(scores) > threshold",
                                                "approved = np.asarray(scores) > 0.5"))},
        {"ex5-tests": 0},
        {"ex5-tests": "use its threshold argument"},
    ),
    # Exercise 6: Debugger rules
    Mistake(
        "StopTraining without prepare_actions",
        {"ex6-answer": edit(LAB, "ex6-answer", ("    loss_rule.prepare_actions(job_name)\n", ""))},
        {"ex6-tests": 0},
        {"ex6-tests": "the job was not stopped"},
    ),
    Mistake(
        "the rules image left as the SDK's placeholder",
        {"ex6-answer": edit(LAB, "ex6-answer", ("        rule.image_uri = RULES_IMAGE\n", "        pass\n"))},
        {"ex6-tests": 0},
        {"ex6-tests": "DEFAULT_RULE_EVALUATOR_IMAGE"},
    ),
    Mistake(
        "gradients saved at every step too",
        {"ex6-answer": edit(LAB, "ex6-answer", ('{"CollectionName": "gradients", "CollectionParameters": {"save_interval": "10"}}',
                                                '{"CollectionName": "gradients", "CollectionParameters": {"save_interval": "1"}}'))},
        {"ex6-tests": 0},
        {"ex6-tests": "gradients every 10 steps"},
    ),
    # Exercise 7: the fix
    Mistake(
        "a higher learning rate instead of the fix",
        {"ex7-answer": 'FIXED_SCRIPT = TRAIN_SCRIPT.replace("lr=3e-4", "lr=3e-2")\n'},
        {"ex7-tests": 0},
        {"ex7-tests": "LossNotDecreasing still fires"},
    ),
    Mistake(
        "the zero_grad line deleted",
        {"ex7-answer": 'FIXED_SCRIPT = TRAIN_SCRIPT.replace(\n'
                       '    "        optimizer.zero_grad()  # clear the gradients before the next batch\\n", "")\n'},
        {"ex7-tests": 0},
        {"ex7-tests": "LossNotDecreasing still fires"},
    ),
    # Exercise 8: the card
    Mistake(
        "ships model A",
        {"ex8-answer": edit(LAB, "ex8-answer", ('name = CHOICE or "A"', 'name = "A"'))},
        {"ex8-tests": 0},
        {"ex8-tests": "the model the policy selects"},
    ),
    Mistake(
        "a low risk rating",
        {"ex8-answer": edit(LAB, "ex8-answer", ('"risk_rating": "High"', '"risk_rating": "Low"'))},
        {"ex8-tests": 0},
        {"ex8-tests": "high risk"},
    ),
    Mistake(
        "a risk rating the schema does not know",
        {"ex8-answer": edit(LAB, "ex8-answer", ('"risk_rating": "High"', '"risk_rating": "high"'))},
        {"ex8-tests": 0},
        {"ex8-tests": "risk_rating"},
    ),
]
