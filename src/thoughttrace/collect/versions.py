"""Versioned study configurations: each participant keeps the configuration they started under.

Why: a researcher edits the study file mid-study (a typo in a text, a model dropped for cost). Before,
every request re-read the one current file, so removing a model was a `KeyError` on every answer of
the participants whose open chat used it, and re-read design rows could give someone the same model
twice. Now the whole configuration is stored in `study_versions` under the sha256 of its canonical
JSON when the server starts; an edited file is a new version, an unchanged one the same. A new
participant gets the current version; every later request of theirs reads theirs (models, tasks,
texts, consent, design). The consent text's sha256 is stored with the participant when they agree.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .db import StudyVersion, utcnow
from .design import Design, build_design
from .study import StudyConfig, parse_study

VERSIONS: Table = StudyVersion.__table__  # type: ignore[assignment]


def study_design(study: StudyConfig) -> Design:
    """The study's counterbalancing design (rows, rules, id): see `design.py`."""
    rotate = study.task_order == "rotate" and len(study.tasks) > 1
    return build_design(tuple(m.key for m in study.models), study.tasks_per_participant, len(study.tasks), rotate)


def config_json(study: StudyConfig) -> dict[str, Any]:
    """The configuration as stored: every field, defaults included, so an old version reads the same
    even after a release changes a default."""
    return study.model_dump(mode="json")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(study: StudyConfig) -> str:
    return sha256_text(json.dumps(config_json(study), sort_keys=True, ensure_ascii=False))


def register(c: Connection, study: StudyConfig) -> int:
    """The version id of this configuration, stored now when it is new (concurrent workers: one row)."""
    digest = content_hash(study)
    found = c.execute(select(VERSIONS.c.id).where(VERSIONS.c.content_hash == digest)).scalar()
    if found is not None:
        return int(found)
    try:
        with c.begin_nested():
            result = c.execute(insert(VERSIONS), {
                "content_hash": digest, "config": config_json(study), "consent_hash": sha256_text(study.texts.consent),
                "design_id": study_design(study).design_id, "created_at": utcnow()})
            return int(result.inserted_primary_key[0])  # type: ignore[index]
    except IntegrityError:  # another worker stored the same version first
        return int(c.execute(select(VERSIONS.c.id).where(VERSIONS.c.content_hash == digest)).scalar_one())


def load_all(c: Connection) -> dict[int, StudyConfig]:
    """Every stored version, parsed (a version that no longer parses is named, never skipped)."""
    out: dict[int, StudyConfig] = {}
    for vid, config in c.execute(select(VERSIONS.c.id, VERSIONS.c.config).order_by(VERSIONS.c.id)):
        out[int(vid)] = parse_study(config, f"stored study version {vid}")
    return out


def version_rows(c: Connection) -> list[dict[str, Any]]:
    """The versions for the export and codebook: id, hash, consent hash, design id, time."""
    rows = c.execute(select(VERSIONS.c.id, VERSIONS.c.content_hash, VERSIONS.c.consent_hash, VERSIONS.c.design_id,
                            VERSIONS.c.created_at).order_by(VERSIONS.c.id))
    return [{"version": int(r[0]), "content_hash": r[1], "consent_hash": r[2], "design_id": r[3],
             "created_at": r[4].isoformat().replace("+00:00", "Z") if r[4] else None} for r in rows]


class StudyVersions:
    """The current version and a cache of the others (read from the database on first use)."""

    def __init__(self, current: StudyConfig, current_id: int, known: dict[int, StudyConfig] | None = None) -> None:
        self.current = current
        self.current_id = current_id
        self._known: dict[int, StudyConfig] = dict(known or {})
        self._known[current_id] = current
        self._lock = threading.Lock()

    def known(self) -> dict[int, StudyConfig]:
        """Every version read so far (all stored ones at start-up), by id."""
        with self._lock:
            return dict(self._known)

    def get(self, c: Connection, version: int | None) -> StudyConfig:
        """The configuration of `version` (None: a participant from before versions: the current one)."""
        if version is None or version == self.current_id:
            return self.current
        found = self._known.get(version)
        if found is not None:
            return found
        config = c.execute(select(VERSIONS.c.config).where(VERSIONS.c.id == version)).scalar()
        if config is None:
            return self.current
        study = parse_study(config, f"stored study version {version}")
        with self._lock:
            self._known[version] = study
        return study


def open_versions(db: Any, study: StudyConfig) -> StudyVersions:
    """Store `study` as a version when it is new and load every stored one (their designs too, so model
    quotas count participants of earlier designs). `db` is a `Database`."""
    with db.transaction() as c:
        current_id = register(c, study)
        known = load_all(c)
    for version in known.values():
        study_design(version)
    return StudyVersions(study, current_id, known)
