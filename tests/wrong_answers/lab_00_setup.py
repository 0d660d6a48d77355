"""Lab 00's plausible mistakes, one or two things wrong in an otherwise right answer."""

from wrong_answers import Mistake, edit

LAB = "00-setup"

MISTAKES = [
    # Exercise 1: instance availability
    Mistake(
        "one client for every region",
        {"ex1-answer": edit(LAB, "ex1-answer", ('boto3.client("ec2", region_name=region)', 'boto3.client("ec2")'))},
        {"ex1-tests": 0},
        {"ex1-tests": "region_name"},
    ),
    Mistake(
        "answers for the lab's constants instead of the arguments",
        {"ex1-answer": edit(LAB, "ex1-answer", ("for region in regions:", "for region in REGIONS:"),
                            ('"Values": list(instance_types)', '"Values": ACCELERATORS'),
                            ("{t: t in offered for t in instance_types}", "{t: t in offered for t in ACCELERATORS}"))},
        {"ex1-arguments": 0},
        {"ex1-arguments": "use its arguments"},
    ),
    Mistake(
        "yes/no strings instead of booleans",
        {"ex1-answer": edit(LAB, "ex1-answer", ("{t: t in offered for t in instance_types}",
                                                '{t: "yes" if t in offered else "no" for t in instance_types}'))},
        {"ex1-tests": 0, "ex1-arguments": 0},
        {"ex1-tests": "values must be True or False", "ex1-arguments": "True or False"},
    ),
    # Exercise 2: least privilege, diagnosed with the simulator
    Mistake(
        "keeps s3:* on the model and checkpoint prefixes",
        {"ex2-answer": edit(LAB, "ex2-answer", ('"Action": ["s3:GetObject", "s3:PutObject"]', '"Action": ["s3:*"]'))},
        {"ex2-objects": 0},
        {"ex2-objects": "a job never deletes"},
    ),
    Mistake(
        "ListBucket granted on the objects, not the bucket",
        {"ex2-answer": edit(LAB, "ex2-answer", ('"Resource": [f"arn:aws:s3:::{bucket}"],',
                                                '"Resource": [f"arn:aws:s3:::{bucket}/*"],'))},
        {"ex2-listing": 0},
        {"ex2-listing": "not on its objects"},
    ),
    Mistake(
        "ListBucket without the prefix condition",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            '\n             "Condition": {"StringLike": {"s3:prefix": ["datasets/*", "models/*", "checkpoints/*"]}}},',
            "},"))},
        {"ex2-listing": 0},
        {"ex2-listing": "a condition on s3:prefix"},
    ),
    Mistake(
        "checkpoints writable but not readable",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            '"Resource": [f"arn:aws:s3:::{bucket}/models/*", f"arn:aws:s3:::{bucket}/checkpoints/*"]},',
            '"Resource": [f"arn:aws:s3:::{bucket}/models/*"]},\n'
            '            {"Effect": "Allow", "Action": ["s3:PutObject"], '
            '"Resource": [f"arn:aws:s3:::{bucket}/checkpoints/*"]},'))},
        {"ex2-objects": 0},
        {"ex2-objects": "read back its checkpoints"},
    ),
    # Exercise 3: the role
    Mistake(
        "trust policy for EC2",
        {"ex3-answer": edit(LAB, "ex3-answer", ('"sagemaker.amazonaws.com"', '"ec2.amazonaws.com"'))},
        {"ex3-tests": 0},
        {"ex3-tests": "sagemaker.amazonaws.com"},
    ),
    Mistake(
        "role created without its permissions",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            '    iam.put_role_policy(RoleName=name, PolicyName="least-privilege", '
            'PolicyDocument=json.dumps(permissions))\n', ""))},
        {"ex3-tests": 0},
        {"ex3-tests": "put_role_policy"},
    ),
    # Exercise 4: the versioned upload
    Mistake(
        "no immutability check",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            '    if s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)["KeyCount"]:\n'
            '        raise FileExistsError(f"s3://{bucket}/{prefix} already exists: datasets are immutable, '
            'use a new version")\n', ""))},
        {"ex4-immutable": 0},
        {"ex4-immutable": "must raise FileExistsError"},
    ),
    Mistake(
        "sub-folders flattened",
        {"ex4-answer": edit(LAB, "ex4-answer", ("key = prefix + path.relative_to(local_dir).as_posix()",
                                                "key = prefix + path.name"))},
        {"ex4-tests": 0},
        {"ex4-tests": "relative path"},
    ),
    Mistake(
        "checksum of the file name instead of its bytes",
        {"ex4-answer": edit(LAB, "ex4-answer", ("hashlib.sha256(path.read_bytes())", "hashlib.sha256(path.name.encode())"))},
        {"ex4-tests": 0},
        {"ex4-tests": "SHA-256 of the file's bytes"},
    ),
    # Exercise 5: the storage decision
    Mistake(
        "retrieval fees left out",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            "return gb * STORAGE_USD_PER_GB_MONTH[storage_class] + gb * read_fraction * RETRIEVAL_USD_PER_GB[storage_class]",
            "return gb * STORAGE_USD_PER_GB_MONTH[storage_class]"))},
        {"ex5-cost": 0, "ex5-decision": 0},
        {"ex5-cost": "read_fraction", "ex5-decision": "retrieval fees outweigh"},
    ),
    Mistake(
        "instant access ignored",
        {"ex5-answer": edit(LAB, "ex5-answer", ("candidates = [c for c in CLASSES if c in INSTANT_ACCESS or not instant_access]",
                                                "candidates = CLASSES"))},
        {"ex5-decision": 0},
        {"ex5-decision": "must be restored before it can be read"},
    ),
    # Exercise 6: the lifecycle rules
    Mistake(
        "archive class hard-coded",
        {"ex6-answer": edit(LAB, "ex6-answer", ('{"Days": 90, "StorageClass": archive_class}',
                                                '{"Days": 90, "StorageClass": "GLACIER_IR"}'))},
        {"ex6-archive-class": 0},
        {"ex6-archive-class": "given as the argument"},
    ),
    Mistake(
        "overwritten checkpoints kept forever",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            '"Expiration": {"Days": 30}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},',
            '"Expiration": {"Days": 30}},'))},
        {"ex6-tests": 0},
        {"ex6-tests": "NoncurrentVersionExpiration"},
    ),
    Mistake(
        "incomplete uploads never aborted",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            '        {"ID": "abort-incomplete-uploads", "Status": "Enabled", "Filter": {},\n'
            '         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},\n', ""))},
        {"ex6-tests": 0},
        {"ex6-tests": "empty Filter"},
    ),
]
