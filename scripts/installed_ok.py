"""Exit 0 when every distribution `make install` puts in this interpreter is still there, else name the missing.

Why: the install stamp alone cannot see a package removed after it was written (`pip uninstall x`), and the
next `make test` then failed deep inside a test. Checking metadata for each requirement takes well under a
second, so `make install` runs it every time and installs again when anything is gone.

    python scripts/installed_ok.py [EXTRA_DIST==VERSION ...]
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys

EXTRAS = {"all", "dev"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def required() -> list[str]:
    """thoughttrace's own requirements: the core, every extra named in EXTRAS, and what `all` expands to."""
    reqs = md.requires("thoughttrace") or []
    extras = set(EXTRAS)
    for req in reqs:  # `all` = thoughttrace[local,data,...]: those extras are wanted too
        m = re.match(r"thoughttrace\[([^\]]+)\]", req)
        if m and any(f'extra == "{e}"' in req for e in EXTRAS):
            extras |= {e.strip() for e in m.group(1).split(",")}
    names = []
    for req in reqs:
        marker = req.split(";", 1)[1] if ";" in req else ""
        extra = re.search(r'extra == "([^"]+)"', marker)
        if extra and extra.group(1) not in extras:
            continue
        name = _NAME.match(req)
        if name and name.group(1) != "thoughttrace":
            names.append(name.group(1))
    return names


def missing(names: list[str]) -> list[str]:
    gone = []
    for name in names:
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            gone.append(name)
    return gone


def main(argv: list[str]) -> int:
    try:
        names = required()
    except md.PackageNotFoundError:
        print("thoughttrace itself is not installed here", file=sys.stderr)
        return 1
    gone = missing(names + ["torch"] + [a.split("==")[0] for a in argv])
    if gone:
        print("missing: " + ", ".join(gone), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
