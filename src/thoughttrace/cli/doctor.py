"""`thoughttrace doctor`: one line per part a user may rely on, ok or missing, with the command that fixes it."""

from __future__ import annotations

import click

from .common import echo_json


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="print the checks as JSON")
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """Check the installation. Exit 1 when a part that a default command needs is missing."""
    from thoughttrace.doctor import report, run_checks

    checks = run_checks()
    result = report(checks)
    if as_json:
        echo_json(result)
    else:
        width = max(len(c.part) for c in checks)
        for c in checks:
            state = "ok" if c.ok else ("MISSING" if c.required else "missing")
            line = f"{state:<8} {c.part:<{width}}  {c.detail}"
            if not c.ok:
                line += f"\n{'':<8} {'':<{width}}  fix: {c.fix}"
            click.echo(line)
        needed = [c.part for c in checks if c.required and not c.ok]
        click.echo("all default parts are installed" if not needed
                   else f"default commands need: {', '.join(needed)} (run the fix lines above, or `make install`)")
    if not result["ok"]:
        ctx.exit(1)
