#!/usr/bin/env python3
"""Seeds a moto_server with the AWS estate the AWS collector tests assert
facts about, and prints (as JSON) what the tests need to know: account ids,
and the secrets moto handed out (secret access keys, passwords) so that
the tests can prove none of them reaches the evidence or the logs.

    python3 aws_seed.py http://127.0.0.1:PORT [--roles N] [--policies N]

Account 123456789012 (moto's default) gets the variety; account
111111111111 (reached by assuming a role, as the collectors do) gets one
user, so that multi-account collection has two different answers; an
organisation managed from the main account has one more (empty) member.
"""
import argparse
import json
import sys

import boto3

ap = argparse.ArgumentParser()
ap.add_argument("endpoint")
ap.add_argument("--roles", type=int, default=105)
ap.add_argument("--policies", type=int, default=105)
args = ap.parse_args()

E = args.endpoint
ACCOUNT = "123456789012"
KW = dict(endpoint_url=E, region_name="us-east-1",
          aws_access_key_id="seed", aws_secret_access_key="seed")
iam = boto3.client("iam", **KW)
s3 = boto3.client("s3", **KW)
s3eu = boto3.client("s3", **{**KW, "region_name": "eu-west-1"})
# The endpoint rules put the account id in front of the host, which cannot
# resolve in front of an IP address; moto routes S3 Control by path.
s3control = boto3.client("s3control", **KW)
s3control.meta.events.register(
    "before-sign.s3-control.*",
    lambda request, **_: setattr(request, "url", request.url.replace(f"//{ACCOUNT}.", "//", 1)))
ct = boto3.client("cloudtrail", **KW)
cteu = boto3.client("cloudtrail", **{**KW, "region_name": "eu-west-1"})
cfg = boto3.client("config", **KW)
gd = boto3.client("guardduty", **KW)
sh = boto3.client("securityhub", **KW)

secrets = []

def doc(statements):
    return json.dumps({"Version": "2012-10-17", "Statement": statements})

ADMIN = doc([{"Effect": "Allow", "Action": "*", "Resource": "*"}])
READ = doc([{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}])
EC2_TRUST = doc([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}])

# --- IAM users ----------------------------------------------------------
for u in ["alice", "bob", "carol", "erin", "svc-ci"]:
    iam.create_user(UserName=u)

# alice: console password, a virtual MFA device, one key that is used.
pw = "Alice-Pa55word!x9"
iam.create_login_profile(UserName="alice", Password=pw)
secrets.append(pw)
mfa = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice")["VirtualMFADevice"]
iam.enable_mfa_device(UserName="alice", SerialNumber=mfa["SerialNumber"],
                      AuthenticationCode1="123456", AuthenticationCode2="654321")
k = iam.create_access_key(UserName="alice")["AccessKey"]
secrets.append(k["SecretAccessKey"])
alice_key = k["AccessKeyId"]
# Using the key marks it as used (moto records the last use).
boto3.client("iam", endpoint_url=E, region_name="us-east-1",
             aws_access_key_id=k["AccessKeyId"],
             aws_secret_access_key=k["SecretAccessKey"]).get_user(UserName="alice")

# bob: console password without MFA, an unused key, an inline admin policy.
pw = "Bob-Pa55word!y7"
iam.create_login_profile(UserName="bob", Password=pw)
secrets.append(pw)
k = iam.create_access_key(UserName="bob")["AccessKey"]
secrets.append(k["SecretAccessKey"])
bob_key = k["AccessKeyId"]
iam.put_user_policy(UserName="bob", PolicyName="bob-everything", PolicyDocument=ADMIN)

# carol: AWS's AdministratorAccess attached directly, no console.
iam.attach_user_policy(UserName="carol", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")

# svc-ci: two keys, one deactivated.
for i in range(2):
    k = iam.create_access_key(UserName="svc-ci")["AccessKey"]
    secrets.append(k["SecretAccessKey"])
    if i == 1:
        iam.update_access_key(UserName="svc-ci", AccessKeyId=k["AccessKeyId"], Status="Inactive")

# --- groups -------------------------------------------------------------
iam.create_group(GroupName="developers")
iam.create_group(GroupName="admins")
iam.add_user_to_group(GroupName="developers", UserName="alice")
iam.add_user_to_group(GroupName="developers", UserName="bob")
iam.add_user_to_group(GroupName="admins", UserName="erin")
iam.attach_group_policy(GroupName="admins", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
iam.put_group_policy(GroupName="developers", PolicyName="dev-read", PolicyDocument=READ)

# --- customer-managed policies: one with several versions, and enough to page.
p = iam.create_policy(PolicyName="deploy", PolicyDocument=READ)["Policy"]["Arn"]
iam.create_policy_version(PolicyArn=p, PolicyDocument=doc([{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]), SetAsDefault=False)
iam.create_policy_version(PolicyArn=p, PolicyDocument=doc([{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]), SetAsDefault=True)
iam.attach_group_policy(GroupName="developers", PolicyArn=p)
for i in range(args.policies - 1):
    iam.create_policy(PolicyName=f"bulk-{i:03d}", PolicyDocument=READ)

# --- roles: trust policies, inline and attached, and enough to page.
iam.create_role(RoleName="ci-deploy", AssumeRolePolicyDocument=doc([{
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
    "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "acme-ci"}}}]),
    Description="CI deploys from the tools account")
iam.put_role_policy(RoleName="ci-deploy", PolicyName="deploy-inline", PolicyDocument=READ)
iam.attach_role_policy(RoleName="ci-deploy", PolicyArn=p)
iam.create_role(RoleName="breakglass", AssumeRolePolicyDocument=doc([{
    "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]))
iam.attach_role_policy(RoleName="breakglass", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
for i in range(args.roles - 2):
    iam.create_role(RoleName=f"app-{i:03d}", AssumeRolePolicyDocument=EC2_TRUST)

iam.create_account_alias(AccountAlias="acme-prod")
# No password policy: its absence is a fact the tests check.

# --- S3 -----------------------------------------------------------------
s3.create_bucket(Bucket="acme-logs")
s3.put_bucket_encryption(Bucket="acme-logs", ServerSideEncryptionConfiguration={
    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
s3.put_public_access_block(Bucket="acme-logs", PublicAccessBlockConfiguration={
    "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
s3.put_bucket_versioning(Bucket="acme-logs", VersioningConfiguration={"Status": "Enabled"})
s3.put_bucket_policy(Bucket="acme-logs", Policy=doc([{"Sid": "S3ServerAccessLogs", "Effect": "Allow",
    "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
    "Resource": "arn:aws:s3:::acme-logs/*"}]))
s3.put_bucket_lifecycle_configuration(Bucket="acme-logs", LifecycleConfiguration={"Rules": [
    {"ID": "expire-old-logs", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 400}}]})

s3.create_bucket(Bucket="acme-data")
s3.put_bucket_encryption(Bucket="acme-data", ServerSideEncryptionConfiguration={
    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
               "KMSMasterKeyID": "arn:aws:kms:us-east-1:123456789012:key/data-key"}, "BucketKeyEnabled": True}]})
s3.put_bucket_versioning(Bucket="acme-data", VersioningConfiguration={"Status": "Suspended"})
s3.put_bucket_logging(Bucket="acme-data", BucketLoggingStatus={"LoggingEnabled": {
    "TargetBucket": "acme-logs", "TargetPrefix": "s3/acme-data/"}})
s3.put_bucket_policy(Bucket="acme-data", Policy=doc([{"Sid": "DenyInsecure", "Effect": "Deny", "Principal": "*",
    "Action": "s3:*", "Resource": "arn:aws:s3:::acme-data/*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]))
s3.put_bucket_ownership_controls(Bucket="acme-data", OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})

s3.create_bucket(Bucket="acme-public")
s3.put_bucket_policy(Bucket="acme-public", Policy=doc([{"Sid": "Public", "Effect": "Allow", "Principal": "*",
    "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-public/*"}]))

s3.create_bucket(Bucket="acme-locked", ObjectLockEnabledForBucket=True)
s3.put_object_lock_configuration(Bucket="acme-locked", ObjectLockConfiguration={
    "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}}})

s3eu.create_bucket(Bucket="acme-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})

s3control.put_public_access_block(AccountId=ACCOUNT, PublicAccessBlockConfiguration={
    "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False, "RestrictPublicBuckets": False})

# --- CloudTrail: one logging multi-region trail with validation, one idle.
ct.create_trail(Name="org-audit", S3BucketName="acme-logs", IsMultiRegionTrail=True,
                EnableLogFileValidation=True, IncludeGlobalServiceEvents=True,
                KmsKeyId="arn:aws:kms:us-east-1:123456789012:key/trail-key")
ct.start_logging(Name="org-audit")
ct.put_event_selectors(TrailName="org-audit", EventSelectors=[{
    "ReadWriteType": "All", "IncludeManagementEvents": True,
    "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::acme-data/"]}]}])
cteu.create_trail(Name="eu-scratch", S3BucketName="acme-logs")

# --- Monitoring in us-east-1 only ------------------------------------------
cfg.put_configuration_recorder(ConfigurationRecorder={
    "name": "default", "roleARN": f"arn:aws:iam::{ACCOUNT}:role/config",
    "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": True}})
cfg.put_delivery_channel(DeliveryChannel={"name": "default", "s3BucketName": "acme-logs"})
cfg.start_configuration_recorder(ConfigurationRecorderName="default")
gd.create_detector(Enable=True, FindingPublishingFrequency="ONE_HOUR")
sh.enable_security_hub(EnableDefaultStandards=False)

# --- A second account, reached by assuming a role --------------------------
sts = boto3.client("sts", **KW)
c = sts.assume_role(RoleArn="arn:aws:iam::111111111111:role/ExhibitReadOnly",
                    RoleSessionName="seed")["Credentials"]
iam2 = boto3.client("iam", endpoint_url=E, region_name="us-east-1",
                    aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                    aws_session_token=c["SessionToken"])
iam2.create_user(UserName="dave")
k = iam2.create_access_key(UserName="dave")["AccessKey"]
secrets.append(k["SecretAccessKey"])

# --- An organisation, managed from the main account, with one member.
org = boto3.client("organizations", **KW)
org.create_organization(FeatureSet="ALL")
status = org.create_account(Email="sandbox@example.com", AccountName="sandbox")["CreateAccountStatus"]
org_account = org.describe_create_account_status(
    CreateAccountRequestId=status["Id"])["CreateAccountStatus"]["AccountId"]

json.dump({
    "org_account": org_account,
    "account": ACCOUNT,
    "second_account": "111111111111",
    "alice_key": alice_key,
    "bob_key": bob_key,
    "secrets": secrets,
}, sys.stdout)
