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

from thoughttrace.llm import Model

from .db import Database
from .flow import FlowError, check_time_limit
from .queries import ConversationRow, ParticipantRow, participant_by_public_id, participant_with_conversation
from .security import CSRF_FIELD, CSRF_HEADER, PARTICIPANT_COOKIE, Signer
from .settings import Settings
from .study import StudyConfig
from .throttle import LoginThrottle


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
        check_time_limit(c, p, self.study)
        return p

    def check_csrf(self, request: Request, p: ParticipantRow, form: Mapping[str, Any] | None = None) -> None:
        token = request.headers.get(CSRF_HEADER) or (form or {}).get(CSRF_FIELD)
        if not self.signer.csrf_ok(p.public_id, token):
            raise FlowError(403, "this form has expired or did not come from the study page; reload the page")

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Any:
        base = {"study": self.study, "texts": self.study.texts}
        return self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def ctx_of(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]
