// TypeScript declarations of client.mjs, the ES module build: the same API as client.js (client.d.ts).

import TornadoWebSocket = require("./client.js");

export default TornadoWebSocket;
export { TornadoWebSocket };
export import Module = TornadoWebSocket.Module;
export import ProgressBar = TornadoWebSocket.ProgressBar;
