"""Offline Clarify: bias metrics by hand, Kernel SHAP against the shap package, the processing job end to end."""

from __future__ import annotations

import io
import json
import tarfile
import time

import numpy as np
import pandas as pd
import pytest

from labkit.offline.clarify import analysis as ca
from labkit.offline.clarify import kernel_shap
from labkit.offline.clarify import metrics as bm

# --- metrics on a table small enough to count by hand ------------------------------------------
#          group d (facet)          group a
# label    1 1 1 0 0 0 0 0          1 1 1 1 1 1 0 0 0 0
# pred     1 1 0 1 0 0 0 0          1 1 1 1 1 0 1 0 0 0
FACET = np.array([True] * 8 + [False] * 10)
LABEL = np.array([1, 1, 1, 0, 0, 0, 0, 0] + [1, 1, 1, 1, 1, 1, 0, 0, 0, 0], bool)
PRED = np.array([1, 1, 0, 1, 0, 0, 0, 0] + [1, 1, 1, 1, 1, 0, 1, 0, 0, 0], bool)


def test_pre_training_metrics_by_hand():
    assert bm.CI(FACET) == pytest.approx((10 - 8) / 18)
    assert bm.DPL(FACET, LABEL) == pytest.approx(6 / 10 - 3 / 8)
    pa, pd_ = np.array([0.4, 0.6]), np.array([5 / 8, 3 / 8])  # P(label=0), P(label=1)
    values = LABEL.astype(int)
    assert bm.KL(values, FACET) == pytest.approx(np.sum(pa * np.log(pa / pd_)))
    assert bm.TVD(values, FACET) == pytest.approx(0.5 * np.abs(pa - pd_).sum())
    assert bm.KS(values, FACET) == pytest.approx(0.225)
    assert bm.LP(values, FACET) == pytest.approx(np.sqrt(2 * 0.225 ** 2))
    m = (pa + pd_) / 2
    assert bm.JS(values, FACET) == pytest.approx(0.5 * (np.sum(pa * np.log(pa / m)) + np.sum(pd_ * np.log(pd_ / m))))


def test_post_training_metrics_by_hand():
    # group a: TP 5 FP 1 FN 1 TN 3; group d: TP 2 FP 1 FN 1 TN 4
    assert bm.DPPL(FACET, PRED) == pytest.approx(6 / 10 - 3 / 8)
    assert bm.DI(FACET, PRED) == pytest.approx((3 / 8) / (6 / 10))
    assert bm.DCA(FACET, LABEL, PRED) == pytest.approx(6 / 6 - 3 / 3)
    assert bm.DCR(FACET, LABEL, PRED) == pytest.approx(5 / 5 - 4 / 4)
    assert bm.RD(FACET, LABEL, PRED) == pytest.approx(5 / 6 - 2 / 3)
    assert bm.SD(FACET, LABEL, PRED) == pytest.approx(4 / 5 - 3 / 4)
    assert bm.DAR(FACET, LABEL, PRED) == pytest.approx(5 / 6 - 2 / 3)
    assert bm.DRR(FACET, LABEL, PRED) == pytest.approx(4 / 5 - 3 / 4)
    assert bm.AD(FACET, LABEL, PRED) == pytest.approx(8 / 10 - 6 / 8)
    assert bm.TE(FACET, LABEL, PRED) == pytest.approx(1 / 1 - 1 / 1)
    benefit = PRED.astype(float) - LABEL + 1
    assert bm.GE(LABEL, PRED) == pytest.approx(((benefit / benefit.mean()) ** 2 - 1).sum() / (18 * 2))


def test_conditional_demographic_disparity_weighs_groups_by_size():
    group = np.array(["x"] * 9 + ["y"] * 9)
    facet = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    outcome = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0], bool)
    # x: rejected 5 (3 in facet), accepted 4 (1 in facet) -> 3/5 - 1/4; y: rejected 5 (1), accepted 4 (1) -> 1/5 - 1/4
    assert bm.CDD(facet, outcome, group) == pytest.approx(((3 / 5 - 1 / 4) + (1 / 5 - 1 / 4)) / 2)


def test_zero_denominators_follow_clarify():
    assert bm.divide(0, 0) == 0.0 and bm.divide(1, 0) == float("inf") and bm.divide(-1, 0) == float("-inf")
    all_positive = np.ones(18, bool)
    assert bm.DI(FACET, all_positive) == 1.0
    result = bm.compute(bm.PRE_TRAINING["CI"], facet=np.zeros(5, bool))
    assert result["value"] is None and "facet group is empty" in result["error"]


def test_flip_test_counts_flips_towards_the_other_groups_outcome():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    facet = np.arange(200) < 100
    fair = (x[:, 0] > 0)
    assert abs(bm.FT(x, facet, fair)) < 0.1
    unfair = fair & ~facet  # the model never says yes to group d
    assert bm.FT(x, facet, unfair) > 0.3


def test_select_all_leaves_out_cdd_without_a_group():
    names = [m.name for m in bm.select(bm.PRE_TRAINING, "all", group_given=False)]
    assert "CDDL" not in names and names[0] == "CI"
    with pytest.raises(ValueError, match="unknown bias metric"):
        bm.select(bm.POST_TRAINING, ["DPPL", "XYZ"], True)


# --- Kernel SHAP against the shap package -----------------------------------------------------------

def _model():
    w = np.array([0.8, -1.2, 0.3, 0.0, 0.5])

    def predict(a: np.ndarray) -> np.ndarray:
        z = np.asarray(a) @ w + 0.4 * np.asarray(a)[:, 0] * np.asarray(a)[:, 2]
        return 1 / (1 + np.exp(-z))
    return predict


@pytest.mark.parametrize("link,background", [("identity", 1), ("identity", 6), ("logit", 4)])
def test_kernel_shap_matches_the_shap_package(link, background):
    shap = pytest.importorskip("shap")
    rng = np.random.default_rng(1)
    rows, base = rng.normal(size=(12, 5)), rng.normal(size=(background, 5))
    f = _model()
    ours, expected = kernel_shap.explain(f, rows, base, link=link)
    ref = shap.KernelExplainer(f, base, link=link)
    assert np.allclose(ours, ref.shap_values(rows, nsamples="auto", silent=True), atol=1e-6)
    assert expected == pytest.approx(float(np.ravel(ref.expected_value)[0]))


def test_kernel_shap_is_locally_accurate_and_sampling_is_close():
    rng = np.random.default_rng(2)
    rows, base = rng.normal(size=(30, 11)), rng.normal(size=(1, 11))
    w = rng.normal(size=11)
    f = lambda a: np.asarray(a) @ w  # noqa: E731 - linear: SHAP values are w * (x - b) exactly
    exact, expected = kernel_shap.explain(f, rows, base)
    assert np.allclose(exact, w * (rows - base)) and expected == pytest.approx(float((base @ w)[0]))
    sampled, _ = kernel_shap.explain(f, rows, base, num_samples=200, seed=0)
    assert np.allclose(sampled.sum(1), f(rows) - expected)
    assert np.allclose(sampled, exact, atol=1e-6)  # a linear model is recovered from any coalitions


# --- one analysis, no HTTP ------------------------------------------------------------------------------

def _frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    sex = (rng.random(n) < 0.4).astype(int)
    income = rng.normal(50, 10, n)
    label = ((income + rng.normal(0, 5, n) - 6 * sex) > 50).astype(int)
    return pd.DataFrame({"approved": label, "sex": sex, "income": income.round(1),
                         "age": rng.integers(20, 70, n), "purpose": rng.integers(0, 3, n)})


def _config(**extra) -> dict:
    frame = _frame()
    config = {"dataset_type": "text/csv", "headers": list(frame.columns), "label": "approved",
              "label_values_or_threshold": [1], "facet": [{"name_or_index": "sex", "value_or_threshold": [1]}],
              "group_variable": "purpose", "excluded_columns": ["sex"],
              "methods": {"pre_training_bias": {"methods": "all"}, "post_training_bias": {"methods": "all"},
                          "report": {"name": "report"}}}
    config.update(extra)
    return config


def _predict(frame: pd.DataFrame) -> np.ndarray:
    return 1 / (1 + np.exp(-(frame["income"].to_numpy() - 50) / 5))


def test_analysis_json_has_clarify_schema_and_values():
    frame = _frame()
    result = ca.analyze(_config(), frame, _predict)
    doc = result.analysis
    assert doc["version"] == "1.0"
    pre = doc["pre_training_bias_metrics"]
    assert pre["label"] == "approved" and pre["label_value_or_threshold"] == "1"
    report = pre["facets"]["sex"][0]
    assert report["value_or_threshold"] == "1"
    by = {m["name"]: m for m in report["metrics"]}
    assert list(by) == ["CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL"]
    assert by["CI"]["description"] == "Class Imbalance (CI)"
    facet, label = frame.sex.to_numpy() == 1, frame.approved.to_numpy() == 1
    assert by["DPL"]["value"] == pytest.approx(label[~facet].mean() - label[facet].mean())
    post = {m["name"]: m["value"] for m in doc["post_training_bias_metrics"]["facets"]["sex"][0]["metrics"]}
    predicted = _predict(frame) > 0.5
    assert post["DI"] == pytest.approx(predicted[facet].mean() / predicted[~facet].mean())
    assert set(post) >= {"DPPL", "DI", "DCA", "DCR", "RD", "DAR", "DRR", "AD", "TE", "FT", "CDDPL", "GE"}


def test_facet_without_values_reports_every_value_and_thresholds_are_intervals():
    config = _config(facet=[{"name_or_index": "purpose"}, {"name_or_index": "age", "value_or_threshold": [40]}],
                     methods={"pre_training_bias": {"methods": ["CI", "DPL"]}})
    doc = ca.analyze(config, _frame()).analysis
    facets = doc["pre_training_bias_metrics"]["facets"]
    assert [r["value_or_threshold"] for r in facets["purpose"]] == ["0", "1", "2"]
    assert facets["age"][0]["value_or_threshold"] == "(40, inf)"


def test_shap_section_and_baseline():
    frame = _frame()
    config = _config(methods={"shap": {"baseline": [[50.0, 45, 1]], "num_samples": 100, "agg_method": "mean_abs",
                                       "save_local_shap_values": True, "seed": 0}})
    result = ca.analyze(config, frame, _predict)
    shap = result.analysis["explanations"]["kernel_shap"]["label0"]
    assert set(shap["global_shap_values"]) == {"income", "age", "purpose"}  # not the label, not the excluded facet
    assert shap["global_shap_values"]["income"] > 0.1 and shap["global_shap_values"]["age"] == pytest.approx(0)
    assert shap["expected_value"] == pytest.approx(0.5)
    assert result.local_shap.shape == (len(frame), 3)
    no_baseline = ca.analyze(_config(methods={"shap": {"num_clusters": 3, "seed": 0}}), frame, _predict)
    assert len(no_baseline.baseline) == 3


@pytest.mark.parametrize("change,message", [
    ({"facet": [{"name_or_index": "gender", "value_or_threshold": [1]}]}, "facet 'gender' is not a column"),
    ({"label": "target"}, "label 'target' is not a column"),
    ({"methods": {}}, "no method to run"),
    ({"methods": {"shap": {"baseline": "s3://bucket/baseline.csv"}}}, "cannot read S3"),
    ({"methods": {"shap": {"baseline": [[1, 2]]}}}, "needs 3 values"),
    ({"methods": {"post_training_bias": {"methods": "all"}}}, "need a model"),
])
def test_bad_configurations_are_named(change, message):
    predict = None if "post_training_bias" in str(change) else _predict
    with pytest.raises(ca.ConfigError, match=message):
        ca.analyze(_config(**change), _frame(), predict)


# --- the processing job with Clarify's image, a shadow endpoint and the SDK ------------------------------

@pytest.fixture(scope="module")
def model_name(lab, sm, s3):
    """A built-in XGBoost model of the credit-like frame, made here (no training job needed)."""
    import xgboost as xgb

    frame = _frame(600)
    booster = xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(frame[["income", "age", "purpose"]].to_numpy(), frame.approved.to_numpy())
    path = "/tmp/labkit-test-clarify-xgboost-model"
    booster.get_booster().save_model(path + ".json")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path + ".json", arcname="xgboost-model")
    s3.put_object(Bucket=lab.bucket, Key="clarify-test/model.tar.gz", Body=buffer.getvalue())
    from sagemaker.core import image_uris

    image = image_uris.retrieve("xgboost", lab.region, version="1.7-1")
    sm.create_model(ModelName="clarify-test-model", ExecutionRoleArn=lab.role_arn,
                    PrimaryContainer={"Image": image, "ModelDataUrl": f"s3://{lab.bucket}/clarify-test/model.tar.gz"})
    return "clarify-test-model"


def _run_job(sm, s3, lab, name: str, config: dict, data: str) -> dict:
    from sagemaker.core import image_uris

    s3.put_object(Bucket=lab.bucket, Key=f"clarify-test/{name}/data.csv", Body=data.encode())
    s3.put_object(Bucket=lab.bucket, Key=f"clarify-test/{name}/analysis_config.json", Body=json.dumps(config).encode())
    sm.create_processing_job(
        ProcessingJobName=name, RoleArn=lab.role_arn,
        AppSpecification={"ImageUri": image_uris.retrieve("clarify", lab.region)},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 10}},
        ProcessingInputs=[
            {"InputName": "dataset", "S3Input": {"S3Uri": f"s3://{lab.bucket}/clarify-test/{name}/data.csv",
                                                 "LocalPath": "/opt/ml/processing/input/data", "S3DataType": "S3Prefix",
                                                 "S3InputMode": "File"}},
            {"InputName": "analysis_config", "S3Input": {
                "S3Uri": f"s3://{lab.bucket}/clarify-test/{name}/analysis_config.json",
                "LocalPath": "/opt/ml/processing/input/config", "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "analysis_result", "S3Output": {
            "S3Uri": f"s3://{lab.bucket}/clarify-test/{name}/out", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]})
    deadline = time.time() + 120
    while (job := sm.describe_processing_job(ProcessingJobName=name))["ProcessingJobStatus"] == "InProgress":
        assert time.time() < deadline, "the Clarify job did not end"
        time.sleep(0.2)
    return job


def test_clarify_job_with_a_shadow_endpoint(lab, sm, s3, model_name):
    frame = _frame(300)
    config = _config(predictor={"model_name": model_name, "instance_type": "ml.m5.large", "initial_instance_count": 1,
                                "content_type": "text/csv", "accept_type": "text/csv"}, probability_threshold=0.5)
    config["methods"]["shap"] = {"baseline": [[50.0, 45, 1]], "seed": 0}
    job = _run_job(sm, s3, lab, "clarify-test-bias", config, frame.to_csv(index=False, header=False))
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    doc = json.loads(s3.get_object(Bucket=lab.bucket, Key="clarify-test/clarify-test-bias/out/analysis.json")["Body"].read())
    assert {"pre_training_bias_metrics", "post_training_bias_metrics", "explanations"} <= set(doc)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=lab.bucket, Prefix="clarify-test/clarify-test-bias/out/")["Contents"]]
    assert any(k.endswith("report.ipynb") for k in keys) and any(k.endswith("explanations_shap/out.csv") for k in keys)
    assert not [e for e in sm.list_endpoints()["Endpoints"] if e["EndpointName"].startswith("sm-clarify-")], \
        "the shadow endpoint is deleted with the job"
    from labkit.offline import usage

    hosting = [e for e in usage.events("sagemaker:hosting") if e["resource"] == "sm-clarify-clarify-test-bias"]
    assert hosting and hosting[0]["instance_type"] == "ml.m5.large" and hosting[0]["end"] is not None


def test_clarify_job_failures_say_why(lab, sm, s3, model_name):
    frame = _frame(50)
    job = _run_job(sm, s3, lab, "clarify-test-header", _config(), frame.to_csv(index=False))
    assert job["ProcessingJobStatus"] == "Failed" and "header row" in job["FailureReason"]
    config = _config(predictor={"model_name": "no-such-model", "instance_type": "ml.m5.large",
                                "initial_instance_count": 1})
    job = _run_job(sm, s3, lab, "clarify-test-nomodel", config, frame.to_csv(index=False, header=False))
    assert job["ProcessingJobStatus"] == "Failed" and "ClientError" in job["FailureReason"]
    assert "no-such-model" in job["FailureReason"]


def test_sdk_v3_clarify_processor_runs_unchanged(lab, s3, model_name):
    from sagemaker.core import clarify
    from sagemaker.core.helper.session_helper import Session

    frame = _frame(200)
    s3.put_object(Bucket=lab.bucket, Key="clarify-test/sdk/data.csv", Body=frame.to_csv(index=False, header=False).encode())
    processor = clarify.SageMakerClarifyProcessor(role=lab.role_arn, instance_count=1, instance_type="ml.m5.xlarge",
                                                  sagemaker_session=Session())
    data = clarify.DataConfig(s3_data_input_path=f"s3://{lab.bucket}/clarify-test/sdk/data.csv",
                              s3_output_path=f"s3://{lab.bucket}/clarify-test/sdk/out", label="approved",
                              headers=list(frame.columns), dataset_type="text/csv", excluded_columns=["sex"])
    bias = clarify.BiasConfig(label_values_or_threshold=[1], facet_name="sex", facet_values_or_threshold=[1],
                              group_name="purpose")
    model = clarify.ModelConfig(model_name=model_name, instance_type="ml.m5.large", instance_count=1,
                                accept_type="text/csv", content_type="text/csv")
    processor.run_bias_and_explainability(
        data_config=data, model_config=model, explainability_config=clarify.SHAPConfig(baseline=[[50.0, 45, 1]]),
        bias_config=bias, model_predicted_label_config=clarify.ModelPredictedLabelConfig(probability_threshold=0.5),
        logs=False)
    doc = json.loads(s3.get_object(Bucket=lab.bucket, Key="clarify-test/sdk/out/analysis.json")["Body"].read())
    assert doc["post_training_bias_metrics"]["facets"]["sex"][0]["value_or_threshold"] == "1"
    assert set(doc["explanations"]["kernel_shap"]["label0"]["global_shap_values"]) == {"income", "age", "purpose"}
