"""Model cards offline: content checked against the model card schema; export to PDF."""

from __future__ import annotations

import json

import botocore.exceptions
import pytest

from labkit.offline.model_cards import content_problems

CARD = {"model_overview": {"model_description": "credit approval", "problem_type": "Binary Classification",
                           "algorithm_type": "XGBoost"},
        "intended_uses": {"purpose_of_model": "rank applications", "risk_rating": "High"},
        "evaluation_details": [{"name": "clarify", "metric_groups": [
            {"name": "bias", "metric_data": [{"name": "DI", "type": "number", "value": 0.71}]}]}],
        "additional_information": {"custom_details": {"decision": "do-not-ship"}}}


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"model_overviews": {}}), "unknown section"),
    (json.dumps({"intended_uses": {"risk_rating": "Severe"}}), "risk_rating"),
    (json.dumps({"evaluation_details": [{"name": "x", "metric_groups": [{"name": "g", "metric_data": [
        {"name": "DI"}]}]}]}), "value"),
    (json.dumps({"additional_information": {"custom_details": {"n": 3}}}), "custom_details"),
])
def test_schema_problems_are_named(content, message):
    problems = content_problems(content)
    assert problems and message in " ".join(problems)


def test_valid_card_round_trip_versions_and_export(lab, sm, s3):
    assert content_problems(json.dumps(CARD)) == []
    sm.create_model_card(ModelCardName="mc-test", Content=json.dumps(CARD), ModelCardStatus="Draft")
    with pytest.raises(botocore.exceptions.ClientError, match="risk_rating"):
        sm.update_model_card(ModelCardName="mc-test", Content=json.dumps({"intended_uses": {"risk_rating": "?"}}))
    sm.update_model_card(ModelCardName="mc-test", ModelCardStatus="Approved")
    card = sm.describe_model_card(ModelCardName="mc-test")
    assert card["ModelCardVersion"] == 2 and json.loads(card["Content"]) == CARD
    with pytest.raises(botocore.exceptions.ClientError, match="cannot be updated"):
        sm.update_model_card(ModelCardName="mc-test", Content=json.dumps(CARD))
    arn = sm.create_model_card_export_job(ModelCardName="mc-test", ModelCardExportJobName="pdf-1",
                                          OutputConfig={"S3OutputPath": f"s3://{lab.bucket}/cards"})["ModelCardExportJobArn"]
    job = sm.describe_model_card_export_job(ModelCardExportJobArn=arn)
    assert job["Status"] == "Completed" and job["ModelCardVersion"] == 2
    bucket, key = job["ExportArtifacts"]["S3ExportArtifacts"][5:].split("/", 1)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read().startswith(b"%PDF")
    assert [j["ModelCardExportJobName"] for j in sm.list_model_card_export_jobs(ModelCardName="mc-test")[
        "ModelCardExportJobSummaries"]] == ["pdf-1"]
    with pytest.raises(botocore.exceptions.ClientError, match="does not exist"):
        sm.create_model_card_export_job(ModelCardName="nope", ModelCardExportJobName="x",
                                        OutputConfig={"S3OutputPath": f"s3://{lab.bucket}/cards"})
