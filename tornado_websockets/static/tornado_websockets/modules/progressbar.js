// The ProgressBar ships inside client.js as TornadoWebSocket.ProgressBar. This file keeps pages that load
// modules/progressbar.js after client.js (as the original library's did) working, and gives AMD and CommonJS
// a module of their own: its value is TornadoWebSocket.ProgressBar.
(function (root, factory) {
  if (typeof define === "function" && define.amd) {
    define(["../client"], factory);
  } else if (typeof module === "object" && module.exports) {
    module.exports = factory(require("../client.js"));
  } else {
    factory(root.TornadoWebSocket);
  }
})(typeof globalThis !== "undefined" ? globalThis : this, function (TornadoWebSocket) {
  "use strict";
  if (!TornadoWebSocket || typeof TornadoWebSocket.ProgressBar !== "function") {
    throw new Error("modules/progressbar.js needs tornado_websockets/client.js: load client.js first.");
  }
  return TornadoWebSocket.ProgressBar;
});
