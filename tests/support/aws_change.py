#!/usr/bin/env python3
"""Moves the estate seeded by aws_seed.py to its next state, the one the
review tests expect `exhibit diff` and the nightly report to notice:

- a new user, frank (no console, no MFA);
- alice's MFA device deactivated;
- AWS's AdministratorAccess attached to svc-ci;
- the org-audit trail stopped.

    python3 aws_change.py http://127.0.0.1:PORT
"""
import sys

import boto3

E = sys.argv[1]
ACCOUNT = "123456789012"
KW = dict(endpoint_url=E, region_name="us-east-1",
          aws_access_key_id="seed", aws_secret_access_key="seed")
iam = boto3.client("iam", **KW)
ct = boto3.client("cloudtrail", **KW)

iam.create_user(UserName="frank")
iam.deactivate_mfa_device(UserName="alice", SerialNumber=f"arn:aws:iam::{ACCOUNT}:mfa/alice")
iam.attach_user_policy(UserName="svc-ci", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
ct.stop_logging(Name="org-audit")
