"""User-facing errors: one clear line naming the file, option or model involved; non-zero exit."""
from __future__ import annotations

import functools
from typing import Any, Callable

import click


class InputError(Exception):
    """A problem with the user's inputs or run directory (a missing file, an empty glob, a changed
    input, a run another process is writing): one clear line."""


_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """A value (an API key) that no stored or printed error may carry, in this process."""
    if len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `[redacted]`."""
    for s in _SECRETS:
        text = text.replace(s, "[redacted]")
    return text


def describe(e: BaseException) -> str:
    """One line for a user error; OS errors name their file (never a bare errno); no secret."""
    if isinstance(e, OSError) and (e.filename or e.strerror):
        where = f"{e.filename}: " if e.filename else ""
        return redact(f"{where}{e.strerror or type(e).__name__}")
    if isinstance(e, KeyError):
        return redact(f"missing key {e.args[0]!r}" if e.args else "missing key")
    return redact(str(e).splitlines()[0] if str(e) else type(e).__name__)


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors (bad paths, bad settings, unreadable files, models that cannot load) end with
    one clear line and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        from PIL import UnidentifiedImageError
        try:
            return fn(*a, **kw)
        except (InputError, OSError, ValueError, KeyError, UnidentifiedImageError) as e:
            raise click.ClickException(describe(e)) from None
    return wrapper
