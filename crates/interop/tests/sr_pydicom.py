"""Reads a MedVision SR with pydicom and checks the modules the
Comprehensive SR IOD (PS3.3 A.35.3) requires, and that the source
instances it names are referenced.

Usage: sr_pydicom.py SR_FILE SOP_INSTANCE_UID...
"""
import sys

import pydicom

ds = pydicom.dcmread(sys.argv[1])
refs = set(sys.argv[2:])
problems = []

def need(keyword):
    if keyword not in ds:
        problems.append(f"missing {keyword}")

# SOP Common, Patient, General Study, SR Document Series, General Equipment,
# SR Document General, SR Document Content.
for kw in ["SOPClassUID", "SOPInstanceUID", "SpecificCharacterSet",
           "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
           "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
           "StudyID", "AccessionNumber",
           "Modality", "SeriesInstanceUID", "SeriesNumber",
           "ReferencedPerformedProcedureStepSequence", "Manufacturer",
           "InstanceNumber", "CompletionFlag", "VerificationFlag", "ContentDate",
           "ContentTime", "PerformedProcedureCodeSequence",
           "ValueType", "ConceptNameCodeSequence", "ContinuityOfContent", "ContentSequence"]:
    need(kw)
if ds.get("SOPClassUID") != "1.2.840.10008.5.1.4.1.1.88.33":
    problems.append("not a Comprehensive SR")
if ds.get("Modality") != "SR":
    problems.append("Modality is not SR")
if ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID:
    problems.append("file meta and data set disagree on the SOP Instance UID")
if ds.get("VerificationFlag") == "VERIFIED" and "VerifyingObserverSequence" not in ds:
    problems.append("VERIFIED without a Verifying Observer Sequence")
found = set()
for study in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
    for series in study.ReferencedSeriesSequence:
        for item in series.ReferencedSOPSequence:
            found.add(item.ReferencedSOPInstanceUID)
if not refs <= found:
    problems.append(f"source instances not referenced: {sorted(refs - found)}")

def walk(items, depth=0):
    for it in items:
        if it.RelationshipType not in {"CONTAINS", "HAS PROPERTIES", "HAS OBS CONTEXT",
                                       "HAS ACQ CONTEXT", "INFERRED FROM", "SELECTED FROM",
                                       "HAS CONCEPT MOD"}:
            problems.append(f"bad relationship {it.RelationshipType}")
        if it.ValueType == "NUM":
            v = float(it.MeasuredValueSequence[0].NumericValue)
            if not 0.0 <= v <= 1.0:
                problems.append(f"probability {v} outside [0, 1]")
        walk(it.get("ContentSequence", []), depth + 1)

walk(ds.ContentSequence)
if problems:
    print("\n".join(problems))
    sys.exit(1)
print("ok")
