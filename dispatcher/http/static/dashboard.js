// The operations dashboard: sign in (a session cookie), then a live picture pushed by the
// server over Server-Sent Events (/dashboard/events), a call's detail with its history, and
// the last seven days by day (/dashboard/api/week, the calls report), read again each minute.

import {
  badge, clockTime, dayLabel, dueTime, duration, h, replace, request, setLive, setTimeZone, svg,
} from "/static/common.js";

const $ = (id) => document.getElementById(id);
const ACTIVE = ["assigned", "connecting", "connected", "switching"];
const SHOWN_STATUSES = ["queued", "scheduled", "assigned", "connecting", "connected", "finished", "failed"];
const TYPES = { "Voice Inbound (API)": "Inbound", "Voice Outbound (API)": "Outbound", "Voice Scheduled (API)": "Scheduled" };
const WEEK_EVERY_MS = 60_000;
const REPORT_EVERY_MS = 5_000; // a campaign row's report, read again at most this often
// A campaign's outcomes as its row names them (GET /campaigns/:id/report's), in its order.
const OUTCOMES = {
  answered: "answered", not_picked_up: "not picked up", busy: "busy", machine: "machine",
  dnc: "DNC", failed: "failed", redial_scheduled: "redial scheduled",
  max_attempts_reached: "max attempts", pending: "pending", cancelled: "cancelled",
};

let stream = null;
let csrfToken = ""; // the session's, sent back on logout (the cookie alone does not do)
let agentNames = new Map();
let openCall = null;
let week = null; // the last report of the last seven days
let weekTimer = null;
const campaignReports = new Map(); // campaign id -> {at, report, loading}
let shownCampaigns = [];

async function start() {
  try {
    const session = await request("/dashboard/session");
    csrfToken = session.csrf_token;
    showBoard(session.tenant);
  } catch (error) {
    showLogin(error.status === 401 ? "" : error.message);
  }
}

function showLogin(message) {
  if (stream) stream.close();
  stream = null;
  clearInterval(weekTimer);
  weekTimer = null;
  $("board").hidden = true;
  $("session").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("subdomain").focus();
}

function showBoard(tenant) {
  $("login").hidden = true;
  $("board").hidden = false;
  $("session").hidden = false;
  $("tenant").textContent = tenant;
  connect();
  loadWeek();
  clearInterval(weekTimer);
  weekTimer = setInterval(loadWeek, WEEK_EVERY_MS);
}

function connect() {
  if (stream) stream.close();
  setLive($("live"), false, "Connecting…");
  stream = new EventSource("/dashboard/events");
  stream.addEventListener("open", () => setLive($("live"), true, "Live"));
  stream.addEventListener("snapshot", (event) => render(JSON.parse(event.data)));
  stream.addEventListener("signed_out", () => showLogin("Your session has ended. Sign in again."));
  stream.addEventListener("error", async () => {
    setLive($("live"), false, "Reconnecting…");
    if (stream && stream.readyState === EventSource.CLOSED) {
      // The server refused the stream (e.g. 401): find out why before trying again.
      try {
        await request("/dashboard/session");
        setTimeout(connect, 2000);
      } catch (error) {
        if (error.status === 401) showLogin("Your session has ended. Sign in again.");
        else setTimeout(connect, 2000);
      }
    }
  });
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const session = await request("/dashboard/login", {
      method: "POST",
      body: { subdomain: $("subdomain").value.trim(), token: $("token").value },
    });
    $("token").value = "";
    csrfToken = session.csrf_token;
    showBoard(session.tenant);
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("signout").addEventListener("click", async () => {
  const headers = { "X-CSRF-Token": csrfToken };
  await request("/dashboard/logout", { method: "POST", headers }).catch(() => null);
  csrfToken = "";
  showLogin("");
});

window.addEventListener("resize", renderWeek);

$("lookup").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = Number.parseInt($("lookup-id").value, 10);
  if (Number.isFinite(id) && id > 0) openDetail(id);
});

function render(picture) {
  setTimeZone(picture.timezone);
  $("zone").textContent = `· times in ${picture.timezone}`;
  agentNames = new Map(picture.agents.map((agent) => [agent.id, agent.name]));
  renderTiles(picture);
  renderChart(picture.calls_per_minute);
  renderStatuses(picture.calls);
  renderQueues(picture.queues);
  renderAgents(picture.agents);
  renderCampaigns(picture.campaigns);
  renderSmsSessions(picture.open_sms_sessions, picture.sms_sessions);
  renderCalls(picture.latest_calls);
  if (openCall !== null && (picture.changed === null || picture.changed.includes(openCall))) {
    openDetail(openCall, { quiet: true });
  }
}

function renderTiles(picture) {
  const waiting = picture.queues.reduce((sum, queue) => sum + queue.waiting, 0);
  // Whole seconds, cut as the calls' own waits are (not rounded up past them).
  const longest = Math.floor(Math.max(0, ...picture.queues.map((queue) => queue.longest_wait_s)));
  // An agent in no queue is never offered a call: not counted as available for the queues.
  const queued = picture.agents.filter((agent) => agent.queues.length > 0);
  const available = queued.filter((agent) => agent.status === "available").length;
  $("kpi-waiting").textContent = waiting;
  $("kpi-waiting-hint").textContent = `longest ${duration(longest)}`;
  $("kpi-active").textContent = ACTIVE.reduce((sum, s) => sum + (picture.calls[s] || 0), 0);
  $("kpi-offers").textContent = picture.offers_in_flight;
  $("kpi-agents").textContent = available;
  const outside = picture.agents.length - queued.length;
  $("kpi-agents-hint").textContent =
    `of ${queued.length} in queues` + (outside ? `; ${outside} in no queue` : "");
  $("kpi-sms").textContent = picture.sms_sessions;
  $("kpi-scheduled").textContent = picture.scheduled_next_hour;
  $("kpi-scheduled-hint").textContent =
    "due in the next hour" + (picture.held ? `; ${picture.held} held` : "");
}

function renderChart(perMinute) {
  const width = 600, height = 160, top = 12, bottom = 22, left = 28;
  const most = Math.max(1, ...perMinute);
  const step = (width - left) / perMinute.length;
  const scale = (height - top - bottom) / most;
  const nodes = [
    svg("line", { class: "axis", x1: left, x2: width, y1: height - bottom, y2: height - bottom }),
    svg("text", { x: 0, y: top + 4 }, String(most)),
    svg("text", { x: 0, y: height - bottom }, "0"),
    svg("text", { x: left, y: height - 6 }, `-${perMinute.length} min`),
    svg("text", { x: width - 30, y: height - 6 }, "now"),
  ];
  perMinute.forEach((count, i) => {
    const barHeight = count * scale;
    const bar = svg("rect", {
      class: i === perMinute.length - 1 ? "bar now" : "bar",
      x: left + i * step + 2, y: height - bottom - barHeight,
      width: Math.max(1, step - 4), height: barHeight, rx: 2,
    });
    bar.append(svg("title", {}, `${count} call${count === 1 ? "" : "s"}, ${perMinute.length - 1 - i} min ago`));
    nodes.push(bar);
  });
  replace($("chart"), nodes);
  const total = perMinute.reduce((a, b) => a + b, 0);
  $("chart-caption").textContent = `${total} in the last ${perMinute.length} minutes`;
}

async function loadWeek() {
  try {
    week = await request("/dashboard/api/week");
    $("week-note").hidden = true;
  } catch (error) {
    week = null; // the stream notices a session that has ended; this says why there is no chart
    $("week-note").textContent = error.message;
    $("week-note").hidden = false;
  }
  renderWeek();
}

// The days as stacked bars (finished, failed, the others: still under way, or ended otherwise)
// and their mean wait as a line on a scale of its own; drawn at the card's width in pixels.
function renderWeek() {
  const chart = $("week");
  if (!week) {
    replace(chart);
    $("week-caption").textContent = "last 7 days";
    return;
  }
  setTimeZone(week.time_zone);
  const width = Math.max(280, Math.round(chart.getBoundingClientRect().width));
  const height = 180, top = 14, bottom = 24, left = 30, right = 44;
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const days = week.buckets;
  const plot = height - top - bottom;
  const most = Math.max(1, ...days.map((day) => day.calls));
  const means = days.map((day) => day.wait_duration.mean);
  const longest = Math.max(1, ...means.filter((mean) => mean !== null));
  const step = (width - left - right) / days.length;
  const barWidth = Math.min(56, step * 0.6);
  const short = step < 56; // a phone's width: "24" rather than "Tue 24" under each day
  const base = height - bottom;
  const nodes = [
    svg("line", { class: "axis", x1: left, x2: width - right, y1: base, y2: base }),
    svg("text", { x: 0, y: top + 4 }, String(most)),
    svg("text", { x: 0, y: base }, "0"),
    svg("text", { class: "wait-scale", x: width, y: top + 4, "text-anchor": "end" }, duration(longest)),
  ];
  days.forEach((day, i) => {
    const x = left + i * step + (step - barWidth) / 2;
    const group = svg("g", { class: "day", "data-start": day.start, "data-calls": day.calls });
    let y = base;
    for (const [name, count] of split(day)) {
      if (!count) continue;
      const tall = (count * plot) / most;
      y -= tall;
      group.append(svg("rect", { class: `seg ${name}`, "data-count": count, x, y, width: barWidth, height: tall }));
    }
    group.append(svg("text", { class: "label", x: x + barWidth / 2, y: height - 6, "text-anchor": "middle" }, dayLabel(day.start, short)));
    group.append(svg("title", {}, describeDay(day)));
    nodes.push(group);
  });
  let line = "";
  means.forEach((mean, i) => {
    if (mean === null) return;
    const x = left + i * step + step / 2, y = base - (mean * plot) / longest;
    line += `${line && means[i - 1] !== null ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
    const point = svg("circle", { class: "wait", "data-mean": mean, cx: x, cy: y, r: 3.5 });
    point.append(svg("title", {}, `${dayLabel(days[i].start)}: mean wait ${duration(mean)}`));
    nodes.push(point);
  });
  if (line) nodes.push(svg("path", { class: "wait-line", d: line.trim() }));
  replace(chart, nodes);
  const { calls, wait_duration: wait } = week.totals;
  $("week-caption").textContent =
    `${calls} call${calls === 1 ? "" : "s"} in 7 days` + (wait.mean === null ? "" : ` · mean wait ${duration(wait.mean)}`);
}

function split(day) {
  const finished = day.statuses.finished || 0, failed = day.statuses.failed || 0;
  return [["finished", finished], ["failed", failed], ["other", day.calls - finished - failed]];
}

function describeDay(day) {
  const [[, finished], [, failed], [, other]] = split(day);
  const wait = day.wait_duration.mean === null ? "" : `; mean wait ${duration(day.wait_duration.mean)}`;
  return `${dayLabel(day.start)}: ${day.calls} call${day.calls === 1 ? "" : "s"} (${finished} finished, ${failed} failed, ${other} other)${wait}`;
}

function renderStatuses(calls) {
  const total = Object.values(calls).reduce((a, b) => a + b, 0);
  $("calls-total").textContent = `${total} in all`;
  const others = Object.entries(calls).filter(([s, n]) => n > 0 && !SHOWN_STATUSES.includes(s));
  replace(
    $("statuses"),
    [...SHOWN_STATUSES.map((s) => [s, calls[s] || 0]), ...others].map(([status, count]) =>
      h("div", { "data-status": status }, badge(status), h("strong", { class: "num" }, count)),
    ),
  );
}

function renderQueues(queues) {
  replace(
    $("queues"),
    queues.length
      ? queues.map((queue) =>
          h("tr", {},
            h("td", {}, queue.name, " ", h("span", { class: "muted" }, `#${queue.menu_id}`)),
            h("td", { class: "num" }, queue.waiting),
            h("td", { class: "num" }, queue.waiting ? duration(Math.floor(queue.longest_wait_s)) : "–"),
          ),
        )
      : h("tr", {}, h("td", { class: "empty", colspan: 3 }, "No menus")),
  );
}

function renderAgents(agents) {
  replace(
    $("agents"),
    agents.map((agent) =>
      h("tr", { "data-agent": agent.id },
        h("td", {}, agent.name,
          agent.queues.length
            ? null
            : h("span", { class: "muted", title: "No menu offers this agent calls" }, " · in no queue")),
        h("td", {}, badge(agent.status)),
        h("td", { class: "num" }, `${agent.active_calls}/${agent.voice_capacity}`),
        h("td", { class: "num" }, agent.ringing || "–"),
      ),
    ),
  );
}

function renderCampaigns(campaigns) {
  shownCampaigns = campaigns;
  for (const campaign of campaigns) loadCampaignReport(campaign.id);
  replace(
    $("campaigns"),
    campaigns.length
      ? campaigns.map(({ progress, ...campaign }) =>
          h("tr", { "data-campaign": campaign.id },
            h("td", {}, campaign.name, " ",
              h("span", { class: "muted campaign-meta" }, `${campaign.menu || `menu ${campaign.menu_id}`} · ${campaign.pacing.calls_per_second}/s`),
              outcomes(campaignReports.get(campaign.id))),
            h("td", {}, badge(campaign.state)),
            h("td", { class: "progress-cell" },
              h("span", { class: "num" }, `${progress.fired}/${campaign.total}`),
              meter(progress.fired_percent),
              progress.ended_unfired ? h("span", { class: "muted" }, ` ${progress.ended_unfired} ended unfired`) : null,
              progress.held ? h("span", { class: "muted held" }, ` ${progress.held} held`) : null),
            h("td", { class: "num" }, progress.overdue || "–"),
            h("td", {}, dueTime(campaign.next_due_at) || "–"),
            h("td", { class: "wide" }, dueTime(campaign.last_due_at) || "–"),
          ),
        )
      : h("tr", {}, h("td", { class: "empty", colspan: 6 }, "No campaigns")),
  );
}

// The campaign's report, read again once it is REPORT_EVERY_MS old (the server shares one
// read between the tenant's dashboards); its row is drawn again when it comes.
async function loadCampaignReport(id) {
  const known = campaignReports.get(id);
  if (known && (known.loading || Date.now() - known.at < REPORT_EVERY_MS)) return;
  campaignReports.set(id, { ...known, loading: true, at: known ? known.at : 0 });
  try {
    const report = await request(`/dashboard/api/campaigns/${id}/report`);
    campaignReports.set(id, { at: Date.now(), report, loading: false });
  } catch {
    campaignReports.set(id, { at: Date.now(), report: known && known.report, loading: false });
    return;
  }
  renderCampaigns(shownCampaigns);
}

// A campaign's contacts by outcome (those with none left out), its redials and held calls.
function outcomes(known) {
  if (!known || !known.report) return null;
  const { report } = known;
  const parts = Object.entries(OUTCOMES)
    .filter(([name]) => report.outcomes[name])
    .map(([name, label]) => h("span", { class: "outcome", "data-outcome": name }, `${report.outcomes[name]} ${label}`));
  if (report.redials) parts.push(h("span", { class: "outcome", "data-outcome": "redials" }, `${report.redials} redial${report.redials === 1 ? "" : "s"}`));
  if (report.held) parts.push(h("span", { class: "outcome held", "data-outcome": "held" }, `${report.held} held`));
  const rate = report.contact_rate === null ? "" : `contact rate ${Math.round(report.contact_rate * 100)}%`;
  return h("div", { class: "campaign-outcomes muted", title: rate }, parts);
}

// A bar of `percent`; its width set through the style object (CSP refuses style attributes).
function meter(percent) {
  const fill = h("span");
  fill.style.width = `${percent}%`;
  return h("span", { class: "meter", title: `${percent}% fired` }, fill);
}

function renderSmsSessions(sessions, open) {
  $("sms-count").textContent = open > sessions.length ? `newest ${sessions.length} of ${open}` : "";
  replace(
    $("sms-sessions"),
    sessions.length
      ? sessions.map((session) =>
          h("tr", { "data-chat": session.id },
            h("td", { class: "mono" }, `#${session.id}`),
            h("td", { class: "mono" }, session.end_user_number),
            h("td", { class: "mono wide" }, session.outbound_number || "–"),
            h("td", {}, session.agent || h("span", { class: "muted" }, session.status)),
            h("td", {}, clockTime(session.created_at)),
            h("td", { class: "num wide" }, session.messages),
          ),
        )
      : h("tr", {}, h("td", { class: "empty", colspan: 6 }, "No open sessions")),
  );
}

function renderCalls(calls) {
  replace(
    $("calls"),
    calls.length
      ? calls.map((call) =>
          h("tr", {
              class: `clickable${call.id === openCall ? " selected" : ""}`,
              "data-call": call.id,
              onclick: () => openDetail(call.id),
            },
            h("td", { class: "mono" }, `#${call.id}`),
            h("td", { class: "wide" }, TYPES[call.call_type] || call.call_type),
            h("td", {}, badge(call.status),
              call.status === "failed" ? h("span", { class: "muted" }, ` ${call.fail_reason}`) : null),
            h("td", { class: "wide" }, call.menu || "–"),
            h("td", {}, call.agent || "–"),
            h("td", { class: "wide" }, clockTime(call.created_at)),
            h("td", { class: "num" },
              call.status === "scheduled" && call.scheduled_at
                ? `due ${dueTime(call.scheduled_at)}`
                : duration(call.wait_duration)),
            h("td", { class: "num wide" }, call.call_duration ? duration(call.call_duration) : "–"),
          ),
        )
      : h("tr", {}, h("td", { class: "empty", colspan: 8 }, "No calls yet")),
  );
}

async function openDetail(id, { quiet = false } = {}) {
  openCall = id;
  for (const row of document.querySelectorAll("#calls tr[data-call]")) {
    row.classList.toggle("selected", Number(row.dataset.call) === id);
  }
  try {
    const detail = await request(`/dashboard/api/calls/${id}`);
    if (openCall === id) renderDetail(detail);
  } catch (error) {
    if (error.status === 401) return showLogin("Your session has ended. Sign in again.");
    if (!quiet) replace($("detail-body"), h("p", { class: "error" }, `Call #${id}: ${error.message}`));
  }
}

function renderDetail({ call, history }) {
  const agent = call.agent_info ? call.agent_info.name : "–";
  const menu = call.selected_menu ? call.selected_menu.name : "–";
  replace(
    $("detail-body"),
    h("dl", { id: "detail-fields", "data-call": call.id, "data-status": call.status },
      h("dt", {}, "Call"), h("dd", { class: "mono" }, `#${call.id}`),
      h("dt", {}, "Status"), h("dd", {}, badge(call.status)),
      h("dt", {}, "Type"), h("dd", {}, call.call_type),
      h("dt", {}, "Menu"), h("dd", {}, menu),
      h("dt", {}, "Agent"), h("dd", { id: "detail-agent" }, agent),
      h("dt", {}, "Wait / talk"), h("dd", {}, `${duration(call.wait_duration)} / ${duration(call.call_duration)}`),
    ),
    h("h2", {}, "History"),
    h("ol", { class: "timeline", id: "history" },
      history.map((entry) => h("li", { "data-event": entry.event }, h("time", {}, clockTime(entry.at)), h("span", {}, describe(entry)))),
    ),
    h("details", { class: "raw" }, h("summary", {}, "Call object (JSON)"),
      h("pre", { class: "mono" }, JSON.stringify(call, null, 2))),
  );
}

function describe(entry) {
  const agent = agentNames.get(entry.agent_id) || `agent ${entry.agent_id}`;
  switch (entry.event) {
    case "created": return `Created (${entry.call_type})`;
    case "offered": return `Offered to ${agent}`;
    case "declined": return `Declined by ${agent}`;
    case "expired": return `Offer to ${agent} rang out`;
    case "withdrawn": return `Offer to ${agent} withdrawn`;
    case "accepted": return `Accepted by ${agent}: assigned`;
    case "cascade": return `Cascaded to ${entry.groups.join(", ")}`;
    case "status": {
      const why = entry.reason ? ` (${entry.reason})` : entry.by ? ` (${entry.by.replaceAll("_", " ")})` : "";
      return `${entry.from} → ${entry.to}${why}`;
    }
    default: return entry.event;
  }
}

start();
