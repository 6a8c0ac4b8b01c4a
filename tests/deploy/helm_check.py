#!/usr/bin/env python3
"""Lints and renders the Helm chart with Helm's own SDK (helm-python-sdk,
which wraps Helm's Go library), validates every rendered manifest strictly:
the core kinds against the Kubernetes schemas with `kubernetes-validate
--strict`, the ServiceMonitor and PrometheusRule against the
prometheus-operator CRD schemas (see `monitoring_validators`), and parses
every alert expression as PromQL; then checks the facts the chart promises
(restricted pod security, probes, shards, IRSA, per-stream staleness
alerts). Exits non-zero, saying why, on the first failure.
"""
import copy, json, os, subprocess, sys, tempfile
from importlib.metadata import version

try:
    import helm_python as helm
    import jsonschema
    import promql_parser
    import yaml  # noqa: F401  (kubernetes-validate brings PyYAML)
    from cloudcoil.models.prometheus_operator import v1 as monitoring_v1
except ImportError as e:
    sys.exit(f"FAIL: {e}: install the test peers (tests/requirements.txt) — bash tests/run.sh does")

# The prometheus-operator release whose CRDs the manifests must satisfy: the
# models package carries it as its version (release + a build number).
OPERATOR_MODELS = ("cloudcoil.models.prometheus_operator", "0.80.1.0")

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

def strict(schema):
    """Makes a JSON schema reject unknown fields, as `kubernetes-validate
    --strict` does for the core kinds: the API server prunes them silently,
    so a misspelt field would otherwise pass and do nothing."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        # Go's regexp (the API server's) takes `^(?i)…`; Python's wants a
        # global flag first. Same language, same matches.
        p = schema.get("pattern")
        if isinstance(p, str) and p.startswith("^(?i)"):
            schema["pattern"] = "(?i)^" + p[len("^(?i)"):]
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema

def monitoring_validators():
    """Validators for monitoring.coreos.com/v1 ServiceMonitor and
    PrometheusRule, from a pinned PyPI package: cloudcoil's
    prometheus-operator models are generated from the CRDs of the
    prometheus-operator release bundle (v0.80.1 for 0.80.1.0); their JSON
    schemas carry the CRDs' fields, types, required fields, enums and
    duration patterns."""
    name, pinned = OPERATOR_MODELS
    if version(name) != pinned:
        fail(f"{name} is {version(name)}, the check is pinned to {pinned} (tests/requirements.txt)")
    out = {}
    for kind in ("ServiceMonitor", "PrometheusRule"):
        schema = strict(getattr(monitoring_v1, kind).model_json_schema(by_alias=True))
        jsonschema.Draft202012Validator.check_schema(schema)
        out[kind] = jsonschema.Draft202012Validator(schema)
    return out

def crd_errors(validators, doc):
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validators[doc["kind"]].iter_errors(doc)]

MONITORING = monitoring_validators()

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

def stale_expr(rule):
    [expr] = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"] if r.get("alert") == "ExhibitEvidenceStale"]
    return " ".join(expr.split())

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
    for p, d in manifests:
        if d["apiVersion"] != "monitoring.coreos.com/v1":
            continue
        errors = crd_errors(MONITORING, d)
        if errors:
            fail(f"{p} ({name}) against the prometheus-operator {OPERATOR_MODELS[1]} CRD schema:\n  " + "\n  ".join(errors))
        print(f"{p} ({name}): valid {d['kind']} (prometheus-operator {OPERATOR_MODELS[1]}, strict)")
        if d["kind"] == "PrometheusRule":
            for g in d["spec"]["groups"]:
                for rule in g["rules"]:
                    try:
                        promql_parser.parse(rule["expr"])
                    except Exception as e:
                        fail(f"{p} ({name}): alert {rule.get('alert')}: not PromQL: {e}: {rule['expr']}")
            print(f"{p} ({name}): every expression parses as PromQL")

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
            (stale_expr(rule) == "time() - ( (exhibit_last_success_timestamp_seconds > 0) or on(instance, stream) "
             "((exhibit_last_success_timestamp_seconds == 0) + on(instance) group_left() exhibit_agent_start_time_seconds) ) "
             "> on(instance, stream) (exhibit_stream_expected_interval_seconds * 1 + 3600)",
             "staleness per stream, against its own schedule's interval, from the agent's start for a stream never successful"),
            ("exhibit_store_writable == 0" in exprs, "alert on a store that refuses writes"),
            (by_kind["ServiceMonitor"][0]["spec"]["endpoints"][0]["path"] == "/metrics", "ServiceMonitor scrapes /metrics"),
        ]
    else:
        import tomllib
        cfg = tomllib.loads(by_kind["ConfigMap"][0]["data"]["exhibit.toml"])
        kinds_on = [c["kind"] for c in cfg.get("collectors", []) if c.get("enabled", True)]
        checks += [
            ("ServiceMonitor" not in by_kind and "PrometheusRule" not in by_kind, "monitoring objects are opt-in"),
            (kinds_on == ["command"], "the default config collects with no credentials (local collectors only)"),
        ]
    checks += [
        (pod["terminationGracePeriodSeconds"] == 45 and env["EXHIBIT_SHUTDOWN_GRACE"] == "30s",
         "the pod's grace period derived from the agent's shutdown grace"),
    ]
    for ok, what in checks:
        if not ok:
            fail(f"{name}: {what}")
        print(f"  {name}: {what}: ok")

# The grace period follows shutdownGraceSeconds; a new config rolls the pods;
# NOTES give commands that work where the store is.
def render(values):
    out = chart.render(values, name="exhibit", namespace="compliance", is_install=True)
    sts = next(d for _, d in docs(out) if d["kind"] == "StatefulSet")
    notes = next(t for p, t in out.items() if p.endswith("NOTES.txt"))
    return sts, notes
sts, notes = render({"shutdownGraceSeconds": 120})
env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
if sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] != 135 or env["EXHIBIT_SHUTDOWN_GRACE"] != "120s":
    fail("terminationGracePeriodSeconds does not follow shutdownGraceSeconds")
print("  shutdownGraceSeconds 120 gives a grace period of 135 s: ok")
a, _ = render(None)
b, _ = render({"config": "[agent]\nid = \"other\"\n"})
if a["spec"]["template"]["metadata"]["annotations"]["checksum/config"] == b["spec"]["template"]["metadata"]["annotations"]["checksum/config"]:
    fail("a new config does not change the pod template (the pods would not roll)")
print("  a new config rolls the pods: ok")
_, notes = render(None)
if "exec exhibit-0 -- /exhibit verify --coverage" not in notes or "exhibit verify --store /var" in notes:
    fail(f"NOTES for a store on the pod's volume:\n{notes}")
_, notes = render(FULL)
if "exhibit verify --store s3://acme-evidence/prod --coverage" not in notes or "exhibit-2 -- /exhibit keys show" not in notes:
    fail(f"NOTES for an S3 store and three replicas:\n{notes}")
print("  NOTES give commands that work where the store is: ok")

# The CRD validation can fail: broken monitoring objects are caught.
full = docs(chart.render(FULL, name="exhibit", namespace="compliance", is_install=True))
sm = next(d for _, d in full if d["kind"] == "ServiceMonitor")
pr = next(d for _, d in full if d["kind"] == "PrometheusRule")
broken = []
bad = copy.deepcopy(sm); bad["spec"]["endpoints"][0]["interval"] = "60 seconds"
broken.append(("a ServiceMonitor interval that is not a duration", bad))
bad = copy.deepcopy(sm); bad["spec"]["endpoints"][0]["pathh"] = "/metrics"
broken.append(("a misspelt ServiceMonitor field", bad))
bad = copy.deepcopy(pr); del bad["spec"]["groups"][0]["rules"][0]["expr"]
broken.append(("an alert without an expression", bad))
bad = copy.deepcopy(pr); bad["spec"]["groups"][0]["rules"][0]["for"] = "15 minutes"
broken.append(("an alert `for` that is not a duration", bad))
for what, d in broken:
    if not crd_errors(MONITORING, d):
        fail(f"the CRD validation let through {what}")
    print(f"  rejected: {what}: ok")
try:
    promql_parser.parse("time() - exhibit_last_success_timestamp_seconds > on(stream (1)")
    fail("the PromQL check let through a broken expression")
except Exception:
    print("  rejected: a broken PromQL expression: ok")

print("helm chart: all checks passed")
