// The agent console: the same API any agent desktop uses (docs/api.md, "Agent side"), with the
// agent's own Basic credentials (user `<tenant>/<agent id>`, the agent's token) kept in this
// page's memory only (never stored, never in a URL).
// Offers, withdrawals and the held call's changes arrive on the agent's event stream, read
// with fetch() because EventSource cannot send an Authorization header.

import {
  badge, clockTime, duration, h, readEventStream, replace, request, setLive, setTimeZone,
} from "/static/common.js";

const $ = (id) => document.getElementById(id);
const API = "/apps/api/v1";
const ENDED = ["finished", "failed"];

let auth = null; // { header, agentId }
let agent = null;
let offers = new Map();
let current = null;
let streamAbort = null;
let numbers = new Map(); // call id -> the end user's number (the call object has none)
// Call id -> what a 202 call waits for the agent to choose ({pending_action, choices,
// expires_at}), read from GET .../choices: the call object does not say.
let choices = new Map();
const ASKS = {
  select_outbound_number: "choose the number to call from",
  select_end_user_number: "choose the number to call",
};
const FIELDS = {
  select_outbound_number: "outbound_number",
  select_end_user_number: "end_user_number",
};
const OUTBOUND = "Voice Outbound (API)";
const ENDED_BY = {
  disconnected_by_agent: "You hung up.",
  disconnected_by_end_user: "The caller hung up.",
};

function basicHeader(subdomain, token) {
  const bytes = new TextEncoder().encode(`${subdomain}:${token}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

function api(path, options = {}) {
  return request(`${API}${path}`, { ...options, headers: { Authorization: auth.header } });
}

function log(text) {
  const item = h("li", {}, h("time", {}, clockTime(Date.now())), h("span", {}, text));
  $("log").prepend(item);
  while ($("log").children.length > 50) $("log").lastChild.remove();
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const agentId = Number.parseInt($("agent-id").value, 10);
  if (!Number.isFinite(agentId) || agentId <= 0) {
    $("login-error").textContent = "Agent id must be a number";
    return;
  }
  superseded = false;
  const user = `${$("subdomain").value.trim()}/${agentId}`;
  auth = { header: basicHeader(user, $("token").value), agentId };
  try {
    agent = await api(`/agents/${agentId}`);
  } catch (error) {
    auth = null;
    $("login-error").textContent = error.status === 401 ? "Wrong tenant, agent or token" : error.message;
    return;
  }
  $("token").value = "";
  await useTenantZone();
  $("login").hidden = true;
  $("console").hidden = false;
  $("session").hidden = false;
  renderAgent();
  log(`Signed in as ${agent.name}`);
  listen();
});

$("signout").addEventListener("click", () => signOut(""));

// Times in the tenant's zone, as on the dashboard; the browser's if the zone cannot be read.
async function useTenantZone() {
  try {
    const tenant = await api(`/agents/${auth.agentId}/tenant`);
    setTimeZone(tenant.timezone);
    $("zone").textContent = `· times in ${tenant.timezone}`;
  } catch (error) {
    $("zone").textContent = "";
  }
}

// The number of a call's end user, read once per call; the offers and the held call are drawn
// again when it arrives.
async function learnNumber(callId) {
  if (numbers.has(callId)) return;
  numbers.set(callId, null);
  try {
    const found = await api(`/agents/${auth.agentId}/calls/${callId}/end_user`);
    numbers.set(callId, found.end_user_number);
  } catch (error) {
    numbers.delete(callId);
    return;
  }
  renderOffers();
  renderCurrent();
}

function numberOf(callId) {
  const waiting = choices.get(callId);
  if (waiting && waiting.pending_action === "select_end_user_number") return "number to be chosen";
  return numbers.get(callId) || "number unknown";
}

function signOut(message) {
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
  auth = agent = current = null;
  offers = new Map();
  numbers = new Map();
  choices = new Map();
  replace($("log"));
  renderOffers();
  renderChoices();
  renderCurrent();
  $("console").hidden = true;
  $("session").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
}

for (const button of $("status").querySelectorAll("button")) {
  button.addEventListener("click", async () => {
    $("status-error").textContent = "";
    try {
      agent = await api(`/agents/${auth.agentId}/status`, {
        method: "PUT",
        body: { status: button.dataset.status },
      });
      renderAgent();
      log(`Status: ${agent.status}`);
    } catch (error) {
      $("status-error").textContent = error.message;
    }
  });
}

function renderAgent() {
  const initials = `${agent.first_name[0] || ""}${agent.last_name[0] || ""}`.toUpperCase();
  $("avatar").textContent = initials || "?";
  $("agent-name").textContent = agent.name;
  $("agent-email").textContent = `${agent.email} · agent ${agent.id}`;
  $("who").textContent = agent.name;
  for (const button of $("status").querySelectorAll("button")) {
    button.classList.toggle("on", button.dataset.status === agent.status);
    button.setAttribute("aria-pressed", String(button.dataset.status === agent.status));
  }
}

// The event stream; on any end it reconnects after 2 s and reads the open offers again,
// so nothing published while it was down is missed for long.
async function listen() {
  while (auth) {
    const abort = new AbortController();
    streamAbort = abort;
    try {
      const response = await fetch(`${API}/agents/${auth.agentId}/events`, {
        headers: { Authorization: auth.header, Accept: "text/event-stream" },
        signal: abort.signal,
      });
      if (response.status === 401 || response.status === 404) {
        signOut(response.status === 401 ? "Your credentials are no longer accepted." : "This agent no longer exists.");
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      setLive($("live"), true, "Live");
      await refreshOffers();
      await refreshChoices();
      await readEventStream(response, onEvent);
      if (superseded) {
        signOut("This agent was signed in elsewhere.");
        return;
      }
    } catch (error) {
      if (abort.signal.aborted) return;
    }
    if (!auth || abort.signal.aborted) return;
    setLive($("live"), false, "Reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function refreshOffers() {
  const open = await api(`/agents/${auth.agentId}/offers`);
  offers = new Map(open.map((offer) => [offer.id, offer]));
  for (const offer of open) learnNumber(offer.call_id);
  renderOffers();
}

// Set when a newer stream of this agent (another console, another tab) took over: this
// console then signs out instead of reconnecting, which would take the agent back.
let superseded = false;

function onEvent(name, data) {
  if (name === "superseded") {
    superseded = true;
  } else if (name === "offer") {
    offers.set(data.id, data);
    learnNumber(data.call_id);
    log(`Offer for call #${data.call_id} (${data.group})`);
    renderOffers();
  } else if (name === "offer_withdrawn") {
    if (offers.delete(data.id)) log(`Call #${data.call_id} was taken by another agent`);
    renderOffers();
  } else if (name === "assigned") {
    log(`Call #${data.call_id} assigned to you`);
    refreshChoices(); // an outbound call may wait for the agent's choice (a 202)
  } else if (name === "call_updated") {
    if (data.status !== "assigned" && choices.delete(data.id)) renderChoices();
    if (!current || current.id === data.id || !ENDED.includes(data.status)) {
      if (!current || current.status !== data.status) log(`Call #${data.id}: ${describeStatus(data)}`);
      current = data;
      learnNumber(data.id);
      renderCurrent();
    }
  }
}

async function accept(offer) {
  $("call-error").textContent = "";
  try {
    current = await api(`/offers/${offer.id}/accept`, { method: "POST" });
    log(`Accepted call #${offer.call_id}`);
    renderCurrent();
  } catch (error) {
    $("call-error").textContent = `Call #${offer.call_id}: ${error.message}`;
  }
  offers.delete(offer.id);
  renderOffers();
}

async function decline(offer) {
  try {
    await api(`/offers/${offer.id}/decline`, { method: "POST" });
    log(`Declined call #${offer.call_id}`);
  } catch (error) {
    $("call-error").textContent = `Call #${offer.call_id}: ${error.message}`;
  }
  offers.delete(offer.id);
  renderOffers();
}

// The calls that wait for this agent's choice, read again whenever one may have begun or
// ended waiting (the stream opened, a call was assigned, a choice was made).
async function refreshChoices() {
  if (!auth) return;
  try {
    const waiting = await api(`/agents/${auth.agentId}/choices`);
    choices = new Map(waiting.map((choice) => [choice.call_id, choice]));
  } catch (error) {
    return;
  }
  renderChoices();
  renderCurrent();
}

async function choose(waiting, number) {
  $("choice-error").textContent = "";
  const field = FIELDS[waiting.pending_action];
  try {
    const call = await api(`/agents/${auth.agentId}/calls/${waiting.call_id}/choice`, {
      method: "POST",
      body: { [field]: number },
    });
    log(`Call #${waiting.call_id}: ${number} chosen`);
    if (field === "end_user_number") numbers.set(waiting.call_id, number);
    if (!current || current.id === call.id) current = call;
  } catch (error) {
    $("choice-error").textContent = `Call #${waiting.call_id}: ${error.message}`;
  }
  await refreshChoices();
}

function renderChoices() {
  $("choices-card").hidden = choices.size === 0;
  $("choices-count").textContent = choices.size ? `${choices.size} waiting` : "";
  replace(
    $("choices"),
    [...choices.values()].map((waiting) =>
      h("div", { class: "choice", "data-call": waiting.call_id, "data-action": waiting.pending_action },
        h("div", {},
          h("div", { class: "title" }, `Call #${waiting.call_id} · ${ASKS[waiting.pending_action] || waiting.pending_action}`),
          h("div", { class: "muted" }, waiting.expires_at ? `It fails unless chosen by ${clockTime(waiting.expires_at)}` : ""),
        ),
        h("div", { class: "actions" },
          waiting.choices.map((number) =>
            h("button", { class: "btn primary mono", type: "button", "data-number": number, onclick: () => choose(waiting, number) }, number)),
        ),
      ),
    ),
  );
}

async function finish() {
  $("call-error").textContent = "";
  try {
    const ended = await api(`/calls/${current.id}/finish`, { method: "POST" });
    // The call's own event may have told it already.
    if (current.id !== ended.id || current.status !== ended.status) {
      log(`Call #${ended.id}: ${describeStatus(ended)}`);
    }
    current = ended;
  } catch (error) {
    $("call-error").textContent = error.message;
  }
  renderCurrent();
}

function renderOffers() {
  const now = Date.now();
  for (const [id, offer] of offers) {
    if (Date.parse(offer.expires_at) <= now) offers.delete(id);
  }
  $("offers-count").textContent = offers.size ? `${offers.size} ringing` : "";
  if (!offers.size) {
    replace($("offers"), h("p", { class: "muted", id: "no-offers" }, "No offers right now."));
    return;
  }
  replace(
    $("offers"),
    [...offers.values()].map((offer) => {
      const bar = h("span", { "data-from": offer.offered_at, "data-to": offer.expires_at });
      return h("div", { class: "offer", "data-offer": offer.id, "data-call": offer.call_id },
        h("div", {},
          h("div", { class: "title" }, `Call #${offer.call_id} · `,
            h("span", { class: "mono caller-number" }, numberOf(offer.call_id))),
          h("div", { class: "muted" }, `${offer.group} · offered ${clockTime(offer.offered_at)}`),
          h("div", { class: "countdown" }, bar),
        ),
        h("div", { class: "actions" },
          h("button", { class: "btn success", type: "button", "data-action": "accept", onclick: () => accept(offer) }, "Accept"),
          h("button", { class: "btn", type: "button", "data-action": "decline", onclick: () => decline(offer) }, "Decline"),
        ),
      );
    }),
  );
  tick();
}

function tick() {
  const now = Date.now();
  let expired = false;
  for (const bar of document.querySelectorAll(".countdown span")) {
    const from = Date.parse(bar.dataset.from), to = Date.parse(bar.dataset.to);
    const left = Math.max(0, (to - now) / Math.max(1, to - from));
    bar.style.width = `${(left * 100).toFixed(1)}%`;
    expired ||= left === 0;
  }
  if (expired) renderOffers();
  if (current && !ENDED.includes(current.status)) renderCurrentTimes();
}
setInterval(tick, 250);

function renderCurrent() {
  if (!current) {
    replace($("current"), h("p", { class: "muted" }, "No call. Set yourself available to receive offers."));
    return;
  }
  const ended = ENDED.includes(current.status);
  const menu = current.selected_menu ? current.selected_menu.name : "–";
  const direction = current.call_type === OUTBOUND ? "To" : "From";
  replace(
    $("current"),
    h("div", { id: "current-call", "data-call": current.id, "data-status": current.status },
      h("div", { class: "big" }, `Call #${current.id} `, badge(current.status)),
      h("div", { class: "caller" }, `${direction} `,
        h("span", { class: "mono", id: "current-number" }, numberOf(current.id))),
      h("div", { class: "muted" }, `${current.call_type} · ${menu}`),
      h("div", { class: "muted", id: "current-times" }),
      h("p", { class: "ended-by" },
        ended
          ? h("span", { id: "ended-by" }, endedBy(current))
          : h("button", { class: "btn danger", type: "button", id: "finish", onclick: finish }, "Finish call"),
      ),
    ),
  );
  renderCurrentTimes();
}

// Who ended the call, in the agent's words.
function endedBy(call) {
  if (call.status === "failed") return `Ended: ${call.fail_reason.replaceAll("_", " ")}.`;
  const who = ENDED_BY[call.disconnected_by] || "Call ended.";
  return call.call_type === OUTBOUND ? who.replace("caller", "end user") : who;
}

function describeStatus(call) {
  return ENDED.includes(call.status) ? `${call.status}. ${endedBy(call)}` : call.status;
}

function renderCurrentTimes() {
  const node = $("current-times");
  if (!node || !current) return;
  const since = current.connected_at || current.assigned_at;
  const talk = ENDED.includes(current.status)
    ? current.call_duration
    : since ? (Date.now() - Date.parse(since)) / 1000 : 0;
  const what = ENDED.includes(current.status) ? "talked" : current.connected_at ? "talking" : "assigned";
  node.textContent = `waited ${duration(current.wait_duration)} · ${what} ${duration(talk)}`;
}

$("login").hidden = false;
$("subdomain").focus();
