#!/usr/bin/env python3
"""Validates an OSCAL JSON document (assessment results, assessment plan or
catalog) with compliance-trestle's models of NIST's OSCAL schema; prints
what it holds (for assessment results, the counts of observations and
resources), or fails with the validation error."""
import json, sys

try:
    from trestle.oscal.assessment_plan import AssessmentPlan
    from trestle.oscal.assessment_results import AssessmentResults
    from trestle.oscal.catalog import Catalog
except ImportError as e:
    sys.exit(f"FAIL: {e}: install the test peers (tests/requirements.txt) — bash tests/run.sh does")

MODELS = {
    "assessment-results": AssessmentResults,
    "assessment-plan": AssessmentPlan,
    "catalog": Catalog,
}

doc = json.load(open(sys.argv[1]))
(kind,) = doc.keys()
try:
    model = MODELS[kind].model_validate(doc[kind])
except Exception as e:  # noqa: BLE001 - any validation failure is the answer
    sys.exit(f"INVALID: {e}")
res = model.back_matter.resources if model.back_matter else []
if kind == "assessment-results":
    r = model.results[0]
    obs = r.observations or []
    print(f"VALID observations={len(obs)} resources={len(res)} findings={len(r.findings or [])} risks={len(r.risks or [])}")
elif kind == "assessment-plan":
    print(f"VALID plan resources={len(res)}")
else:
    print(f"VALID catalog controls={len(model.controls or [])}")
