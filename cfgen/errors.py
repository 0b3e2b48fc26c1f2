"""User-facing errors: one clear line, non-zero exit."""
from __future__ import annotations

import functools
from typing import Any, Callable

import click


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors (bad paths, bad settings) end with one clear line and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        from .io.reader import InputError
        try:
            return fn(*a, **kw)
        except (InputError, FileNotFoundError, ValueError, KeyError) as e:
            msg = e.args[0] if e.args else str(e)
            raise click.ClickException(str(msg)) from None
    return wrapper
