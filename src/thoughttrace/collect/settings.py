"""Server settings from the environment (never from code): database, secrets, mode, limits.

Production mode refuses to start with a missing or default secret, because a guessable session secret
lets anyone forge a participant cookie and a guessable admin token opens every conversation.
Demo and test modes generate random secrets when none is given (`thoughttrace demo` prints them).
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass, replace
from typing import Literal

Mode = Literal["production", "demo", "test"]

#: values that are never accepted as a secret in production
DEFAULT_SECRETS = frozenset({"", "changeme", "change-me", "secret", "admin", "password", "dev", "test", "default"})
MIN_SECRET_CHARS = 16
#: a secret's estimated entropy (its length times the Shannon entropy of its own characters) must reach this:
#: `secrets.token_urlsafe(16)` gives ~90 bits, `token_hex(16)` ~118; `aaaaaaaaaaaaaaaa` gives 0
MIN_SECRET_BITS = 72
DEFAULT_DB_URL = "sqlite:///thoughttrace-study.sqlite"


class SettingsError(ValueError):
    """Settings the server must not start with; the message says which variable to set."""


@dataclass(frozen=True)
class Settings:
    """Everything the app needs besides the study config."""

    db_url: str = DEFAULT_DB_URL
    admin_token: str = ""
    secret_key: str = ""
    mode: Mode = "production"
    secure_cookies: bool = False
    max_body_bytes: int = 256 * 1024
    study_path: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read THOUGHTTRACE_* variables; keyword overrides win (the CLI passes its options here)."""
        env = os.environ
        values: dict[str, object] = {
            "db_url": env.get("THOUGHTTRACE_DB_URL", DEFAULT_DB_URL),
            "admin_token": env.get("THOUGHTTRACE_ADMIN_TOKEN", ""),
            "secret_key": env.get("THOUGHTTRACE_SECRET_KEY", ""),
            "mode": env.get("THOUGHTTRACE_MODE", "production"),
            "secure_cookies": env.get("THOUGHTTRACE_SECURE_COOKIES", "0") == "1",
            "study_path": env.get("THOUGHTTRACE_STUDY") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values["mode"] not in ("production", "demo", "test"):
            raise SettingsError(f"THOUGHTTRACE_MODE must be production, demo or test, not {values['mode']!r}")
        return cls(**values).checked()  # type: ignore[arg-type]

    def checked(self) -> Settings:
        """Fill random secrets outside production; refuse weak ones in production."""
        if self.mode != "production":
            return replace(
                self,
                admin_token=self.admin_token or secrets.token_urlsafe(24),
                secret_key=self.secret_key or secrets.token_urlsafe(32),
            )
        for var, value in (("THOUGHTTRACE_ADMIN_TOKEN", self.admin_token),
                           ("THOUGHTTRACE_SECRET_KEY", self.secret_key)):
            fix = (f"Set it to a random value, e.g. `export {var}=$(python -c 'import secrets; "
                   "print(secrets.token_urlsafe(32))')`, or run `thoughttrace demo` for a local try-out")
            if value.strip().lower() in DEFAULT_SECRETS or len(value) < MIN_SECRET_CHARS:
                raise SettingsError(
                    f"{var} is missing, a default, or shorter than {MIN_SECRET_CHARS} characters; production mode "
                    f"refuses to start. {fix}"
                )
            _bits, why = secret_strength(value)
            if why:
                raise SettingsError(f"{var} is too easy to guess ({why}); production mode refuses to start. {fix}")
        if self.admin_token == self.secret_key:
            raise SettingsError("THOUGHTTRACE_ADMIN_TOKEN and THOUGHTTRACE_SECRET_KEY must differ")
        return self


def secret_strength(value: str) -> tuple[float, str | None]:
    """(estimated bits, None) for a secret strong enough, or (bits, why not).

    The estimate is the string's length times the Shannon entropy of its own character frequencies: a
    repeated character (`aaaaaaaaaaaaaaaa`: 0 bits) or a short repeated word (`Passw0rdPassw0rd`: 44) scores
    low whatever its length, a random token high. Runs of neighbouring characters (`abcdefgh...`, `12345...`)
    are refused too, as the frequencies alone would not see them. An estimate, not a proof: generate secrets.
    """
    n = len(value)
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    bits = abs(n * sum(c / n * math.log2(c / n) for c in counts.values())) if n else 0.0
    if bits < MIN_SECRET_BITS:
        return bits, (f"about {bits:.0f} bits of entropy, at least {MIN_SECRET_BITS} needed: it repeats too few "
                      "different characters")
    steps = sum(1 for a, b in zip(value, value[1:], strict=False) if abs(ord(a) - ord(b)) <= 1)
    if n > 1 and steps / (n - 1) > 0.5:
        return bits, f"{steps} of its {n - 1} neighbouring characters are in sequence (like abcd or 1234)"
    return bits, None
