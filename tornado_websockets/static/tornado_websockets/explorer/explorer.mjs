/**
 * The live event explorer: reads the AsyncAPI document, lists every path and event with its schema,
 * connects with the library's own TornadoWebSocket, sends events from a form generated from their
 * schema (or raw JSON), and logs every frame in and out with its time.
 *
 * Everything the server or the document says is written with textContent or as an attribute value,
 * never parsed as HTML.
 */

const config = JSON.parse(document.getElementById("explorer-config").textContent);
const {default: TornadoWebSocket} = await import(config.client);

const $ = (id) => document.getElementById(id);
const SIMPLE_TYPES = new Set(["string", "integer", "number", "boolean"]);

/** Create an element with attributes (and optional text or children), without HTML parsing. */
function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  node.append(...children.map((child) => (child instanceof Node ? child : String(child))));
  return node;
}

/**
 * A description's CommonMark inline markup (`code`, **strong**, *em*; paragraphs split by a blank
 * line) as elements. The text goes in with textContent, so nothing in it is parsed as HTML.
 */
function richText(text) {
  const inline = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*/g;
  return String(text)
    .split(/\n\s*\n/)
    .map((paragraph) => {
      const node = element("p");
      let last = 0;
      for (const match of paragraph.matchAll(inline)) {
        node.append(paragraph.slice(last, match.index));
        const [tag, content] = match[1] !== undefined ? ["code", match[1]] : match[2] !== undefined ? ["strong", match[2]] : ["em", match[3]];
        node.append(element(tag, {}, content));
        last = match.index + match[0].length;
      }
      node.append(paragraph.slice(last));
      return node;
    });
}

// The document -----------------------------------------------------------------------------------

/** The target of a local "$ref" ("#/components/schemas/Name"), or the schema itself. */
function resolve(doc, schema) {
  let current = schema;
  for (let hops = 0; current && typeof current.$ref === "string" && hops < 20; hops += 1) {
    current = current.$ref
      .replace(/^#\//, "")
      .split("/")
      .reduce((node, key) => (node ? node[key.replaceAll("~1", "/").replaceAll("~0", "~")] : undefined), doc);
  }
  return current ?? {};
}

/** A copy of `schema` with its references replaced by their targets (a type met twice stays a $ref). */
function inlined(doc, schema, seen = new Set()) {
  if (Array.isArray(schema)) {
    return schema.map((item) => inlined(doc, item, seen));
  }
  if (schema === null || typeof schema !== "object") {
    return schema;
  }
  if (typeof schema.$ref === "string") {
    if (seen.has(schema.$ref)) {
      return schema; // a recursive type: show the reference rather than loop
    }
    return inlined(doc, resolve(doc, schema), new Set([...seen, schema.$ref]));
  }
  return Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, inlined(doc, value, seen)]));
}

/** Each channel with its address, route variables, and its events in both directions. */
function channelsOf(doc) {
  const channels = Object.entries(doc.channels ?? {}).map(([id, channel]) => ({
    id,
    address: channel.address,
    parameters: Object.keys(channel.parameters ?? {}),
    incoming: [], // client -> server: what the explorer can send
    outgoing: [], // server -> client: declared with ws.emits()
  }));
  const byId = new Map(channels.map((channel) => [channel.id, channel]));
  for (const operation of Object.values(doc.operations ?? {})) {
    const channel = byId.get(operation.channel.$ref.split("/").pop());
    for (const reference of operation.messages ?? []) {
      const message = resolve(doc, reference);
      const event = {
        name: message.name,
        description: message.description ?? operation.summary ?? "",
        data: message.payload?.properties?.data ?? {},
        reply: operation.reply ? resolve(doc, operation.reply.messages[0]).payload?.properties?.data : null,
      };
      (operation.action === "receive" ? channel.incoming : channel.outgoing).push(event);
    }
  }
  for (const channel of channels) {
    channel.incoming.sort((a, b) => a.name.localeCompare(b.name));
    channel.outgoing.sort((a, b) => a.name.localeCompare(b.name));
  }
  return channels;
}

// The catalogue ----------------------------------------------------------------------------------

function showCatalogue(doc, channels) {
  const catalogue = $("catalogue");
  catalogue.replaceChildren(element("h2", {}, "Paths and events"));
  $("doc-title").textContent = `${doc.info?.title ?? ""} ${doc.info?.version ?? ""}`.trim();
  if (channels.length === 0) {
    catalogue.append(element("p", {}, "No WebSocket is registered."));
  }
  for (const channel of channels) {
    const section = element("section", {class: "channel", "data-channel": channel.id});
    section.append(element("h3", {}, channel.address));
    const events = [
      ...channel.incoming.map((event) => ["client → server", event]),
      ...channel.outgoing.map((event) => ["server → client", event]),
    ];
    if (events.length === 0) {
      section.append(element("p", {class: "description"}, "No events."));
    }
    for (const [direction, event] of events) {
      const details = element("details", {class: "event", "data-event": event.name});
      details.append(
        element("summary", {}, element("span", {class: "direction"}, direction), event.name),
        element("div", {class: "description"}, ...richText(event.description || "No description.")),
        element("pre", {}, JSON.stringify(inlined(doc, event.data), null, 2)),
      );
      if (event.reply) {
        details.append(
          element("p", {class: "description"}, "Reply (ack data):"),
          element("pre", {}, JSON.stringify(inlined(doc, event.reply), null, 2)),
        );
      }
      section.append(details);
    }
    catalogue.append(section);
  }
}

// The payload form -------------------------------------------------------------------------------

/** The simple shape of a property (string, integer, number, boolean, enum), or null when it has none. */
function fieldKind(doc, schema) {
  let target = resolve(doc, schema);
  let nullable = false;
  const arms = target.anyOf ?? target.oneOf;
  if (Array.isArray(arms)) {
    // Optional[X] is anyOf [X, null]: the field may be left empty.
    const others = arms.filter((arm) => resolve(doc, arm).type !== "null");
    if (others.length !== 1) {
      return null;
    }
    nullable = others.length < arms.length;
    target = resolve(doc, others[0]);
  }
  if (Array.isArray(target.enum)) {
    return {kind: "enum", values: target.enum, schema: target, nullable};
  }
  if (target.type === "string" && target.contentEncoding === "base64") {
    return {kind: "bytes", schema: target, nullable}; // a bytes field: a file is sent as its bytes
  }
  const type = Array.isArray(target.type) ? target.type.filter((t) => t !== "null") : [target.type];
  if (type.length === 1 && SIMPLE_TYPES.has(type[0])) {
    nullable ||= Array.isArray(target.type) && target.type.includes("null");
    return {kind: type[0], schema: target, nullable};
  }
  return null;
}

/** The fields of an event's data, or null when some property is not a simple one (raw JSON then). */
function formFields(doc, dataSchema) {
  const schema = resolve(doc, dataSchema);
  if (schema.type !== "object" || schema.properties === undefined) {
    return null;
  }
  const required = new Set(schema.required ?? []);
  const fields = [];
  for (const [name, property] of Object.entries(schema.properties)) {
    const kind = fieldKind(doc, property);
    if (kind === null) {
      return null;
    }
    fields.push({name, required: required.has(name), ...kind});
  }
  return fields;
}

/** A hint naming the field's type and bounds; they are shown, not enforced, so bad data can be tried. */
function hint(field) {
  const parts = [field.kind === "enum" ? "one of the list" : field.kind];
  const s = field.schema;
  if (s.minLength !== undefined) parts.push(`min length ${s.minLength}`);
  if (s.maxLength !== undefined) parts.push(`max length ${s.maxLength}`);
  if (s.minimum !== undefined) parts.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined) parts.push(`≤ ${s.maximum}`);
  parts.push(field.required ? "required" : "optional");
  return parts.join(", ");
}

function input(field) {
  const id = `field-${field.name}`;
  if (field.kind === "boolean") {
    return element("input", {type: "checkbox", id, name: field.name});
  }
  if (field.kind === "bytes") {
    return element("input", {type: "file", id, name: field.name});
  }
  if (field.kind === "enum") {
    const select = element("select", {id, name: field.name});
    if (!field.required) {
      select.append(element("option", {value: ""}, "(leave out)"));
    }
    field.values.forEach((value, index) => select.append(element("option", {value: index}, JSON.stringify(value))));
    return select;
  }
  const numeric = field.kind === "integer" || field.kind === "number";
  return element("input", {
    type: "text",
    inputmode: numeric ? "decimal" : undefined,
    id,
    name: field.name,
    autocomplete: "off",
    placeholder: field.kind,
  });
}

/** The data the form says: empty optional fields are left out; what does not parse goes as typed. */
function formData(fields) {
  const data = {};
  for (const field of fields) {
    const control = $(`field-${field.name}`);
    if (field.kind === "boolean") {
      data[field.name] = control.checked;
    } else if (field.kind === "bytes") {
      // The chosen file, as bytes (the client reads the Blob); none chosen: left out, or empty if required.
      if (control.files.length > 0) {
        data[field.name] = control.files[0];
      } else if (field.required) {
        data[field.name] = new Uint8Array(0);
      }
    } else if (field.kind === "enum") {
      if (control.value !== "") {
        data[field.name] = field.values[Number(control.value)];
      }
    } else if (control.value === "") {
      if (field.kind === "string" && field.required) {
        data[field.name] = "";
      }
    } else if (field.kind === "string") {
      data[field.name] = control.value;
    } else {
      // The server validates: "abc" for an integer is sent as it is, to see its warning.
      const number = Number(control.value);
      data[field.name] = Number.isFinite(number) ? number : control.value;
    }
  }
  return data;
}

// The workbench ----------------------------------------------------------------------------------

const state = {doc: null, channels: [], socket: null, fields: null};

function log(direction, text) {
  let event = "";
  try {
    event = JSON.parse(text).event ?? "";
  } catch {
    event = "";
  }
  const arrows = {in: "←", out: "→", info: "·"};
  const time = new Date();
  const entry = element(
    "li",
    {class: `${direction} ${event === "warning" || event === "error" ? event : ""}`.trim(), "data-event": event},
    element("time", {datetime: time.toISOString()}, time.toISOString().slice(11, 23)),
    element("span", {class: "arrow"}, arrows[direction]),
    text,
  );
  $("frame-log").append(entry);
  entry.scrollIntoView({block: "nearest"});
}

/** A frame as the log shows it: JSON text as it is, a MessagePack binary message as its size. */
function wireText(frame) {
  return typeof frame === "string" ? frame : `(MessagePack binary frame, ${frame.byteLength} bytes)`;
}

function selectedChannel() {
  return state.channels[Number($("path-select").value)];
}

function showChannel() {
  const channel = selectedChannel();
  const params = $("path-params");
  params.replaceChildren();
  for (const name of channel?.parameters ?? []) {
    params.append(element("label", {}, `${name} `, element("input", {id: `param-${name}`, required: true})));
  }
  const events = $("event-select");
  events.replaceChildren();
  (channel?.incoming ?? []).forEach((event, index) => events.append(element("option", {value: index}, event.name)));
  showEvent();
}

function selectedEvent() {
  return selectedChannel()?.incoming[Number($("event-select").value)];
}

function showEvent() {
  const event = selectedEvent();
  const fieldset = $("payload-fields");
  fieldset.replaceChildren(element("legend", {}, "data"));
  $("event-description").replaceChildren(...(event?.description ? richText(event.description) : []));
  state.fields = event ? formFields(state.doc, event.data) : null;
  if (state.fields === null) {
    fieldset.append(element("p", {class: "description"}, "No form for this schema: write the data as raw JSON."));
  } else if (state.fields.length === 0) {
    fieldset.append(element("p", {class: "description"}, "No fields."));
  }
  for (const field of state.fields ?? []) {
    fieldset.append(
      element("label", {for: `field-${field.name}`}, field.name, " ", input(field), element("span", {class: "hint"}, hint(field))),
    );
  }
  $("raw-json").value = "{}";
  setRawMode(state.fields === null);
}

function setRawMode(raw) {
  if (raw && state.fields !== null) {
    $("raw-json").value = JSON.stringify(formData(state.fields), null, 2);
  }
  $("raw-mode").checked = raw;
  $("raw-mode").disabled = state.fields === null; // raw JSON is then the only way
  $("raw-json").hidden = !raw;
  $("payload-fields").disabled = raw;
}

/** The path below /ws with the route variables filled in, e.g. "/chat/lobby". */
function pathOf(channel) {
  const path = channel.address.replace(/^\/ws(?=\/|$)/, "") || "/";
  return path.replace(/\{([^}]+)\}/g, (_, name) => encodeURIComponent($(`param-${name}`).value));
}

/** Why a connection that never opened failed, and what to do: a browser never sees the HTTP status. */
const REFUSED =
  "The server refused the connection before it opened (or could not be reached). A guard of this " +
  "path may refuse you: sign in on the site with a user it accepts (link at the top), then connect " +
  "again. Also check the route variables and that the server runs.";

function connect() {
  disconnect();
  const path = pathOf(selectedChannel());
  const socket = new TornadoWebSocket(path, {reconnect: false, binary: config.binary === true});
  let opened = false; // the explorer's own attempt counting: one attempt, as reconnection is off
  state.socket = socket;
  $("status").textContent = "connecting";
  $("refused").hidden = true;
  log("info", `connecting to ${socket.url}`);
  socket.on("open", () => {
    opened = true;
    $("status").textContent = "connected";
    $("send").disabled = false;
    $("disconnect").disabled = false;
    log("info", `connected to ${path}`);
    // Every frame, whatever its event, as it is on the wire: the raw socket sees them all (acks,
    // request ids). Only this connection's own socket object is wrapped, never the prototype.
    const raw = socket.websocket;
    raw.addEventListener("message", (message) => log("in", wireText(message.data)));
    const send = raw.send.bind(raw);
    raw.send = (frame) => {
      log("out", wireText(frame));
      send(frame);
    };
  });
  socket.on("close", (event) => {
    if (state.socket === socket) {
      $("status").textContent = "disconnected";
      $("send").disabled = true;
      $("disconnect").disabled = true;
    }
    log("info", `closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`);
    if (!opened && state.socket === socket) {
      $("status").textContent = "refused";
      $("refused").textContent = REFUSED;
      $("refused").hidden = false;
      log("info", "refused: the connection never opened");
    }
  });
  // The client's own word for attempts that never open (when it retries by itself).
  socket.on("unreachable", () => {
    $("refused").textContent = REFUSED;
    $("refused").hidden = false;
  });
  // Logged from the raw socket above; listening here keeps the client from also warning on the console.
  socket.on("warning", () => {});
  socket.on("server_error", () => {});
}

function disconnect() {
  if (state.socket !== null) {
    state.socket.close();
    state.socket = null;
  }
  $("status").textContent = "disconnected";
  $("send").disabled = true;
  $("disconnect").disabled = true;
}

function send() {
  $("send-error").textContent = "";
  const event = selectedEvent();
  if (!event || state.socket === null) {
    return;
  }
  let data;
  if ($("raw-mode").checked) {
    try {
      data = JSON.parse($("raw-json").value || "{}");
    } catch (error) {
      $("send-error").textContent = `Not JSON: ${error.message}`;
      return;
    }
  } else {
    data = formData(state.fields);
  }
  if ($("as-request").checked) {
    state.socket.request(event.name, data).catch((error) => log("info", `request failed: ${error.message}`));
  } else {
    state.socket.emit(event.name, data);
  }
}

async function start() {
  const response = await fetch(config.schema, {credentials: "same-origin"});
  if (!response.ok) {
    $("catalogue-status").textContent = `Could not read ${config.schema}: HTTP ${response.status}.`;
    return;
  }
  state.doc = await response.json();
  state.channels = channelsOf(state.doc);
  showCatalogue(state.doc, state.channels);
  state.channels.forEach((channel, index) =>
    $("path-select").append(element("option", {value: index}, channel.address)),
  );
  showChannel();
  $("path-select").addEventListener("change", showChannel);
  $("event-select").addEventListener("change", showEvent);
  $("raw-mode").addEventListener("change", () => setRawMode($("raw-mode").checked));
  $("connect-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    connect();
  });
  $("disconnect").addEventListener("click", disconnect);
  $("send-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    send();
  });
  $("clear-log").addEventListener("click", () => $("frame-log").replaceChildren());
  document.body.dataset.ready = "true";
}

await start();
