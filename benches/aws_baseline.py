#!/usr/bin/env python3
"""The AWS benchmark's Python half (benches/aws.sh):

    aws_baseline.py seed ENDPOINT --users N --buckets N
        seeds moto with N users (every third with a console password, every
        fifth with a virtual MFA device, each with an access key, every
        tenth with an inline policy, all in one of four groups), N buckets
        (every other one encrypted, every fourth with a bucket policy) and
        one logging trail.
    aws_baseline.py more-users ENDPOINT --from N --to M
        adds users N..M-1 (for the memory measurement).
    aws_baseline.py collect ENDPOINT
        the baseline: plain boto3 making the same calls as Exhibit's
        aws-iam-users, aws-iam-groups, aws-iam-password-policy,
        aws-account-summary, aws-s3-buckets and aws-cloudtrail collectors,
        one after another; prints the number of calls.
"""
import argparse
import json
import sys

import boto3
from botocore.config import Config

ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["seed", "more-users", "collect"])
ap.add_argument("endpoint")
ap.add_argument("--users", type=int, default=200)
ap.add_argument("--buckets", type=int, default=50)
ap.add_argument("--from", dest="start", type=int, default=0)
ap.add_argument("--to", type=int, default=0)
args = ap.parse_args()

# No retries, so that the baseline is the cost of the calls themselves.
CFG = Config(retries={"max_attempts": 1, "mode": "standard"})
KW = dict(endpoint_url=args.endpoint, region_name="us-east-1", config=CFG)
iam = boto3.client("iam", **KW)
s3 = boto3.client("s3", **KW)
ct = boto3.client("cloudtrail", **KW)
READ = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
GROUPS = ["dev", "ops", "finance", "admins"]


def add_users(start, end):
    for i in range(start, end):
        u = f"user-{i:05d}"
        iam.create_user(UserName=u)
        iam.create_access_key(UserName=u)
        iam.add_user_to_group(GroupName=GROUPS[i % 4], UserName=u)
        if i % 3 == 0:
            iam.create_login_profile(UserName=u, Password=f"Pw-{i}-long-enough!")
        if i % 5 == 0:
            d = iam.create_virtual_mfa_device(VirtualMFADeviceName=u)["VirtualMFADevice"]
            iam.enable_mfa_device(UserName=u, SerialNumber=d["SerialNumber"],
                                  AuthenticationCode1="123456", AuthenticationCode2="654321")
        if i % 10 == 0:
            iam.put_user_policy(UserName=u, PolicyName="inline", PolicyDocument=READ)


if args.what == "seed":
    for g in GROUPS:
        iam.create_group(GroupName=g)
    iam.attach_group_policy(GroupName="admins", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.put_group_policy(GroupName="dev", PolicyName="read", PolicyDocument=READ)
    add_users(0, args.users)
    for i in range(args.buckets):
        b = f"bench-{i:03d}"
        s3.create_bucket(Bucket=b)
        if i % 2 == 0:
            s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        if i % 4 == 0:
            s3.put_bucket_policy(Bucket=b, Policy=READ.replace('"*"}', f'"arn:aws:s3:::{b}/*", "Principal": "*"}}'))
    ct.create_trail(Name="main", S3BucketName="bench-000", IsMultiRegionTrail=True,
                    EnableLogFileValidation=True)
    ct.start_logging(Name="main")
    sys.exit(0)

if args.what == "more-users":
    add_users(args.start, args.to)
    sys.exit(0)

# --- the baseline: the collectors' calls, sequentially ----------------------
calls = 0


def call(fn, *a, ok=(), **kw):
    """One API call; an error code in `ok` is an answer ("not configured")."""
    global calls
    calls += 1
    try:
        return fn(*a, **kw)
    except fn.__self__.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ok:
            return None
        raise


def pages(fn, key, **kw):
    out, marker = [], None
    while True:
        r = call(fn, **kw, **({"Marker": marker} if marker else {}))
        out += r[key]
        marker = r.get("Marker")
        if not r.get("IsTruncated") or not marker:
            return out


def group_policies(g):
    pages(iam.list_attached_group_policies, "AttachedPolicies", GroupName=g)
    for p in pages(iam.list_group_policies, "PolicyNames", GroupName=g):
        call(iam.get_group_policy, GroupName=g, PolicyName=p)


call(boto3.client("sts", **KW).get_caller_identity)
# aws-iam-users
users = pages(iam.list_users, "Users")
member_of = set()
for u in users:
    n = u["UserName"]
    pages(iam.list_mfa_devices, "MFADevices", UserName=n)
    for k in pages(iam.list_access_keys, "AccessKeyMetadata", UserName=n):
        call(iam.get_access_key_last_used, AccessKeyId=k["AccessKeyId"])
    call(iam.get_login_profile, UserName=n, ok=("NoSuchEntity",))
    member_of.update(g["GroupName"] for g in pages(iam.list_groups_for_user, "Groups", UserName=n))
    pages(iam.list_attached_user_policies, "AttachedPolicies", UserName=n)
    for p in pages(iam.list_user_policies, "PolicyNames", UserName=n):
        call(iam.get_user_policy, UserName=n, PolicyName=p)
for g in sorted(member_of):
    group_policies(g)
# aws-iam-groups
for g in pages(iam.list_groups, "Groups"):
    pages(iam.get_group, "Users", GroupName=g["GroupName"])
    group_policies(g["GroupName"])
# aws-iam-password-policy, aws-account-summary
call(iam.get_account_password_policy, ok=("NoSuchEntity",))
call(iam.get_account_summary)
pages(iam.list_account_aliases, "AccountAliases")
# aws-s3-buckets
s3c = boto3.client("s3control", **KW)
s3c.meta.events.register("before-sign.s3-control.*", lambda request, **_: setattr(
    request, "url", request.url.replace("//123456789012.", "//", 1)))
call(s3c.get_public_access_block, AccountId="123456789012", ok=("NoSuchPublicAccessBlockConfiguration",))
for b in call(s3.list_buckets, MaxBuckets=1000)["Buckets"]:
    n = b["Name"]
    call(s3.get_bucket_location, Bucket=n)
    call(s3.get_bucket_encryption, Bucket=n, ok=("ServerSideEncryptionConfigurationNotFoundError",))
    call(s3.get_public_access_block, Bucket=n, ok=("NoSuchPublicAccessBlockConfiguration",))
    call(s3.get_bucket_versioning, Bucket=n)
    call(s3.get_bucket_logging, Bucket=n)
    call(s3.get_bucket_policy, Bucket=n, ok=("NoSuchBucketPolicy",))
    call(s3.get_bucket_policy_status, Bucket=n, ok=("NoSuchBucketPolicy",))
    call(s3.get_bucket_ownership_controls, Bucket=n, ok=("OwnershipControlsNotFoundError",))
    call(s3.get_bucket_acl, Bucket=n)
    call(s3.get_object_lock_configuration, Bucket=n, ok=("ObjectLockConfigurationNotFoundError",))
    call(s3.get_bucket_lifecycle_configuration, Bucket=n, ok=("NoSuchLifecycleConfiguration",))
# aws-cloudtrail (one region)
for t in call(ct.describe_trails, includeShadowTrails=True)["trailList"]:
    call(ct.get_trail_status, Name=t["TrailARN"])
    call(ct.get_event_selectors, TrailName=t["TrailARN"])
print(calls)
