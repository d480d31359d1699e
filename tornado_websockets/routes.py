"""Route variables: ``/chat/<room>`` and ``/items/<int:id>`` turned into a Tornado URL pattern.

Pure: no Tornado, no Django. A path without variables is left exactly as given, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CONVERTERS", "Route"]

#: Converter name -> (regular expression of one value, function turning the matched text into the value).
CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?[0-9]+", int),
    "slug": (r"[-a-zA-Z0-9_]+", str),
    "uuid": (r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}", str),
    "path": (r".+", str),
}

_VARIABLE = re.compile(r"<(?:(?P<converter>[a-z]+):)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")


@dataclass(frozen=True, slots=True)
class Route:
    """A WebSocket path with its variables: the URL pattern for Tornado and how to convert the values."""

    path: str
    pattern: str
    converters: dict[str, Callable[[str], Any]]

    @classmethod
    def parse(cls, path: str) -> Route:
        """Parse ``path``; raise ValueError for an unknown converter or a repeated variable name."""
        if "<" not in path:
            return cls(path, path, {})
        pattern: list[str] = []
        converters: dict[str, Callable[[str], Any]] = {}
        position = 0
        for match in _VARIABLE.finditer(path):
            name, converter = match["name"], match["converter"] or "str"
            if converter not in CONVERTERS:
                known = ", ".join(sorted(CONVERTERS))
                raise ValueError(f"Unknown converter {converter!r} in {path!r}: use one of {known}.")
            if name in converters:
                raise ValueError(f"The variable {name!r} appears twice in {path!r}.")
            regex, convert = CONVERTERS[converter]
            pattern.append(re.escape(path[position : match.start()]))
            pattern.append(f"(?P<{name}>{regex})")
            converters[name] = convert
            position = match.end()
        pattern.append(re.escape(path[position:]))
        return cls(path, "".join(pattern), converters)

    @property
    def has_variables(self) -> bool:
        """True when the path declares at least one ``<variable>``."""
        return bool(self.converters)

    def convert(self, values: dict[str, str]) -> dict[str, Any]:
        """Turn the matched text of each variable into its value (``<int:id>`` gives an int)."""
        return {name: self.converters[name](text) for name, text in values.items() if name in self.converters}
