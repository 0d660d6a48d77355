"""Lab 09's plausible mistakes: prices copied or left as strings, one page of history, the seed's spot
arithmetic, a Savings Plan modelled as spend x rate, tags and thresholds read wrongly."""

from wrong_answers import Mistake, edit

LAB = "09-cost-optimisation"

SEED_TABLE = '''SEED_PRICES = {"p5.48xlarge": 98.32, "p4d.24xlarge": 32.77, "g5.48xlarge": 16.29, "g5.12xlarge": 5.67,
               "g5.xlarge": 1.006, "g4dn.12xlarge": 3.912, "g4dn.xlarge": 0.526, "trn1.32xlarge": 21.50,
               "trn1.2xlarge": 1.34, "inf2.48xlarge": 12.98, "inf2.24xlarge": 6.49, "inf2.xlarge": 0.76,
               "m5.large": 0.096, "m5.xlarge": 0.192}


def on_demand_price(instance_type: str) -> float:
    if instance_type not in SEED_PRICES:
        raise ValueError(f"no price for {instance_type}")
    return SEED_PRICES[instance_type]
'''

MISTAKES = [
    Mistake(
        "the price returned as the API's string",
        {"ex1-answer": edit(LAB, "ex1-answer", ('return float(dimension["pricePerUnit"]["USD"])',
                                                'return dimension["pricePerUnit"]["USD"]'))},
        {"ex1-tests": 0},
        {"ex1-tests": "return a float"},
    ),
    Mistake(
        "the seed's hard-coded price table",
        {"ex1-answer": SEED_TABLE},
        {"ex1-tests": 0},
        {"ex1-tests": "differs from the Pricing API"},
    ),
    Mistake(
        "training sized like inference (1.2 x the model)",
        {"ex2-answer": edit(LAB, "ex2-answer", ('model_size_gb * (8 if workload_type == "training" else 1.2)',
                                                "model_size_gb * 1.2"))},
        {"ex2-tests": 0},
        {"ex2-tests": "training needs 8 x 14 GiB"},
    ),
    Mistake(
        "distributed training without the network constraint",
        {"ex2-answer": edit(LAB, "ex2-answer", ('fit = fit[fit["efa"] & (fit["network_gbps"] >= 400)]', "pass"))},
        {"ex2-tests": 0},
        {"ex2-tests": "EFA and 400 Gbps"},
    ),
    Mistake(
        "the budget never applied",
        {"ex2-answer": edit(LAB, "ex2-answer", ('fit = fit[fit["price"] <= budget_per_hour]', "pass"))},
        {"ex2-tests": 0},
        {"ex2-tests": "must raise ValueError"},
    ),
    Mistake(
        "one call: the first page of the history only",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            'pages = ec2.get_paginator("describe_spot_price_history").paginate(',
            'pages = [ec2.describe_spot_price_history(')) .replace(
            "StartTime=now - timedelta(hours=hours), EndTime=now)\n",
            "StartTime=now - timedelta(hours=hours), EndTime=now)]\n")},
        {"ex3-tests": 0},
        {"ex3-tests": "more than one page"},
    ),
    Mistake(
        "the window fixed at one hour",
        {"ex3-answer": edit(LAB, "ex3-answer", ("StartTime=now - timedelta(hours=hours)",
                                                "StartTime=now - timedelta(hours=1)"))},
        {"ex3-tests": 0},
        {"ex3-tests": "StartTime must be `hours` before now"},
    ),
    Mistake(
        "the last record's price instead of the lowest",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            'lowest[record["InstanceType"]] = min(price, lowest.get(record["InstanceType"], price))',
            'lowest[record["InstanceType"]] = price'))},
        {"ex3-tests": 0},
        {"ex3-tests": "keep the minimum per type"},
    ),
    Mistake(
        "the seed's spot arithmetic: on-demand times 0.7",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            "price = lowest_spot_prices([instance_type])[instance_type] if use_spot else on_demand_price(instance_type)",
            "price = on_demand_price(instance_type) * (0.7 if use_spot else 1)"))},
        {"ex4-tests": 0},
        {"ex4-tests": "not the on-demand price times a discount"},
    ),
    Mistake(
        "instance_count ignored",
        {"ex4-answer": edit(LAB, "ex4-answer", ("return price * hours * instance_count", "return price * hours"))},
        {"ex4-tests": 0},
        {"ex4-tests": "multiply by instance_count"},
    ),
    Mistake(
        "no check of the arguments",
        {"ex4-answer": edit(LAB, "ex4-answer", ('raise ValueError("hours must be >= 0 and instance_count >= 1")',
                                                "pass"))},
        {"ex4-tests": 0},
        {"ex4-tests": "must raise ValueError"},
    ),
    Mistake(
        "the seed's Savings Plan: spend x rate",
        {"ex5-answer": edit(LAB, "ex5-answer", ("cost = commitment * len(usage) + float((usage - covered).sum())",
                                                "cost = float(usage.sum()) * (1 - discount)"))},
        {"ex5-tests": 0},
        {"ex5-tests": "saves less than spend x rate"},
    ),
    Mistake(
        "an unused commitment treated as free",
        {"ex5-answer": edit(LAB, "ex5-answer", ("cost = commitment * len(usage) + float((usage - covered).sum())",
                                                "cost = float((covered * (1 - discount)).sum()) + float((usage - covered).sum())"))},
        {"ex5-tests": 0},
        {"ex5-tests": "used or not"},
    ),
    Mistake(
        "commit to the average spend",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            "return min(candidates, key=lambda c: savings_plan_cost(hourly_on_demand, max(c, 0.0), discount)[\"cost\"])",
            "return round(float(np.mean(usage)) * (1 - discount), 2)"))},
        {"ex5-tests": 0},
        {"ex5-tests": "not the cheapest commitment"},
    ),
    Mistake(
        "the tag never activated as a cost allocation tag",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            'ce.update_cost_allocation_tags_status(CostAllocationTagsStatus=[{"TagKey": tag_key, "Status": "Active"}])',
            "pass"))},
        {"ex6-tests": 0},
        {"ex6-tests": "the tag must group costs"},
    ),
    Mistake(
        "tag values kept with Cost Explorer's prefix",
        {"ex6-answer": edit(LAB, "ex6-answer", ('value = tag.split("$", 1)[1] or "(untagged)"', "value = tag"))},
        {"ex6-tests": 0},
        {"ex6-tests": "'Project$' prefix"},
    ),
    Mistake(
        "amounts left as strings",
        {"ex6-answer": edit(LAB, "ex6-answer", ('"cost": float(group["Metrics"]["UnblendedCost"]["Amount"])',
                                                '"cost": group["Metrics"]["UnblendedCost"]["Amount"]')) .replace(
            'return frame.groupby(["service", "tag"], as_index=False)["cost"].sum()', "return frame")},
        {"ex6-tests": 0},
        {"ex6-tests": "costs must be floats"},
    ),
    Mistake(
        "percentage thresholds compared as dollars",
        {"ex7-answer": edit(LAB, "ex7-answer", (
            'threshold = n["Threshold"] / 100 * limit if n.get("ThresholdType", "PERCENTAGE") == "PERCENTAGE" else n["Threshold"]',
            'threshold = n["Threshold"]'))},
        {"ex7-tests": 0},
        {"ex7-tests": "45 of 50 passes 80%"},
    ),
    Mistake(
        "the forecast notification judged on actual spend",
        {"ex7-answer": edit(LAB, "ex7-answer", ('spend = actual if n["NotificationType"] == "ACTUAL" else forecast',
                                                "spend = actual"))},
        {"ex7-tests": 0},
        {"ex7-tests": "fires the FORECASTED notification"},
    ),
    Mistake(
        "greater than read as greater or equal",
        {"ex7-answer": edit(LAB, "ex7-answer", ('(op == "GREATER_THAN" and spend > threshold)',
                                                '(op == "GREATER_THAN" and spend >= threshold)'))},
        {"ex7-tests": 0},
        {"ex7-tests": "exactly 80% is not greater than 80%"},
    ),
    Mistake(
        "month m billed at the class of day m",
        {"ex8-answer": edit(LAB, "ex8-answer", ("state_after(rules, S3Object(key), 30 * month)",
                                                "state_after(rules, S3Object(key), month)"))},
        {"ex8-tests": 0},
        {"ex8-tests": "must cost less than Standard"},
    ),
    Mistake(
        "expired objects still billed",
        {"ex8-answer": edit(LAB, "ex8-answer", ("costs.append(0.0 if storage_class == EXPIRED else size_gb * s3_price(storage_class))",
                                                "costs.append(size_gb * s3_price(storage_class))"))},
        {"ex8-tests": 0},
        {"ex8-tests": "an expired object costs nothing"},
    ),
    Mistake(
        "the last price tier instead of the first",
        {"ex8-answer": edit(LAB, "ex8-answer", ('first = next(d for d in offer["priceDimensions"].values() if d["beginRange"] == "0")',
                                                'first = list(offer["priceDimensions"].values())[-1]'))},
        {"ex8-tests": 0},
        {"ex8-tests": "first tier"},
    ),
]
