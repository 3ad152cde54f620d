#!/usr/bin/env python3
"""Mutation testing for one module: do its tests fail when one line of it is wrong?

Why a small runner of our own: mutmut 3 rewrites the whole package into a `mutants/` tree with trampolines
and needs its own config; here each mutant is a plain one-line edit, tested with the module's own fast tests.

    python scripts/mutate.py src/thoughttrace/doctor.py --tests tests/test_doctor.py
    make mutate MODULE=src/thoughttrace/doctor.py TESTS=tests/test_doctor.py

Mutations, one at a time: comparison flips (< <=, > >=, == !=, in / not in, is / is not), `and` <-> `or`,
True <-> False, off-by-one on integer literals (n -> n + 1), a condition negated (`if x` -> `if not (x)`),
and a statement dropped (replaced by `pass`). Docstrings, comments and lines marked `# pragma: no mutate` are
left alone. A mutant is killed when the tests fail (or time out), survives when they pass.

By default the work happens on a COPY of the project (src/, tests/, scripts/, pyproject.toml, in a temp folder, run with
PYTHONPATH pointing at the copy): the working tree is never written, so engineers editing the same files at the
same time are safe. `--in-place` mutates the real file instead and always restores it (finally, SIGINT, SIGTERM;
a backup copy is kept until the run ends).

Exit status: 0 when the survival rate is at most --fail-above (default 100, i.e. report only), 1 above it,
2 when the unmutated tests already fail (nothing can be measured).
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

FORMAT_VERSION = 1
REPO = Path(__file__).resolve().parents[1]

_FLIPS = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
_NAME_SWAPS = {"and": "or", "or": "and", "True": "False", "False": "True"}
_SKIP = "pragma: no mutate"


@dataclass(frozen=True)
class Mutant:
    """One edit: replace text[start:end] (character offsets into the module's source) with `new`."""

    line: int
    kind: str
    start: int
    end: int
    old: str
    new: str

    def apply(self, source: str) -> str:
        return source[: self.start] + self.new + source[self.end:]


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | timeout
    seconds: float


# -- finding mutants ---------------------------------------------------------------------------------------------
def _offsets(source: str) -> list[int]:
    """Character offset of the start of each line (1-based line numbers index it as [line - 1])."""
    out, pos = [], 0
    for line in source.splitlines(keepends=True):
        out.append(pos)
        pos += len(line)
    out.append(pos)
    return out


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def _token_mutants(source: str, starts: list[int], skip: set[int]) -> list[Mutant]:
    out: list[Mutant] = []
    toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, tok in enumerate(toks):
        line, col = tok.start
        if line in skip:
            continue
        at = starts[line - 1] + col
        end = at + len(tok.string)
        if tok.type == tokenize.OP and tok.string in _FLIPS:
            out.append(Mutant(line, "comparison", at, end, tok.string, _FLIPS[tok.string]))
        elif tok.type == tokenize.NAME and tok.string in _NAME_SWAPS:
            out.append(Mutant(line, "boolean", at, end, tok.string, _NAME_SWAPS[tok.string]))
        elif tok.type == tokenize.NAME and tok.string == "is":
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if nxt is not None and nxt.string == "not":
                out.append(Mutant(line, "comparison", at, starts[nxt.end[0] - 1] + nxt.end[1], "is not", "is"))
            else:
                out.append(Mutant(line, "comparison", at, end, "is", "is not"))
        elif tok.type == tokenize.NAME and tok.string == "in":
            prev = toks[i - 1] if i else None
            if prev is not None and prev.string == "not":
                p_at = starts[prev.start[0] - 1] + prev.start[1]
                out.append(Mutant(line, "comparison", p_at, end, "not in", "in"))
            elif not _in_for_target(toks, i):
                out.append(Mutant(line, "comparison", at, end, "in", "not in"))
        elif tok.type == tokenize.NUMBER and tok.string.isdigit():
            value = int(tok.string)
            out.append(Mutant(line, "off-by-one", at, end, tok.string, str(value + 1)))
    return out


def _in_for_target(toks: list[tokenize.TokenInfo], i: int) -> bool:
    """Whether the `in` at toks[i] belongs to `for x in xs` (a loop or a comprehension), not a membership test.

    Scans back at the same bracket depth: a `for` first means a loop target; an opening bracket of this depth,
    the start of the logical line or an operator that starts an expression first means a membership test.
    """
    depth = 0
    for j in range(i - 1, -1, -1):
        t = toks[j]
        if t.string in (")", "]", "}"):
            depth += 1
        elif t.string in ("(", "[", "{"):
            if depth == 0:
                return False
            depth -= 1
        elif depth == 0:
            if t.string == "for":
                return True
            if t.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) or t.string in (
                    "if", "elif", "while", "return", "=", "and", "or", "not", ":", "lambda", "assert", "yield"):
                return False
    return False


def _ast_mutants(source: str, tree: ast.AST, starts: list[int], skip: set[int]) -> list[Mutant]:
    out: list[Mutant] = []

    def span(node: ast.AST) -> tuple[int, int]:
        return (starts[node.lineno - 1] + node.col_offset,  # type: ignore[attr-defined]
                starts[node.end_lineno - 1] + node.end_col_offset)  # type: ignore[attr-defined]

    for node in ast.walk(tree):
        tests: list[ast.expr] = []
        if isinstance(node, (ast.If, ast.While, ast.IfExp)):
            tests.append(node.test)
        elif isinstance(node, ast.comprehension):
            tests.extend(node.ifs)
        for test in tests:
            if test.lineno in skip:
                continue
            a, b = span(test)
            out.append(Mutant(test.lineno, "negation", a, b, source[a:b], f"not ({source[a:b]})"))
        body_fields = [getattr(node, f, None) for f in ("body", "orelse", "finalbody")]
        for body in body_fields:
            if not isinstance(body, list):
                continue
            for stmt in body:
                if not isinstance(stmt, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Raise,
                                         ast.Continue, ast.Break, ast.Delete)):
                    continue
                if stmt.lineno in skip or (isinstance(stmt, ast.AnnAssign) and stmt.value is None):
                    continue
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    continue  # a docstring or a bare constant
                a, b = span(stmt)
                out.append(Mutant(stmt.lineno, "dropped statement", a, b, source[a:b], "pass"))
    return out


def find_mutants(source: str) -> list[Mutant]:
    """Every mutant of `source` that still compiles, in line order."""
    tree = ast.parse(source)
    starts = _offsets(source)
    lines = source.splitlines()
    skip = _docstring_lines(tree) | {i + 1 for i, text in enumerate(lines) if _SKIP in text}
    # module-level constants, imports and __all__ are configuration, not logic; their tests are elsewhere
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)):
            skip.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    found = _token_mutants(source, starts, skip) + _ast_mutants(source, tree, starts, skip)
    seen: set[tuple[int, int, str]] = set()
    out = []
    for m in sorted(found, key=lambda m: (m.start, m.kind)):
        key = (m.start, m.end, m.new)
        if key in seen:
            continue
        seen.add(key)
        try:
            compile(m.apply(source), "<mutant>", "exec")
        except SyntaxError:
            continue
        out.append(m)
    return out


# -- running -----------------------------------------------------------------------------------------------------
def _copy_project(root: Path, dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "artifacts")
    for name in ("src", "tests", "scripts", "pyproject.toml", "setup.cfg", "pytest.ini", "conftest.py"):
        p = root / name
        if p.is_dir():
            shutil.copytree(p, dest / name, ignore=ignore, symlinks=True)
        elif p.exists():
            shutil.copy2(p, dest / name)


def _run_tests(cwd: Path, tests: list[str], marker: str, timeout: float, env: dict[str, str]) -> tuple[str, float]:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-m", marker, *tests]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - started
    took = time.perf_counter() - started
    _run_tests.last_output = (proc.stdout + proc.stderr)[-2000:]  # type: ignore[attr-defined]
    if proc.returncode == 0:
        return "survived", took
    if proc.returncode == 5:  # no test collected: the tests named do not exist
        raise SystemExit(f"mutate: pytest collected no test from {' '.join(tests)}; name the module's tests")
    return "killed", took


def _guess_tests(module: Path, root: Path) -> list[str]:
    """tests/<part>/ for src/<pkg>/<part>/x.py; tests/test_<name>.py for a top-level module."""
    rel = module.relative_to(root / "src")
    parts = rel.parts
    if len(parts) >= 3 and (root / "tests" / parts[1]).is_dir():
        return [f"tests/{parts[1]}"]
    single = root / "tests" / f"test_{module.stem}.py"
    if single.exists():
        return [str(single.relative_to(root))]
    raise SystemExit(f"mutate: no tests found for {module}; pass --tests")


class _Restore:
    """Put the original source back, whatever ends the run (an exception, Ctrl-C, SIGTERM)."""

    def __init__(self, path: Path, original: str, backup: Path | None) -> None:
        self.path, self.original, self.backup = path, original, backup

    def __enter__(self) -> _Restore:
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def interrupted(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupted)
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.write_text(self.original, encoding="utf-8")
        if self.backup is not None:
            self.backup.unlink(missing_ok=True)
        for s, h in self._old.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("module", help="the module's file, e.g. src/thoughttrace/doctor.py")
    ap.add_argument("--tests", nargs="+", help="pytest paths or node ids (default: the module's tests/ folder)")
    ap.add_argument("-m", "--marker", default="not model and not slow", help="pytest -m expression")
    ap.add_argument("--root", default=str(REPO), help="the project root (src/, tests/, pyproject.toml)")
    ap.add_argument("--in-place", action="store_true", help="mutate the real file (restored at the end)")
    ap.add_argument("--max", type=int, default=0, help="test at most this many mutants (a seeded sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lines", default="", help="only mutate these lines, e.g. 40-80")
    ap.add_argument("--timeout", type=float, default=0.0, help="seconds per test run (default 3x the baseline + 10)")
    ap.add_argument("--json", dest="json_out", default="", help="write the outcomes to this JSON file")
    ap.add_argument("--fail-above", type=float, default=100.0, help="exit 1 when the survival rate (%%) is above")
    ap.add_argument("--list", action="store_true", help="only list the mutants")
    ap.add_argument("--tests-rev", default="", help="run the tests of this git revision (e.g. HEAD: the rate "
                    "before this change's tests); read with `git archive`, the working tree is not touched")
    args = ap.parse_args(argv)

    root = Path(args.root).resolve()
    module = Path(args.module)
    module = (module if module.is_absolute() else root / module).resolve()
    if not module.is_file() or module.suffix != ".py":
        print(f"mutate: {args.module} is not a Python file under {root}", file=sys.stderr)
        return 2
    source = module.read_text(encoding="utf-8")
    mutants = find_mutants(source)
    if args.lines:
        lo, _, hi = args.lines.partition("-")
        mutants = [m for m in mutants if int(lo) <= m.line <= int(hi or lo)]
    if args.max and len(mutants) > args.max:
        mutants = sorted(random.Random(args.seed).sample(mutants, args.max), key=lambda m: m.start)
    rel = module.relative_to(root)
    if args.list:
        for m in mutants:
            print(f"{rel}:{m.line}: {m.kind}: {m.old!r} -> {m.new!r}")
        return 0
    tests = args.tests or _guess_tests(module, root)

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1"}
    env.setdefault("THOUGHTTRACE_SHARED", str(root.parent / "shared"))
    workdir: Path | None = None
    if args.in_place and args.tests_rev:
        print("mutate: --tests-rev needs the copy mode (leave out --in-place)", file=sys.stderr)
        return 2
    if args.in_place:
        cwd, target = root, module
    else:
        workdir = Path(tempfile.mkdtemp(prefix="mutate-"))
        _copy_project(root, workdir)
        cwd, target = workdir, workdir / rel
        if args.tests_rev:
            shutil.rmtree(workdir / "tests")
            archive = subprocess.run(["git", "-C", str(root), "archive", args.tests_rev, "tests"], capture_output=True)
            if archive.returncode != 0:
                print(f"mutate: git archive {args.tests_rev} tests failed: {archive.stderr.decode()[-300:]}",
                      file=sys.stderr)
                return 2
            subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive.stdout, check=True)
    # the (copied) src/ first: an editable install of the real tree must not shadow the mutated copy
    env["PYTHONPATH"] = os.pathsep.join([str(cwd / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)

    outcomes: list[Outcome] = []
    backup = None
    if args.in_place:
        backup = module.with_name(f".{module.name}.mutate-backup")
        backup.write_text(source, encoding="utf-8")
    try:
        with _Restore(target, source, backup):
            status, base_s = _run_tests(cwd, tests, args.marker, max(args.timeout, 600.0), env)
            if status != "survived":
                tail = getattr(_run_tests, "last_output", "")
                print(f"mutate: the tests fail (or time out) on the unmutated {rel}: {status}; fix them first\n{tail}",
                      file=sys.stderr)
                return 2
            timeout = args.timeout or 3 * base_s + 10
            print(f"{rel}: {len(mutants)} mutants; tests {' '.join(tests)} take {base_s:.1f}s unmutated", flush=True)
            for k, m in enumerate(mutants, 1):
                target.write_text(m.apply(source), encoding="utf-8")
                status, took = _run_tests(cwd, tests, args.marker, timeout, env)
                target.write_text(source, encoding="utf-8")
                outcomes.append(Outcome(m, status, round(took, 2)))
                mark = {"killed": ".", "timeout": "T", "survived": "S"}[status]
                print(mark, end="" if k % 50 else "\n", flush=True)
    except KeyboardInterrupt:
        print(f"\nmutate: interrupted; {rel} restored; {len(outcomes)} of {len(mutants)} mutants tested",
              file=sys.stderr)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    survivors = [o for o in outcomes if o.status == "survived"]
    n = len(outcomes)
    rate = 100.0 * len(survivors) / n if n else 0.0
    for o in survivors:
        m = o.mutant
        print(f"SURVIVED {rel}:{m.line}: {m.kind}: {m.old[:80]!r} -> {m.new[:80]!r}")
    killed = sum(o.status == "killed" for o in outcomes)
    timeouts = sum(o.status == "timeout" for o in outcomes)
    print(f"{rel}: {n} mutants, {killed} killed, {timeouts} timed out (counted killed), {len(survivors)} survived: "
          f"survival rate {rate:.1f}% (n={n})")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "format_version": FORMAT_VERSION, "module": str(rel), "tests": tests, "marker": args.marker,
            "mutants": n, "killed": killed, "timeouts": timeouts, "survived": len(survivors),
            "survival_rate": round(rate, 2),
            "outcomes": [{**asdict(o.mutant), "status": o.status, "seconds": o.seconds} for o in outcomes],
        }, indent=2), encoding="utf-8")
    return 1 if rate > args.fail_above else 0


if __name__ == "__main__":
    sys.exit(main())
