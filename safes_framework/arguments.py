"""Command-line argument helpers shared by `safes run` and the sweep commands."""

from __future__ import annotations

import ast
from typing import Any

from .errors import ConfigError


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value` with value read as a Python literal when it is one (1e-3, [1, 2], True).

    Dashes in the key become underscores (`max-iters=5` sets `max_iters`).

    Raises:
        ConfigError: `text` has no `=`.
    """
    if "=" not in text:
        raise ConfigError(f"parameter {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip().replace("-", "_"), value
