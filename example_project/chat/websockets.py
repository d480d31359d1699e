"""The chat page's WebSocket: signed-in users only, and the name shown is the server's to say.

Everyone is in the room ``lobby``: with ``presence_events=True`` its members get ``joined`` and
``left`` (once per user, not per tab), and a page that connects (or comes back) gets ``online``,
who is there now. With ``recover=60`` a page that loses its connection gets the messages it
missed when it comes back, for a minute (the JavaScript client asks by itself).

Messages go to everyone, so one client could make the server send every other client as many
frames as it sends: the path's rate limit (5 events a second, 10 more at once) warns a client that
goes faster and closes one that keeps on (1008); ``manage.py check --deploy`` warns about a path
that emits to everyone without one.

``socket.user`` is the Django user of the page's session cookie, loaded before the guard runs, so
a client can neither chat anonymously nor speak under someone else's name. The payloads are typed
(msgspec, the ``typed`` extra, checks the bounds): a message that is not 1 to 500 characters of
text never reaches `message`, and its sender gets a ``warning`` naming the field. The event
explorer (``/ws-api/explorer/``) shows these types.
"""

from collections.abc import Hashable
from typing import Annotated, TypedDict

import msgspec

from tornado_websockets import Limits, WebSocket, WebSocketHandler

chat = WebSocket("/chat", recover=60, presence_events=True, limits=Limits(max_rate=5, burst=10))

#: The room every chat connection is in, for presence.
LOBBY = "lobby"

MAX_LENGTH = 500

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LENGTH, description="The text, as typed.")]


class Say(TypedDict):
    """What a client sends: only the text, the server knows who says it."""

    message: Text


class Line(TypedDict):
    """A message as everyone on the chat receives it."""

    username: str
    message: str


class OnlineUser(TypedDict):
    """A signed-in user with at least one chat page open."""

    user: int
    name: str


class Online(TypedDict):
    """Who is on the chat now."""

    users: list[OnlineUser]


chat.emits("message", Line, "A message posted by a signed-in user, sent to everyone on the chat.")
chat.emits("online", Online, "Sent to a page when it connects (or comes back): who is on the chat now.")


@chat.guard
async def signed_in(socket: WebSocketHandler) -> bool:
    """Refuse the upgrade (403) without a logged-in user."""
    return bool(socket.user.is_authenticated)


@chat.on
async def message(socket: WebSocketHandler, data: Say) -> None:
    """Post a message: everyone on the chat, the sender included, receives it as ``message``.

    Leading and trailing spaces are dropped; a message of spaces only is ignored.
    """
    text = data["message"].strip()
    if text:
        chat.emit("message", {"username": socket.user.get_username(), "message": text})


@chat.on(name="open")
async def enter(socket: WebSocketHandler) -> None:
    """Join the lobby (the others get ``joined``), then tell this page who is online."""
    socket.join(LOBBY)
    present = await chat.presence(LOBBY)
    names: dict[Hashable, str] = {}
    for member in present.members:
        if member.user is not None:
            names[member.user] = member.name or str(member.user)
    socket.emit("online", {"users": [{"user": user, "name": name} for user, name in names.items()]})
