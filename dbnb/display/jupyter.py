"""Where output goes: a Jupyter kernel (rich display) or a terminal (stderr).

The one place that asks IPython whether a notebook front end is listening, and the one way
dbnb tells a person something that is not an error (:func:`notice`): in a notebook a discreet
normal output, never the stderr band that front ends colour like an error.
"""

from __future__ import annotations

import html
import sys

__all__ = ["in_notebook", "notice"]

_NOTICE_STYLE = "font-size:.85em;opacity:.7;text-align:left"


def in_notebook() -> bool:
    """Say whether this code runs in a Jupyter kernel (JupyterLab, VS Code, nbclient)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def notice(text: str) -> None:
    """Tell the person ``text``: a small grey output in a notebook, a line on stderr elsewhere."""
    if not in_notebook():
        print(text, file=sys.stderr)
        return
    from IPython.display import display

    bundle = {
        "text/plain": text,
        "text/html": f"<div class='dbnb-notice' style='{_NOTICE_STYLE}'>{html.escape(text)}</div>",
    }
    display(bundle, raw=True)  # type: ignore[no-untyped-call]
