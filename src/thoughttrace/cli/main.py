"""Entry point. Command groups load lazily so `thoughttrace --help` never imports torch or a web stack."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from thoughttrace import __version__

from .common import UserFacingError, friendly_errors

#: command name -> "module:attribute" (modules under thoughttrace.cli)
COMMANDS: dict[str, str] = {
    "llm": "llm:group",
    "cache": "cache:group",
    "data": "data:group",
    "serve": "serve:command",
    "demo": "serve:demo_command",
    "analyze": "analyze:command",
    "label": "label:label_command",
    "label-eval": "label:label_eval_command",
    "eval": "evals:group",
    "simulate": "evals:simulate_command",
    "align": "align:group",
    "tom": "tom:group",
    "doctor": "doctor:command",
    "prolific": "prolific:group",
    "db": "db:group",
    "study": "study:group",
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or its help is asked for)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(f"thoughttrace.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"thoughttrace.cli.{module_name}":
                return None
            raise
        cmd = getattr(module, attr, None)
        return cmd if isinstance(cmd, click.Command) else None

    def invoke(self, ctx: click.Context) -> Any:
        with friendly_errors():
            return super().invoke(ctx)


def quiet_progress_unless_tty(stream: Any = None) -> bool:
    """Progress bars only on a terminal: when stderr is not one (a log, a pipe), switch off every tqdm bar
    (ours and those of transformers / sentence-transformers / huggingface_hub, e.g. 'Loading weights').
    Returns whether bars stay on."""
    import os

    stream = stream if stream is not None else sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return True
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="thoughttrace")
def cli() -> None:
    """ThoughtTrace: collect, analyse and infer what users think while they talk to LLMs."""
    quiet_progress_unless_tty()


def main() -> None:  # pragma: no cover - console entry
    try:
        cli(standalone_mode=True)
    except UserFacingError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
