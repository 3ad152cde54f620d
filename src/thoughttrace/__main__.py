from thoughttrace.cli.main import cli

cli()
