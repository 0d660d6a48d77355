"""Offline Cost Explorer and budget spend: the session's metered usage at catalogue prices (plain boto3)."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.exceptions import ClientError

from labkit.cost import catalogue as cat
from labkit.offline import usage

TODAY = dt.datetime.now(dt.UTC).date()
TOMORROW = (TODAY + dt.timedelta(days=1)).isoformat()
MONTH = {"Start": TODAY.replace(day=1).isoformat(), "End": TOMORROW}
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(scope="module")
def ce(lab):
    sm = boto3.client("sagemaker")
    sm.create_notebook_instance(NotebookInstanceName="nb-churn", InstanceType="ml.t3.medium", RoleArn=lab.role_arn,
                                Tags=[{"Key": "Project", "Value": "churn"}, {"Key": "team", "Value": "ml"}])
    usage.record("sagemaker:notebook", "nb-churn", instance_type="ml.t3.medium", seconds=7200)
    usage.record("sagemaker:training", "untagged-job", instance_type="ml.m5.large", instance_count=2, seconds=1800)
    usage.record("bedrock:tokens", HAIKU, model_id=HAIKU, input_tokens=10_000, output_tokens=2_000)
    return boto3.client("ce")


def prices():
    c = cat.load()
    notebook = 2 * c.sagemaker_instance("ml.t3.medium", "notebook").price_usd
    training = 2 * 0.5 * c.sagemaker_instance("ml.m5.large", "training").price_usd
    bedrock = 10 * c.bedrock(HAIKU, "input-tokens").price_usd + 2 * c.bedrock(HAIKU, "output-tokens").price_usd
    return notebook, training, bedrock


def amount(metrics, name="UnblendedCost"):
    return float(metrics[name]["Amount"])


def test_total_is_the_hand_priced_usage(ce):
    out = ce.get_cost_and_usage(TimePeriod=MONTH, Granularity="MONTHLY", Metrics=["UnblendedCost", "AmortizedCost"])
    (period,) = out["ResultsByTime"]
    assert period["TimePeriod"] == MONTH and period["Estimated"] is True
    assert amount(period["Total"]) == pytest.approx(sum(prices()), rel=1e-6)
    assert period["Total"]["AmortizedCost"] == period["Total"]["UnblendedCost"]
    assert period["Total"]["UnblendedCost"]["Unit"] == "USD" and isinstance(period["Total"]["UnblendedCost"]["Amount"],
                                                                           str)


def test_group_by_service_and_usage_quantity(ce):
    out = ce.get_cost_and_usage(TimePeriod=MONTH, Granularity="MONTHLY", Metrics=["UnblendedCost", "UsageQuantity"],
                                GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}])
    groups = {g["Keys"][0]: g["Metrics"] for g in out["ResultsByTime"][0]["Groups"]}
    notebook, training, bedrock = prices()
    assert amount(groups["Amazon SageMaker"]) == pytest.approx(notebook + training, rel=1e-6)
    assert amount(groups["Amazon Bedrock"]) == pytest.approx(bedrock, rel=1e-6)
    assert groups["Amazon SageMaker"]["UsageQuantity"] == {"Amount": "3", "Unit": "Hrs"}  # 2 h + 2 x 0.5 h
    assert out["GroupDefinitions"] == [{"Type": "DIMENSION", "Key": "SERVICE"}]
    assert out["ResultsByTime"][0]["Total"] == {}


def test_tags_group_costs_only_once_activated(ce):
    group = [{"Type": "TAG", "Key": "Project"}]
    before = ce.get_cost_and_usage(TimePeriod=MONTH, Granularity="MONTHLY", Metrics=["UnblendedCost"], GroupBy=group)
    assert [g["Keys"] for g in before["ResultsByTime"][0]["Groups"]] == [["Project$"]]
    listed = {t["TagKey"]: t["Status"] for t in ce.list_cost_allocation_tags()["CostAllocationTags"]}
    assert listed == {"Project": "Inactive", "team": "Inactive"}
    errors = ce.update_cost_allocation_tags_status(CostAllocationTagsStatus=[
        {"TagKey": "Project", "Status": "Active"}, {"TagKey": "never-used", "Status": "Active"}])["Errors"]
    assert [e["TagKey"] for e in errors] == ["never-used"]
    after = ce.get_cost_and_usage(TimePeriod=MONTH, Granularity="MONTHLY", Metrics=["UnblendedCost"], GroupBy=group)
    groups = {g["Keys"][0]: amount(g["Metrics"]) for g in after["ResultsByTime"][0]["Groups"]}
    notebook, training, bedrock = prices()
    assert groups["Project$churn"] == pytest.approx(notebook, rel=1e-6)
    assert groups["Project$"] == pytest.approx(training + bedrock, rel=1e-6)


def activate(ce):
    ce.update_cost_allocation_tags_status(CostAllocationTagsStatus=[{"TagKey": "Project", "Status": "Active"}])


def test_filters(ce):
    activate(ce)
    notebook, training, bedrock = prices()

    def total(flt):
        out = ce.get_cost_and_usage(TimePeriod=MONTH, Granularity="MONTHLY", Metrics=["UnblendedCost"], Filter=flt)
        return amount(out["ResultsByTime"][0]["Total"])

    sagemaker = {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon SageMaker"]}}
    assert total(sagemaker) == pytest.approx(notebook + training, rel=1e-6)
    assert total({"Not": sagemaker}) == pytest.approx(bedrock, rel=1e-6)
    train = {"Dimensions": {"Key": "USAGE_TYPE", "Values": ["USE1-Train"], "MatchOptions": ["STARTS_WITH"]}}
    assert total(train) == pytest.approx(training, rel=1e-6)
    assert total({"And": [sagemaker, {"Tags": {"Key": "Project", "Values": ["churn"]}}]}) == pytest.approx(notebook)
    assert total({"Tags": {"Key": "Project", "MatchOptions": ["ABSENT"]}}) == pytest.approx(training + bedrock)
    assert total({"Dimensions": {"Key": "INSTANCE_TYPE", "Values": ["ml.p5.48xlarge"]}}) == 0


def test_daily_periods_are_clipped_to_the_request(ce):
    start = (TODAY - dt.timedelta(days=2)).isoformat()
    out = ce.get_cost_and_usage(TimePeriod={"Start": start, "End": TOMORROW}, Granularity="DAILY",
                                Metrics=["UnblendedCost"])
    days = out["ResultsByTime"]
    assert [d["TimePeriod"]["Start"] for d in days] == [(TODAY - dt.timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    assert amount(days[0]["Total"]) == 0 and amount(days[-1]["Total"]) == pytest.approx(sum(prices()), rel=1e-6)


@pytest.mark.parametrize("kwargs,words", [
    ({"TimePeriod": {"Start": TOMORROW, "End": TODAY.isoformat()}}, "should be before end date"),
    ({"TimePeriod": {"Start": "2026/12/01", "End": TOMORROW}}, "YYYY-MM-DD"),
    ({"Metrics": ["Cost"]}, "Invalid metric"),
    ({"Granularity": "HOURLY"}, "HOURLY"),
    ({"GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}] * 3}, "at most two"),
    ({"GroupBy": [{"Type": "DIMENSION", "Key": "AZ"}]}, "not available offline"),
    ({"Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["x"]}, "Tags": {"Key": "a", "Values": ["b"]}}},
     "exactly one"),
])
def test_invalid_requests(ce, kwargs, words):
    request = {"TimePeriod": MONTH, "Granularity": "MONTHLY", "Metrics": ["UnblendedCost"], **kwargs}
    with pytest.raises(ClientError) as info:
        ce.get_cost_and_usage(**request)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert words in info.value.response["Error"]["Message"]


def test_forecast_is_refused_plainly(ce):
    with pytest.raises(ClientError) as info:
        ce.get_cost_forecast(TimePeriod=MONTH, Metric="UNBLENDED_COST", Granularity="MONTHLY")
    assert info.value.response["Error"]["Code"] == "DataUnavailableException"


def test_budget_reports_the_sessions_actual_spend(ce, lab):
    activate(ce)
    budgets = boto3.client("budgets")
    notification = {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "Threshold": 80,
                    "ThresholdType": "PERCENTAGE"}
    for name, filters in (("all", {}), ("bedrock", {"Service": ["Amazon Bedrock"]}),
                          ("churn", {"TagKeyValue": ["user:Project$churn"]})):
        budget = {"BudgetName": name, "BudgetLimit": {"Amount": "5", "Unit": "USD"}, "TimeUnit": "MONTHLY",
                  "BudgetType": "COST"}
        if filters:
            budget["CostFilters"] = filters
        budgets.create_budget(AccountId=lab.account_id, Budget=budget, NotificationsWithSubscribers=[
            {"Notification": notification, "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "a@example.com"}]}])
    notebook, training, bedrock = prices()
    spend = {b["BudgetName"]: float(b["CalculatedSpend"]["ActualSpend"]["Amount"])
             for b in budgets.describe_budgets(AccountId=lab.account_id)["Budgets"]}
    assert spend["all"] == pytest.approx(notebook + training + bedrock, rel=1e-6)
    assert spend["bedrock"] == pytest.approx(bedrock, rel=1e-6)
    assert spend["churn"] == pytest.approx(notebook, rel=1e-6)
    one = budgets.describe_budget(AccountId=lab.account_id, BudgetName="all")["Budget"]
    assert "ForecastedSpend" not in one["CalculatedSpend"]
