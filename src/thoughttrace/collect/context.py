"""What every route needs: settings, study, database, signer, models, templates; plus small helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Connection

from thoughttrace.llm import Model, get_model

from .db import Database
from .flow import FlowError, check_time_limit
from .queries import ConversationRow, ParticipantRow, participant_by_public_id, participant_with_conversation
from .security import CSRF_FIELD, CSRF_HEADER, PARTICIPANT_COOKIE, Signer
from .settings import Settings
from .study import ModelEntry, StudyConfig
from .throttle import LoginThrottle
from .versions import StudyVersions


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("thoughttrace.collect", "templates"),
        autoescape=True,  # participant text is only ever escaped
        undefined=jinja2.StrictUndefined,
        # package files that do not change while the server runs: no mtime check (two stats) per page
        auto_reload=False,
    )
    return Jinja2Templates(env=env)


@dataclass
class AppContext:
    settings: Settings
    study: StudyConfig
    db: Database
    signer: Signer
    models: Mapping[str, Model]
    templates: Jinja2Templates = field(default_factory=make_templates)
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    #: the stored study versions (None: versions off, everyone reads `study`); see `versions.py`
    versions: StudyVersions | None = None
    _version_models: dict[str, Model] = field(default_factory=dict)

    def study_of(self, p: ParticipantRow, c: Connection) -> StudyConfig:
        """The configuration the participant started under (models, tasks, texts, consent, design)."""
        return self.study if self.versions is None else self.versions.get(c, p.study_version)

    def model_for(self, study: StudyConfig, key: str) -> tuple[ModelEntry, Model]:
        """The pool entry and Model of `key` in the participant's version `study`.

        The current pool's Model when the entry is the same; otherwise (a model removed or changed in a
        later version) one built from the stored entry, so a participant's chat goes on with the model
        they started with.
        """
        entry = study.model_entry(key)
        if key in self.models:
            current = next((m for m in self.study.models if m.key == key), None)
            if current is None or current == entry or study is self.study:
                return entry, self.models[key]
        cache_key = f"{entry.spec}\x00{sorted(entry.options.items())!r}"
        model = self._version_models.get(cache_key)
        if model is None:
            options = dict(entry.options)
            if entry.spec.split(":")[0] == "scripted" and not options:
                options["default"] = "This is a scripted answer: the platform runs without a real model."
            model = self._version_models[cache_key] = get_model(entry.spec, cache=False, **options)
        return entry, model

    def generation_lock(self, conversation_id: int) -> asyncio.Lock:
        """One model call at a time per conversation in this process (double clicks, retries)."""
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    # -- participant session ---------------------------------------------------------------------
    def participant(self, request: Request, c: Connection) -> ParticipantRow:
        """The participant of the signed cookie (403 without one, or when withdrawn)."""
        public_id = self.signer.read_participant_cookie(request.cookies.get(PARTICIPANT_COOKIE))
        return self._checked(c, participant_by_public_id(c, public_id) if public_id else None)

    def participant_in(self, request: Request, c: Connection, cid: str
                       ) -> tuple[ParticipantRow, ConversationRow | None]:
        """The participant and, read in the same statement, their conversation `cid` (None when it is not
        theirs or unknown: the caller answers 404, after the CSRF check)."""
        public_id = self.signer.read_participant_cookie(request.cookies.get(PARTICIPANT_COOKIE))
        p, conv = participant_with_conversation(c, public_id, cid) if public_id else (None, None)
        p = self._checked(c, p)
        return p, (conv if conv is not None and conv.participant_id == p.id else None)

    def _checked(self, c: Connection, p: ParticipantRow | None) -> ParticipantRow:
        if p is None:
            raise FlowError(403, "no study session found: please open the study link you were given again")
        if p.stage == "withdrawn":
            raise FlowError(403, "your data was withdrawn from this study at your request; nothing more is recorded")
        check_time_limit(c, p, self.study_of(p, c))
        return p

    def check_csrf(self, request: Request, p: ParticipantRow, form: Mapping[str, Any] | None = None) -> None:
        token = request.headers.get(CSRF_HEADER) or (form or {}).get(CSRF_FIELD)
        if not self.signer.csrf_ok(p.public_id, token):
            raise FlowError(403, "this form has expired or did not come from the study page; reload the page")

    def render(self, request: Request, name: str, status_code: int = 200, *, study: StudyConfig | None = None,
               **context: Any) -> Any:
        """A page; `study` (the participant's version) gives its texts, by default the current ones."""
        study = study or self.study
        base = {"study": study, "texts": study.texts}
        return self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def ctx_of(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]
