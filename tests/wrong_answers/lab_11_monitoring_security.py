"""Lab 11's plausible mistakes: alarms on the average or in the wrong unit, pages counted per minute, PassRole
on any role, an open security group, key policies that lock out or let too much in, a trail open to others."""

from wrong_answers import Mistake, edit

LAB = "11-monitoring-security"

MISTAKES = [
    Mistake(
        "latency alarm on the average",
        {"ex1-answer": edit(LAB, "ex1-answer", ('"ExtendedStatistic": "p90"', '"Statistic": "Average"'))},
        {"ex1-tests": 0},
        {"ex1-tests": "compares its Average"},
    ),
    Mistake(
        "accuracy threshold as a fraction",
        {"ex1-answer": edit(LAB, "ex1-answer", ('"Threshold": 85.0', '"Threshold": 0.85'))},
        {"ex1-tests": 0},
        {"ex1-tests": "with 0.85"},
    ),
    Mistake(
        "alarms without the model's dimension",
        {"ex1-answer": edit(LAB, "ex1-answer", ('"Dimensions": DIMENSIONS, "ExtendedStatistic"', '"ExtendedStatistic"'))
         .replace('"Dimensions": DIMENSIONS, "Statistic"', '"Statistic"')},
        {"ex1-tests": 0},
        {"ex1-tests": "finds no data for its metric"},
    ),
    Mistake(
        "no traffic paged as slow traffic",
        {"ex1-answer": edit(LAB, "ex1-answer", ('"TreatMissingData": "notBreaching"', '"TreatMissingData": "breaching"'))},
        {"ex1-tests": 0},
        {"ex1-tests": "no traffic is not slow traffic"},
    ),
    Mistake(
        "every breaching minute counted as a page",
        {"ex2-answer": edit(LAB, "ex2-answer", ("pages = np.flatnonzero(alarm & ~np.r_[False, alarm[:-1]])",
                                                "pages = np.flatnonzero(alarm)"))},
        {"ex2-tests": 0},
        {"ex2-tests": "count a page only on a change into ALARM"},
    ),
    Mistake(
        "the delay counted from zero",
        {"ex2-answer": edit(LAB, "ex2-answer", ("(int(after[0]) + 1 if after.size else None)",
                                                "(int(after[0]) if after.size else None)"))},
        {"ex2-tests": 0},
        {"ex2-tests": "instead of (1, 2)"},
    ),
    Mistake(
        "the team's first guess kept",
        {"ex2-answer": edit(LAB, "ex2-answer", (
            "CHOICE = min((pair for pair, (false, delay) in TABLE.items() if false <= 2 and delay is not None),\n"
            "             key=lambda pair: (TABLE[pair][1], TABLE[pair][0]))", "CHOICE = (3, 5)"))},
        {"ex2-tests": 0},
        {"ex2-tests": "page at most twice a month for nothing"},
    ),
    Mistake(
        "PassRole on every role",
        {"ex3-answer": edit(LAB, "ex3-answer", ('"Action": "iam:PassRole", "Resource": lab.role_arn',
                                                '"Action": "iam:PassRole", "Resource": "*"'))},
        {"ex3-tests": 0},
        {"ex3-tests": "AdminRole"},
    ),
    Mistake(
        "PassRole to any service",
        {"ex3-answer": edit(LAB, "ex3-answer", ('\n     "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},',
                                                "},"))},
        {"ex3-tests": 0},
        {"ex3-tests": "to SageMaker only"},
    ),
    Mistake(
        "production left to an implicit deny",
        {"ex3-answer": edit(LAB, "ex3-answer", (
            '    {"Sid": "NoProduction", "Effect": "Deny", "Action": ["sagemaker:CreateEndpoint*", "sagemaker:UpdateEndpoint*"],\n'
            '     "Resource": "*"},\n', ""))},
        {"ex3-tests": 0},
        {"ex3-tests": "explicit Deny"},
    ),
    Mistake(
        "the seed's security group, open to 10.0.0.0/8",
        {"ex4-answer": edit(LAB, "ex4-answer", ('{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]}',
                                                '{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}'))},
        {"ex4-tests": 0},
        {"ex4-tests": "inbound rules by address range"},
    ),
    Mistake(
        "no way to S3 from the private subnets",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            '    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{lab.region}.s3", VpcEndpointType="Gateway",\n'
            '                            RouteTableIds=[main["RouteTableId"]])\n', ""))},
        {"ex4-tests": 0},
        {"ex4-tests": "S3 gateway endpoint"},
    ),
    Mistake(
        "subnets that give public IPs",
        {"ex4-answer": edit(LAB, "ex4-answer", (
            '    sg = ec2.create_security_group(',
            '    for subnet in subnets:\n'
            '        ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})\n'
            '    sg = ec2.create_security_group('))},
        {"ex4-tests": 0},
        {"ex4-tests": "no public IPs"},
    ),
    Mistake(
        "the broken policy with the grant added, still no account statement",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            '        {"Sid": "EnableIAMPolicies", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},\n'
            '         "Action": "kms:*", "Resource": "*"},\n', ""))},
        {"ex5-tests": 0},
        {"ex5-tests": "lets the account control the key through IAM"},
    ),
    Mistake(
        "the administrator may do everything, decrypt included",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            '''         "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                    "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
                    "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"]},''',
            '''         "Action": "kms:*"},'''))},
        {"ex5-tests": 0},
        {"ex5-tests": "must not be able to decrypt"},
    ),
    Mistake(
        "the role may encrypt but not create grants",
        {"ex5-answer": edit(LAB, "ex5-answer", (
            '''        {"Sid": "GrantsForAWSResources", "Effect": "Allow", "Principal": {"AWS": role_arn}, "Resource": "*",
         "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
''', ""))},
        {"ex5-tests": 0},
        {"ex5-tests": "cannot kms:CreateGrant"},
    ),
    Mistake(
        "grants for anything, not only AWS resources",
        {"ex5-answer": edit(LAB, "ex5-answer", (''',
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},''', "},"))},
        {"ex5-tests": 0},
        {"ex5-tests": "only for AWS resources"},
    ),
    Mistake(
        "any account's trail may write",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            ''',
     "Condition": {"StringEquals": {"aws:SourceArn": TRAIL_ARN}}},''', "},"), (
            '''"Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": TRAIL_ARN}}},''',
            '''"Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}},'''))},
        {"ex6-tests": 0},
        {"ex6-tests": "another account's trail"},
    ),
    Mistake(
        "no permission to read the bucket ACL",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            '''    {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
     "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{TRAIL_BUCKET}",
     "Condition": {"StringEquals": {"aws:SourceArn": TRAIL_ARN}}},
''', ""))},
        {"ex6-tests": 0},
        {"ex6-tests": "InsufficientS3BucketPolicy"},
    ),
    Mistake(
        "data events for every object in the account",
        {"ex6-answer": edit(LAB, "ex6-answer", (
            ''',
        {"Field": "resources.ARN", "StartsWith": [f"arn:aws:s3:::{lab.bucket}/11/datasets/"]}]},''', "]},"))},
        {"ex6-tests": 0},
        {"ex6-tests": "only the datasets"},
    ),
]
