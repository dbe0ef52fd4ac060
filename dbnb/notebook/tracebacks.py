"""dbnb errors in IPython, compactly: the user's own frames and the message, the rest one %tb away.

``%load_ext dbnb`` registers :func:`show_compact` through IPython's ``set_custom_exc``. A
:class:`~dbnb.DbnbError` that reaches the top of a cell then shows the frames of the notebook
(and of the user's own modules), the error class and its message with PostgreSQL's diagnostics,
without the frames of dbnb, SQLAlchemy, the driver or the standard library, nor the chained
driver error. The whole chain stays one ``%tb`` away (``sys.last_value`` holds the error, as
after any failed cell); ``%xmode Verbose`` shows it in full every time. Plain Python (scripts,
pytest) is not touched: their tracebacks stay ordinary.
"""

from __future__ import annotations

import linecache
import sysconfig
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from dbnb.errors import DbnbError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["compact_traceback", "install", "show_compact"]

_RED, _GREEN, _CYAN, _DIM, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[2m", "\x1b[0m"
_RULE = "-" * 75
_FOOTER = "(dbnb, SQLAlchemy and driver frames hidden: %tb shows the whole chain)"


def install(shell: InteractiveShell) -> None:
    """Show DbnbErrors compactly in ``shell`` (what ``%load_ext dbnb`` calls)."""
    shell.set_custom_exc((DbnbError,), show_compact)  # type: ignore[no-untyped-call]


def show_compact(
    shell: InteractiveShell,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> list[str]:
    """IPython's custom-exception handler: display the compact traceback, return its lines."""
    # As showtraceback() does: %tb, %debug and sys.last_value find this error and its chain.
    shell._get_exc_info((etype, value, tb))  # type: ignore[no-untyped-call]
    if shell.InteractiveTB.mode == "Verbose":
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    else:
        stb = compact_traceback(value, tb, shell)
    shell._showtraceback(etype, value, stb)
    return stb


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(str(Path(__file__).resolve().parents[1]))  # dbnb itself, installed or editable
    return tuple(sorted(str(Path(r).resolve()) + "/" for r in roots))


_LIBRARIES = _library_roots()


def _is_users(filename: str, shell: Any) -> bool:
    if shell is not None and shell.compile.format_code_name(filename) is not None:
        return True  # a notebook cell
    if filename.startswith("<"):
        return False  # frozen modules, <string> from exec
    return not str(Path(filename).resolve()).startswith(_LIBRARIES)


def _frame_lines(tb: TracebackType | None, shell: Any) -> list[str]:
    lines: list[str] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        filename, number = code.co_filename, tb.tb_lineno
        if _is_users(filename, shell):
            label = shell.compile.format_code_name(filename) if shell is not None else None
            where = f"{label[0]} {label[1]}" if label else f"File {filename}"
            suffix = "" if code.co_name == "<module>" else f", in {code.co_name}"
            lines.append(f"{_CYAN}{where}, line {number}{_RESET}{suffix}")
            source = linecache.getline(filename, number, tb.tb_frame.f_globals).strip()
            if source:
                lines.append(f"{_GREEN}----> {number}{_RESET} {source}")
        tb = tb.tb_next
    return lines


def compact_traceback(
    value: BaseException, tb: TracebackType | None, shell: Any = None
) -> list[str]:
    """The lines of a compact traceback: the user's frames, then the error and its message."""
    name = type(value).__name__
    # Not "Traceback": this is the error and where your code raised it, not the whole story.
    where = "in your code (most recent call last)"
    head = [f"{_RED}{_RULE}{_RESET}", f"{_RED}{name:<42}{_RESET}{where}"]
    frames = _frame_lines(tb, shell)
    message = str(value).rstrip() or name
    body = f"{_RED}{name}{_RESET}: {message}"
    return [*head, *frames, "", body, f"{_DIM}{_FOOTER}{_RESET}"]
