/**
 * django-tornado-websockets JavaScript client: client.mjs (ES module) and client.js (classic script).
 *
 *   import TornadoWebSocket from "/static/tornado_websockets/client.mjs";
 *   const ws = new TornadoWebSocket("/echo");            // ws(s)://<page host>:<page port>/ws/echo
 *   ws.on("echo", (data) => console.log(data.message));
 *   ws.emit("echo", {message: "hi"});                     // queued until the socket opens
 *
 * Frames are JSON text, {"event": "...", "data": {...}}, in both directions. Bytes (ArrayBuffer, typed array,
 * DataView or Blob) may sit anywhere in emitted data: with {binary: true} the client asks for the
 * "tornado-websockets.msgpack" subprotocol and such a frame is a MessagePack binary message, bytes from the
 * server arriving as Uint8Array (docs/protocol.rst); without it, bytes travel as base64 strings both ways. The connection comes back
 * by itself (exponential backoff with jitter) until close() is called or the server closes it for good
 * (close codes 4000-4099 and 1008: the "ended" event). A connection that stays silent is probed and, when
 * nothing answers, replaced (the liveness check); a jump in a stream's numbers is recovered by reconnecting.
 *
 * This file is the source: `make js` generates client.js (UMD: global, AMD, CommonJS) from it.
 */

/** Events raised by the connection itself rather than by the server. */
const RESERVED_EVENTS = Object.freeze(["open", "close", "error", "reconnecting", "ended", "unreachable", "gap"]);

/**
 * The local name of the server's "error" frame (an event function failed). "error" itself keeps the meaning
 * it had in the original client (0.2): the socket's own error `Event`.
 */
const SERVER_ERROR_EVENT = "server_error";

/** The liveness probe and its answer; a server that does not know "ping" answers with a warning instead. */
const PING_FRAME = '{"event":"ping","data":{}}';
const PONG_EVENT = "pong";

/** Close codes after which the client does not reconnect: the server closed the connection for good. */
function isFinalClose(code) {
  return (code >= 4000 && code < 4100) || code === 1008;
}

/**
 * Close codes after which the client reconnects at once, without a backoff: the server restarts (1012, as
 * in a DEBUG autoreload) or renewed the session (4100, after your own password change: the new cookie is set).
 */
function isReconnectNow(code) {
  return code === 1012 || code === 4100;
}

/** Milliseconds before the first retry, the ceiling, the growth factor, and the random share. */
// The backoff starts over only once a connection has stayed open `stable` milliseconds: a server
// that accepts then drops every socket (a deploy, an overload) is not hammered at `initial` pace.
const DEFAULT_RECONNECT = Object.freeze({initial: 500, max: 30000, factor: 2, jitter: 0.5, stable: 5000});

/** How many frames wait for the socket to open before the oldest is dropped. */
const DEFAULT_OUTBOX = 100;

/** Milliseconds request() waits for the server's reply. */
const DEFAULT_REQUEST_TIMEOUT = 10000;

/** Consecutive attempts that never opened before "unreachable" is emitted. */
const DEFAULT_REFUSED_AFTER = 3;

/**
 * Milliseconds of silence from the server before the client probes it, and how long it waits for an answer.
 * The server's own WebSocket pings are answered by the browser but never seen by the page, so the client
 * needs frames of its own to tell a quiet server from a connection that silently died (a half-open TCP).
 */
const DEFAULT_LIVENESS = Object.freeze({idle: 20000, timeout: 10000});

/** Characters of the encoded ?recover= value, at most: nginx's request line limit is 8 KB by default. */
const MAX_RECOVER_LENGTH = 4096;

const OPEN = 1;
const CLOSING = 2;

function pageLocation() {
  // A page opened from file:// has no host to connect back to.
  return typeof location !== "undefined" && location.host ? location : null;
}

function checkEvent(event) {
  if (typeof event !== "string" || event === "") {
    throw new TypeError(`TornadoWebSocket: an event name should be a non-empty string, not ${String(event)}.`);
  }
}

function checkCallback(callback) {
  if (typeof callback !== "function") {
    throw new TypeError(`TornadoWebSocket: a listener should be a function, not ${typeof callback}.`);
  }
}

/** The emit rule shared with the server: no data is {}, data that is not an object is {message: data}. */
function normalizeData(data) {
  if (data === undefined || data === null) {
    return {};
  }
  if (typeof data !== "object" || Array.isArray(data)) {
    return {message: data};
  }
  return data;
}

// Binary payloads: MessagePack frames (docs/protocol.rst) --------------------------------------------------

/** The subprotocol that lets both sides send a frame holding bytes as one MessagePack binary message. */
const MSGPACK_PROTOCOL = "tornado-websockets.msgpack";

/** Whether a value is bytes to the protocol: an ArrayBuffer, a typed array or a DataView (Blobs are read first). */
function isBytes(value) {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

function isBlob(value) {
  return typeof Blob === "function" && value instanceof Blob;
}

/** The bytes of an ArrayBuffer, typed array or DataView, as a Uint8Array over the same memory. */
function bytesOf(value) {
  return value instanceof ArrayBuffer
    ? new Uint8Array(value)
    : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** Whether `value` holds bytes (or a Blob) anywhere: test(leaf) on every ArrayBuffer, view or Blob. */
function holds(value, test, depth = 0) {
  if (value === null || typeof value !== "object" || depth > 64) {
    return false;
  }
  if (isBytes(value) || isBlob(value)) {
    return test(value);
  }
  const items = Array.isArray(value) ? value : Object.values(value);
  return items.some((item) => holds(item, test, depth + 1));
}

/** `value` with every Blob replaced by its ArrayBuffer (read asynchronously). */
async function readBlobs(value) {
  if (isBlob(value)) {
    return value.arrayBuffer();
  }
  if (value === null || typeof value !== "object" || isBytes(value)) {
    return value;
  }
  if (Array.isArray(value)) {
    return Promise.all(value.map(readBlobs));
  }
  const entries = await Promise.all(Object.entries(value).map(async ([key, item]) => [key, await readBlobs(item)]));
  return Object.fromEntries(entries);
}

/** Bytes as the standard base64 string with padding: how they travel to a server without MessagePack. */
function base64Of(value) {
  const bytes = bytesOf(value);
  let binary = "";
  for (let start = 0; start < bytes.length; start += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(start, start + 0x8000));
  }
  return btoa(binary);
}

/** JSON text of a payload, bytes as base64 strings (the documented rule without MessagePack). */
function jsonWithBase64(payload) {
  return JSON.stringify(payload, function (key, value) {
    const raw = this[key]; // before toJSON: a DataView or typed array is still itself here
    return isBytes(raw) ? base64Of(raw) : value;
  });
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", {fatal: true});

/**
 * A MessagePack encoder for frames, written to the specification (https://github.com/msgpack/msgpack): nil,
 * booleans, numbers (integers as int, others as float 64), bigint (int 64), strings, bytes (bin), arrays and
 * maps with string keys. As JSON.stringify does: toJSON() is used (a Date becomes its ISO string), undefined
 * and functions are left out of maps and are nil in arrays.
 */
class MessagePackEncoder {
  #buffer = new Uint8Array(256);
  #view = new DataView(this.#buffer.buffer);
  #length = 0;

  encode(value) {
    this.#length = 0;
    this.#value(value, 0);
    return this.#buffer.slice(0, this.#length);
  }

  #reserve(count) {
    if (this.#length + count > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(this.#buffer.length * 2, this.#length + count));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
      this.#view = new DataView(grown.buffer);
    }
  }

  #byte(value) {
    this.#reserve(1);
    this.#buffer[this.#length++] = value;
  }

  #head(code, size, bytes) {
    this.#reserve(1 + bytes);
    this.#buffer[this.#length++] = code;
    if (bytes === 1) this.#view.setUint8(this.#length, size);
    else if (bytes === 2) this.#view.setUint16(this.#length, size);
    else if (bytes === 4) this.#view.setUint32(this.#length, size);
    this.#length += bytes;
  }

  #raw(bytes) {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  #value(value, depth) {
    if (depth > 512) {
      throw new TypeError("TornadoWebSocket: the data is nested too deeply to be sent.");
    }
    if (value === null || value === undefined || typeof value === "function" || typeof value === "symbol") {
      this.#byte(0xc0);
    } else if (value === false || value === true) {
      this.#byte(value ? 0xc3 : 0xc2);
    } else if (typeof value === "number") {
      this.#number(value);
    } else if (typeof value === "bigint") {
      this.#reserve(9);
      this.#buffer[this.#length++] = value < 0n ? 0xd3 : 0xcf;
      if (value < 0n) this.#view.setBigInt64(this.#length, value);
      else this.#view.setBigUint64(this.#length, value);
      this.#length += 8;
    } else if (typeof value === "string") {
      const bytes = textEncoder.encode(value);
      const size = bytes.length;
      if (size < 32) this.#byte(0xa0 | size);
      else if (size < 0x100) this.#head(0xd9, size, 1);
      else if (size < 0x10000) this.#head(0xda, size, 2);
      else this.#head(0xdb, size, 4);
      this.#raw(bytes);
    } else if (isBytes(value)) {
      const bytes = bytesOf(value);
      const size = bytes.length;
      if (size < 0x100) this.#head(0xc4, size, 1);
      else if (size < 0x10000) this.#head(0xc5, size, 2);
      else this.#head(0xc6, size, 4);
      this.#raw(bytes);
    } else if (typeof value.toJSON === "function") {
      this.#value(value.toJSON(), depth + 1);
    } else if (Array.isArray(value)) {
      this.#count(value.length, 0x90, 0xdc);
      for (const item of value) this.#value(item, depth + 1);
    } else {
      const entries = Object.entries(value).filter(([, item]) => item !== undefined && typeof item !== "function");
      this.#count(entries.length, 0x80, 0xde);
      for (const [key, item] of entries) {
        this.#value(key, depth + 1);
        this.#value(item, depth + 1);
      }
    }
  }

  #count(size, fixed, code16) {
    if (size < 16) this.#byte(fixed | size);
    else if (size < 0x10000) this.#head(code16, size, 2);
    else this.#head(code16 + 1, size, 4);
  }

  #number(value) {
    if (Number.isSafeInteger(value)) {
      if (value >= 0 && value < 0x80) return this.#byte(value);
      if (value < 0 && value >= -32) return this.#byte(value & 0xff);
      if (value >= 0 && value <= 0xffffffff) return this.#head(0xce, value, 4);
      if (value < 0 && value >= -0x80000000) {
        this.#head(0xd2, 0, 4);
        return this.#view.setInt32(this.#length - 4, value);
      }
      this.#reserve(9);
      this.#buffer[this.#length++] = value < 0 ? 0xd3 : 0xcf;
      if (value < 0) this.#view.setBigInt64(this.#length, BigInt(value));
      else this.#view.setBigUint64(this.#length, BigInt(value));
      this.#length += 8;
      return;
    }
    if (!Number.isFinite(value)) {
      return this.#byte(0xc0); // NaN and infinities are null, as in JSON
    }
    this.#reserve(9);
    this.#buffer[this.#length++] = 0xcb;
    this.#view.setFloat64(this.#length, value);
    this.#length += 8;
  }
}

/**
 * Decode one MessagePack value (the whole message, nothing after it). bin arrives as a Uint8Array of its own;
 * 64-bit integers as numbers (exact below 2^53); ext types are refused. Throws a TypeError on anything else.
 */
function decodeMessagePack(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (count) => {
    if (at + count > bytes.length) throw new TypeError("truncated MessagePack");
    const start = at;
    at += count;
    return start;
  };
  const text = (size) => textDecoder.decode(bytes.subarray(need(size), at));
  const bin = (size) => bytes.slice(need(size), at);
  const list = (size, depth) => Array.from({length: size}, () => value(depth + 1));
  const map = (size, depth) => {
    const result = {};
    for (let i = 0; i < size; i++) {
      const key = value(depth + 1);
      if (typeof key !== "string") throw new TypeError("a MessagePack map key that is not a string");
      Object.defineProperty(result, key, {value: value(depth + 1), enumerable: true, writable: true, configurable: true});
    }
    return result;
  };
  const value = (depth) => {
    if (depth > 512) throw new TypeError("MessagePack nested too deeply");
    const code = bytes[need(1)];
    if (code < 0x80) return code;
    if (code < 0x90) return map(code & 0x0f, depth);
    if (code < 0xa0) return list(code & 0x0f, depth);
    if (code < 0xc0) return text(code & 0x1f);
    if (code >= 0xe0) return code - 0x100;
    switch (code) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(view.getUint8(need(1)));
      case 0xc5: return bin(view.getUint16(need(2)));
      case 0xc6: return bin(view.getUint32(need(4)));
      case 0xca: return view.getFloat32(need(4));
      case 0xcb: return view.getFloat64(need(8));
      case 0xcc: return view.getUint8(need(1));
      case 0xcd: return view.getUint16(need(2));
      case 0xce: return view.getUint32(need(4));
      case 0xcf: return Number(view.getBigUint64(need(8)));
      case 0xd0: return view.getInt8(need(1));
      case 0xd1: return view.getInt16(need(2));
      case 0xd2: return view.getInt32(need(4));
      case 0xd3: return Number(view.getBigInt64(need(8)));
      case 0xd9: return text(view.getUint8(need(1)));
      case 0xda: return text(view.getUint16(need(2)));
      case 0xdb: return text(view.getUint32(need(4)));
      case 0xdc: return list(view.getUint16(need(2)), depth);
      case 0xdd: return list(view.getUint32(need(4)), depth);
      case 0xde: return map(view.getUint16(need(2)), depth);
      case 0xdf: return map(view.getUint32(need(4)), depth);
      default: throw new TypeError(`MessagePack type 0x${code.toString(16)} is not accepted (ext, or never used)`);
    }
  };
  const result = value(0);
  if (at !== bytes.length) throw new TypeError("trailing bytes after the MessagePack value");
  return result;
}

function reconnectOptions(value) {
  if (value === false) {
    return null;
  }
  if (value === undefined || value === true) {
    return {...DEFAULT_RECONNECT};
  }
  if (typeof value !== "object" || value === null) {
    throw new TypeError("TornadoWebSocket: reconnect should be false, true or {initial, max, factor, jitter, stable}.");
  }
  const options = {...DEFAULT_RECONNECT, ...value};
  const {initial, max, factor, jitter, stable} = options;
  if (!(initial >= 0 && max >= initial && factor >= 1 && jitter >= 0 && jitter <= 1 && stable >= 0)) {
    throw new RangeError(
      "TornadoWebSocket: reconnect needs 0 <= initial <= max (milliseconds), factor >= 1, 0 <= jitter <= 1 " +
        "and stable >= 0 (milliseconds).",
    );
  }
  return options;
}

function livenessOptions(value) {
  if (value === false) {
    return null;
  }
  if (value === undefined || value === true) {
    return {...DEFAULT_LIVENESS};
  }
  if (typeof value !== "object" || value === null) {
    throw new TypeError("TornadoWebSocket: liveness should be false, true or {idle, timeout} (milliseconds).");
  }
  const options = {...DEFAULT_LIVENESS, ...value};
  if (!(options.idle > 0 && options.timeout > 0)) {
    throw new RangeError("TornadoWebSocket: liveness needs idle > 0 and timeout > 0 (milliseconds).");
  }
  return options;
}

function refusedAfterCount(value) {
  if (value === undefined) {
    return DEFAULT_REFUSED_AFTER;
  }
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `TornadoWebSocket: refusedAfter should be a whole number of attempts (1 or more), not ${value}.`,
    );
  }
  return value;
}

/** A close event of the client's own making, for a socket it gave up on (a silent server, a gap). */
function abandonedEvent(reason) {
  const init = {code: 1006, reason, wasClean: false};
  return typeof CloseEvent === "function" ? new CloseEvent("close", init) : {type: "close", ...init};
}

function outboxSize(value) {
  if (value === undefined) {
    return DEFAULT_OUTBOX;
  }
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`TornadoWebSocket: outbox should be a whole number of frames (0 or more), not ${value}.`);
  }
  return value;
}

/** Report a listener's exception as uncaught (window "error" event, console) without stopping the others. */
function report(error) {
  if (typeof globalThis.reportError === "function") {
    globalThis.reportError(error);
  } else {
    console.error(error);
  }
}

/**
 * A connection to one WebSocket path of a django-tornado-websockets server.
 *
 * Options: host, port and secure (default: the page's own host, port and scheme), auto_connect
 * (default true), reconnect (false, or {initial, max, factor, jitter, stable} in milliseconds), outbox (how many
 * emits wait for the socket to open; default 100), refusedAfter (attempts that never open before "unreachable";
 * default 3), liveness (false, or {idle, timeout} in milliseconds), WebSocket (a constructor, for runtimes
 * without one).
 */
class TornadoWebSocket {
  #listeners = new Map();
  #outbox = [];
  #requests = new Map();
  #lastId = 0;
  #timer = null;
  #stableTimer = null;
  #attempts = 0;
  #failures = 0;
  #stopped = false;
  #epoch = null;
  // stream name -> {seq, token}, least recently moved first: the oldest are dropped from a long ?recover=.
  #positions = new Map();
  // Streams whose position did not fit in ?recover=: their next position from the server starts a "resync".
  #unrecovered = new Set();
  #lastFrame = 0;
  #livenessTimer = null;
  #probing = false;
  #pings = 0;
  #reading = null; // frames waiting for a Blob to be read (see #send)
  #encoder = new MessagePackEncoder();

  constructor(path, options = {}) {
    if (typeof path !== "string") {
      throw new TypeError(`TornadoWebSocket: path should be a string such as "/chat", not ${typeof path}.`);
    }
    if (options === null || typeof options !== "object") {
      throw new TypeError("TornadoWebSocket: options should be an object.");
    }
    const page = pageLocation();
    const secure = options.secure ?? (page !== null && page.protocol === "https:");
    const defaultPort = page === null ? 8000 : page.port || (secure ? 443 : 80);
    this.options = {
      host: options.host ?? (page === null ? "localhost" : page.hostname),
      port: options.port ?? defaultPort,
      secure: Boolean(secure),
      auto_connect: options.auto_connect ?? true,
      reconnect: reconnectOptions(options.reconnect),
      outbox: outboxSize(options.outbox),
      refusedAfter: refusedAfterCount(options.refusedAfter),
      liveness: livenessOptions(options.liveness),
      WebSocket: options.WebSocket ?? null,
      binary: Boolean(options.binary ?? false),
    };
    const trimmed = path.trim();
    /** The path below /ws, with its leading slash. */
    this.path = trimmed.startsWith("/") ? trimmed : "/" + trimmed;
    /** The browser's WebSocket of the current connection, or null between connections. */
    this.websocket = null;
    if (this.options.auto_connect) {
      this.connect();
    }
  }

  /** The server URL: ws(s)://host:port/ws + path. */
  build_url() {
    const scheme = this.options.secure ? "wss" : "ws";
    let host = String(this.options.host);
    if (host.includes(":") && !host.startsWith("[")) {
      host = `[${host}]`; // an IPv6 address
    }
    return `${scheme}://${host}:${this.options.port}/ws${this.path}`;
  }

  get url() {
    return this.build_url();
  }

  /** True while the socket is open. */
  get connected() {
    return this.websocket !== null && this.websocket.readyState === OPEN;
  }

  /**
   * "connecting", "open", "closing", "waiting" (to reconnect) or "closed" (for good, or never opened).
   */
  get state() {
    if (this.websocket !== null) {
      return ["connecting", "open", "closing", "closing"][this.websocket.readyState];
    }
    return this.#timer === null ? "closed" : "waiting";
  }

  /** True when the open connection negotiated MessagePack: bytes travel as bytes, not as base64 strings. */
  get binary() {
    return this.websocket !== null && this.websocket.protocol === MSGPACK_PROTOCOL;
  }

  /** How many frames wait in the outbox for the socket to open. */
  get queued() {
    return this.#outbox.length;
  }

  /** Open the connection (again). Does nothing while a connection is opening or open. */
  connect() {
    this.#stopped = false;
    this.#clearTimer();
    if (this.websocket !== null && this.websocket.readyState < CLOSING) {
      return this;
    }
    const Socket = this.options.WebSocket ?? globalThis.WebSocket;
    if (typeof Socket !== "function") {
      throw new ReferenceError("TornadoWebSocket: this runtime has no WebSocket; pass options.WebSocket.");
    }
    if (this.websocket !== null) {
      this.#failSent(); // the closing socket's close event will be ignored: its replies cannot come
    }
    const socket = this.options.binary
      ? new Socket(this.#connectUrl(), [MSGPACK_PROTOCOL])
      : new Socket(this.#connectUrl());
    socket.binaryType = "arraybuffer";
    this.websocket = socket;
    let opened = false;
    // Events of an older socket (closed, then replaced by connect(), or given up on) are ignored.
    socket.addEventListener("open", (event) => {
      if (socket === this.websocket) {
        opened = true;
        this.#opened(socket, event);
      }
    });
    socket.addEventListener("message", (event) => socket === this.websocket && this.#received(event));
    socket.addEventListener("error", (event) => socket === this.websocket && this.#dispatch("error", event));
    socket.addEventListener("close", (event) => socket === this.websocket && this.#closed(event, opened));
    return this;
  }

  /** Close the connection and stop reconnecting, for good (until connect() is called). */
  close(code = 1000, reason = undefined) {
    this.#stopped = true;
    this.#clearTimer();
    const socket = this.websocket;
    if (socket !== null && socket.readyState < CLOSING) {
      socket.close(code, reason);
    }
    return this;
  }

  /**
   * Call callback(data, frame) for every `event` from the server, or for the client's own events: open, close,
   * error (the socket's), reconnecting, ended, unreachable, gap. The server's "error" frames reach "server_error".
   */
  on(event, callback) {
    checkEvent(event);
    checkCallback(callback);
    this.#listenersOf(event).push({callback, once: false});
    return this;
  }

  /** Like on(), for the next `event` only. */
  once(event, callback) {
    checkEvent(event);
    checkCallback(callback);
    this.#listenersOf(event).push({callback, once: true});
    return this;
  }

  /** Remove callback from event; without callback, every listener of event; without both, every listener. */
  off(event = undefined, callback = undefined) {
    if (event === undefined) {
      this.#listeners.clear();
    } else if (callback === undefined) {
      this.#listeners.delete(event);
    } else {
      const remaining = (this.#listeners.get(event) ?? []).filter((entry) => entry.callback !== callback);
      this.#listeners.set(event, remaining);
    }
    return this;
  }

  /** Send an event to the server, now if the socket is open, else once it opens (in order). */
  emit(event, data = undefined) {
    checkEvent(event);
    this.#send({event, data: normalizeData(data)}, null);
    return this;
  }

  /**
   * Send an event and resolve with the event function's return value (the server's "ack").
   * Rejects with the server's message if the function fails, or after options.timeout milliseconds.
   */
  request(event, data = undefined, options = {}) {
    checkEvent(event);
    const id = ++this.#lastId;
    const timeout = options.timeout ?? DEFAULT_REQUEST_TIMEOUT;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(id);
        this.#outbox = this.#outbox.filter((entry) => entry.id !== id);
        reject(new Error(`TornadoWebSocket: no reply to "${event}" within ${timeout} ms.`));
      }, timeout);
      this.#requests.set(id, {resolve, reject, timer, sent: false});
      this.#send({event, data: normalizeData(data), id}, id);
    });
  }

  /** Attach a TornadoWebSocket.Module (such as a ProgressBar), which listens to its own namespaced events. */
  bind(module) {
    if (module === null || typeof module !== "object" || typeof module.bind_websocket !== "function") {
      throw new TypeError("TornadoWebSocket: bind() takes a TornadoWebSocket.Module, such as a ProgressBar.");
    }
    module.bind_websocket(this);
    return module;
  }

  #listenersOf(event) {
    let entries = this.#listeners.get(event);
    if (entries === undefined) {
      entries = [];
      this.#listeners.set(event, entries);
    }
    return entries;
  }

  #dispatch(event, data, frame = undefined) {
    const entries = this.#listeners.get(event);
    if (entries === undefined || entries.length === 0) {
      if (frame !== undefined && (event === "warning" || event === SERVER_ERROR_EVENT)) {
        console.warn(`TornadoWebSocket: the server sent "${event}" on ${this.path}:`, data);
      }
      return;
    }
    for (const entry of [...entries]) {
      const current = this.#listeners.get(event);
      if (current === undefined || !current.includes(entry)) {
        continue; // removed by an earlier listener of this same event
      }
      if (entry.once) {
        current.splice(current.indexOf(entry), 1);
      }
      try {
        entry.callback.call(this, data, frame);
      } catch (error) {
        report(error);
      }
    }
  }

  /**
   * Frames holding a Blob wait for it to be read; frames sent meanwhile wait behind them, so the order holds.
   */
  #send(payload, id) {
    if (this.#reading === null && !holds(payload.data, isBlob)) {
      this.#sendNow(payload, id);
      return;
    }
    const reading = (this.#reading ?? Promise.resolve())
      .then(() => readBlobs(payload.data))
      .then(
        (data) => this.#sendNow({...payload, data}, id),
        (error) => {
          console.warn("TornadoWebSocket: a Blob could not be read, its frame was not sent:", error);
          this.#fail(id, `TornadoWebSocket: a Blob could not be read (${error}).`);
        },
      );
    this.#reading = reading;
    reading.finally(() => {
      if (this.#reading === reading) {
        this.#reading = null;
      }
    });
  }

  /** A frame as the socket sends it: JSON text, or, holding bytes, MessagePack (or JSON with base64). */
  #wire(frame) {
    if (typeof frame === "string") {
      return frame;
    }
    return this.binary ? this.#encoder.encode(frame.payload) : jsonWithBase64(frame.payload);
  }

  #sendNow(payload, id) {
    // A frame with bytes is encoded when it is sent: whether the socket speaks MessagePack is known then.
    const frame = holds(payload.data, isBytes) ? {payload} : JSON.stringify(payload);
    if (this.connected) {
      this.websocket.send(this.#wire(frame));
      this.#markSent(id);
      return;
    }
    if (this.#outbox.length >= this.options.outbox) {
      const dropped = this.options.outbox === 0 ? {frame, id} : this.#outbox.shift();
      console.warn(`TornadoWebSocket: outbox full (${this.options.outbox} frames), dropped:`, dropped.frame);
      this.#fail(dropped.id, "TornadoWebSocket: the request was dropped from the full outbox.");
      if (this.options.outbox === 0) {
        return;
      }
    }
    this.#outbox.push({frame, id});
  }

  #markSent(id) {
    const request = id === null ? undefined : this.#requests.get(id);
    if (request !== undefined) {
      request.sent = true;
    }
  }

  #fail(id, message) {
    const request = id === null ? undefined : this.#requests.get(id);
    if (request !== undefined) {
      clearTimeout(request.timer);
      this.#requests.delete(id);
      request.reject(new Error(message));
    }
  }

  #opened(socket, event) {
    this.#failures = 0;
    this.#lastFrame = Date.now();
    this.#pings = 0;
    this.#watch(socket);
    const stable = this.options.reconnect === null ? 0 : this.options.reconnect.stable;
    this.#stableTimer = setTimeout(() => {
      this.#stableTimer = null;
      this.#attempts = 0;
    }, stable);
    // Frames emitted while closed go first, so they keep their order with what open listeners send.
    while (this.#outbox.length > 0 && socket.readyState === OPEN) {
      const {frame, id} = this.#outbox.shift();
      socket.send(this.#wire(frame));
      this.#markSent(id);
    }
    this.#dispatch("open", event);
  }

  #received(message) {
    this.#lastFrame = Date.now();
    if (this.#probing) {
      this.#probing = false; // answered: the next probe after another liveness.idle ms of silence
      this.#stopWatching();
      this.#watch(this.websocket);
    }
    let frame;
    try {
      frame = typeof message.data === "string" ? JSON.parse(message.data) : decodeMessagePack(message.data);
    } catch {
      frame = null;
    }
    if (frame === null || typeof frame !== "object" || typeof frame.event !== "string") {
      console.warn("TornadoWebSocket: ignored a frame that is not {event, data}:", message.data);
      return;
    }
    if (this.#answersPing(frame)) {
      return;
    }
    const gap = this.#track(frame);
    if (gap !== null && this.#recover(gap)) {
      return; // the frames from the gap on come again on the next connection
    }
    if (frame.event === "ack" && this.#requests.has(frame.id)) {
      this.#settle(frame);
      return;
    }
    if (frame.event !== "error" && RESERVED_EVENTS.includes(frame.event)) {
      // Only the client raises these: a server frame named so would fake a close, an end, a gap...
      console.warn(`TornadoWebSocket: ignored a frame named after the client's own "${frame.event}" event.`);
      return;
    }
    const event = frame.event === "error" ? SERVER_ERROR_EVENT : frame.event;
    this.#dispatch(event, frame.data ?? {}, frame);
    if (frame.event === "stream" && this.#unrecovered.delete(frame.data?.stream)) {
      // Its position was left out of ?recover=, so what it missed was not replayed: reload, as on "resync".
      this.#dispatch("resync", {stream: frame.data.stream});
    }
  }

  /** The answer to a liveness probe: "pong", or the warning of a server that has no "ping". */
  #answersPing(frame) {
    if (this.#pings === 0) {
      return false;
    }
    const unknown = frame.event === "warning" && frame.data?.event === "ping" && frame.id === undefined;
    if (frame.event !== PONG_EVENT && !unknown) {
      return false;
    }
    this.#pings -= 1;
    return true;
  }

  /**
   * Remember where this client stands in each stream, so that a reconnection gets what it missed.
   * Returns the gap, {stream, expected, received}, when a frame skipped numbers; else null.
   */
  #track(frame) {
    const data = frame.data;
    if (frame.event === "stream" && data && typeof data.stream === "string") {
      if (data.left === true) {
        // The connection left the room: nothing more of it is due, nothing of it is to be recovered.
        this.#positions.delete(data.stream);
        this.#unrecovered.delete(data.stream);
      } else if (Number.isInteger(data.seq)) {
        if (data.epoch !== undefined && data.epoch !== this.#epoch) {
          // Positions from another server process cannot be replayed: start over from this one.
          this.#epoch = data.epoch;
          this.#positions.clear();
          this.#unrecovered.clear();
        }
        // Without epoch and token: the number of a frame this client was skipped for (it sent it).
        this.#remember(data.stream, data.seq, data.token ?? this.#positions.get(data.stream)?.token);
      }
      return null;
    }
    if (typeof frame.stream !== "string" || !Number.isInteger(frame.seq)) {
      return null;
    }
    const known = this.#positions.get(frame.stream);
    if (known !== undefined && frame.seq > known.seq + 1) {
      return {stream: frame.stream, expected: known.seq + 1, received: frame.seq};
    }
    if (known === undefined || frame.seq > known.seq) {
      this.#remember(frame.stream, frame.seq, known?.token);
    }
    return null;
  }

  #remember(stream, seq, token) {
    this.#positions.delete(stream); // re-inserted last: the most recently moved stream
    this.#positions.set(stream, token === undefined ? {seq} : {seq, token});
  }

  /**
   * Frames of a stream went missing (seq jumped): reconnect with the positions held before the gap, so the
   * server replays them in order (or sends "resync"). Nothing more of this socket is delivered, so the
   * replayed frames come without duplicates. With reconnect off, the page is told and the jump accepted.
   * Returns whether the connection is being replaced.
   */
  #recover(gap) {
    const recovering = this.options.reconnect !== null;
    this.#dispatch("gap", {...gap, recovering});
    if (!recovering) {
      const known = this.#positions.get(gap.stream);
      this.#remember(gap.stream, gap.received, known?.token);
      return false;
    }
    this.#abandon(`TornadoWebSocket: frames ${gap.expected} to ${gap.received - 1} of "${gap.stream}" are missing.`);
    return true;
  }

  /** Check the server is still there whenever it has been silent for liveness.idle ms. */
  #watch(socket) {
    if (this.options.liveness !== null) {
      this.#livenessTimer = setTimeout(() => this.#probe(socket), this.options.liveness.idle);
    }
  }

  #probe(socket) {
    this.#livenessTimer = null;
    if (socket !== this.websocket || socket.readyState !== OPEN) {
      return;
    }
    const {idle, timeout} = this.options.liveness;
    const silent = Date.now() - this.#lastFrame;
    if (silent < idle) {
      this.#livenessTimer = setTimeout(() => this.#probe(socket), idle - silent);
      return;
    }
    // Any frame counts as the answer: the "pong", or anything else the server had to say meanwhile.
    this.#pings += 1;
    this.#probing = true;
    socket.send(PING_FRAME);
    this.#livenessTimer = setTimeout(() => {
      this.#livenessTimer = null;
      if (socket === this.websocket) {
        this.#abandon(`TornadoWebSocket: no answer from the server within ${timeout} ms.`);
      }
    }, timeout);
  }

  #stopWatching() {
    this.#probing = false;
    if (this.#livenessTimer !== null) {
      clearTimeout(this.#livenessTimer);
      this.#livenessTimer = null;
    }
  }

  /**
   * Give up on the current socket now, as if it had closed abnormally (1006): a dead connection's closing
   * handshake can take minutes to fail, so its own close event is not waited for (and is ignored).
   */
  #abandon(reason) {
    const socket = this.websocket;
    this.websocket = null;
    socket.close();
    this.#closed(abandonedEvent(reason), true);
  }

  #settle(frame) {
    const request = this.#requests.get(frame.id);
    clearTimeout(request.timer);
    this.#requests.delete(frame.id);
    if (frame.error) {
      const error = new Error(String(frame.error.message));
      error.event = frame.error.event;
      request.reject(error);
    } else {
      request.resolve(frame.data);
    }
  }

  #connectUrl() {
    const url = this.build_url();
    if (this.#epoch === null || this.#positions.size === 0) {
      return url;
    }
    return `${url}${url.includes("?") ? "&" : "?"}recover=${this.#recoverParameter()}`;
  }

  /**
   * The encoded ?recover= value: {"epoch", "streams": {name: seq}, "tokens": {name: token}}, at most
   * MAX_RECOVER_LENGTH characters. Beyond that, the streams that moved least recently are forgotten: the server
   * cannot replay them, so they get "resync" when the server next tells their position.
   */
  #recoverParameter() {
    const streams = Object.create(null); // a stream named "__proto__" stays a stream
    const tokens = Object.create(null);
    const encoded = (value) => encodeURIComponent(JSON.stringify(value));
    let room = MAX_RECOVER_LENGTH - encoded({epoch: this.#epoch, streams: {}, tokens: {}}).length;
    const newestFirst = [...this.#positions].reverse();
    let kept = 0;
    for (const [stream, {seq, token}] of newestFirst) {
      const name = encoded(stream);
      // Each entry costs its name, its number or token, a colon and a comma, all URL-encoded (%3A, %2C).
      const cost =
        name.length + String(seq).length + 6 + (token === undefined ? 0 : name.length + encoded(token).length + 6);
      if (cost > room) {
        break;
      }
      room -= cost;
      streams[stream] = seq;
      if (token !== undefined) {
        tokens[stream] = token;
      }
      kept += 1;
    }
    const dropped = newestFirst.slice(kept).map(([stream]) => stream);
    if (dropped.length > 0) {
      console.warn(
        `TornadoWebSocket: ${dropped.length} stream positions left out of the reconnection (over ` +
          `${MAX_RECOVER_LENGTH} characters); they resync.`,
      );
      for (const stream of dropped) {
        this.#positions.delete(stream);
        this.#unrecovered.add(stream);
      }
    }
    const request = {epoch: this.#epoch, streams};
    if (Object.keys(tokens).length > 0) {
      request.tokens = tokens;
    }
    return encoded(request);
  }

  /** The socket closed (or was abandoned): tell the page, then end, or count the failure and retry. */
  #closed(event, opened) {
    clearTimeout(this.#stableTimer);  // dropped before it proved stable: the backoff goes on growing
    this.#stableTimer = null;
    this.#stopWatching();
    this.#pings = 0;
    this.websocket = null;
    this.#failSent();
    const byPage = this.#stopped;
    const final = !byPage && isFinalClose(event.code);
    if (final) {
      this.#stopped = true; // the server closed for good: only connect() opens it again
    }
    if (!opened) {
      this.#failures += 1;
    }
    this.#dispatch("close", event);
    if (final) {
      this.#dispatch("ended", {code: event.code, reason: event.reason, final: true});
      return;
    }
    if (!opened && !this.#stopped && this.#failures === this.options.refusedAfter) {
      this.#dispatch("unreachable", {attempts: this.#failures});
    }
    if (!this.#stopped && this.options.reconnect !== null && this.websocket === null) {
      this.#schedule(opened && isReconnectNow(event.code));
    }
  }

  /** A reply to a request sent on a closed connection can no longer arrive; queued ones wait for the next. */
  #failSent() {
    for (const [id, request] of [...this.#requests]) {
      if (request.sent) {
        this.#fail(id, "TornadoWebSocket: the connection closed before the reply.");
      }
    }
  }

  #schedule(now = false) {
    const {initial, max, factor, jitter} = this.options.reconnect;
    const ceiling = Math.min(max, initial * factor ** this.#attempts);
    // Random share of the delay: clients dropped together by a restart do not come back together.
    const delay = now ? 0 : Math.round(ceiling * (1 - jitter * Math.random()));
    this.#attempts += 1;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.connect();
    }, delay);
    this.#dispatch("reconnecting", {attempt: this.#attempts, delay});
  }

  #clearTimer() {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}

/**
 * A namespaced group of events, paired with a server-side tornado_websockets.modules.Module: its events
 * are named "module_" + name + event on the wire. Listeners added before ws.bind(module) wait for it.
 */
class Module {
  #pending = [];

  constructor(name = "") {
    /** The prefix of this module's events on the wire. */
    this.name = "module_" + name;
    /** The TornadoWebSocket this module is bound to, once bound. */
    this.websocket = null;
  }

  /** Called by ws.bind(module). */
  bind_websocket(websocket) {
    if (websocket === null || typeof websocket !== "object" || typeof websocket.on !== "function") {
      throw new TypeError("TornadoWebSocket.Module: bind_websocket() takes a TornadoWebSocket.");
    }
    if (this.websocket !== null && this.websocket !== websocket) {
      throw new Error(`TornadoWebSocket.Module: "${this.name}" is already bound to another TornadoWebSocket.`);
    }
    this.websocket = websocket;
    for (const [method, event, callback] of this.#pending) {
      websocket[method](this.name + event, callback);
    }
    this.#pending = [];
  }

  /** Like TornadoWebSocket.on(), for this module's event. */
  on(event, callback) {
    return this.#listen("on", event, callback);
  }

  /** Like TornadoWebSocket.once(), for this module's event. */
  once(event, callback) {
    return this.#listen("once", event, callback);
  }

  /** Like TornadoWebSocket.off(), for this module's event. */
  off(event, callback = undefined) {
    checkEvent(event);
    if (this.websocket !== null) {
      this.websocket.off(this.name + event, callback);
    } else {
      this.#pending = this.#pending.filter(
        ([, name, listener]) => name !== event || (callback !== undefined && listener !== callback),
      );
    }
    return this;
  }

  /** Like TornadoWebSocket.emit(), for this module's event. */
  emit(event, data = undefined) {
    checkEvent(event);
    this.#bound().emit(this.name + event, data);
    return this;
  }

  /** Like TornadoWebSocket.request(), for this module's event. */
  request(event, data = undefined, options = {}) {
    checkEvent(event);
    return this.#bound().request(this.name + event, data, options);
  }

  #listen(method, event, callback) {
    checkEvent(event);
    checkCallback(callback);
    if (this.websocket !== null) {
      this.websocket[method](this.name + event, callback);
    } else {
      this.#pending.push([method, event, callback]);
    }
    return this;
  }

  #bound() {
    if (this.websocket === null) {
      throw new Error(`TornadoWebSocket.Module: bind "${this.name}" first, with ws.bind(module).`);
    }
    return this.websocket;
  }
}

function element(target) {
  if (typeof target === "string") {
    return document.querySelector(target);
  }
  return target ?? null;
}

/**
 * The client of tornado_websockets.modules.ProgressBar: new ProgressBar("demo", {progress, label}) listens
 * to module_progressbar_demo_init / _update / _done and keeps a <progress> element (or any element, by its
 * width) and a label element up to date. The label shows the server's label, else the percentage.
 */
class ProgressBar extends Module {
  constructor(name = "", elements = {}) {
    super(`progressbar_${name}_`);
    this.progress = element(elements.progress);
    this.label = element(elements.label);
    this.min = 0;
    this.max = 100;
    this.current = 0;
    this.indeterminate = false;
    this.done = false;
    // Registered first, so the application's own listeners already see the new values.
    this.on("init", (data) => this.#init(data));
    this.on("update", (data) => this.#update(data));
    this.on("done", () => this.#finish());
  }

  /** 0 to 100, or null while indeterminate. */
  get percent() {
    if (this.indeterminate) {
      return null;
    }
    const span = this.max - this.min;
    const ratio = span > 0 ? (this.current - this.min) / span : 1;
    return Math.min(100, Math.max(0, ratio * 100));
  }

  #init(data) {
    this.indeterminate = data.indeterminate === true;
    if (!this.indeterminate) {
      this.min = Number(data.min ?? 0);
      this.max = Number(data.max ?? 100);
      this.current = Number(data.current ?? this.min);
    }
    this.done = !this.indeterminate && this.current >= this.max;
    this.#render(data.label);
  }

  #update(data) {
    if (typeof data.current === "number") {
      this.current = data.current;
    }
    this.#render(data.label);
  }

  #finish() {
    this.done = true;
    if (!this.indeterminate) {
      this.current = this.max;
    }
    this.#render(null);
  }

  /** label: the server's text; undefined shows the percentage; null leaves the label as it is. */
  #render(label) {
    const percent = this.percent;
    const bar = this.progress;
    if (bar !== null) {
      if (bar.tagName === "PROGRESS") {
        if (percent === null) {
          bar.removeAttribute("value"); // an indeterminate <progress>
        } else {
          bar.max = Math.max(this.max - this.min, 1);
          bar.value = this.current - this.min;
        }
      } else {
        bar.style.width = percent === null ? "100%" : `${percent}%`;
        bar.setAttribute("aria-valuenow", percent === null ? "" : String(Math.round(percent)));
      }
    }
    if (this.label !== null) {
      if (typeof label === "string") {
        this.label.textContent = label;
      } else if (label === undefined && percent !== null) {
        this.label.textContent = `${Math.round(percent)}%`;
      }
    }
  }
}

TornadoWebSocket.Module = Module;
TornadoWebSocket.ProgressBar = ProgressBar;
TornadoWebSocket.RESERVED_EVENTS = RESERVED_EVENTS;
TornadoWebSocket.SERVER_ERROR_EVENT = SERVER_ERROR_EVENT;

// ES module exports: tools/build_js.py replaces everything below this line with the UMD return.
export {Module, ProgressBar, TornadoWebSocket};
export default TornadoWebSocket;
