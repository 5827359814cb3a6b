// Helpers shared by the dashboard and the agent console. Text always goes in through
// textContent (never innerHTML): nothing a call carries can become markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status.replaceAll("_", " "));
}

const pad = (n) => String(n).padStart(2, "0");

// Times are shown in the tenant's zone (the directory's `timezone`), whatever the browser's:
// a supervisor and the agents read the same clock. The browser's own until the server says.
let zone;
let formats = new Map();

export function setTimeZone(name) {
  if (name === zone) return;
  zone = name;
  formats = new Map();
}

function format(key, options) {
  if (!formats.has(key)) {
    formats.set(key, new Intl.DateTimeFormat("en-GB", { timeZone: zone, hourCycle: "h23", ...options }));
  }
  return formats.get(key);
}

function parsed(value) {
  if (value === null || value === undefined) return null;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? null : at;
}

// "14:03:27", from an ISO string or epoch milliseconds.
export function clockTime(value) {
  const at = parsed(value);
  return at ? format("time", { hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(at) : "";
}

// "14:03" today (in the zone), "3 Dec 14:03" on another day: for due times.
export function dueTime(value) {
  const at = parsed(value);
  if (!at) return "";
  const day = format("day", { year: "numeric", month: "short", day: "numeric" });
  const time = format("minute", { hour: "2-digit", minute: "2-digit" }).format(at);
  if (day.format(at) === day.format(new Date())) return time;
  return `${format("date", { month: "short", day: "numeric" }).format(at)} ${time}`;
}

// "Tue 24" (`short`: "24"): a day of a report, in the zone.
export function dayLabel(value, short = false) {
  const at = parsed(value);
  if (!at) return "";
  if (short) return format("monthday", { day: "numeric" }).format(at);
  return format("weekday", { weekday: "short", day: "numeric" }).format(at);
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
}

// Reads a text/event-stream body (fetch can send headers, EventSource cannot) and calls
// onEvent(name, data) for each event; resolves when the stream ends.
export async function readEventStream(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// A JSON request; rejects with an Error carrying the server's message and status.
export async function request(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const payload = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error((payload && payload.message) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return payload;
}

export function setLive(node, on, text) {
  node.classList.toggle("on", on);
  node.classList.toggle("off", !on);
  node.querySelector(".text").textContent = text;
}
