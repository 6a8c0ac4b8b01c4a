#!/usr/bin/env python3
"""Lints and renders the Helm chart with Helm's own SDK (helm-python-sdk,
which wraps Helm's Go library), validates every rendered manifest against
the Kubernetes schemas with `kubernetes-validate --strict`, and checks the
facts the chart promises (restricted pod security, probes, shards, IRSA,
alerts). Exits non-zero, saying why, on the first failure.
"""
import json, os, subprocess, sys, tempfile

try:
    import helm_python as helm
    import yaml  # noqa: F401  (kubernetes-validate brings PyYAML)
except ImportError as e:
    sys.exit(f"FAIL: {e}: install the test peers (tests/requirements.txt) — bash tests/run.sh does")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "deploy", "helm", "exhibit")

def fail(msg):
    sys.exit(f"FAIL: {msg}")

def docs(rendered):
    import yaml
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for d in yaml.safe_load_all(text):
            if d:
                out.append((path, d))
    return out

FULL = {
    "replicas": 3,
    "store": "s3://acme-evidence/prod",
    "signingKey": {"existingSecret": "exhibit-signing-key"},
    "envFromSecrets": ["exhibit-github-token"],
    "env": {"AWS_REGION": "eu-west-1"},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/exhibit-readonly"}},
    "metrics": {"serviceMonitor": {"enabled": True}},
    "prometheusRule": {"enabled": True},
}

for name, values in [("defaults", None), ("full", FULL)]:
    report = helm.lint(CHART, values, strict=True)
    bad = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
    if report.get("errors") or bad:
        fail(f"helm lint ({name}): {json.dumps(report, indent=2)}")
    print(f"helm lint ({name}): ok, {len(report.get('messages') or [])} info message(s)")

chart = helm.Chart.load(CHART)
for name, values in [("defaults", None), ("full", FULL)]:
    manifests = docs(chart.render(values, name="exhibit", namespace="compliance", is_install=True))
    kinds = sorted(d["kind"] for _, d in manifests)
    print(f"rendered ({name}): {', '.join(kinds)}")
    core = [(p, d) for p, d in manifests if d["apiVersion"] != "monitoring.coreos.com/v1"]
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, (p, d) in enumerate(core):
            f = os.path.join(tmp, f"{i:02d}-{d['kind']}.yaml")
            with open(f, "w") as fh:
                import yaml
                yaml.safe_dump(d, fh)
            files.append(f)
        r = subprocess.run(["kubernetes-validate", "--strict", "-k", "1.31.0"] + files, capture_output=True, text=True)
        print(r.stdout.strip())
        if r.returncode != 0 or "ERROR" in r.stdout or "ERROR" in r.stderr:
            fail(f"kubernetes-validate --strict ({name}):\n{r.stdout}\n{r.stderr}")

    by_kind = {}
    for _, d in manifests:
        by_kind.setdefault(d["kind"], []).append(d)
    sts = by_kind["StatefulSet"][0]
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc, psc = c["securityContext"], pod["securityContext"]
    checks = [
        (psc.get("runAsNonRoot") is True, "runAsNonRoot"),
        (psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault"),
        (sc.get("allowPrivilegeEscalation") is False, "no privilege escalation"),
        (sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem"),
        (sc.get("capabilities", {}).get("drop") == ["ALL"], "all capabilities dropped"),
        (c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness probe on /healthz"),
        (c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness probe on /readyz"),
        ("limits" in c["resources"] and "requests" in c["resources"], "resource requests and limits"),
        (sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state", "a volume per replica for the spool"),
        (pod.get("automountServiceAccountToken") is False, "no Kubernetes API token mounted"),
    ]
    env = {e["name"]: e.get("value") for e in c["env"]}
    if name == "full":
        sa = by_kind["ServiceAccount"][0]
        rule = by_kind["PrometheusRule"][0]
        exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
        checks += [
            (sts["spec"]["replicas"] == 3 and env["EXHIBIT_SHARD_COUNT"] == "3", "3 replicas, each told the shard count"),
            (env["EXHIBIT_STORE"] == "s3://acme-evidence/prod", "the store from values"),
            (env["EXHIBIT_KEY"] == "/etc/exhibit/key/agent.pem", "the signing key from its Secret"),
            (any(v.get("secret", {}).get("secretName") == "exhibit-signing-key" for v in pod["volumes"]), "the key Secret mounted"),
            (c["envFrom"][0]["secretRef"]["name"] == "exhibit-github-token", "tokens from a Secret reference"),
            (sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("role/exhibit-readonly"), "IRSA annotation"),
            ("exhibit_last_success_timestamp_seconds" in exprs, "alert on stale last success"),
            (by_kind["ServiceMonitor"][0]["spec"]["endpoints"][0]["path"] == "/metrics", "ServiceMonitor scrapes /metrics"),
        ]
    else:
        checks += [("ServiceMonitor" not in by_kind and "PrometheusRule" not in by_kind, "monitoring objects are opt-in")]
    for ok, what in checks:
        if not ok:
            fail(f"{name}: {what}")
        print(f"  {name}: {what}: ok")

print("helm chart: all checks passed")
