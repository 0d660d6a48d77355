"""Lab 00's plausible mistakes."""

from wrong_answers import Mistake, edit

LAB = "00-setup"

MISTAKES = [
    Mistake(
        "availability ignores its arguments",
        {"ex1-answer": edit(LAB, "ex1-answer", ('"Values": list(instance_types)', '"Values": ACCELERATORS'))},
        {"ex1-tests": 0},
        {"ex1-tests": "must use its arguments"},
    ),
    Mistake(
        "availability without the region's client",
        {"ex1-answer": edit(LAB, "ex1-answer", ('boto3.client("ec2", region_name=region)', 'boto3.client("ec2")'))},
        {"ex1-tests": 0},
        {"ex1-tests": "wrong answer"},
    ),
]
