#!/usr/bin/env python3
"""Validates an OSCAL assessment-results JSON file with compliance-trestle's
models of NIST's OSCAL schema; prints the counts of observations and
resources, or fails with the validation error."""
import json, sys

try:
    from trestle.oscal.assessment_results import AssessmentResults
except ImportError as e:
    sys.exit(f"FAIL: {e}: install the test peers (tests/requirements.txt) — bash tests/run.sh does")

doc = json.load(open(sys.argv[1]))
try:
    ar = AssessmentResults.model_validate(doc["assessment-results"])
except Exception as e:  # noqa: BLE001 - any validation failure is the answer
    sys.exit(f"INVALID: {e}")
obs = ar.results[0].observations or []
res = ar.back_matter.resources if ar.back_matter else []
print(f"VALID observations={len(obs)} resources={len(res)}")
