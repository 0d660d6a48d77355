"""Amazon States Language validation (statelint) and its use by the offline Step Functions."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from labkit.checks import states_language

TRAIN = "arn:aws:states:::sagemaker:createTrainingJob.sync"
GOOD = {
    "Comment": "train, then register when accurate enough",
    "StartAt": "Train",
    "States": {
        "Train": {"Type": "Task", "Resource": TRAIN, "Parameters": {"TrainingJobName.$": "$.name"},
                  "Retry": [{"ErrorEquals": ["SageMaker.AmazonSageMakerException"], "MaxAttempts": 3,
                             "BackoffRate": 2, "IntervalSeconds": 10}],
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}], "Next": "Good?"},
        "Good?": {"Type": "Choice", "Choices": [
            {"Variable": "$.accuracy", "NumericGreaterThanEquals": 0.9, "Next": "Done"}], "Default": "Failed"},
        "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "ModelNotGoodEnough", "Cause": "accuracy below 0.9"},
    },
}


def test_valid_definition_has_no_problems():
    assert states_language.problems(GOOD) == []
    assert states_language.problems(json.dumps(GOOD)) == []  # integer BackoffRate is accepted, as on AWS


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.update(StartAt="Nope"), "StartAt value Nope not found"),
    (lambda d: d["States"]["Train"].update(Next="Missing"), 'No state found named "Missing"'),
    (lambda d: d["States"].update(Orphan={"Type": "Pass", "End": True}), "No transition found to state"),
    (lambda d: d["States"]["Train"].pop("Resource"), "Resource"),
    (lambda d: d["States"]["Good?"].pop("Choices"), "Choices"),
])
def test_broken_definitions_are_named(mutate, expected):
    doc = json.loads(json.dumps(GOOD))
    mutate(doc)
    found = states_language.problems(doc)
    assert any(expected in p for p in found), found


def test_not_json():
    assert states_language.problems("{not json")[0].startswith("The definition is not valid JSON")


def test_review_reads_the_workflow():
    r = states_language.review(GOOD)
    assert r.order == ["Train", "Failed", "Good?", "Done"] or r.order[0] == "Train"
    assert set(r.order) == set(GOOD["States"])
    assert r.integrations == {"Train": "sagemaker:createTrainingJob.sync"}
    assert r.first("sagemaker:createTrainingJob") == "Train"
    assert r.findings == []
    doc = json.loads(json.dumps(GOOD))
    doc["States"]["Train"]["Resource"] = "arn:aws:states:::sagemaker:createTrainingJob"
    del doc["States"]["Train"]["Retry"]
    findings = states_language.review(doc).findings
    assert any("without .sync" in f for f in findings) and any("no Retry" in f for f in findings)
    with pytest.raises(ValueError):
        states_language.review({"StartAt": "X", "States": {}})


def test_create_state_machine_rejects_what_aws_rejects(lab):
    sfn = boto3.client("stepfunctions")
    with pytest.raises(ClientError) as err:
        sfn.create_state_machine(name="bad", definition=json.dumps({"StartAt": "X", "States": {}}), roleArn=lab.role_arn)
    assert err.value.response["Error"]["Code"] == "InvalidDefinition"
    assert "StartAt value X not found" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        sfn.create_state_machine(name="bad2", definition="{not json", roleArn=lab.role_arn)
    arn = sfn.create_state_machine(name="good", definition=json.dumps(GOOD), roleArn=lab.role_arn)["stateMachineArn"]
    assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == GOOD
    with pytest.raises(ClientError) as err:
        sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}))
    assert err.value.response["Error"]["Code"] == "InvalidDefinition"
    sfn.delete_state_machine(stateMachineArn=arn)


def test_validate_state_machine_definition_api(lab):
    sfn = boto3.client("stepfunctions")
    assert sfn.validate_state_machine_definition(definition=json.dumps(GOOD))["result"] == "OK"
    bad = json.loads(json.dumps(GOOD))
    bad["States"]["Train"]["Next"] = "Missing"
    out = sfn.validate_state_machine_definition(definition=json.dumps(bad))
    assert out["result"] == "FAIL"
    assert {"code": "MISSING_TRANSITION_TARGET", "location": "/States/Train/Next"}.items() <= out["diagnostics"][0].items()
