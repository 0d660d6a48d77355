"""Lab 01's plausible mistakes."""

from wrong_answers import Mistake, edit

LAB = "01-training-jobs"

MISTAKES = [
    # Exercise 1: the preprocessing job
    Mistake(
        "scaler fitted on all rows (leakage)",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            "mean, std = train[numeric].mean(), train[numeric].std(ddof=0)",
            "everything = pd.concat([train, val])\n    mean, std = everything[numeric].mean(), everything[numeric].std(ddof=0)"))},
        {"ex1-leakage": 0},
        {"ex1-leakage": "on the training split alone"},
    ),
    Mistake(
        "the label scaled with the features",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            'numeric = [c for c in train.columns if c != "target" and pd.api.types.is_numeric_dtype(train[c])]',
            "numeric = [c for c in train.columns if pd.api.types.is_numeric_dtype(train[c])]"),
            ('text = [c for c in train.columns if c not in numeric and c != "target"]',
             "text = [c for c in train.columns if c not in numeric]"))},
        {"ex1-tests": 0},
        {"ex1-tests": "the label must stay 0/1"},
    ),
    Mistake(
        "pandas' default std (ddof=1)",
        {"ex1-answer": edit(LAB, "ex1-answer", ("train[numeric].std(ddof=0)", "train[numeric].std()"))},
        {"ex1-leakage": 0},
        {"ex1-leakage": "std (ddof=0)"},
    ),
    # Exercise 2: the script that worked on a laptop
    Mistake(
        "still reads the laptop's data/ folder",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            'train = pd.read_csv(os.path.join(args.train, "train.csv"))\n'
            '    val = pd.read_csv(os.path.join(args.validation, "validation.csv"))',
            'train = pd.read_csv("data/train.csv")\n    val = pd.read_csv("data/validation.csv")'))},
        {"ex2-tests": 0, "ex2-model": 0},
        {"ex2-tests": "data/train.csv", "ex2-model": "the training job failed"},
    ),
    Mistake(
        "model saved in the working folder",
        {"ex2-answer": edit(LAB, "ex2-answer", ('joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))',
                                                'joblib.dump(model, "model.joblib")'))},
        {"ex2-model": 0},
        {"ex2-model": "save the model under SM_MODEL_DIR"},
    ),
    Mistake(
        "hyperparameters parsed as strings",
        {"ex2-answer": edit(LAB, "ex2-answer", ('parser.add_argument("--n-estimators", type=int, default=100)',
                                                'parser.add_argument("--n-estimators", default=100)'))},
        {"ex2-tests": 0, "ex2-model": 0},
        {"ex2-tests": "must be an int"},
    ),
    # Exercise 3: metric definitions
    Mistake(
        "train regex not anchored on its label",
        {"ex3-answer": edit(LAB, "ex3-answer", ('regex=r"Train Accuracy: ([0-9\\.]+)"', 'regex=r"Accuracy: ([0-9\\.]+)"'))},
        {"ex3-tests": 0},
        {"ex3-tests": "anchor each regex on its own label"},
    ),
    Mistake(
        "digits only, no decimals",
        {"ex3-answer": edit(LAB, "ex3-answer", ('regex=r"Validation Accuracy: ([0-9\\.]+)"',
                                                'regex=r"Validation Accuracy: (\\d+)"'))},
        {"ex3-tests": 0},
        {"ex3-tests": "must be 0.7933"},
    ),
    # Exercise 4: the overfitting XGBoost job
    Mistake(
        "early stopping on the default logloss",
        {"ex4-answer": edit(LAB, "ex4-answer", ('    "eval_metric": "auc",\n', ""))},
        {"ex4-metric": 0},
        {"ex4-metric": "set eval_metric"},
    ),
    Mistake(
        "AUC reported but all 300 rounds run",
        {"ex4-answer": edit(LAB, "ex4-answer", ('    "early_stopping_rounds": 10,\n', ""))},
        {"ex4-stops": 0, "ex4-generalises": 0},
        {"ex4-stops": "ran all 300 rounds", "ex4-generalises": "below 0.805"},
    ),
    Mistake(
        "early stopping on the draft's deep trees",
        {"ex4-answer": edit(LAB, "ex4-answer", ('"max_depth": 4,', '"max_depth": 8,'), ('"eta": 0.1,', '"eta": 0.3,'))},
        {"ex4-generalises": 0},
        {"ex4-generalises": "memorise"},
    ),
    # Exercise 5: which model ships
    Mistake(
        "ships the best AUC whatever it costs",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            "return gain - RETRAINS_PER_MONTH * (c[\"training_cost\"] - base[\"training_cost\"])", "return gain"))},
        {"ex5-decision": 0},
        {"ex5-decision": "weigh both"},
    ),
    Mistake(
        "one training's cost against a month of value",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            "return gain - RETRAINS_PER_MONTH * (c[\"training_cost\"] - base[\"training_cost\"])",
            "return gain - (c[\"training_cost\"] - base[\"training_cost\"])"))},
        {"ex5-decision": 0},
        {"ex5-decision": "30 a month"},
    ),
    Mistake(
        "hourly price applied per second",
        {"ex5-answer": edit(LAB, "ex5-answer", ('price_per_hour(job["ResourceConfig"]["InstanceType"]) / 3600',
                                                'price_per_hour(job["ResourceConfig"]["InstanceType"])'))},
        {"ex5-cost": 0},
        {"ex5-cost": "/ 3600"},
    ),
]
