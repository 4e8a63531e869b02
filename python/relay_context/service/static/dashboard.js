// Relay dashboard: reads the dashboard stream (Server-Sent Events) with fetch, so that the
// credential travels in a header. The credential comes from the URL fragment
// (#key=relay_... or #token=<jwt>; fragments are never sent to the server) or the form, and is
// kept in sessionStorage for this tab only.
"use strict";

const STORAGE_KEY = "relay.dashboard.credential";
const THEME_KEY = "relay.dashboard.theme";
const STREAM_URL = "/api/v1/dashboard/stream";

function credentialFromFragment() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const value = params.get("key") || params.get("token");
  if (value) {
    sessionStorage.setItem(STORAGE_KEY, value);
    history.replaceState(null, "", window.location.pathname);  // keep it out of the address bar
  }
  return sessionStorage.getItem(STORAGE_KEY);
}

function authHeaders(credential) {
  return credential.startsWith("relay_")
    ? { "X-API-Key": credential }
    : { Authorization: "Bearer " + credential };
}

function setText(id, value) {
  document.getElementById(id).textContent = value;
}

function formatNumber(n) {
  return Number(n).toLocaleString("en-US");
}

function setStatus(state, text) {
  const el = document.getElementById("status");
  el.dataset.state = state;
  el.textContent = text;
}

function showError(text) {
  const el = document.getElementById("error");
  el.textContent = text;
  el.hidden = !text;
}

function render(s) {
  setText("tokens-used", formatNumber(s.tokens.used));
  setText("tokens-budget", formatNumber(s.tokens.budget));
  setText("tokens-percent", (100 * s.tokens.utilization).toFixed(1) + "%");
  document.getElementById("tokens-meter").value = s.tokens.utilization;
  setText("tokens-counted", formatNumber(s.tokens.counted_total));
  setText("rate-remaining", formatNumber(s.rate_limit.remaining));
  setText("rate-limit", formatNumber(s.rate_limit.limit));
  setText("rate-window", formatNumber(s.rate_limit.window_seconds));
  document.getElementById("rate-meter").value =
    s.rate_limit.limit ? s.rate_limit.remaining / s.rate_limit.limit : 0;
  setText("rate-limited", formatNumber(s.rate_limit.limited_total));
  setText("sessions-active", formatNumber(s.sessions.active));
  setText("sessions-created", formatNumber(s.sessions.created_total));
  setText("compression-ratio", s.compression.ratio.toFixed(2));
  setText("compression-saved", formatNumber(s.compression.tokens_saved));
  setText("cache-hit-rate", (100 * s.cache.hit_rate).toFixed(1) + "%");
  if (s.handoff) {
    setText("handoff-payloads", formatNumber(s.handoff.payloads));
    setText("handoff-bytes", formatNumber(s.handoff.payload_bytes));
    setText("handoff-stored", formatNumber(s.handoff.stored_bytes));
    setText("handoff-dedup", formatNumber(s.handoff.dedup_saved_bytes));
    setText("handoff-channels", formatNumber(s.handoff.channels));
    setText("handoff-subscribers", formatNumber(s.handoff.subscribers));
  }
  if (s.gateway) renderGateway(s.gateway);
  setText("auth-jwt", s.auth.jwt_algorithm + " active");
  setText("auth-keys", formatNumber(s.auth.api_keys_active));
  setText("auth-failures", formatNumber(s.auth.failures_total));
  setText("auth-principal", s.auth.principal + " (" + s.auth.role + ", " + s.auth.method + ")");
  setText("version", s.version);
  setText("backends", s.backends.database + (s.backends.redis ? " + redis" : ""));
  setText("updated", s.time);
}

// --- the gateway panels (GET /api/v1/gateway/stats, also the snapshot's "gateway") ----------

function formatUsd(n) {
  return Number(n).toFixed(6);
}

function formatRate(r) {
  return (100 * r).toFixed(1) + "%";
}

function renderGateway(g) {
  setText("gw-saved-usd", formatUsd(g.totals.saved_usd));
  setText("gw-cost-usd", formatUsd(g.totals.cost_usd));
  setText("gw-requests", formatNumber(g.totals.requests));
  setText("gw-errors", formatNumber(g.totals.errors));
  setText("gw-exact-rate", formatRate(g.cache.exact_hit_rate));
  setText("gw-exact-hits", formatNumber(g.cache.exact_hits));
  setText("gw-fuzzy-rate", formatRate(g.cache.fuzzy_hit_rate));
  setText("gw-fuzzy-hits", formatNumber(g.cache.fuzzy_hits));
  setText("gw-coalesced", formatNumber(g.cache.coalesced));
  setText("gw-misses", formatNumber(g.cache.misses));
  setText("gw-lookups", formatNumber(g.cache.lookups));
  setText("gw-prompt-cache-tokens", formatNumber(g.totals.prompt_cache_tokens));
  setText("gw-input-tokens", formatNumber(g.totals.input_tokens));
  setText("gw-output-tokens", formatNumber(g.totals.output_tokens));
  renderSpend(g.spend);
  renderBreakers(g.breakers);
  dashboard.stats = g;
  renderCharts();
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

function renderSpend(rows) {
  const body = document.getElementById("gw-spend");
  const fresh = rows.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.provider = r.provider;
    tr.dataset.model = r.model;
    cell(tr, r.provider);
    cell(tr, r.model);
    cell(tr, formatNumber(r.requests));
    cell(tr, formatNumber(r.input_tokens));
    cell(tr, formatNumber(r.output_tokens));
    cell(tr, formatNumber(r.cached_input_tokens));
    cell(tr, formatUsd(r.cost_usd));
    return tr;
  });
  body.replaceChildren(...fresh);
}

function renderBreakers(states) {
  const list = document.getElementById("gw-breakers");
  const names = Object.keys(states).sort();
  if (!names.length) return;
  list.replaceChildren(...names.map((name) => {
    const li = document.createElement("li");
    li.dataset.upstream = name;
    const label = document.createElement("span");
    label.textContent = name;
    const state = document.createElement("strong");
    state.dataset.breaker = states[name];
    state.textContent = states[name].replace("_", "-");
    li.append(label, state);
    return li;
  }));
}

// --- charts (uPlot, static/vendor) ------------------------------------------------------------

const BLUE = "#3b82f6", RED = "#ef4444", GREEN = "#22c55e", PURPLE = "#a855f7";
// Each chart: the series (field of the stats' series, label, colour); hit rate is derived per
// bucket and drawn with points, since buckets without lookups are gaps.
const CHARTS = {
  requests: {
    el: "chart-requests", series: [["requests", "Requests", BLUE], ["errors", "Errors", RED]],
  },
  tokens: {
    el: "chart-tokens",
    series: [["input_tokens", "Input", BLUE], ["output_tokens", "Output", PURPLE],
      ["cached_input_tokens", "Cached prefix", GREEN]],
  },
  spend: {
    el: "chart-spend", series: [["cost_usd", "Spent", RED], ["saved_usd", "Saved", GREEN]],
  },
  hit_rate: { el: "chart-hit-rate", series: [["hit_rate", "Hit rate", BLUE]], points: true },
};
// State the tests read: the stats drawn, the uPlot instances, the range shown.
const dashboard = { stats: null, charts: {}, range: "hour", builtFor: "" };
window.relayDashboard = dashboard;

function seriesColumn(points, field) {
  if (field !== "hit_rate") return points[field];
  return points.t.map((_, i) => {
    const hits = points.exact_hits[i] + points.fuzzy_hits[i];
    const lookups = hits + points.coalesced[i] + points.misses[i];
    return lookups ? hits / lookups : null;
  });
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function chartOptions(spec, width) {
  const axis = { stroke: cssVar("--fg"), grid: { stroke: cssVar("--grid") },
    ticks: { stroke: cssVar("--grid") } };
  return {
    width,
    height: 180,
    series: [{}, ...spec.series.map(([, label, stroke]) => ({
      label, stroke, width: 1.5, spanGaps: false,
      points: spec.points ? { show: true, size: 6, fill: stroke } : { show: false },
    }))],
    axes: [axis, { ...axis, size: 60 }],
    scales: spec === CHARTS.hit_rate ? { y: { range: [0, 1] } } : {},
    legend: { show: true },
  };
}

function renderCharts() {
  const g = dashboard.stats;
  if (!g || typeof uPlot === "undefined") return;
  const points = g.series[dashboard.range];
  // Rebuilt when the range or the theme changes (colours are fixed when a chart is built).
  const key = dashboard.range + "/" + effectiveTheme();
  for (const [name, spec] of Object.entries(CHARTS)) {
    const data = [points.t, ...spec.series.map(([field]) => seriesColumn(points, field))];
    let chart = dashboard.charts[name];
    if (chart && dashboard.builtFor !== key) {
      chart.destroy();
      chart = null;
    }
    if (!chart) {
      const el = document.getElementById(spec.el);
      const width = Math.max(300, el.clientWidth || 400);
      chart = new uPlot(chartOptions(spec, width), data, el);
      dashboard.charts[name] = chart;
    } else {
      chart.setData(data);
    }
  }
  dashboard.builtFor = key;
}

// --- theme: the system's (prefers-color-scheme) until the toggle picks one ----------------------

const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");

function effectiveTheme() {
  return document.documentElement.dataset.theme || (darkQuery.matches ? "dark" : "light");
}

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  setText("theme-name", effectiveTheme() + (theme ? "" : " (system)"));
  renderCharts();
}

function setUpTheme() {
  const stored = localStorage.getItem(THEME_KEY);
  applyTheme(stored === "dark" || stored === "light" ? stored : null);
  document.getElementById("theme-toggle").addEventListener("click", () => {
    const next = effectiveTheme() === "dark" ? "light" : "dark";
    localStorage.setItem(THEME_KEY, next);
    applyTheme(next);
  });
  darkQuery.addEventListener("change", () => applyTheme(document.documentElement.dataset.theme));
  document.getElementById("chart-range").addEventListener("change", (event) => {
    dashboard.range = event.target.value;
    renderCharts();
  });
}

// Parses one SSE block ("field: value" lines); returns {event, data} or null for comments.
function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}

async function follow(credential) {
  setStatus("connecting", "connecting");
  const response = await fetch(STREAM_URL, {
    headers: { ...authHeaders(credential), Accept: "text/event-stream" },
    cache: "no-store",
  });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      message = (await response.json()).error.message;
    } catch (_) { /* not the JSON error shape */ }
    const fatal = response.status === 401 || response.status === 403;
    throw Object.assign(new Error(message), { fatal });
  }
  setStatus("live", "live");
  showError("");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const parsed = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (parsed && parsed.event === "snapshot") render(JSON.parse(parsed.data));
    }
  }
}

async function run() {
  setUpTheme();
  const form = document.getElementById("login");
  let credential = credentialFromFragment();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = document.getElementById("credential").value.trim();
    if (!value) return;
    sessionStorage.setItem(STORAGE_KEY, value);
    window.location.reload();
  });
  if (!credential) {
    form.hidden = false;
    setStatus("idle", "no credential");
    return;
  }
  let delay = 1000;
  for (;;) {
    try {
      await follow(credential);
      delay = 1000;
      setStatus("connecting", "reconnecting");
    } catch (error) {
      setStatus("error", "disconnected");
      showError(error.message);
      if (error.fatal) {
        sessionStorage.removeItem(STORAGE_KEY);
        form.hidden = false;
        return;
      }
      delay = Math.min(delay * 2, 30000);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

run();
