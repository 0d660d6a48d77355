"""Lab 08's plausible mistakes: the cheapest GPU that the pod does not fit, the seed half fixed, Kubernetes'
spelling sent to EKS, a toleration or a request left as it was, a v1beta1 pool with a new apiVersion, the
seed's volumes."""

from wrong_answers import Mistake, edit

LAB = "08-eks"

MISTAKES = [
    Mistake(
        "the cheapest GPU instance, whether the pod fits or not",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            "options = [(ec2_price(t), t) for t in INFERENCE_CANDIDATES if gpu_mib[t] >= GPU_MEMORY_GIB * 1024 and _fits(t)]",
            "options = [(ec2_price(t), t) for t in INFERENCE_CANDIDATES]"))},
        {"ex1-tests": 0},
        {"ex1-tests": "the serving pod does not fit"},
    ),
    Mistake(
        "a T4 with 16 GB for a model that needs 20",
        {"ex1-answer": edit(LAB, "ex1-answer", ("if gpu_mib[t] >= GPU_MEMORY_GIB * 1024 and _fits(t)]", "if _fits(t)]"))},
        {"ex1-tests": 0},
        {"ex1-tests": "at least 20 GiB of GPU memory"},
    ),
    Mistake(
        "six nodes around the clock",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            '"minSize": TRAFFIC["night_replicas"], "desiredCapacity": TRAFFIC["night_replicas"]',
            '"minSize": TRAFFIC["peak_replicas"], "desiredCapacity": TRAFFIC["peak_replicas"]'))},
        {"ex1-tests": 0},
        {"ex1-tests": "2 nodes through the night"},
    ),
    Mistake(
        "the seed's Kubernetes version kept",
        {"ex2-answer": edit(LAB, "ex2-answer", ('CLUSTER_CONFIG["metadata"]["version"] = K8S_VERSION\n', ""))},
        {"ex2-tests": 0},
        {"ex2-tests": "EKS refuses Kubernetes 1.28"},
    ),
    Mistake(
        "the training group keeps its three instance types",
        {"ex2-answer": edit(LAB, "ex2-answer", ('by_name["gpu-training-spot"].update(instanceTypes=["p4d.24xlarge"], maxSize=768 // 96)',
                                                'by_name["gpu-training-spot"].update(maxSize=768 // 96)'))},
        {"ex2-tests": 0},
        {"ex2-tests": "one instance type each"},
    ),
    Mistake(
        "the training group may grow to the seed's twenty nodes",
        {"ex2-answer": edit(LAB, "ex2-answer", ('instanceTypes=["p4d.24xlarge"], maxSize=768 // 96)',
                                                'instanceTypes=["p4d.24xlarge"])'))},
        {"ex2-tests": 0},
        {"ex2-tests": "Spot quota of 768 vCPUs"},
    ),
    Mistake(
        "the driver install scripts kept",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            '    group.pop("preBootstrapCommands", None)  # AL2023 accelerated AMIs have the drivers; nodeadm ignores them\n', ""))},
        {"ex2-tests": 0},
        {"ex2-tests": "drop preBootstrapCommands"},
    ),
    Mistake(
        "Kubernetes' taint spelling sent to EKS",
        {"ex3-answer": edit(LAB, "ex3-answer", ('"effect": effects[t["effect"]]}', '"effect": t["effect"]}'))},
        {"ex3-tests": 0},
        {"ex3-tests": "EKS refuses a node group request"},
    ),
    Mistake(
        "the disk size left at EKS's default",
        {"ex3-answer": edit(LAB, "ex3-answer", ('"diskSize": group.get("volumeSize", 80), ', ""))},
        {"ex3-tests": 0},
        {"ex3-tests": "diskSize is the group's volumeSize"},
    ),
    Mistake(
        "on demand whatever the group says",
        {"ex3-answer": edit(LAB, "ex3-answer", ('"capacityType": "SPOT" if group.get("spot") else "ON_DEMAND"',
                                                '"capacityType": "ON_DEMAND"'))},
        {"ex3-tests": 0},
        {"ex3-tests": "capacityType: SPOT for spot: true"},
    ),
    Mistake(
        "the toleration fixed, the CPU request left at 96",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            '    for kind in ("requests", "limits"):\n        pod["containers"][0]["resources"][kind]["cpu"] = "90"\n', ""))},
        {"ex4-tests": 0},
        {"ex4-tests": "a pod still cannot be scheduled"},
    ),
    Mistake(
        "the CPU request cut to a token value",
        {"ex4-answer": edit(LAB, "ex4-answer", ('["cpu"] = "90"', '["cpu"] = "1"'))},
        {"ex4-tests": 0},
        {"ex4-tests": "keep most of the node's CPUs"},
    ),
    Mistake(
        "the toleration removed instead of fixed",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            '    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]\n',
            '    pod.pop("tolerations")\n'))},
        {"ex4-tests": 0},
        {"ex4-tests": "a pod still cannot be scheduled"},
    ),
    Mistake(
        "only the apiVersion moved to v1",
        {"ex5-answer": "NODE_POOL = copy.deepcopy(BLOG_NODE_POOL)\nNODE_POOL[\"apiVersion\"] = \"karpenter.sh/v1\"\n"},
        {"ex5-tests": 0},
        {"ex5-tests": "not valid for Karpenter v1"},
    ),
    Mistake(
        "every g5 size allowed",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            '                    {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": ["1"]},\n', ""))},
        {"ex5-tests": 0},
        {"ex5-tests": "require instance-gpu-count 1"},
    ),
    Mistake(
        "GPU nodes without a taint",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            ',\n                "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}},', "}},"))},
        {"ex5-tests": 0},
        {"ex5-tests": "the taint must keep CPU pods off"},
    ),
    Mistake(
        "serving nodes consolidated while they work",
        {"ex5-answer": edit(LAB, "ex5-answer", ('"consolidationPolicy": "WhenEmpty"', '"consolidationPolicy": "WhenEmptyOrUnderutilized"'))},
        {"ex5-tests": 0},
        {"ex5-tests": "consolidate only empty nodes"},
    ),
    Mistake(
        "the seed's EFS attributes kept",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            '"csi": {"driver": "efs.csi.aws.com", "volumeHandle": f"{EFS_ID}:/training-data"}}}',
            '"csi": {"driver": "efs.csi.aws.com", "volumeHandle": EFS_ID, '
            '"volumeAttributes": {"provisioningMode": "efs-ap", "basePath": "/training-data"}}}}'))},
        {"ex6-tests": 0},
        {"ex6-tests": "StorageClass parameters of dynamic provisioning"},
    ),
    Mistake(
        "a 2 TB claim of exactly 2000Gi",
        {"ex6-answer": edit(LAB, "ex6-answer", ('"resources": {"requests": {"storage": "2400Gi"}}}}',
                                                '"resources": {"requests": {"storage": "2000Gi"}}}}'))},
        {"ex6-tests": 0},
        {"ex6-tests": "is not an FSx for Lustre size"},
    ),
    Mistake(
        "the throughput written as a number",
        {"ex6-answer": edit(LAB, "ex6-answer", ('"perUnitStorageThroughput": "250"', '"perUnitStorageThroughput": 250'))},
        {"ex6-tests": 0},
        {"ex6-tests": "perUnitStorageThroughput"},
    ),
]
