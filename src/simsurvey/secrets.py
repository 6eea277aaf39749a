"""Keep credentials out of everything simsurvey writes or prints.

One function, :func:`scrub`, is applied to the manifest (config and ``command``), the report's
"Reproduce this run" text, the ``.hydra/*.yaml`` files Hydra writes into the run directory,
error lines on stderr and log records. It replaces with :data:`MARK`:

- values under credential-like keys (``api_key``, ``token``, ``secret``, ``password``,
  ``authorization``) in mappings, and in ``key=value`` / ``key: value`` text such as a Hydra
  override ``+model.params.api_key=...``;
- strings that look like a credential wherever they appear (``sk-...``, ``Bearer ...``);
- the exact values it is given, i.e. the value of the variable named by ``model.api_key_env``
  (see :func:`known_secrets`).

Names of environment variables (``api_key_env: OPENAI_API_KEY``) and token counts
(``prompt_tokens``) are not secrets and are kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

#: What a credential is replaced with.
MARK = "<redacted>"

# A key naming a credential; "tokens" (counts) and "..._env" (a variable's name) are not.
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|token(?!s)|passw(or)?d|authorization|credential)", re.IGNORECASE)
# key=value, key: value or "key": "value" in free text, where the key names a credential (not ..._env).
_KEY_VALUE = re.compile(
    r"(?P<key>[\w.+-]*(?:api[_-]?key|secret|token(?!s)|passw(?:or)?d|authorization|credential)(?![\w-]*_env\b)[\w.-]*)"
    r"(?P<sep>['\"]?\s*[=:]\s*)(?P<q>['\"]?)(?P<value>(?:Bearer\s+)?[^\s'\",}\]]+)",
    re.IGNORECASE,
)
# Credentials recognisable on their own: OpenAI/Anthropic-style keys, bearer tokens, GitHub and
# Hugging Face tokens, AWS access key ids.
_LOOKS_SECRET = re.compile(
    r"(\bsk-[A-Za-z0-9_-]{8,}|\bBearer\s+[A-Za-z0-9._~+/=-]{8,}|\bgh[pousr]_[A-Za-z0-9]{20,}"
    r"|\bhf_[A-Za-z0-9]{20,}|\bAKIA[0-9A-Z]{16}\b)"
)
# Shorter values are not treated as secrets (an env var set to "1" must not blank every "1").
_MIN_SECRET_LEN = 8
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_secret_key(key: object) -> bool:
    """True for a mapping key that names a credential (``api_key``, ``Authorization``...)."""
    return isinstance(key, str) and bool(_SECRET_KEY.search(key)) and not key.endswith("_env")


def looks_like_key(value: str) -> bool:
    """True when ``value`` looks like a credential rather than an environment variable's name."""
    if _LOOKS_SECRET.search(value) or not _ENV_NAME.match(value):
        return True
    # Variable names are one case; a long mix of lower, upper case and digits is a key.
    return len(value) >= 24 and any(c.islower() for c in value) and any(c.isupper() for c in value) \
        and any(c.isdigit() for c in value)


def known_secrets(api_key_env: str | None = None, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Values that must never be written: the key in ``api_key_env``'s variable (or the value
    itself when it is a key pasted where a variable name belongs), and the values of every
    environment variable whose name names a credential (``OPENAI_API_KEY``, ``HF_TOKEN``...)."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    if api_key_env:
        if looks_like_key(api_key_env):
            out.append(api_key_env)
        elif env.get(api_key_env):
            out.append(env[api_key_env])
    out += [v for k, v in env.items() if is_secret_key(k) and v]
    return tuple(sorted({v for v in out if len(v) >= _MIN_SECRET_LEN}, key=len, reverse=True))


def _scrub_text(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, MARK)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['sep']}{m['q']}{MARK}" if m["value"] != MARK else m[0], text)
    return _LOOKS_SECRET.sub(MARK, text)


def scrub(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``obj`` (text, or JSON-like data) with every credential replaced by :data:`MARK`.

    Args:
        obj: A string, or dicts/lists/tuples of them (other values are returned unchanged).
        secrets: Exact values to remove wherever they appear (see :func:`known_secrets`).

    Returns:
        The scrubbed copy; in mappings, a non-empty value under a credential-like key becomes
        :data:`MARK` whatever its type.
    """
    secrets = tuple(s for s in secrets if s)
    if isinstance(obj, str):
        return _scrub_text(obj, secrets)
    if isinstance(obj, dict):
        return {k: (MARK if is_secret_key(k) and v else scrub(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v, secrets) for v in obj]
    return obj
