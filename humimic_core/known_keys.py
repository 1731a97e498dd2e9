"""Config errors in one line: a name a config does not know (the path, a close match and the known
names) and a YAML parse error."""
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


def yaml_problem(exc: Exception) -> str:
    """A YAML parse error in one line: ``line 3, column 7: <problem>``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem
