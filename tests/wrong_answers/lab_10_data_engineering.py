"""Lab 10's plausible mistakes: the partition column in the files, types a crawler would guess, a filter that
reads every partition, shards sized for the average, the seed's workflow and cluster half fixed."""

from wrong_answers import Mistake, edit

LAB = "10-data-engineering"

MISTAKES = [
    Mistake(
        "the partition column kept inside the Parquet files",
        {"ex1-answer": edit(LAB, "ex1-answer", ('part.drop(columns="dt").to_parquet(', "part.to_parquet("))},
        {"ex1-tests": 0},
        {"ex1-tests": "the partition column belongs in the path"},
    ),
    Mistake(
        "retried deliveries kept",
        {"ex1-answer": edit(LAB, "ex1-answer", ('df = raw.drop_duplicates(subset="txn_id", keep="first")', "df = raw"))},
        {"ex1-tests": 0},
        {"ex1-tests": "duplicate txn_id values remain"},
    ),
    Mistake(
        "currencies left in mixed case",
        {"ex1-answer": edit(LAB, "ex1-answer", ('df["currency"] = df["currency"].str.upper()', "pass"))},
        {"ex1-tests": 0},
        {"ex1-tests": "currencies upper-cased"},
    ),
    Mistake(
        "timestamps registered as strings",
        {"ex2-answer": edit(LAB, "ex2-answer", ('columns.append({"Name": field.name, "Type": "timestamp"})',
                                                'columns.append({"Name": field.name, "Type": "string"})'))},
        {"ex2-tests": 0},
        {"ex2-tests": "a column's type does not match"},
    ),
    Mistake(
        "a table without its partitions",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            '    glue.batch_create_partition(DatabaseName="lab10_lake", TableName="silver_transactions", PartitionInputList=[\n'
            '        {"Values": [day], "StorageDescriptor": {"Columns": columns, "Location": f"{location}dt={day}/",\n'
            '                                                 **PARQUET_SERDE}} for day in DAYS])\n', ""))},
        {"ex2-tests": 0},
        {"ex2-tests": "register one partition per day"},
    ),
    Mistake(
        "an unknown type guessed as a string, as a crawler would",
        {"ex2-answer": edit(LAB, "ex2-answer", ('raise ValueError(f"column {field.name}: no Hive type for Arrow {arrow}")',
                                                'columns.append({"Name": field.name, "Type": "string"})'))},
        {"ex2-tests": 0},
        {"ex2-tests": "must raise ValueError"},
    ),
    Mistake(
        "a timestamp range instead of the partition",
        {"ex3-answer": edit(LAB, "ex3-answer", ("WHERE dt = '{DAY}'",
                                                "WHERE ts >= TIMESTAMP '{DAY} 00:00:00' AND ts < TIMESTAMP '{DAYS[2]} 00:00:00'"))},
        {"ex3-tests": 0},
        {"ex3-tests": "it still reads more than one day's partition"},
    ),
    Mistake(
        "the partition filter on another day",
        {"ex3-answer": edit(LAB, "ex3-answer", ("WHERE dt = '{DAY}'", "WHERE dt = '{DAYS[0]}'"))},
        {"ex3-tests": 0},
        {"ex3-tests": "the same rows and values"},
    ),
    Mistake(
        "active days counted per transaction",
        {"ex4-answer": edit(LAB, "ex4-answer", ("count(DISTINCT t.dt) AS active_days", "count(t.dt) AS active_days"))},
        {"ex4-tests": 0},
        {"ex4-tests": "active_days counts the distinct days"},
    ),
    Mistake(
        "the average spend per active day instead of per transaction",
        {"ex4-answer": edit(LAB, "ex4-answer", ("avg(t.amount) AS avg_amount", "sum(t.amount) / count(DISTINCT t.dt) AS avg_amount"))},
        {"ex4-tests": 0},
        {"ex4-tests": "a count, sum, average or maximum differs"},
    ),
    Mistake(
        "shards sized for the average traffic",
        {"ex5-answer": edit(LAB, "ex5-answer", ('SHARDS = shards_needed(LOAD["peak_per_s"], LOAD["record_bytes"], LOAD["consumers"])',
                                                'SHARDS = shards_needed(LOAD["base_per_s"], LOAD["record_bytes"], LOAD["consumers"])'))},
        {"ex5-tests": 0},
        {"ex5-tests": "the shards the peak needs"},
    ),
    Mistake(
        "consumers given a shard's 2 MB/s each",
        {"ex5-answer": edit(LAB, "ex5-answer", (", math.ceil(consumers * mb_per_s / 2))", ")"))},
        {"ex5-tests": 0},
        {"ex5-tests": "consumers share a shard's 2 MB/s out"},
    ),
    Mistake(
        "on-demand priced without the reads",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            '\n                 + load["consumers"] * gigabytes * KINESIS_PRICES["on-demand-data-out"])', ")"))},
        {"ex5-tests": 0},
        {"ex5-tests": "every GB read by each consumer"},
    ),
    Mistake(
        "only the first shard read",
        {"ex6-answer": edit(LAB, "ex6-answer", ('for shard in kinesis.list_shards(StreamName=stream_name)["Shards"]:',
                                                'for shard in kinesis.list_shards(StreamName=stream_name)["Shards"][:1]:'))},
        {"ex6-tests": 0},
        {"ex6-tests": "read every shard"},
    ),
    Mistake(
        "purchase rate over the carts",
        {"ex6-answer": edit(LAB, "ex6-answer", ('features["purchases"] / features["events"]',
                                                'features["purchases"] / features["add_to_cart"].clip(lower=1)'))},
        {"ex6-tests": 0},
        {"ex6-tests": "purchase_rate = purchases / events"},
    ),
    Mistake(
        "the typo fixed, the training still not waited for",
        {"ex7-answer": edit(LAB, "ex7-answer", ('"arn:aws:states:::sagemaker:createTrainingJob.sync"',
                                                '"arn:aws:states:::sagemaker:createTrainingJob"'))},
        {"ex7-tests": 0},
        {"ex7-tests": "without .sync"},
    ),
    Mistake(
        "a notification that can fail silently",
        {"ex7-answer": edit(LAB, "ex7-answer", ('"Retry": RETRY, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}], "Next": "Failed"},',
                                                '"Next": "Failed"},'))},
        {"ex7-tests": 0},
        {"ex7-tests": "NotifyFailure: no Retry"},
    ),
    Mistake(
        "Register keeps both Next and End",
        {"ex7-answer": edit(LAB, "ex7-answer", ('"Retry": RETRY, "Catch": CATCH, "Next": "Done"},',
                                                '"Retry": RETRY, "Catch": CATCH, "Next": "Done", "End": True},'))},
        {"ex7-tests": 0},
        {"ex7-tests": "forbidden field"},
    ),
    Mistake(
        "core nodes on Spot, as the seed had them",
        {"ex8-answer": edit(LAB, "ex8-answer", ('{"Name": "core", "InstanceRole": "CORE", "Market": "ON_DEMAND"',
                                                '{"Name": "core", "InstanceRole": "CORE", "Market": "SPOT"'))},
        {"ex8-tests": 0},
        {"ex8-tests": "losing a core node loses HDFS blocks"},
    ),
    Mistake(
        "a cluster that keeps billing after its steps",
        {"ex8-answer": edit(LAB, "ex8-answer", ('"KeepJobFlowAliveWhenNoSteps": False', '"KeepJobFlowAliveWhenNoSteps": True'))},
        {"ex8-tests": 0},
        {"ex8-tests": "a transient cluster ends with its last step"},
    ),
]
