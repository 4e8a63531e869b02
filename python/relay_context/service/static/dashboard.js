// Relay dashboard: reads the dashboard stream (Server-Sent Events) with fetch, so that the
// credential travels in a header. The credential comes from the URL fragment
// (#key=relay_... or #token=<jwt>; fragments are never sent to the server) or the form, and is
// kept in sessionStorage for this tab only.
"use strict";

const STORAGE_KEY = "relay.dashboard.credential";
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
  setText("auth-jwt", s.auth.jwt_algorithm + " active");
  setText("auth-keys", formatNumber(s.auth.api_keys_active));
  setText("auth-failures", formatNumber(s.auth.failures_total));
  setText("auth-principal", s.auth.principal + " (" + s.auth.role + ", " + s.auth.method + ")");
  setText("version", s.version);
  setText("backends", s.backends.database + (s.backends.redis ? " + redis" : ""));
  setText("updated", s.time);
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
