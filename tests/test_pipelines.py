"""SageMaker Pipelines offline: definitions from SDK v3's mlops API really execute; the Model Registry flow."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import botocore.exceptions
import numpy as np
import pandas as pd
import pytest

from labkit.offline.mlops.pipelines import DefinitionError, parse, wait_for_execution
from labkit.offline.mlops.pipelines.expressions import ExpressionError, Scope, tokens

FIX = Path(__file__).parent / "fixtures" / "mlops"
sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hosting"))
import models as hm  # noqa: E402

SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


# --- definitions and expressions, without HTTP -------------------------------------------------

def definition(steps, parameters=()):
    return json.dumps({"Version": "2020-12-01", "Parameters": list(parameters), "Steps": steps})


def fail(name, depends=None, message="x"):
    step = {"Name": name, "Type": "Fail", "Arguments": {"ErrorMessage": message}}
    if depends:
        step["DependsOn"] = depends
    return step


@pytest.mark.parametrize("text, needle", [
    ("{not json", "Unable to parse"),
    (json.dumps({"Version": "1999-01-01", "Steps": [fail("A")]}), "Version"),
    (definition([fail("A"), fail("A")]), "unique"),
    (definition([fail("A", message={"Get": "Steps.Nope.Outcome"})]), "Nope"),
    (definition([fail("A", message={"Get": "Parameters.Missing"})]), "Missing"),
    (definition([fail("A", ["B"]), fail("B", ["A"])]), "cycle"),
    (definition([{"Name": "A", "Type": "Teleport", "Arguments": {}}]), "unknown Type"),
])
def test_invalid_definitions_are_refused(text, needle):
    with pytest.raises(DefinitionError, match=needle):
        parse(text)


def test_dependencies_come_from_references_depends_on_and_branches():
    d = parse(definition([
        {"Name": "Prep", "Type": "Processing", "Arguments": {}},
        {"Name": "Train", "Type": "Training", "Arguments": {"InputDataConfig": [{"DataSource": {"S3DataSource": {
            "S3Uri": {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}}}}]}},
        {"Name": "Check", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Steps.Train.TrainingJobStatus"}, "RightValue": "x"}],
            "IfSteps": [fail("Yes")], "ElseSteps": [fail("No", ["Prep"])]}}]))
    assert d.steps["Train"].depends_on == {"Prep"} and d.steps["Check"].depends_on == {"Train"}
    assert d.steps["Yes"].depends_on == {"Check"} and d.steps["No"].depends_on == {"Check", "Prep"}
    assert d.steps["No"].branch is False and d.steps["Check"].if_steps == ["Yes"]


def test_expressions_resolve_paths_join_jsonget_and_conditions():
    props = {"Prep": {"ProcessingOutputConfig": {"Outputs": [{"OutputName": "train", "S3Output": {"S3Uri": "s3://b/t"}}]}}}
    files = {("Eval", "Report"): {"metrics": {"accuracy": {"value": 0.91}}, "list": [1, 2]}}
    scope = Scope({"Threshold": 0.9}, {"PipelineExecutionId": "abc"}, lambda s: props[s], lambda s, n: files[(s, n)])
    assert tokens("a.b['c d'][0]") == ["a", "b", "c d", 0]
    assert scope.resolve({"Std:Join": {"On": "/", "Values": [
        {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"},
        {"Get": "Execution.PipelineExecutionId"}]}}) == "s3://b/t/abc"
    get = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": "metrics.accuracy.value"}}
    assert scope.resolve(get) == 0.91
    assert scope.condition({"Type": "GreaterThanOrEqualTo", "LeftValue": get, "RightValue": {"Get": "Parameters.Threshold"}})
    assert not scope.condition({"Type": "Not", "Condition": {"Type": "GreaterThan", "LeftValue": 2, "RightValue": 1}})
    assert scope.condition({"Type": "In", "QueryValue": 2, "Values": [1, 2]})
    with pytest.raises(ExpressionError, match="no value"):
        scope.resolve({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"},
                                       "Path": "metrics.auc.value"}})
    with pytest.raises(ExpressionError, match="numbers"):
        scope.condition({"Type": "LessThan", "LeftValue": "abc", "RightValue": 1})


# --- SDK v3 pipelines, executed ---------------------------------------------------------------


@pytest.fixture(scope="module")
def aws(lab):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3))
    y = ((x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.6, size=240)) > 0).astype(int)
    df = pd.DataFrame({"y": y, "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    boto3.client("s3").put_object(Bucket=lab.bucket, Key="pl/raw/data.csv", Body=df.to_csv(index=False).encode())
    return lab, boto3.client("sagemaker")


def build_pipeline(lab, name, script_dir=FIX, with_fail=True):
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.processing import ScriptProcessor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow import (
        ConditionStep,
        FailStep,
        ModelStep,
        Pipeline,
        ProcessingStep,
        TrainingStep,
    )
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, SourceCode

    session = PipelineSession()
    threshold = ParameterFloat(name="AccuracyThreshold", default_value=0.6)
    approval = ParameterString(name="ModelApprovalStatus", default_value="PendingManualApproval")
    c = ParameterFloat(name="C", default_value=1.0)
    proc = ScriptProcessor(role=lab.role_arn, command=["python3"], instance_type="ml.m5.large", instance_count=1,
                           image_uri=SKLEARN, sagemaker_session=session)

    def out(n):
        return ProcessingOutput(output_name=n, s3_output=ProcessingS3Output(s3_uri=Join(on="/", values=[
            f"s3://{lab.bucket}/pl/{name}", ExecutionVariables.PIPELINE_EXECUTION_ID, n]),
            local_path=f"/opt/ml/processing/{n}", s3_upload_mode="EndOfJob"))

    def inp(n, uri, path):
        return ProcessingInput(input_name=n, s3_input=ProcessingS3Input(s3_uri=uri, local_path=path, s3_data_type="S3Prefix",
                                                                        s3_input_mode="File"))

    prep = ProcessingStep(name="Prep", step_args=proc.run(code=str(FIX / "prep.py"), inputs=[
        inp("raw", f"s3://{lab.bucket}/pl/raw", "/opt/ml/processing/input")], outputs=[out("train"), out("test")]))
    trainer = ModelTrainer(training_image=SKLEARN, source_code=SourceCode(source_dir=str(script_dir), entry_script="train.py"),
                           compute=Compute(instance_type="ml.m5.large", instance_count=1), hyperparameters={"c": c},
                           role=lab.role_arn, sagemaker_session=session, base_job_name=f"{name}-train")
    train = TrainingStep(name="Train", step_args=trainer.train(input_data_config=[InputData(
        channel_name="train", data_source=prep.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri)]))
    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(name="Evaluate", property_files=[report], step_args=proc.run(
        code=str(FIX / "evaluate.py"), outputs=[out("evaluation")], inputs=[
            inp("model", train.properties.ModelArtifacts.S3ModelArtifacts, "/opt/ml/processing/model"),
            inp("test", prep.properties.ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri, "/opt/ml/processing/test")]))
    builder = ModelBuilder(image_uri=SKLEARN, s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
                           role_arn=lab.role_arn, sagemaker_session=session)
    metrics = ModelMetrics(model_statistics=MetricsSource(content_type="application/json", s3_uri=Join(on="/", values=[
        evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri, "evaluation.json"])))
    register = ModelStep(name="Register", step_args=builder.register(
        model_package_group_name=f"{name}-models", content_types=["text/csv"], response_types=["text/csv"],
        inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"], approval_status=approval,
        model_metrics=metrics))
    too_low = FailStep(name="TooLow", error_message=Join(on=" ", values=["accuracy below", threshold]))
    check = ConditionStep(name="CheckAccuracy", conditions=[ConditionGreaterThanOrEqualTo(
        left=JsonGet(step_name=evaluate.name, property_file=report, json_path="metrics.accuracy.value"), right=threshold)],
        if_steps=[register], else_steps=[too_low] if with_fail else [])
    return Pipeline(name=name, parameters=[threshold, approval, c], steps=[prep, train, evaluate, check],
                    sagemaker_session=session)


@pytest.fixture(scope="module")
def runs(aws):
    lab, sm = aws
    pipeline = build_pipeline(lab, "churn")
    pipeline.upsert(role_arn=lab.role_arn)
    passed = pipeline.start()
    passed.wait()
    failed = pipeline.start(parameters={"AccuracyThreshold": 0.999})
    with pytest.raises(botocore.exceptions.WaiterError):
        failed.wait()
    return pipeline, passed, failed


def steps_of(execution):
    return {s["StepName"]: s for s in execution.list_steps()}


def test_passing_run_executes_every_step_and_registers(runs, aws):
    _, sm = aws
    _, passed, _ = runs
    assert passed.describe()["PipelineExecutionStatus"] == "Succeeded"
    steps = steps_of(passed)
    assert set(steps) == {"Prep", "Train", "Evaluate", "CheckAccuracy", "Register"}
    assert all(s["StepStatus"] == "Succeeded" for s in steps.values())
    assert steps["CheckAccuracy"]["Metadata"] == {"Condition": {"Outcome": "True"}}
    train_job = steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[-1]
    job = sm.describe_training_job(TrainingJobName=train_job)
    assert job["TrainingJobStatus"] == "Completed" and train_job.startswith("pipelines-")
    assert job["HyperParameters"]["c"] == "1.0"
    package = sm.describe_model_package(ModelPackageName=steps["Register"]["Metadata"]["RegisterModel"]["Arn"])
    assert package["ModelApprovalStatus"] == "PendingManualApproval" and package["ModelPackageVersion"] == 1
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == job["ModelArtifacts"]["S3ModelArtifacts"]
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith("/evaluation/evaluation.json")
    order = [s["StepName"] for s in sm.list_pipeline_execution_steps(PipelineExecutionArn=passed.arn,
                                                                     SortOrder="Ascending")["PipelineExecutionSteps"]]
    assert order.index("Prep") < order.index("Train") < order.index("Evaluate") < order.index("CheckAccuracy")


def test_failing_run_does_not_register_and_says_why(runs, aws):
    _, sm = aws
    _, _, failed = runs
    described = failed.describe()
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "accuracy below 0.999"
    steps = steps_of(failed)
    assert "Register" not in steps and steps["CheckAccuracy"]["Metadata"]["Condition"]["Outcome"] == "False"
    assert steps["TooLow"]["StepStatus"] == "Failed" and steps["TooLow"]["Metadata"]["Fail"]["ErrorMessage"] == \
        "accuracy below 0.999"
    packages = sm.list_model_packages(ModelPackageGroupName="churn-models")["ModelPackageSummaryList"]
    assert len(packages) == 1
    params = {p["Name"]: p["Value"] for p in sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=failed.arn)["PipelineParameters"]}
    assert params["AccuracyThreshold"] == "0.999" and params["ModelApprovalStatus"] == "PendingManualApproval"
    listed = sm.list_pipeline_executions(PipelineName="churn")["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionStatus"] for e in listed] == ["Failed", "Succeeded"]


def test_failed_job_step_stops_the_pipeline(aws, tmp_path):
    lab, sm = aws
    (tmp_path / "train.py").write_text("raise ValueError('the training data has no label column')\n")
    pipeline = build_pipeline(lab, "broken", script_dir=tmp_path)
    pipeline.upsert(role_arn=lab.role_arn)
    execution = pipeline.start()
    assert wait_for_execution(execution.arn) == "Failed"
    steps = steps_of(execution)
    cause = "ValueError: the training data has no label column"
    assert steps["Train"]["StepStatus"] == "Failed" and cause in steps["Train"]["FailureReason"]
    assert 'train.py", line 1, in <module>' in steps["Train"]["FailureReason"]
    assert "Evaluate" not in steps and steps["Prep"]["StepStatus"] == "Succeeded"
    reason = execution.describe()["FailureReason"]
    assert reason.startswith("Step failure: One or multiple steps failed (Train).") and cause in reason
    assert "\n" not in reason and len(reason) <= 1300


@pytest.mark.parametrize("parameters, needle", [
    ([{"Name": "Nope", "Value": "1"}], "not declared"),
    ([{"Name": "C", "Value": "lots"}], "Float"),
])
def test_start_with_bad_parameters_is_refused(runs, aws, parameters, needle):
    _, sm = aws
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.start_pipeline_execution(PipelineName="churn", PipelineParameters=parameters)
    assert err.value.response["Error"]["Code"] == "ValidationException" and needle in str(err.value)


def test_create_pipeline_with_invalid_definition_is_refused(aws):
    lab, sm = aws
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.create_pipeline(PipelineName="bad", RoleArn=lab.role_arn,
                           PipelineDefinition=definition([fail("A", message={"Get": "Steps.Ghost.X"})]))
    assert err.value.response["Error"]["Code"] == "ValidationException" and "Ghost" in str(err.value)
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.start_pipeline_execution(PipelineName="does-not-exist")
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.list_pipeline_execution_steps(PipelineExecutionArn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/x/"
                                                              "execution/nope")
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_hand_written_definition_with_boto3(aws):
    lab, sm = aws
    text = definition([
        {"Name": "Gate", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "Or", "Conditions": [
                {"Type": "Equals", "LeftValue": {"Get": "Parameters.Mode"}, "RightValue": "strict"},
                {"Type": "LessThan", "LeftValue": {"Get": "Parameters.N"}, "RightValue": 3}]}],
            "IfSteps": [fail("Stop", message={"Std:Join": {"On": "-", "Values": ["n", {"Get": "Parameters.N"}]}})],
            "ElseSteps": []}}],
        parameters=[{"Name": "Mode", "Type": "String", "DefaultValue": "lenient"},
                    {"Name": "N", "Type": "Integer", "DefaultValue": 5}])
    sm.create_pipeline(PipelineName="gate", RoleArn=lab.role_arn, PipelineDefinition=text)
    ok = sm.start_pipeline_execution(PipelineName="gate")["PipelineExecutionArn"]
    assert wait_for_execution(ok) == "Succeeded"
    stop = sm.start_pipeline_execution(PipelineName="gate", PipelineParameters=[{"Name": "N", "Value": "2"}])
    assert wait_for_execution(stop["PipelineExecutionArn"]) == "Failed"
    described = sm.describe_pipeline_execution(PipelineExecutionArn=stop["PipelineExecutionArn"])
    assert described["FailureReason"] == "n-2"


# --- Model Registry ---------------------------------------------------------------------------


def test_registry_approval_flow_and_deploying_the_approved_version(aws):
    lab, sm = aws
    sm.create_model_package_group(ModelPackageGroupName="registry")
    _, tarball = hm.sklearn_model()
    url = hm.upload(lab.bucket, "registry/model.tar.gz", tarball)
    spec = {"Containers": [{"Image": SKLEARN, "ModelDataUrl": url, "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}
    arns = [sm.create_model_package(ModelPackageGroupName="registry", InferenceSpecification=spec,
                                    CustomerMetadataProperties={"owner": "ml"})["ModelPackageArn"] for _ in range(2)]
    assert sm.describe_model_package(ModelPackageName=arns[0])["ModelApprovalStatus"] == "PendingManualApproval"
    sm.update_model_package(ModelPackageArn=arns[1], ModelApprovalStatus="Approved", ApprovalDescription="AUC ok")
    sm.update_model_package(ModelPackageArn=arns[0], ModelApprovalStatus="Rejected")
    approved = sm.describe_model_package(ModelPackageName=arns[1])
    assert approved["ModelApprovalStatus"] == "Approved" and approved["ApprovalDescription"] == "AUC ok"
    assert approved["CustomerMetadataProperties"] == {"owner": "ml"} and "LastModifiedTime" in approved
    listed = sm.list_model_packages(ModelPackageGroupName="registry", ModelApprovalStatus="Approved")
    assert [p["ModelPackageArn"] for p in listed["ModelPackageSummaryList"]] == [arns[1]]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sm.update_model_package(ModelPackageArn=arns[1], ModelApprovalStatus="Maybe")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError):
        sm.create_model(ModelName="ghost", ExecutionRoleArn=lab.role_arn,
                        PrimaryContainer={"ModelPackageName": arns[1] + "0"})
    sm.create_model(ModelName="from-registry", ExecutionRoleArn=lab.role_arn, PrimaryContainer={"ModelPackageName": arns[1]})
    sm.create_endpoint_config(EndpointConfigName="from-registry", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "from-registry", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName="from-registry", EndpointConfigName="from-registry")
    from labkit.offline import hosting

    assert hosting.wait_for_endpoint("from-registry") == "InService"
    body = boto3.client("sagemaker-runtime").invoke_endpoint(EndpointName="from-registry", ContentType="text/csv",
                                                             Accept="text/csv", Body="0.2,0.9,0.4")["Body"].read()
    assert 0 <= float(body) <= 1
    sm.delete_endpoint(EndpointName="from-registry")
    with pytest.raises(botocore.exceptions.ClientError):
        sm.delete_model_package_group(ModelPackageGroupName="registry")
    for arn in arns:
        sm.delete_model_package(ModelPackageName=arn)
    sm.delete_model_package_group(ModelPackageGroupName="registry")
