"""The routes of a server (its handler specs) and the paths they claim.

One source of truth: a path is claimed exactly as long as a handler spec in ``handlers`` carries
its `WebSocket`, however ``handlers`` is changed. `Routes` is the registry half of
`~tornado_websockets.server.Server`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from tornado_websockets.exceptions import PathAlreadyRegistered

if TYPE_CHECKING:
    import tornado.web

    from tornado_websockets.websocket import WebSocket

__all__ = ["Routes", "check_handlers", "is_catch_all"]

logger = logging.getLogger(__name__)

#: Route patterns that match every path: kept after every other handler so they never hide one.
_CATCH_ALL_PATTERNS = frozenset({".*", "/.*", "(.*)", "/(.*)", ".*$", "^.*$", "/.*$", "^/.*$"})


def is_catch_all(spec: Any) -> bool:
    """Whether ``spec``'s pattern matches every path (the Django fallback, for example)."""
    pattern = spec[0] if isinstance(spec, (tuple, list)) and spec else getattr(spec, "regex", None)
    if pattern is not None and not isinstance(pattern, str):
        pattern = getattr(pattern, "pattern", None)
    return isinstance(pattern, str) and pattern in _CATCH_ALL_PATTERNS


def check_handlers(handlers: Any, argument: str) -> list[Any]:
    """``handlers`` as a list, or a TypeError that shows the expected shape."""
    if not isinstance(handlers, (list, tuple)):
        raise TypeError(
            f"{argument} should be a list or a tuple of handler specs such as "
            f"[('/path', HandlerClass)], not {type(handlers).__qualname__}."
        )
    return list(handlers)


class Routes:
    """Handler specs and the `WebSocket` paths they serve (see the module's docstring)."""

    _handlers: list[Any]
    _mounted: weakref.WeakValueDictionary[str, WebSocket]
    tornado_app: tornado.web.Application | None

    def _clear_routes(self) -> None:
        self._handlers = []
        #: WebSockets mounted by hand (``add_to_handlers=False``), held weakly: see `mount`.
        self._mounted = weakref.WeakValueDictionary()

    def _registrar(self) -> Callable[[Sequence[Any]], object] | None:
        """How `add_route` adds a spec instead of `add_handlers` (the default server's facade)."""
        return None

    @property
    def handlers(self) -> list[Any]:
        """The handler specs `start_app` builds the application from; the paths follow them.

        Assign it (``handlers = []``, as the original library's tests do) or change it in place:
        `websockets` is computed from it, so a path dropped from it is free again.
        """
        return self._handlers

    @handlers.setter
    def handlers(self, handlers: list[Any]) -> None:
        handlers = handlers if isinstance(handlers, list) else check_handlers(handlers, "handlers")
        _check_paths([], handlers)
        self._handlers = handlers

    @property
    def routes(self) -> list[Any]:
        """The route specs (Tornado's "handlers"), the name for them with one meaning: ``handlers``."""
        return self._handlers

    @routes.setter
    def routes(self, routes: list[Any]) -> None:
        self.handlers = routes

    @property
    def websockets(self) -> Mapping[str, WebSocket]:
        """Every `WebSocket` served here, by path: a read-only view computed from ``handlers``.

        A path is claimed exactly as long as a handler spec in ``handlers`` carries its
        `WebSocket`, however ``handlers`` is changed (``handlers = []`` frees every path). A
        `WebSocket` made with ``add_to_handlers=False`` and mounted by hand is listed too (it gets
        the backplane's deliveries) but claims nothing: a spec for its path takes precedence.
        """
        # items(), not dict(): a WebSocket collected meanwhile is skipped, not a KeyError.
        served: dict[str, WebSocket] = dict(self._mounted.items())
        claimed: set[str] = set()
        for spec in self.handlers:
            websocket = _spec_websocket(spec)
            if websocket is not None and websocket.path not in claimed:  # Tornado serves the first
                claimed.add(websocket.path)
                served[websocket.path] = websocket
        return MappingProxyType(served)

    @websockets.setter
    def websockets(self, websockets: Mapping[str, WebSocket]) -> None:
        """Serve exactly these: the specs of every other `WebSocket` go, the missing ones are added."""
        for path, websocket in websockets.items():
            if websocket.path != path:
                raise ValueError(f"{path!r} is served by {websocket!r}: key it by {websocket.path!r}.")
        kept = {id(websocket) for websocket in websockets.values()}
        handlers = []
        for spec in self.handlers:
            carried = _spec_websocket(spec)
            if carried is None or id(carried) in kept:
                handlers.append(spec)
        for path, mounted in list(self._mounted.items()):
            if id(mounted) not in kept:
                del self._mounted[path]
        self.handlers = handlers
        known = {id(_spec_websocket(spec)) for spec in handlers} | {id(w) for w in self._mounted.values()}
        self.add_handlers([w.handler_spec() for w in websockets.values() if id(w) not in known])

    def websocket_for(self, path: str) -> WebSocket | None:
        """The `WebSocket` that serves ``path`` here (see `websockets`), or None."""
        served = self.served(path)
        return served if served is not None else self._mounted.get(path)

    def add_handlers(self, handlers: Sequence[Any]) -> list[Any]:
        """Register handler specs; added to the running application at once if there is one.

        :raise PathAlreadyRegistered: a spec carries a `WebSocket` for a path that another one
            serves here already; nothing is added then.
        """
        new = check_handlers(handlers, "handlers")
        _check_paths(self.handlers, new)
        self.handlers.extend(new)
        if self.tornado_app is not None:
            # Application.add_handlers puts the new host rule before the initial one, so live
            # additions stay ahead of a catch-all fallback given to start_app.
            self.tornado_app.add_handlers(r".*", new)
        return self.handlers

    def add_route(self, spec: Any) -> None:
        """Add one `WebSocket`'s handler spec the way the seed documents it for its server.

        On the default server that is `TornadoWrapper.add_handlers` (installed with
        `route_default_through`), so that a user or a test wrapping it sees every registration;
        on any other server, `add_handlers`.
        """
        registrar = self._registrar()
        if registrar is not None:
            registrar([spec])
        else:
            self.add_handlers([spec])

    def make_way(self, websocket: WebSocket, replace: bool = False) -> None:
        """Check that ``websocket`` may serve its path here, before its spec is added.

        With ``replace``, the `WebSocket` serving the path loses its specs and its connections
        (closed with 1012), so that the new one both receives the connections and gets the
        backplane's deliveries.

        :raise PathAlreadyRegistered: another `WebSocket` serves the path and ``replace`` is False.
        """
        existing = self.served(websocket.path)
        if existing is None or existing is websocket:
            return
        if not replace:
            raise PathAlreadyRegistered(websocket.path)
        # Tornado routes by the first matching spec: take the old one out.
        self.handlers = [spec for spec in self.handlers if _spec_websocket(spec) is not existing]
        for handler in list(existing.handlers):
            handler.close(1012, "Service restart")
        logger.info("%r replaces %r", websocket, existing)

    def register_websocket(self, websocket: WebSocket, replace: bool = False) -> None:
        """Serve ``websocket`` here: add its handler spec (see `make_way` for ``replace``)."""
        self.make_way(websocket, replace)
        if self.served(websocket.path) is not websocket:
            self.add_handlers([websocket.handler_spec()])

    def mount(self, websocket: WebSocket) -> None:
        """Note a `WebSocket` of this server that the user mounts in an application of their own.

        It claims no path (a spec for its path takes precedence and raises nothing), but it is
        listed in `websockets` and gets the backplane's deliveries while it exists.
        """
        if self._mounted.get(websocket.path) is not websocket:
            self._mounted[websocket.path] = websocket

    def served(self, path: str) -> WebSocket | None:
        """The `WebSocket` a handler spec of ``handlers`` serves ``path`` with (the path's claim)."""
        for spec in self.handlers:
            websocket = _spec_websocket(spec)
            if websocket is not None and websocket.path == path:
                return websocket
        return None


def _spec_websocket(spec: Any) -> WebSocket | None:
    """The `WebSocket` a handler spec carries in its ``websocket`` keyword, if it has one."""
    if isinstance(spec, (tuple, list)) and len(spec) >= 3 and isinstance(spec[2], dict):
        websocket = spec[2].get("websocket")
    else:
        kwargs = getattr(spec, "kwargs", None)
        websocket = kwargs.get("websocket") if isinstance(kwargs, dict) else None
    # Duck-typed: this module cannot import websocket.py, which imports it (through the facade).
    return cast("WebSocket", websocket) if isinstance(getattr(websocket, "path", None), str) else None


def _check_paths(handlers: Sequence[Any], new: Sequence[Any]) -> None:
    """Raise `PathAlreadyRegistered` if a spec of ``new`` carries a `WebSocket` for a path that
    another `WebSocket` is served on by ``handlers`` or by an earlier spec of ``new``."""
    served: dict[str, Any] = {}
    for spec in handlers:
        websocket = _spec_websocket(spec)
        if websocket is not None:
            served.setdefault(websocket.path, websocket)
    for spec in new:
        websocket = _spec_websocket(spec)
        if websocket is None:
            continue
        if served.setdefault(websocket.path, websocket) is not websocket:
            raise PathAlreadyRegistered(websocket.path)
