"""One line for a name a config does not know: the path, a close match and the known names."""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping, Sequence, Type


def unknown(path: str, name: Any, known: Sequence[str], what: str = "key") -> str:
    """``path: unknown key (did you mean x?; known: a, b)`` for ``name`` at ``path``."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?; " if close else ""
    return f"{path}: unknown {what} ({hint}known: {', '.join(known)})"


def check_keys(raw: Mapping, known: Iterable[str], where: str, error: Type[Exception]) -> None:
    """Raise ``error`` naming the first key of ``raw`` not in ``known`` (``where`` "" = top level)."""
    names = sorted(known)
    for key in raw:
        if key not in names:
            raise error(unknown(f"{where}.{key}" if where else str(key), key, names))
