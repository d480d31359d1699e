"""A chat in one file, with no Django: ``python example_project/standalone.py [port]``.

Open http://localhost:8000/ in two tabs and type. The page is served by a plain Tornado handler;
the WebSocket lives at ws://localhost:8000/ws/chat.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import tornado.web

from tornado_websockets import TornadoWrapper, WebSocket, WebSocketHandler

chat = WebSocket("/chat")


@chat.on
async def open(socket: WebSocketHandler) -> None:
    socket.emit("welcome", f"{len(chat.handlers)} connected")


@chat.on
async def message(socket: WebSocketHandler, data: dict[str, Any]) -> None:
    text = str(data.get("text", ""))[:500]
    chat.emit("message", {"text": text})


PAGE = """<!doctype html>
<meta charset="utf-8"><title>Chat</title>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<script>
const socket = new WebSocket(`ws://${location.host}/ws/chat`);
const log = (text) => { const li = document.createElement("li"); li.textContent = text;
                        document.getElementById("log").append(li); };
socket.onmessage = (message) => { const {event, data} = JSON.parse(message.data);
                                  log(event === "message" ? data.text : `[${event}] ${data.message}`); };
document.getElementById("form").onsubmit = (submit) => {
  submit.preventDefault();
  const input = document.getElementById("text");
  socket.send(JSON.stringify({event: "message", data: {text: input.value}}));
  input.value = "";
};
</script>
"""


class PageHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(PAGE)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    TornadoWrapper.run(port, [("/", PageHandler)])
