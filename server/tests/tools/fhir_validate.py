"""Validates FHIR R4 (4.0.1) JSON resources against the base structure
definitions, as the fhir.resources 6.1 models encode them (element names,
types, cardinalities; unknown elements are errors), plus the required
value sets of the status elements, which those models do not check.

Usage: fhir_validate.py FILE...   exits non-zero naming the first failure.
"""
import json
import sys

import fhir.resources
from fhir.resources import get_fhir_model_class

assert fhir.resources.__fhir_version__ == "4.0.1", fhir.resources.__fhir_version__

# Required bindings (FHIR R4 value sets) of the elements MedVision fills.
STATUS = {
    "DiagnosticReport": {"registered", "partial", "preliminary", "final", "amended",
                         "corrected", "appended", "cancelled", "entered-in-error", "unknown"},
    "ImagingStudy": {"registered", "available", "cancelled", "entered-in-error", "unknown"},
    "Observation": {"registered", "preliminary", "final", "amended", "corrected",
                    "cancelled", "entered-in-error", "unknown"},
    "Bundle": None,
    "OperationOutcome": None,
    "CapabilityStatement": {"draft", "active", "retired", "unknown"},
}


def check(doc):
    kind = doc.get("resourceType")
    if kind not in STATUS:
        raise ValueError(f"unexpected resourceType {kind!r}")
    get_fhir_model_class(kind).parse_obj(doc)
    allowed = STATUS[kind]
    if allowed is not None and doc.get("status") not in allowed:
        raise ValueError(f"{kind}.status {doc.get('status')!r} is not in the R4 value set")
    if kind == "Bundle":
        for e in doc.get("entry", []):
            check(e["resource"])


for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    try:
        check(doc)
    except Exception as e:  # noqa: BLE001 - report any failure with its file
        print(f"{path}: INVALID: {e}")
        sys.exit(1)
    print(f"{path}: valid {doc['resourceType']}")
