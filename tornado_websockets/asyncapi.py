"""An AsyncAPI 3.0 document generated from what is registered: paths, events both ways, payload schemas.

From the server's point of view: events bound with ``@ws.on`` are ``receive`` operations (with a
``reply`` when the function declares a return type), events declared with ``ws.emits`` (or by a
module) are ``send`` operations, and so are the library's own (``warning``, ``error``, ``ack``;
``joined``/``left`` with presence events; ``stream``/``resync`` with recovery, see
`tornado_websockets.builtin_events`). Payload schemas come from annotations, descriptions from docstrings.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tornado_websockets import builtin_events, protocol
from tornado_websockets.routes import Route
from tornado_websockets.server import Server, default_server
from tornado_websockets.typed import resolved_hint

if TYPE_CHECKING:
    from tornado_websockets.websocket import WebSocket

__all__ = ["BINARY_CONTENT_TYPE", "BYTES_SCHEMA", "document", "markdown_inline"]

try:
    import msgspec
except ImportError:  # the `typed` extra is not installed: the standard-library path serves
    msgspec = None  # type: ignore[assignment]

_REF = "#/components/schemas/{name}"
_KEY = re.compile(r"[^A-Za-z0-9_-]+")
_VARIABLE = re.compile(r"<(?:[a-z]+:)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")
_UNTYPED_DATA: dict[str, Any] = {"type": "object"}
#: A ``bytes`` field: what msgspec declares, the base64 string a JSON client sends.
BYTES_SCHEMA: dict[str, Any] = {"type": "string", "contentEncoding": "base64"}
#: The content type of a message whose payload holds bytes: a MessagePack frame (docs/protocol.rst).
BINARY_CONTENT_TYPE = "application/vnd.msgpack"


def document(
    websockets: Iterable[WebSocket] | None = None,
    title: str = "WebSocket API",
    version: str = "1.0.0",
    description: str | None = None,
    server: Server | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``websockets`` (default: every documented `WebSocket` of
    ``server``, the default server)."""
    if websockets is None:
        served = (server if server is not None else default_server()).websockets
        websockets = [ws for ws in served.values() if ws.documented]
    schemas = _Schemas()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for ws in sorted(websockets, key=lambda ws: ws.path):
        channel_id = _key(_VARIABLE.sub(r"\g<name>", ws.path).strip("/")) or "root"
        messages: dict[str, Any] = {}
        for name, function in sorted(ws.events.items()):
            if name in ("open", "close"):
                continue
            key = _key(name)
            messages[key] = _message(name, schemas.of(function.payload), _docstring(function.callback))
            schemas.mark_binary(messages[key])
            operation: dict[str, Any] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{key}"}],
            }
            summary = _summary(function.callback)
            if summary:
                operation["summary"] = summary
            returns = _return_type(function.callback)
            if returns not in (None, type(None)):
                reply_key = f"{key}.reply"
                messages[_key(reply_key)] = schemas.mark_binary(_reply_message(name, schemas.of(returns)))
                operation["reply"] = {
                    "channel": {"$ref": f"#/channels/{channel_id}"},
                    "messages": [{"$ref": f"#/channels/{channel_id}/messages/{_key(reply_key)}"}],
                }
            operations[f"{channel_id}.receive.{key}"] = operation
        # The library's own events first, so that an application's declaration of one wins.
        outgoing = {**builtin_events.declared(ws), **ws.outgoing}
        for name, (payload, declared) in sorted(outgoing.items()):
            key = _key(f"emit.{name}")
            text = markdown_inline(declared) if declared else None
            if name == protocol.ACK_EVENT and name not in ws.outgoing:
                messages[key] = {**_reply_message(name, {}), "name": name, "description": text}
            else:
                messages[key] = schemas.mark_binary(_message(name, schemas.of(payload), text))
            operations[f"{channel_id}.send.{_key(name)}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{key}"}],
            }
        channels[channel_id] = _channel(ws, messages)
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "asyncapi": "3.0.0",
        "info": info,
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas.components},
    }


def _key(name: str) -> str:
    return _KEY.sub("_", name)


def _return_type(callback: Any) -> Any:
    """The declared return type, or None when there is none or it cannot be resolved."""
    try:
        return resolved_hint(callback, "return")
    except TypeError:
        return None


def _docstring(callback: Any) -> str | None:
    text = inspect.getdoc(callback)
    return markdown_inline(text) if text else None


# reST inline markup of docstrings, rewritten as the CommonMark AsyncAPI descriptions are read as.
_ROLE = re.compile(r":[\w:.-]+:`(?:[^`<]*?<(?P<target>[^`>]+)>|(?P<plain>[^`]+))`")
_LITERAL = re.compile(r"``(?P<text>[^`]+?)``")
_INTERPRETED = re.compile(r"(?<![`\w])`(?P<text>[^`]+?)`_{0,2}(?![`\w])")


def markdown_inline(text: str) -> str:
    """``code`` and `roles` of reST as CommonMark code spans (``**strong**`` and ``*em*`` are the same)."""

    def role(match: re.Match[str]) -> str:
        target = (match["target"] or match["plain"]).strip()
        return "`" + target.lstrip("~").rsplit(".", 1)[-1] if target.startswith("~") else "`" + target

    text = _ROLE.sub(lambda match: role(match) + "`", text)
    text = _LITERAL.sub(lambda match: "`" + match["text"] + "`", text)
    return _INTERPRETED.sub(lambda match: "`" + match["text"].lstrip("~") + "`", text)


def _summary(callback: Any) -> str | None:
    text = _docstring(callback)
    return text.splitlines()[0] if text else None


def _channel(ws: WebSocket, messages: dict[str, Any]) -> dict[str, Any]:
    route = Route.parse(ws.path)
    channel: dict[str, Any] = {"address": "/ws" + _VARIABLE.sub(r"{\g<name>}", ws.path), "messages": messages}
    if route.has_variables:
        channel["parameters"] = {
            name: {"description": f"Route variable {name}."} for name in route.converters
        }
    return channel


def _message(event: str, data: dict[str, Any], description: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": event,
        "payload": {
            "type": "object",
            "required": ["event"],
            "properties": {
                "event": {"const": event},
                "data": data,
                "id": {"type": ["string", "integer"], "description": "Set to get an ack reply."},
            },
        },
    }
    if description:
        message["description"] = description
    return message


def _reply_message(event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"{event} reply",
        "payload": {
            "type": "object",
            "required": ["event", "id"],
            "properties": {
                "event": {"const": protocol.ACK_EVENT},
                "id": {"type": ["string", "integer"]},
                "data": data,
                "error": {"type": "object", "properties": {"message": {"type": "string"}}},
            },
        },
    }


class _Schemas:
    """JSON Schemas of annotations, with named types gathered under ``components.schemas``."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, annotation: Any) -> dict[str, Any]:
        if annotation is None:
            return dict(_UNTYPED_DATA)
        if hasattr(annotation, "model_json_schema"):  # a pydantic model
            schema = annotation.model_json_schema(ref_template=_REF)
            self.components.update(schema.pop("$defs", {}))
            self.components[annotation.__name__] = schema
            return {"$ref": _REF.format(name=annotation.__name__)}
        if msgspec is not None:
            (schema,), components = msgspec.json.schema_components([annotation], ref_template=_REF)
            self.components.update(components)
            return dict(schema)
        return self._stdlib(annotation)

    def mark_binary(self, message: dict[str, Any]) -> dict[str, Any]:
        """Declare MessagePack the content type of a message whose payload holds bytes."""
        if self._holds_bytes(message["payload"], set()):
            message["contentType"] = BINARY_CONTENT_TYPE
            message["x-json-bytes"] = "base64 strings, for a client without MessagePack (docs/protocol.rst)"
        return message

    def _holds_bytes(self, schema: Any, seen: set[str]) -> bool:
        if isinstance(schema, list):
            return any(self._holds_bytes(item, seen) for item in schema)
        if not isinstance(schema, dict):
            return False
        if schema.get("type") == "string" and schema.get("contentEncoding") == "base64":
            return True
        reference = schema.get("$ref")
        if isinstance(reference, str) and reference.startswith(_REF.format(name="")):
            name = reference.removeprefix(_REF.format(name=""))
            if name not in seen:
                seen.add(name)
                if self._holds_bytes(self.components.get(name), seen):
                    return True
        return any(self._holds_bytes(value, seen) for key, value in schema.items() if key != "$ref")

    def _stdlib(self, annotation: Any) -> dict[str, Any]:
        simple = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
        if annotation in simple:
            return {"type": simple[annotation]}
        if annotation is bytes:
            return dict(BYTES_SCHEMA)
        if annotation is Any:
            return {}
        origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self._stdlib(arm) for arm in arguments]}
        if origin is typing.Literal:
            return {"enum": list(arguments)}
        if origin is list or annotation is list:
            return {"type": "array", "items": self._stdlib(arguments[0]) if arguments else {}}
        if origin is dict or annotation is dict:
            return {"type": "object", "additionalProperties": self._stdlib(arguments[1]) if arguments else {}}
        if isinstance(annotation, type) and (
            dataclasses.is_dataclass(annotation) or typing.is_typeddict(annotation)
        ):
            return self._object(annotation)
        return {}

    def _object(self, annotation: type) -> dict[str, Any]:
        name = annotation.__name__
        if name not in self.components:
            self.components[name] = {}  # reserve the name first: a type may refer to itself
            hints = typing.get_type_hints(annotation)
            if typing.is_typeddict(annotation):
                required = sorted(annotation.__required_keys__)  # type: ignore[attr-defined]
            else:
                required = [
                    f.name
                    for f in dataclasses.fields(annotation)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                ]
            self.components[name] = {
                "title": name,
                "type": "object",
                "properties": {field: self._stdlib(hint) for field, hint in hints.items()},
                "required": required,
            }
        return {"$ref": _REF.format(name=name)}
