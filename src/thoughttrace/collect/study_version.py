"""Which study a server runs: the study's name plus a short hash of its whole config.

Two servers (or a server and last night's backup) with the same study version ran the same consent
text, tasks, quiz, models and settings; a changed word anywhere gives another version. The banner of
`thoughttrace serve`, `/readyz` and every backup manifest print it, so a restored database can be
matched to the config it was collected with.
"""

from __future__ import annotations

import hashlib
import json

from .study import StudyConfig


def study_version(study: StudyConfig) -> str:
    """`NAME@HASH12`: the study name and the first 12 hex digits of the sha256 of its canonical JSON."""
    # the same canonical JSON as `versions.content_hash` (the `study_versions` rows): the hashes agree
    canonical = json.dumps(study.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return f"{study.name}@{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"
