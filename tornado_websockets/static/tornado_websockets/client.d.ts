// TypeScript declarations of client.js: the global `TornadoWebSocket` of the classic script, and the value of
// `require(".../client.js")` or of an AMD `define`. The ES module (client.mjs) has client.d.mts.

export = TornadoWebSocket;
export as namespace TornadoWebSocket;

/** A connection to one WebSocket path of a django-tornado-websockets server. */
declare class TornadoWebSocket {
  /** The events raised by the connection itself rather than by the server. */
  static readonly RESERVED_EVENTS: readonly ["open", "close", "error", "reconnecting", "ended", "unreachable", "gap"];
  /** The local name of the server's "error" frame: "server_error" ("error" is the socket's own). */
  static readonly SERVER_ERROR_EVENT: "server_error";

  /** Connects to ws(s)://host:port/ws + path; host, port and scheme default to the page's own. */
  constructor(path: string, options?: TornadoWebSocket.Options);

  /** The resolved options. */
  readonly options: TornadoWebSocket.ResolvedOptions;
  /** The path below /ws, with its leading slash. */
  readonly path: string;
  /** The browser's WebSocket of the current connection, or null between connections. */
  readonly websocket: WebSocket | null;
  /** The server URL: ws(s)://host:port/ws + path. */
  readonly url: string;
  /** True while the socket is open. */
  readonly connected: boolean;
  /** Where the connection stands; "waiting" is the pause before reconnecting. */
  readonly state: TornadoWebSocket.State;
  /** How many frames wait in the outbox for the socket to open. */
  readonly queued: number;
  /** True when the open connection negotiated MessagePack: bytes travel as bytes, not as base64 strings. */
  readonly binary: boolean;

  /** The server URL: ws(s)://host:port/ws + path. */
  build_url(): string;
  /** Open the connection (again). Does nothing while a connection is opening or open. */
  connect(): this;
  /** Close the connection and stop reconnecting, for good (until connect() is called). */
  close(code?: number, reason?: string): this;

  /** The socket opened (also after each reconnection). */
  on(event: "open", callback: (this: this, event: Event) => void): this;
  /**
   * The socket closed; reconnection follows unless close() was called, reconnect is false or the close is final.
   * After 1012 (the server restarts) or 4100 (the session was renewed) it follows at once, without a backoff.
   */
  on(event: "close", callback: (this: this, event: CloseEvent) => void): this;
  /** The socket failed (the browser's `Event`, as in the original client); a "close" follows. */
  on(event: "error", callback: (this: this, error: Event) => void): this;
  /** An event function failed on the server (the server's "error" frame). */
  on(event: "server_error", callback: (this: this, error: TornadoWebSocket.ServerError) => void): this;
  /** The server did not understand a frame (a malformed frame, an unknown event). */
  on(event: "warning", callback: (this: this, warning: TornadoWebSocket.Warning) => void): this;
  /** A reconnection is scheduled in `delay` milliseconds. */
  on(event: "reconnecting", callback: (this: this, retry: TornadoWebSocket.Retry) => void): this;
  /** The server closed the connection for good (4000-4099, 1008): no reconnection until connect(). */
  on(event: "ended", callback: (this: this, end: TornadoWebSocket.Ended) => void): this;
  /** `refusedAfter` attempts in a row never opened (a guard's 403, a server down); retries go on. */
  on(event: "unreachable", callback: (this: this, streak: TornadoWebSocket.Unreachable) => void): this;
  /** Frames of a stream were skipped; the client reconnects to get them (unless reconnect is false). */
  on(event: "gap", callback: (this: this, gap: TornadoWebSocket.Gap) => void): this;
  /** The frames missed in a stream cannot be replayed: reload its state. */
  on(event: "resync", callback: (this: this, resync: TornadoWebSocket.Resync) => void): this;
  /** With recovery on: where the connection stands in a stream (the client keeps it by itself). */
  on(event: "stream", callback: (this: this, position: TornadoWebSocket.StreamPosition) => void): this;
  /** Every `event` frame from the server. */
  on<T = any>(event: string, callback: TornadoWebSocket.Listener<T, this>): this;

  /** Like on(), for the next event only. */
  once(event: "open", callback: (this: this, event: Event) => void): this;
  once(event: "close", callback: (this: this, event: CloseEvent) => void): this;
  once(event: "error", callback: (this: this, error: Event) => void): this;
  once(event: "server_error", callback: (this: this, error: TornadoWebSocket.ServerError) => void): this;
  once(event: "warning", callback: (this: this, warning: TornadoWebSocket.Warning) => void): this;
  once(event: "reconnecting", callback: (this: this, retry: TornadoWebSocket.Retry) => void): this;
  once(event: "ended", callback: (this: this, end: TornadoWebSocket.Ended) => void): this;
  once(event: "unreachable", callback: (this: this, streak: TornadoWebSocket.Unreachable) => void): this;
  once(event: "gap", callback: (this: this, gap: TornadoWebSocket.Gap) => void): this;
  once(event: "resync", callback: (this: this, resync: TornadoWebSocket.Resync) => void): this;
  once<T = any>(event: string, callback: TornadoWebSocket.Listener<T, this>): this;

  /** Remove a listener; without callback, every listener of the event; without arguments, all of them. */
  off(event?: string, callback?: (...args: any[]) => void): this;

  /**
   * Send an event; not-an-object data is sent as {message: data}, none as {}. Queued until open. Bytes
   * (TornadoWebSocket.Bytes: ArrayBuffer, typed array, DataView, Blob) may sit anywhere in data; received bytes
   * arrive as Uint8Array.
   */
  emit(event: string, data?: unknown): this;

  /** Send an event and resolve with the event function's return value; reject with its error or on timeout. */
  request<T = any>(event: string, data?: unknown, options?: TornadoWebSocket.RequestOptions): Promise<T>;

  /** Attach a module (such as a ProgressBar), which listens to its own namespaced events; returns it. */
  bind<M extends TornadoWebSocket.Module>(module: M): M;
}

declare namespace TornadoWebSocket {
  type State = "connecting" | "open" | "closing" | "waiting" | "closed";

  interface ReconnectOptions {
    /** Milliseconds before the first retry (default 500). */
    initial?: number;
    /** The longest wait between retries, in milliseconds (default 30000). */
    max?: number;
    /** How much each wait grows (default 2). */
    factor?: number;
    /** The random share taken off each wait, 0 to 1 (default 0.5). */
    jitter?: number;
    /** Milliseconds a connection must stay open before the waits start over from `initial` (default 5000). */
    stable?: number;
  }

  interface LivenessOptions {
    /** Milliseconds without any frame from the server before the client sends a "ping" (default 20000). */
    idle?: number;
    /** Milliseconds to wait for any frame after the ping before reconnecting (default 10000). */
    timeout?: number;
  }

  interface Options {
    /** Default: the page's host name ("localhost" outside a browser). */
    host?: string;
    /** Default: the page's port (8000 outside a browser). */
    port?: number | string;
    /** wss:// rather than ws:// (default: true on an https page). */
    secure?: boolean;
    /** Connect at once (default true); else call connect(). */
    auto_connect?: boolean;
    /** false to never reconnect; true or settings for exponential backoff with jitter (the default). */
    reconnect?: boolean | ReconnectOptions;
    /** How many emits wait for the socket to open; the oldest is dropped beyond (default 100). */
    outbox?: number;
    /** Attempts in a row that never open before the "unreachable" event (default 3). */
    refusedAfter?: number;
    /** false to never probe a silent server; true or settings to probe it and reconnect (the default). */
    liveness?: boolean | LivenessOptions;
    /** A WebSocket constructor, for runtimes without a global one. */
    WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
    /**
     * Ask for MessagePack ("tornado-websockets.msgpack") so that bytes travel as bytes and arrive as Uint8Array
     * (default false: bytes as base64 strings). The server needs the binary extra: browsers fail the handshake of
     * a server that does not accept the subprotocol.
     */
    binary?: boolean;
  }

  /** What emit() and request() send as bytes; the server's bytes arrive as Uint8Array. */
  type Bytes = ArrayBuffer | ArrayBufferView | Blob;

  interface ResolvedOptions {
    host: string;
    port: number | string;
    secure: boolean;
    auto_connect: boolean;
    reconnect: Required<ReconnectOptions> | null;
    outbox: number;
    refusedAfter: number;
    liveness: Required<LivenessOptions> | null;
    WebSocket: (new (url: string, protocols?: string | string[]) => WebSocket) | null;
    binary: boolean;
  }

  interface RequestOptions {
    /** Milliseconds to wait for the reply (default 10000). */
    timeout?: number;
  }

  /** A frame as the server sent it. */
  interface Frame<T = any> {
    event: string;
    data: T;
    /** The request's id, on an "ack". */
    id?: number | string;
    /** On an "ack" of a failed request. */
    error?: { message: string; event?: string };
    /** With recovery on: the stream of the frame and its number in it. */
    stream?: string;
    seq?: number;
  }

  type Listener<T = any, This = TornadoWebSocket> = (this: This, data: T, frame: Frame<T>) => void;

  /** The data of the server's "error" event: an event function failed. */
  interface ServerError {
    message: string;
    event: string;
  }

  /** The data of the server's "warning" event: a frame was not understood. */
  interface Warning {
    message: string;
    event?: string;
    [key: string]: unknown;
  }

  /** The data of "ended": the close code and reason the server gave. */
  interface Ended {
    code: number;
    reason: string;
    final: true;
  }

  /** The data of "unreachable". */
  interface Unreachable {
    /** Attempts in a row that never opened. */
    attempts: number;
  }

  /** The data of "gap": the frame numbered `received` came when `expected` was due. */
  interface Gap {
    stream: string;
    expected: number;
    received: number;
    /** True when the client reconnects to get the missing frames (reconnect is on). */
    recovering: boolean;
  }

  /** The data of "resync". */
  interface Resync {
    stream: string;
  }

  /** The data of the server's "stream" event: a position in a stream, or `left` when the room was left. */
  interface StreamPosition {
    stream: string;
    seq?: number;
    epoch?: string;
    /** Opaque: sent back when reconnecting, so the server knows it handed out this position. */
    token?: string;
    left?: true;
  }

  /** The data of "reconnecting". */
  interface Retry {
    /** 1 for the first retry after a drop. */
    attempt: number;
    /** Milliseconds until the retry. */
    delay: number;
  }

  /** A namespaced group of events: "module_" + name + event on the wire. */
  class Module {
    constructor(name?: string);
    /** The prefix of this module's events on the wire. */
    readonly name: string;
    /** The TornadoWebSocket this module is bound to, once bound. */
    readonly websocket: TornadoWebSocket | null;
    /** Called by ws.bind(module). */
    bind_websocket(websocket: TornadoWebSocket): void;
    on<T = any>(event: string, callback: Listener<T>): this;
    once<T = any>(event: string, callback: Listener<T>): this;
    off(event: string, callback?: (...args: any[]) => void): this;
    emit(event: string, data?: unknown): this;
    request<T = any>(event: string, data?: unknown, options?: RequestOptions): Promise<T>;
  }

  /** What ProgressBar's init event carries. */
  interface ProgressInit {
    indeterminate: boolean;
    min?: number;
    max?: number;
    current?: number;
    label?: string;
  }

  /** What ProgressBar's update event carries. */
  interface ProgressUpdate {
    current?: number;
    label?: string;
  }

  /** Elements (or CSS selectors) a ProgressBar keeps up to date. */
  interface ProgressElements {
    /** A <progress> element, or any element whose width becomes the percentage. */
    progress?: HTMLElement | string | null;
    /** Shows the server's label, else the percentage. */
    label?: HTMLElement | string | null;
  }

  /** The client of tornado_websockets.modules.ProgressBar. */
  class ProgressBar extends Module {
    constructor(name?: string, elements?: ProgressElements);
    readonly progress: HTMLElement | null;
    readonly label: HTMLElement | null;
    readonly min: number;
    readonly max: number;
    readonly current: number;
    readonly indeterminate: boolean;
    readonly done: boolean;
    /** 0 to 100, or null while indeterminate. */
    readonly percent: number | null;
    on(event: "init", callback: Listener<ProgressInit>): this;
    on(event: "update", callback: Listener<ProgressUpdate>): this;
    on(event: "done", callback: Listener<Record<string, never>>): this;
    on<T = any>(event: string, callback: Listener<T>): this;
  }
}
