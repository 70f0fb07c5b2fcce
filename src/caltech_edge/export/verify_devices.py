"""Verification of artifacts this machine cannot run: said plainly, never faked.

* Core ML: on macOS the package runs through the ``coreml`` runtime backend and is
  compared numerically like every other format (:func:`~.verify.verify_artifact`). Off
  macOS ``MLModel.predict`` does not exist, so the check is **structural**: spec type,
  input name/size/color layout, the ImageType scale/bias constants, classifier labels and
  the embedded card, each compared with the card (:mod:`caltech_edge.export.coreml`).
* Edge TPU: when ``edgetpu_compiler`` ran, its log says which ops it mapped; the compiled
  model needs the TPU itself to run (its ops are one ``edgetpu-custom-op``), so the report
  is structural. When the compiler is absent the report is **not-run** and carries the
  command; the CPU INT8 model beside it is verified numerically by the ``tflite-int8`` row.

Both take :func:`~.verify.verify_artifact`'s keyword arguments so the export pipeline
calls every row's verifier the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..card import ModelCard, card_for
from ..errors import VerificationError
from .verify import VerifyReport, verify_artifact

NAN = float("nan")


def _report(artifact: Path, card: ModelCard, backend: str, kind: str, passed: bool, **extra):
    return VerifyReport(
        artifact=str(artifact),
        against="the model card",
        backend=backend,
        precision=card.precision,
        images=0,
        data="",
        max_abs_diff=NAN,
        mean_abs_diff=NAN,
        cosine=NAN,
        top1_agreement=NAN,
        tolerance={},
        passed=passed,
        extra=extra,
        kind=kind,
    )


def verify_coreml(
    artifact: str | Path,
    *,
    against: Any = None,
    card: ModelCard | None = None,
    check: bool = True,
    **kwargs: Any,
) -> VerifyReport:
    """Numeric on macOS; elsewhere the structural check described in the module docstring."""
    from .coreml import coreml_structure, numeric_possible, structure_problems

    artifact = Path(artifact)
    if numeric_possible():
        return verify_artifact(
            artifact, against=against, card=card, check=check, backend="coreml", **kwargs
        )
    card = card or card_for(artifact)
    found = coreml_structure(artifact)
    problems = structure_problems(found, card)
    found.pop("card", None)
    note = "structural only (Core ML predict needs macOS): " + (
        "; ".join(problems) if problems else "spec, input, ImageType scale/bias, labels, card match"
    )
    report = _report(artifact, card, "coreml", "structural", not problems, note=note, found=found)
    if check and problems:
        raise VerificationError(f"{artifact}: {note}")
    return report


_MAPPED = re.compile(r"^(\w+)\s+(\d+)\s+(Mapped to Edge TPU|.+)$")


def compiler_mapping(log_text: str) -> dict[str, int]:
    """Op counts on the TPU and on the CPU from ``edgetpu_compiler -s``'s table."""
    tpu = cpu = 0
    for line in log_text.splitlines():
        match = _MAPPED.match(line.strip())
        if match and match.group(1).isupper():
            if match.group(3) == "Mapped to Edge TPU":
                tpu += int(match.group(2))
            else:
                cpu += int(match.group(2))
    return {"ops_on_tpu": tpu, "ops_on_cpu": cpu}


def verify_edgetpu(
    artifact: str | Path, *, card: ModelCard | None = None, check: bool = True, **_: Any
) -> VerifyReport:
    """Report what the compiler did (structural) or that it was not run (not-run)."""
    from .edgetpu import PLAN_NAME

    artifact = Path(artifact)
    card = card or card_for(artifact)
    if artifact.name == PLAN_NAME:
        plan = json.loads(artifact.read_text(encoding="utf-8"))
        note = f"not compiled: {plan['reason']}; run `{plan['command']}` (nothing TPU-side claimed)"
        return _report(artifact, card, "litert", "not-run", True, note=note, plan=plan)
    log_path = artifact.with_name("edgetpu_compiler.log")
    mapping = compiler_mapping(log_path.read_text(encoding="utf-8")) if log_path.is_file() else {}
    note = (
        f"compiled by edgetpu_compiler: {mapping.get('ops_on_tpu', '?')} ops on the TPU, "
        f"{mapping.get('ops_on_cpu', '?')} on the CPU (from its log); running it needs a "
        "Coral device, not verified numerically here"
    )
    return _report(artifact, card, "litert", "structural", True, note=note, **mapping)
