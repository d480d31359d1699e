"""Typed event payloads: a frame's data validated and converted from the event function's annotation.

``def join(socket, data: JoinRequest)`` with ``JoinRequest`` a dataclass, a ``TypedDict``, a
``msgspec.Struct`` or a pydantic model: the data is checked before the call and the function gets a
``JoinRequest``. msgspec (the ``typed`` extra) does the work when it is installed; without it the
standard library path below handles dataclasses and TypedDicts of the everyday types. A ``bytes``
field takes bytes (a MessagePack frame's) or a base64 string (a JSON client's, docs/protocol.rst). Unannotated
``data``, ``dict`` and ``Any`` are passed through untouched, at no cost.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from tornado_websockets.exceptions import PayloadError

__all__ = ["Converter", "converter_for", "payload_type", "resolved_hint"]

Converter = Callable[[dict[str, Any]], Any]

try:
    import msgspec
except ImportError:  # the `typed` extra is not installed: the standard-library path serves
    msgspec = None  # type: ignore[assignment]

_BYTES = (bytes, bytearray, memoryview)
_UNTYPED = (Any, dict, Mapping, typing.Dict, object)  # noqa: UP006 - the alias is still seen in user code


def resolved_hint(callback: Callable[..., Any], name: str) -> Any:
    """The annotation of ``callback``'s parameter ``name`` (or ``"return"``), resolved; None when absent.

    It is resolved alone, so that another parameter's annotation that cannot be (``socket:
    WebSocketHandler`` imported under ``TYPE_CHECKING``, with ``from __future__ import
    annotations``) does not hide it.

    :raise TypeError: the annotation names something that cannot be found from the function's module.
    """
    annotations = getattr(callback, "__annotations__", None)
    if not isinstance(annotations, Mapping) or name not in annotations:
        return None
    holder = types.SimpleNamespace(__annotations__={name: annotations[name]})
    module_globals = getattr(inspect.unwrap(callback), "__globals__", {})
    try:
        return typing.get_type_hints(holder, globalns=module_globals)[name]
    except Exception as error:
        where = getattr(callback, "__qualname__", repr(callback))
        raise TypeError(
            f"Cannot resolve the annotation of {name!r} of {where}: {error}. Define the type at module "
            "level, and import it outside `if TYPE_CHECKING:`."
        ) from error


def payload_type(callback: Callable[..., Any]) -> Any:
    """The annotation of ``callback``'s ``data`` parameter, or None when it asks for no validation.

    :raise TypeError: the annotation of ``data`` cannot be resolved: validation is never skipped
        silently.
    """
    annotation = resolved_hint(callback, "data")
    if annotation is None or annotation in _UNTYPED or typing.get_origin(annotation) in (dict, Mapping):
        return None
    return annotation


def reply_encoder(callback: Callable[..., Any], use_msgspec: bool | None = None) -> Converter | None:
    """A function checking a reply against ``callback``'s return annotation and turning it into
    plain data; None when the function declares no typed return (or one that cannot be resolved).

    ``-> Item`` (a dataclass, TypedDict, msgspec Struct or pydantic model, or a container of them)
    accepts an ``Item`` or anything with its fields (a dict, a Django model instance); a reply that
    does not fit raises `PayloadError` with the path ``reply...``.
    """
    try:
        annotation = resolved_hint(callback, "return")
    except TypeError:  # a return annotation is often for the type checker alone: not an error here
        return None
    if annotation in (None, type(None), *_UNTYPED) or typing.get_origin(annotation) in (dict, Mapping):
        return None
    if _is_pydantic_model(annotation):
        validate = _pydantic_converter(annotation, "reply")
        return lambda result: validate(result).model_dump(mode="json")
    if msgspec is not None if use_msgspec is None else use_msgspec:

        def encode(result: Any) -> Any:
            try:
                converted = msgspec.convert(result, type=annotation, from_attributes=True)
                return msgspec.to_builtins(converted, builtin_types=_BYTES)  # bytes stay bytes
            except msgspec.ValidationError as error:
                raise _from_msgspec(str(error), "reply") from None

        return encode
    try:
        _check_supported(annotation, "reply")
    except TypeError:
        return None
    return lambda result: (
        result if dataclasses.is_dataclass(result) else _convert(result, annotation, "reply")
    )


def converter_for(annotation: Any, use_msgspec: bool | None = None) -> Converter:
    """A function turning a frame's data into ``annotation``, raising `PayloadError` on bad data."""
    if _is_pydantic_model(annotation):
        return _pydantic_converter(annotation)
    if use_msgspec is None:
        use_msgspec = msgspec is not None
    if use_msgspec:
        return _msgspec_converter(annotation)
    _check_supported(annotation, "data")
    return lambda data: _convert(data, annotation, "data")


# msgspec ---------------------------------------------------------------------------------------

_MSGSPEC_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")


def _msgspec_converter(annotation: Any) -> Converter:
    def convert(data: dict[str, Any]) -> Any:
        try:
            return msgspec.convert(data, type=annotation)
        except msgspec.ValidationError as error:
            raise _from_msgspec(str(error)) from None

    return convert


def _from_msgspec(message: str, root: str = "data") -> PayloadError:
    """msgspec's ``Expected `int`, got `str` - at `$.age``` as path ``data.age`` and a lowercase reason."""
    reason, _, where = message.partition(" - at `")
    path = root + where.rstrip("`")[1:] if where else root
    missing = _MSGSPEC_MISSING.fullmatch(reason)
    if missing:
        return PayloadError(f"{path}.{missing['field']}", "required field missing")
    return PayloadError(path, reason.replace("`", "")[:1].lower() + reason.replace("`", "")[1:])


# pydantic --------------------------------------------------------------------------------------


def _is_pydantic_model(annotation: Any) -> bool:
    return (
        isinstance(annotation, type)
        and hasattr(annotation, "model_validate")
        and hasattr(annotation, "model_fields")
    )


def _pydantic_converter(model: Any, root: str = "data") -> Converter:
    import pydantic

    def convert(data: dict[str, Any]) -> Any:
        try:
            return model.model_validate(data, from_attributes=root == "reply")
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
            raise PayloadError(root + path, str(first["msg"]).lower()) from None

    return convert


# The standard-library path ---------------------------------------------------------------------

_JSON_NAMES = {
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    list: "array",
    dict: "object",
}


def _name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _expected(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or typing.is_typeddict(annotation)
    ):
        return "object"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_expected(arm) for arm in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(arm) for arm in typing.get_args(annotation))
    if origin is list:
        return "array"
    return getattr(annotation, "__name__", repr(annotation))


def _check_supported(annotation: Any, path: str) -> None:
    """Refuse at registration what the standard-library path cannot validate, naming the fix."""
    origin = typing.get_origin(annotation)
    if annotation in (Any, type(None), bool, int, float, str, bytes) or origin is typing.Literal:
        return
    if origin in (typing.Union, types.UnionType, list, dict):
        for argument in typing.get_args(annotation):
            _check_supported(argument, path)
        return
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or typing.is_typeddict(annotation)
    ):
        for name, hint in typing.get_type_hints(annotation).items():
            _check_supported(hint, f"{path}.{name}")
        return
    raise TypeError(
        f"Cannot validate {path} as {annotation!r} without msgspec: "
        "pip install 'django-tornado-websockets[typed]', or use dataclasses and TypedDicts of "
        "bool, int, float, str, list, dict, Literal and unions."
    )


def _convert(value: Any, annotation: Any, path: str) -> Any:
    if annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(annotation):
            try:
                return _convert(value, arm, path)
            except PayloadError:
                continue
        raise PayloadError(path, f"expected {_expected(annotation)}, got {_name(value)}")
    if origin is typing.Literal:
        if value in typing.get_args(annotation):
            return value
        raise PayloadError(path, f"expected {_expected(annotation)}, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is bytes:
        return _bytes(value, path)
    elif annotation in (bool, str) or (annotation is int and not isinstance(value, bool)):
        if isinstance(value, annotation):
            return value
    elif origin is list or annotation is list:
        if isinstance(value, list):
            (item,) = typing.get_args(annotation) or (Any,)
            return [_convert(element, item, f"{path}[{index}]") for index, element in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            _, item = typing.get_args(annotation)
            return {key: _convert(element, item, f"{path}.{key}") for key, element in value.items()}
    elif isinstance(value, dict) and isinstance(annotation, type):
        return _convert_object(value, annotation, path)
    raise PayloadError(path, f"expected {_expected(annotation)}, got {_name(value)}")


def _bytes(value: Any, path: str) -> bytes:
    """Bytes as a MessagePack client sends them, or as a JSON client does: a base64 string."""
    if isinstance(value, _BYTES):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise PayloadError(path, "expected bytes, got a str that is not base64") from None
    raise PayloadError(path, f"expected bytes, got {_name(value)}")


def _convert_object(value: dict[str, Any], annotation: type, path: str) -> Any:
    hints = typing.get_type_hints(annotation)
    if typing.is_typeddict(annotation):
        required = annotation.__required_keys__  # type: ignore[attr-defined]
    else:
        required = {
            field.name
            for field in dataclasses.fields(annotation)
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        }
    for name in sorted(required):
        if name not in value:
            raise PayloadError(f"{path}.{name}", "required field missing")
    converted = {
        name: _convert(value[name], hint, f"{path}.{name}") for name, hint in hints.items() if name in value
    }
    return converted if typing.is_typeddict(annotation) else annotation(**converted)
