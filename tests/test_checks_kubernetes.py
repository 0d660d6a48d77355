"""labkit.checks.kubernetes: schema validation and the scheduler's rules, hand-computed cases."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from labkit.checks import kubernetes as k

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


def shape(itype="m5.2xlarge", vcpus=8, mib=32768, gpus=0, neuron=0, enis=4, ips=15):
    return k.InstanceShape(itype, vcpus, mib, gpus=gpus, neuron_devices=neuron, neuron_cores=2 * neuron,
                           max_enis=enis, ips_per_eni=ips)


def node(labels=None, taints=None, s=None, source="ng"):
    s = s or shape()
    return k.NodeTemplate(source, s.instance_type, {"node.kubernetes.io/instance-type": s.instance_type,
                                                    **(labels or {})}, list(taints or []), k.allocatable(s))


def pod(requests=None, limits=None, **spec):
    container = {"name": "c", "image": "x", "resources": {}}
    if requests:
        container["resources"]["requests"] = requests
    if limits:
        container["resources"]["limits"] = limits
    return {"containers": [container], **spec}


def pytorchjob(**template_spec):
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "ddp", "namespace": "ml"},
            "spec": {"pytorchReplicaSpecs": {"Worker": {"replicas": 2, "restartPolicy": "OnFailure",
                                                        "template": {"spec": pod(**template_spec)}}}}}


# --- quantities ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [("500m", "0.5"), ("2", "2"), (8, "8"), ("240Gi", str(240 * 2**30)),
                                        ("1.5G", "1500000000"), ("1e3", "1000"), ("100Mi", str(100 * 2**20))])
def test_quantities(text, value):
    assert k.quantity(text) == Decimal(value)


def test_bad_quantity_names_the_format():
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        k.quantity("12 GB")


# --- taints and tolerations ----------------------------------------------------------------------

def test_toleration_operators_and_effects():
    assert k.tolerates({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, GPU_TAINT)
    assert k.tolerates({"key": "nvidia.com/gpu", "operator": "Equal", "value": "true"}, GPU_TAINT)  # any effect
    assert k.tolerates({"key": "nvidia.com/gpu", "value": "true"}, GPU_TAINT)  # Equal is the default
    assert not k.tolerates({"key": "nvidia.com/gpu", "value": "false"}, GPU_TAINT)
    assert not k.tolerates({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, GPU_TAINT)
    assert not k.tolerates({"key": "aws.amazon.com/neuron", "operator": "Exists"}, GPU_TAINT)
    assert k.tolerates({"operator": "Exists"}, GPU_TAINT)  # empty key + Exists tolerates everything


def test_prefer_no_schedule_does_not_filter():
    soft = {"key": "spot", "value": "", "effect": "PreferNoSchedule"}
    assert k.untolerated_taints(pod(), [soft]) == []
    assert k.untolerated_taints(pod(), [GPU_TAINT]) == [GPU_TAINT]


def test_gpu_pod_without_toleration_is_explained_in_the_schedulers_words():
    report = k.explain(pod({"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 1}),
                       [node(taints=[GPU_TAINT], s=shape("g5.xlarge", 4, 16384, gpus=1))], pod="infer")
    assert not report.schedulable
    assert report.message == "infer: 0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: true}."


# --- node selection --------------------------------------------------------------------------------

def affinity(*exprs):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": list(exprs)}]}}}


def test_node_selector_and_affinity_operators():
    labels = {"workload-type": "training", "gpus": "8"}
    assert k.matches_node_affinity({"nodeSelector": {"workload-type": "training"}}, labels)
    assert not k.matches_node_affinity({"nodeSelector": {"workload-type": "inference"}}, labels)
    assert not k.matches_node_affinity({"nodeSelector": {"missing": "x"}}, labels)
    ok = [{"key": "workload-type", "operator": "In", "values": ["training", "x"]},
          {"key": "zone", "operator": "NotIn", "values": ["a"]},  # absent label: NotIn matches
          {"key": "gpus", "operator": "Gt", "values": ["4"]}, {"key": "spot", "operator": "DoesNotExist"},
          {"key": "gpus", "operator": "Exists"}]
    assert k.matches_node_affinity({"affinity": affinity(*ok)}, labels)
    assert not k.matches_node_affinity({"affinity": affinity({"key": "gpus", "operator": "Lt", "values": ["8"]})},
                                       labels)
    two_terms = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "workload-type", "operator": "In", "values": ["inference"]}]},
        {"matchExpressions": [{"key": "gpus", "operator": "In", "values": ["8"]}]}]}}}
    assert k.matches_node_affinity({"affinity": two_terms}, labels)  # terms are ORed
    empty = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}
    assert not k.matches_node_affinity({"affinity": empty}, labels)  # an empty term matches nothing


# --- resources -------------------------------------------------------------------------------------

def test_allocatable_follows_the_eks_ami_formula():
    alloc = k.allocatable(shape())  # m5.2xlarge: 8 vCPU, 32 GiB, 4 ENIs x 15 IPs -> 58 pods
    assert alloc["pods"] == 58
    assert alloc["cpu"] == Decimal("7.91")  # 8000m - (60 + 10 + 10 + 4000 x 0.25%)
    assert alloc["memory"] == (32768 - (255 + 11 * 58 + 100)) * 2**20
    gpu = k.allocatable(shape("p4d.24xlarge", 96, 1179648, gpus=8, enis=15, ips=50))
    assert gpu["nvidia.com/gpu"] == 8 and gpu["cpu"] == Decimal("95.69")
    assert k.NEURON not in gpu
    assert k.allocatable(shape("trn1.32xlarge", 128, 524288, neuron=16, enis=5, ips=50))[k.NEURON] == 16


def test_effective_requests_take_limits_and_init_containers():
    spec = {"containers": [{"name": "a", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "500m"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "4"}}}]}
    reqs = k.pod_requests(spec)
    assert reqs["cpu"] == 4 and reqs["memory"] == 2**30 and reqs["pods"] == 1


def test_the_seeds_96_cpu_request_fits_no_p4d_and_the_daemonsets_count():
    p4d = node({"workload-type": "training"}, [GPU_TAINT], shape("p4d.24xlarge", 96, 1179648, gpus=8, enis=15, ips=50))
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    seed = pod({"cpu": 96, "memory": "240Gi", "nvidia.com/gpu": 8}, {"cpu": 96, "memory": "240Gi", "nvidia.com/gpu": 8},
               tolerations=tol)
    assert k.insufficient(seed, p4d) == ["cpu"]
    exact = pod({"cpu": "95690m"}, tolerations=tol)
    assert k.insufficient(exact, p4d, daemonsets={}) == []
    assert k.insufficient(exact, p4d) == ["cpu"]  # kube-proxy and aws-node take 125m
    assert k.explain(pod({"cpu": 90, "nvidia.com/gpu": 8}, {"nvidia.com/gpu": 8}, tolerations=tol), [p4d]).schedulable


def test_report_lists_every_reason_and_counts_first_reasons():
    nodes = [node({"workload-type": "cpu"}, s=shape()), node({"workload-type": "training"}, [GPU_TAINT],
                                                                shape("g5.xlarge", 4, 16384, gpus=1))]
    report = k.explain(pod({"cpu": 6, "nvidia.com/gpu": 1}, {"nvidia.com/gpu": 1}, nodeSelector={"workload-type": "x"}),
                       nodes)
    assert report.message.startswith("pod: 0/2 nodes are available: ")
    assert "1 node(s) didn't match Pod's node affinity/selector" in report.message
    assert "1 node(s) had untolerated taint" in report.message
    assert "Insufficient nvidia.com/gpu" in report.verdicts[0].reasons
    assert "requests: cpu=6000m" in report.explain()


def test_mixed_instance_types_in_a_group_are_flagged():
    mixed = [node(s=shape("p3.8xlarge", 32, 249856, gpus=4, enis=8, ips=30), source="gpu"),
             node(s=shape("p4d.24xlarge", 96, 1179648, gpus=8, enis=15, ips=50), source="gpu")]
    assert "first (p3.8xlarge)" in k.mixed_capacity(mixed)[0]
    assert k.mixed_capacity([node(), node()]) == []


# --- node templates ----------------------------------------------------------------------------------

def test_templates_from_a_managed_nodegroup_and_an_eksctl_group():
    shapes = {"g5.xlarge": shape("g5.xlarge", 4, 16384, gpus=1)}
    ng = {"nodegroupName": "gpu-inference", "instanceTypes": ["g5.xlarge"], "capacityType": "ON_DEMAND",
          "labels": {"workload-type": "inference"}, "taints": [{"key": "nvidia.com/gpu", "value": "true",
                                                                 "effect": "NO_SCHEDULE"}]}
    (t,) = k.templates_from_nodegroup(ng, shapes)
    assert t.taints == [GPU_TAINT]  # EKS's NO_SCHEDULE is Kubernetes' NoSchedule
    assert t.labels["eks.amazonaws.com/nodegroup"] == "gpu-inference"
    assert t.labels["node.kubernetes.io/instance-type"] == "g5.xlarge"
    (e,) = k.templates_from_eksctl({"name": "x", "instanceType": "g5.xlarge", "spot": True}, shapes)
    assert e.capacity_type == "SPOT" and e.labels["eks.amazonaws.com/capacityType"] == "SPOT"


def test_nodepool_requirements_choose_instance_types():
    shapes = {s.instance_type: s for s in (shape("g5.xlarge", 4, 16384, gpus=1), shape("m5.2xlarge"),
                                           shape("g5.12xlarge", 48, 196608, gpus=4, enis=15, ips=50))}
    nodepool = {"metadata": {"name": "gpu"}, "spec": {"template": {"spec": {"requirements": [
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5"]},
        {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Lt", "values": ["4"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}],
        "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}}}}
    templates = k.templates_from_nodepool(nodepool, shapes)
    assert sorted((t.instance_type, t.capacity_type) for t in templates) == [("g5.xlarge", "ON_DEMAND"),
                                                                            ("g5.xlarge", "SPOT")]
    assert templates[0].labels["karpenter.sh/nodepool"] == "gpu"


def test_shapes_come_from_the_catalogue_when_ec2_lacks_the_type():
    s = k.shape_from_catalogue("p3.8xlarge")
    assert (s.vcpus, s.gpus, s.max_pods) == (32, 4, 234)
    t = k.shape_from_catalogue("trn1.32xlarge")
    assert (t.neuron_devices, t.gpus) == (16, 0)


# --- schemas -----------------------------------------------------------------------------------------

def test_pytorchjob_is_validated_against_its_crd_and_the_pod_schema():
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    good = pytorchjob(requests={"nvidia.com/gpu": 8}, limits={"nvidia.com/gpu": 8}, tolerations=tol)
    result = k.validate_manifest(good)
    assert result.ok, str(result)
    typo = copy.deepcopy(good)
    typo["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["tolerations"][0]["opertor"] = "Exists"
    assert "'opertor' was unexpected" in str(k.validate_manifest(typo))
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = "two"
    assert not k.validate_manifest(wrong_type).ok
    missing = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "x"}, "spec": {}}
    assert "'pytorchReplicaSpecs' is a required property" in str(k.validate_manifest(missing))


def test_nodepool_defaults_apply_before_required_fields_are_checked():
    nodepool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"},
                "spec": {"template": {"spec": {"requirements": [], "nodeClassRef": {
                    "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"}}}}}
    assert k.validate_manifest(nodepool).ok  # disruption defaults to {consolidateAfter: 0s}
    nodepool["spec"]["disruption"] = {"consolidationPolicy": "WhenUnderutilized"}  # the v1beta1 spelling
    errors = k.validate_manifest(nodepool).errors
    assert any("consolidateAfter" in e for e in errors) and any("WhenUnderutilized" in e for e in errors)


def test_builtin_kinds_use_kubernetes_schemas_and_unknown_kinds_are_named():
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
           "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "100Gi"}}}}
    assert k.validate_manifest(pvc).ok
    bad = {**pvc, "spec": {"accesModes": ["ReadWriteMany"]}}
    assert "'accesModes' was unexpected" in str(k.validate_manifest(bad))
    unknown = k.validate_manifest({"apiVersion": "sagemaker.aws.amazon.com/v1", "kind": "TrainingJob",
                                   "metadata": {"name": "x"}})
    assert not unknown.ok and "no schema" in unknown.errors[0]
    with pytest.raises(k.ManifestError, match="apiVersion"):
        k.validate_manifest({"kind": "Pod"})


def test_api_server_rules_beyond_the_schema():
    eks_effect = pytorchjob(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NO_SCHEDULE"}])
    assert any("Kubernetes spells it NoSchedule" in e for e in k.validate_manifest(eks_effect).errors)
    no_limit = pytorchjob(requests={"nvidia.com/gpu": 1})
    assert any("needs a limit" in e for e in k.validate_manifest(no_limit).errors)
    unequal = pytorchjob(requests={"aws.amazon.com/neuron": 1}, limits={"aws.amazon.com/neuron": 2})
    assert any("must equal limits" in e for e in k.validate_manifest(unequal).errors)
    over = pytorchjob(requests={"cpu": "4"}, limits={"cpu": "2"})
    assert any("more than the limit" in e for e in k.validate_manifest(over).errors)
    exists_value = pytorchjob(tolerations=[{"key": "a", "operator": "Exists", "value": "x"}])
    assert any("must be empty" in e for e in k.validate_manifest(exists_value).errors)
    assert k.label_problems({"workload-type": "training"}, "l") == []
    assert k.label_problems({"bad key!": "x"}, "l") and k.label_problems({"n": 3}, "l")


# --- storage -----------------------------------------------------------------------------------------

def test_pvc_binding_rules():
    pv = {"metadata": {"name": "efs"}, "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany"],
                                               "storageClassName": "efs-sc"}}
    pvc = {"spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc", "volumeName": "efs",
                    "resources": {"requests": {"storage": "100Gi"}}}}
    assert k.pvc_problems(pvc, pv) == []
    wrong = {"spec": {**pvc["spec"], "accessModes": ["ReadWriteOnce"], "storageClassName": "gp3"}}
    problems = k.pvc_problems(wrong, pv)
    assert any("storageClassName" in p for p in problems) and any("ReadWriteOnce" in p for p in problems)


def test_efs_and_fsx_driver_parameters():
    seed_pv = {"kind": "PersistentVolume", "spec": {"csi": {"driver": "efs.csi.aws.com", "volumeHandle": "fs-12345678",
                                                             "volumeAttributes": {"provisioningMode": "efs-ap"}}}}
    assert any("dynamic provisioning" in p for p in k.efs_problems(seed_pv))
    ok_pv = {"kind": "PersistentVolume", "spec": {"csi": {"driver": "efs.csi.aws.com",
                                                           "volumeHandle": "fs-12345678:/training-data"}}}
    assert k.efs_problems(ok_pv) == []
    sc = {"kind": "StorageClass", "provisioner": "fsx.csi.aws.com",
          "parameters": {"subnetId": "subnet-1", "securityGroupIds": "sg-1", "deploymentType": "SCRATCH_2",
                         "perUnitStorageThroughput": "200"}}
    assert any("only for PERSISTENT" in p for p in k.fsx_lustre_problems(sc))
    sc["parameters"] = {**sc["parameters"], "deploymentType": "PERSISTENT_2", "perUnitStorageThroughput": "250"}
    assert k.fsx_lustre_problems(sc, 2400) == []
    assert "next: 2400" in k.fsx_lustre_problems(sc, 2000)[0]
    assert k.fsx_lustre_sizes("SCRATCH_2")[:4] == [1200, 2400, 4800, 7200]
    assert k.parse_quantity_gib("1200Gi") == 1200
