"""Lab 02's plausible mistakes.

Every submission runs three torchrun jobs, so the cases are few per exercise (three at most: three
submissions in all) and a mistake in exercises 1-4 leaves the later jobs to the grader's reference
modules (the lab's ``exN-reference`` cells): each mistake costs its own exercise only.
"""

from wrong_answers import Mistake, edit

LAB = "02-distributed-training"

V0_LATEST = '''    files = glob.glob(os.path.join(folder, "checkpoint-*"))
    return max(files, key=os.path.getmtime) if files else None'''

MISTAKES = [
    # Exercise 1: DistributedSampler
    Mistake(
        "ShardedByS3Key split by the global rank",
        {"ex1-answer": edit(LAB, "ex1-answer", ("replicas, index = local_world_size, local_rank",
                                                "replicas, index = world_size, rank"))},
        {"ex1-tests": 0},
        {"ex1-tests": "LOCAL_RANK of LOCAL_WORLD_SIZE"},
    ),
    Mistake(
        "reads only the first shard",
        {"ex1-answer": edit(LAB, "ex1-answer", ("df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)",
                                                "df = pd.read_csv(files[0])"))},
        {"ex1-tests": 0},
        {"ex1-tests": "read all 8 shards"},
    ),
    Mistake(
        "shuffle and seed not passed to the sampler",
        {"ex1-answer": edit(LAB, "ex1-answer", (
            "DistributedSampler(dataset, num_replicas=replicas, rank=index, shuffle=shuffle, seed=seed)",
            "DistributedSampler(dataset, num_replicas=replicas, rank=index)"))},
        {"ex1-tests": 0},
        {"ex1-tests": "shuffle=False keeps file order"},
    ),
    # Exercise 2: gradient accumulation and validation
    Mistake(
        "micro-batch loss not scaled by the accumulation steps",
        {"ex2-answer": edit(LAB, "ex2-answer", ("(loss / accumulation_steps).backward()", "loss.backward()"))},
        {"ex2-tests": 0},
        {"ex2-tests": "must equal one step on the batch of 32"},
    ),
    Mistake(
        "no step for the short last group",
        {"ex2-answer": edit(LAB, "ex2-answer", ("boundary = (i + 1) % accumulation_steps == 0 or i + 1 == batches",
                                                "boundary = (i + 1) % accumulation_steps == 0"))},
        {"ex2-tests": 0},
        {"ex2-tests": "a last group of one"},
    ),
    Mistake(
        "every micro-batch all-reduces (no no_sync)",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            "quiet = model.no_sync() if isinstance(model, DDP) and not boundary else contextlib.nullcontext()",
            "quiet = contextlib.nullcontext()"))},
        {"ex2-tests": 0},
        {"ex2-tests": "must run under model.no_sync()"},
    ),
    # Exercise 3 (diagnose): one mistake per symptom left unfixed
    Mistake(
        "newest checkpoint by modification time (symptom 2 left)",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            '''    if not os.path.isdir(folder):
        return None
    found = [(int(m.group(1)), name) for name in os.listdir(folder) if (m := PATTERN.match(name))]
    return os.path.join(folder, max(found)[1]) if found else None''', V0_LATEST), ("import json\n", "import glob\nimport json\n"))},
        {"ex3-tests": 0},
        {"ex3-tests": "symptom 2"},
    ),
    Mistake(
        "written straight to the final name (symptom 1 left)",
        {"ex3-answer": edit(LAB, "ex3-answer", ('''    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # a reader (or an interruption) sees the old file or the new one, never half
''', "    torch.save(state, path)\n"))},
        {"ex3-atomic": 0},
        {"ex3-atomic": "symptom 1"},
    ),
    Mistake(
        "the DDP wrapper saved (symptom 3 left)",
        {"ex3-answer": edit(LAB, "ex3-answer", ("module = model.module if isinstance(model, DDP) else model",
                                                "module = model"))},
        {"ex3-model": 0},
        {"ex3-model": "symptom 3"},
    ),
    # Exercise 4: the two-instance job
    Mistake(
        "no gradient accumulation (effective batch 64)",
        {"ex4-answer": edit(LAB, "ex4-answer", (', "gradient-accumulation-steps": 2}', "}"))},
        {"ex4-tests": 0},
        {"ex4-tests": "effective batch of 128"},
    ),
    Mistake(
        "validation sharded like the training data",
        {"ex4-answer": edit(LAB, "ex4-answer", ('channel("validation", "FullyReplicated")',
                                                'channel("validation", distribution)'))},
        {"ex4-tests": 0},
        {"ex4-tests": "has no CSV file"},
    ),
    Mistake(
        "no torchrun: each instance trains alone",
        {"ex4-answer": edit(LAB, "ex4-answer", ("        distributed=Torchrun(),\n", ""))},
        {"ex4-tests": 0},
        {"ex4-tests": "torchrun starts the ranks"},
    ),
    # Exercise 5: managed spot
    Mistake(
        "MaxWait read as the waiting alone",
        {"ex5-answer": edit(LAB, "ex5-answer", ("max_wait_time_in_seconds=1200", "max_wait_time_in_seconds=600"))},
        {"ex5-tests": 0},
        {"ex5-tests": "counts the waiting"},
    ),
    Mistake(
        "no checkpoint config",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            '        checkpoint_config=CheckpointConfig(s3_uri=lab.s3_uri("checkpoints", "spot"), '
            'local_path="/opt/ml/checkpoints"),\n', ""))},
        {"ex5-tests": 0},
        {"ex5-tests": "not interrupted"},
    ),
    Mistake(
        "spot limits without spot",
        {"ex5-answer": edit(LAB, "ex5-answer", (", enable_managed_spot_training=True)", ")"))},
        {"ex5-tests": 0},
        {"ex5-tests": "EnableManagedSpotTraining"},
    ),
    # Exercise 6: the XLA port
    Mistake(
        "optimizer.step() instead of xm.optimizer_step",
        {"ex6-answer": edit(LAB, "ex6-answer", ("xm.optimizer_step(optimizer)  #", "optimizer.step()  #"))},
        {"ex6-tests": 0},
        {"ex6-tests": "one xm.optimizer_step(optimizer) per accumulation group"},
    ),
    Mistake(
        ".item() on every batch",
        {"ex6-answer": edit(LAB, "ex6-answer", ("total += loss.detach() * len(y)", "total += loss.item() * len(y)"))},
        {"ex6-tests": 0},
        {"ex6-tests": "was called for every batch"},
    ),
    Mistake(
        "xm.save on the master only",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            '''    xm.save(state, path + ".tmp")  # all ranks: tensors to CPU, the master writes, then a rendezvous
    if xm.is_master_ordinal():
''', '''    if xm.is_master_ordinal():
        xm.save(state, path + ".tmp")
'''))},
        {"ex6-tests": 0},
        {"ex6-tests": "every rank must call xm.save"},
    ),
    # Exercise 7: the trn1 request
    Mistake(
        "the 2022 Neuron image",
        {"ex7-answer": edit(LAB, "ex7-answer", ('"pytorch-training-neuronx:2.8.0-neuronx-py311-sdk2.26.1-ubuntu22.04"',
                                                '"pytorch-training-neuron:1.11.0-neuron-py38-sdk2.4.0-ubuntu20.04"'))},
        {"ex7-tests": 0},
        {"ex7-tests": "is not AWS's Neuron training image"},
    ),
    Mistake(
        "one process per instance",
        {"ex7-answer": edit(LAB, "ex7-answer", ("Torchrun(process_count_per_node=32)", "Torchrun()"))},
        {"ex7-tests": 0},
        {"ex7-tests": "one process per NeuronCore"},
    ),
    Mistake(
        "train.py left on its CPU path",
        {"ex7-answer": edit(LAB, "ex7-answer", (', "accelerator": "xla"}', "}"))},
        {"ex7-tests": 0},
        {"ex7-tests": "switch train.py to the XLA path"},
    ),
    # Exercise 8 (decide): trn1 or p4d
    Mistake(
        "chosen by the hourly price",
        {"ex8-answer": edit(LAB, "ex8-answer", ("CHEAPER = min(COMPARISON, key=COMPARISON.get)",
                                                "CHEAPER = min(THROUGHPUT, key=training_price_per_hour)"))},
        {"ex8-tests": 0},
        {"ex8-tests": "the lower price per hour is not the lower cost per sample"},
    ),
    Mistake(
        "break-even upside down",
        {"ex8-answer": edit(LAB, "ex8-answer", (
            'BREAK_EVEN = training_price_per_hour("ml.trn1.32xlarge") / training_price_per_hour("ml.p4d.24xlarge")',
            'BREAK_EVEN = training_price_per_hour("ml.p4d.24xlarge") / training_price_per_hour("ml.trn1.32xlarge")'))},
        {"ex8-tests": 0},
        {"ex8-tests": "BREAK_EVEN"},
    ),
    Mistake(
        "samples per second taken as per hour",
        {"ex8-answer": edit(LAB, "ex8-answer", ("(THROUGHPUT[instance_type] * 3600)", "THROUGHPUT[instance_type]"))},
        {"ex8-tests": 0},
        {"ex8-tests": "per million samples, expected"},
    ),
]
