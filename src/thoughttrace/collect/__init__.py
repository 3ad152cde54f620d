"""The study platform: participants chat with an LLM and privately note why they send each message
(reason) and what they think of each answer (reaction); the model never sees the notes.

`create_app(settings, study)` builds the FastAPI app; `thoughttrace serve` / `thoughttrace demo` run it.
"""

from .settings import Settings, SettingsError
from .study import StudyConfig, StudyConfigError, demo_study, load_study, parse_study

__all__ = [
    "Settings", "SettingsError", "StudyConfig", "StudyConfigError", "create_app", "demo_study", "load_study",
    "parse_study",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name == "create_app":  # the web stack loads only when an app is built
        from .app import create_app

        return create_app
    raise AttributeError(name)
