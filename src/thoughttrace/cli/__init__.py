"""The `thoughttrace` command line: one module per command group, each command wraps a library function."""
