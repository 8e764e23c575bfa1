// Roost dashboard: a client of the admin API's JSON routes, with one server-sent-events stream
// per page for what changes. Written for this repository; no framework, nothing fetched from
// elsewhere. Every text reaches the page through textContent (never innerHTML).
"use strict";

const state = { csrf: "", me: null, stream: null, view: null, app: null, timers: [] };
const main = () => document.getElementById("main");

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
function ms(seconds) { return seconds === null || seconds === undefined ? "–" : `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`; }
function pct(share) { return share === null || share === undefined ? "–" : `${(share * 100).toFixed(1)} %`; }
function rate(perSecond) { return `${(perSecond || 0).toFixed(perSecond >= 10 ? 0 : 2)}/s`; }
function age(at) {
  const seconds = Math.max(0, Date.now() / 1000 - at);
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d`;
}
function clock(at) { return new Date(at * 1000).toLocaleTimeString([], { hour12: false }); }
// replaceChildren without the null/false children a condition left (it would print "null")
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}
function badge(word) { return h("span", { class: `badge s-${word}` }, word); }

function say(message, isError) {
  const box = document.getElementById("status");
  box.className = isError ? "status error" : "status";
  box.textContent = message;
}

async function api(method, path, body) {
  const headers = { "X-Roost-UI": "1" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && path !== "/ui/login") {
    showLogin(state.me ? "Your session has ended; log in again." : "");
    throw new Error("not logged in");
  }
  if (!response.ok) {
    const error = await response.json().catch(() => ({ message: response.statusText }));
    throw new Error(error.hint ? `${error.message} (${error.hint})` : error.message);
  }
  return response.status === 204 ? null : response.json();
}

function confirmChange(title, text, okLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel || "Confirm";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

// A change: confirm when it can drop traffic, call the API, then say what happened. The event
// the change produced arrives on the page's stream and is shown there too.
// True when the change was made.
async function change(what, call, ask, kind) {
  if (ask && !(await confirmChange(ask.title, ask.text, ask.ok))) return false;
  say(`${what}…`);
  state.awaiting = { what, kind, seen: null };
  try {
    await call();
    const awaiting = state.awaiting;
    if (awaiting && awaiting.seen) say(`✓ ${awaiting.seen}`);
    else say(`${what}: done.`);
    if (awaiting && awaiting.seen) state.awaiting = null;
    refreshApp();
    return true;
  } catch (error) {
    state.awaiting = null;
    say(`${what} failed: ${error.message}`, true);
    return false;
  }
}

// ---------------------------------------------------------------- streams

function openStream(app) {
  closeStream();
  const url = app ? `/ui/stream?app=${encodeURIComponent(app)}` : "/ui/stream";
  const stream = new EventSource(url);
  state.stream = stream;
  stream.addEventListener("overview", (e) => onOverview(JSON.parse(e.data)));
  stream.addEventListener("event", (e) => onEvent(JSON.parse(e.data)));
  stream.addEventListener("log", (e) => onLog(JSON.parse(e.data)));
  stream.addEventListener("chart", (e) => onChart(JSON.parse(e.data)));
  stream.addEventListener("error", () => {
    if (stream.readyState === EventSource.CLOSED) checkSession();
  });
}
function closeStream() {
  if (state.stream) state.stream.close();
  state.stream = null;
}
async function checkSession() {
  try { await api("GET", "/ui/session"); } catch { /* api() shows the login when it has ended */ }
}

let handlers = { overview: () => {}, event: () => {}, log: () => {}, chart: () => {} };
function onOverview(rows) { handlers.overview(rows); }
function onEvent(event) {
  handlers.event(event);
  const awaiting = state.awaiting;
  if (awaiting && !awaiting.seen && event.kind !== "api.call" && (!awaiting.kind || event.kind.startsWith(awaiting.kind))) {
    awaiting.seen = event.message; // the change's own event: say what happened, in the daemon's words
    say(`✓ ${event.message}`);
  }
}
function onLog(line) { handlers.log(line); }
function onChart(points) { handlers.chart(points); }

// ---------------------------------------------------------------- login

function showLogin(message) {
  closeStream();
  state.me = null;
  document.getElementById("who").hidden = true;
  setCrumbs([]);
  let mode = "password";
  const error = h("p", { class: "muted", role: "alert", id: "login-error" }, message || "");
  const fields = h("div", { id: "login-fields" });
  const tabs = h("div", { class: "tabs", role: "group", "aria-label": "How to log in" });
  const form = h("form", { "aria-labelledby": "login-title", onsubmit: submit }, tabs, fields,
    h("button", { type: "submit", id: "login-submit" }, "Log in"), error);
  function draw() {
    fill(tabs,
      h("button", { type: "button", id: "login-with-password", "aria-pressed": String(mode === "password"), onclick: () => { mode = "password"; draw(); } }, "Password"),
      h("button", { type: "button", id: "login-with-token", "aria-pressed": String(mode === "token"), onclick: () => { mode = "token"; draw(); } }, "Token"),
    );
    fill(fields, ...(mode === "password" ? [
      h("label", {}, "User", h("input", { name: "user", id: "login-user", autocomplete: "username", required: true })),
      h("label", {}, "Password", h("input", { name: "password", id: "login-password", type: "password", autocomplete: "current-password", required: true })),
    ] : [
      h("label", {}, "API token", h("input", { name: "token", id: "login-token", type: "password", autocomplete: "off", required: true })),
    ]));
  }
  async function submit(event) {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    error.textContent = "Checking…";
    try {
      const me = await api("POST", "/ui/login", data);
      signedIn(me);
    } catch (e) {
      error.textContent = e.message;
    }
  }
  draw();
  fill(main(), h("section", { class: "panel login" },
    h("h1", { id: "login-title" }, "Log in to Roost"),
    h("p", { class: "muted" }, "With a user made by `roost password`, or an API token. On the server, `roost ui` prints a one-time link."),
    form));
  const first = document.getElementById("login-user") || document.getElementById("login-token");
  if (first) first.focus();
}

function signedIn(me) {
  state.me = me;
  state.csrf = me.csrf;
  document.getElementById("who").hidden = false;
  document.getElementById("who-name").textContent = `${me.name} · ${me.access}`;
  say("");
  route();
}

async function logout() {
  try { await api("POST", "/ui/logout"); } catch { /* already gone */ }
  state.csrf = "";
  showLogin("You are logged out.");
}

// ---------------------------------------------------------------- routing

function setCrumbs(parts) {
  const nav = document.getElementById("crumbs");
  fill(nav, ...parts.flatMap((part, i) => [i ? " / " : "", part]));
}

function route() {
  if (!state.me) return;
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  handlers = { overview: () => {}, event: () => {}, log: () => {}, chart: () => {} };
  const match = location.hash.match(/^#\/app\/([a-z0-9-]+)/);
  if (match) showApp(match[1]);
  else showOverview();
  main().focus({ preventScroll: true });
}

// ---------------------------------------------------------------- overview

const COLUMNS = [
  ["App", "name"], ["State", "state"], ["Ready", "ready", "num"], ["Req/s", "rps", "num"],
  ["p95", "p95", "num"], ["Errors", "errors", "num"], ["Memory", "memory", "num"], ["Production", "production"],
];  // every column at every width: a narrow screen scrolls the table sideways (.scroll) instead of losing figures

function showOverview() {
  state.app = null;
  document.title = "Apps · Roost";
  setCrumbs([h("span", {}, "Apps")]);
  const body = h("tbody", { id: "apps-body" });
  const empty = h("p", { class: "muted", id: "apps-empty", hidden: true }, "No apps yet. Push one with `roost push`.");
  const table = h("table", { "aria-describedby": "apps-note" },
    h("caption", { class: "muted", id: "apps-note", hidden: true }, "Every app, updated live"),
    h("thead", {}, h("tr", {}, COLUMNS.map(([label, , cls]) => h("th", { scope: "col", class: cls || "" }, label)))),
    body);
  fill(main(),
    h("h1", {}, "Apps"),
    h("section", { class: "panel", "aria-label": "Apps" }, h("div", { class: "scroll" }, table), empty),
  );
  const rows = new Map();
  handlers.overview = (apps) => {
    empty.hidden = apps.length > 0;
    const seen = new Set();
    for (const app of apps) {
      seen.add(app.name);
      let row = rows.get(app.name);
      if (!row) {
        row = h("tr", { "data-app": app.name }, COLUMNS.map(([, key, cls]) => h("td", { class: cls || "", "data-key": key })));
        row.querySelector('[data-key="name"]').append(h("a", { href: `#/app/${app.name}` }, app.name));
        rows.set(app.name, row);
        body.append(row);
      }
      const cell = (key) => row.querySelector(`[data-key="${key}"]`);
      fill(cell("state"), badge(app.state));
      cell("ready").textContent = `${app.ready}/${app.instances}`;
      cell("rps").textContent = rate(app.rates.rps);
      cell("p95").textContent = ms(app.rates.p95);
      cell("errors").textContent = pct(app.rates.error_rate);
      cell("memory").textContent = size(app.memory);
      fill(cell("production"), app.production ? h("code", {}, app.production) : "–");
    }
    for (const [name, row] of rows) if (!seen.has(name)) { row.remove(); rows.delete(name); }
  };
  openStream(null);
}

// ---------------------------------------------------------------- one app

function section(id, title, ...children) {
  return h("section", { class: "panel", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), ...children);
}

function showApp(name) {
  state.app = name;
  state.details = null;
  document.title = `${name} · Roost`;
  setCrumbs([h("a", { href: "#/" }, "Apps"), h("span", { "aria-current": "page" }, name)]);
  fill(main(),
    h("h1", {}, name, h("span", { id: "app-state" })),
    h("div", { class: "figures", id: "figures", role: "group", "aria-label": "Now" }),
    h("div", { class: "actions panel", id: "app-actions" }),
    section("charts", "Last hour", h("div", { class: "charts", id: "chart-grid" })),
    section("deployments", "Deployments", h("div", { class: "scroll", id: "deployments-body" })),
    section("traffic", "Traffic split", h("div", { id: "split" })),
    section("instances", "Instances", h("div", { class: "scroll", id: "instances-body" })),
    h("div", { class: "grid" },
      section("logs", "Logs", logControls(), h("pre", { class: "log", id: "log", tabindex: "0", "aria-label": "Log lines", "aria-live": "off" })),
      section("events", "Events", h("ul", { class: "events", id: "events-list", "aria-live": "polite" }))),
    section("build", "Build log", h("p", { class: "muted", id: "build-which" }, "Choose “Build log” on a deployment."), h("pre", { class: "log", id: "build-log", tabindex: "0", hidden: true })),
    h("div", { class: "grid" },
      section("env", "Environment", h("div", { id: "env-body" })),
      section("scale", "Scale", h("div", { id: "scale-body" }))),
    h("div", { class: "grid" },
      section("cron", "Cron jobs", h("div", { id: "cron-body" })),
      section("domains", "Domains", h("div", { id: "domains-body" }))),
  );
  drawActions(name);
  handlers.overview = (rows) => drawFigures(rows.find((r) => r.name === name));
  handlers.event = (event) => {
    addEvent(event);
    if (event.kind === "deploy.started" && event.data && event.data.deployment) followBuild(name, event.data.deployment, false);  // a push's build, as it happens
    if (!event.kind.startsWith("api.")) refreshApp();
  };
  handlers.log = addLog;
  handlers.chart = drawCharts;
  state.timers.push(setInterval(tickUptimes, 1000));
  refreshApp();
  loadEvents(name);
  loadCron(name);
  loadEnv(name, false);
  openStream(name);
}

let refreshing = null;
function refreshApp() {
  if (!state.app || refreshing) return;
  const name = state.app;
  refreshing = setTimeout(async () => {
    refreshing = null;
    try {
      const details = await api("GET", `/v1/apps/${name}?events=0`);
      if (state.app !== name) return;
      state.details = details;
      drawDetails(details);
    } catch (e) {
      if (e.message !== "not logged in") say(`Could not load ${name}: ${e.message}`, true);
    }
  }, 150);
}

function drawFigures(row) {
  const box = document.getElementById("figures");
  if (!box || !row) return;
  fill(document.getElementById("app-state"), badge(row.state));
  const figures = [
    ["Ready", `${row.ready}/${row.instances}`, "fig-ready"], ["Requests", rate(row.rates.rps), "fig-rps"],
    ["p95", ms(row.rates.p95), "fig-p95"], ["Errors", pct(row.rates.error_rate), "fig-errors"],
    ["Memory", size(row.memory), "fig-memory"],
  ];
  if (!box.children.length) {
    box.append(...figures.map(([label, , id]) => h("div", { class: "figure" }, h("div", { class: "label", id: `${id}-label` }, label), h("div", { class: "value", id, "aria-labelledby": `${id}-label ${id}` }))));
  }
  for (const [, value, id] of figures) document.getElementById(id).textContent = value;
}

function drawActions(name) {
  const may = (role) => state.me && (state.me.admin || state.me.access.includes(role) || (role === "viewer" && state.me.access.includes("deployer")));
  const bar = document.getElementById("app-actions");
  fill(bar,
    h("button", { type: "button", id: "rollback", disabled: !may("deployer"), onclick: () => change("Roll back", () => api("POST", `/v1/apps/${name}/rollback`, {}),
      { title: `Roll back ${name}?`, text: "All traffic goes to the previous production deployment. Requests in flight finish on the current one.", ok: "Roll back" }, "deploy.rollback") }, "Roll back"),
    h("button", { type: "button", class: "quiet", disabled: !may("deployer"), onclick: () => change("Restart", () => api("POST", `/v1/apps/${name}/restart`),
      { title: `Restart ${name}?`, text: "New instances start before the old ones drain.", ok: "Restart" }) }, "Restart"),
    h("button", { type: "button", class: "quiet", disabled: !may("deployer"), onclick: () => change("Stop", () => api("POST", `/v1/apps/${name}/stop`),
      { title: `Stop ${name}?`, text: "Every instance stops; the app answers 503 until it is started again.", ok: "Stop" }) }, "Stop"),
    h("button", { type: "button", class: "quiet", disabled: !may("deployer"), onclick: () => change("Start", () => api("POST", `/v1/apps/${name}/start`)) }, "Start"),
    h("a", { class: "button quiet", id: "open-app", target: "_blank", rel: "noopener noreferrer", href: "#" }, "Open app ↗"),
    h("button", { type: "button", class: "quiet danger-text", id: "remove-app", disabled: !(state.me && state.me.admin), onclick: async () => {
      const done = await change(`Remove ${name}`, () => api("DELETE", `/v1/apps/${name}`),
        { title: `Remove ${name}?`, text: "Every deployment, instance, variable and domain of the app is deleted. Its URL answers 404 from now on. This cannot be undone.", ok: "Remove the app" });
      if (done) location.hash = "#/";
    } }, "Remove app"),
  );
}

function drawDetails(details) {
  const link = document.getElementById("open-app");
  if (link) link.href = details.url;
  drawDeployments(details);
  drawSplit(details);
  drawInstances();
  drawScale(details);
  drawDomains(details);
}

function drawDeployments(details) {
  const name = details.app.name;
  const rows = details.deployments.map((d) => h("tr", { "data-deployment": d.id },
    h("td", {}, h("code", {}, d.id)),
    h("td", {}, badge(d.status)),
    h("td", { class: "num" }, d.weight ? `${d.weight} %` : "–"),
    h("td", { class: "num" }, age(d.created_at)),
    h("td", { class: "msg" }, d.message || h("span", { class: "muted" }, "–")),
    h("td", { class: "row-actions" }, h("div", { class: "actions" },
      d.status === "ready" ? h("a", { href: d.preview_url, target: "_blank", rel: "noopener noreferrer" }, "preview") : null,
      d.status === "ready" && d.weight !== 100 ? h("button", { type: "button", class: "small", "data-promote": d.id,
        onclick: () => change(`Promote ${d.id}`, () => api("POST", `/v1/apps/${name}/promote`, { deployment: d.id }),
          { title: `Promote ${d.id}?`, text: "It takes all of the app's traffic; the current production drains.", ok: "Promote" }, "deploy.promoted") }, "Promote") : null,
      h("button", { type: "button", class: "small quiet", "data-build-log": d.id, onclick: () => followBuild(name, d.id) }, "Build log")))));
  fill(document.getElementById("deployments-body"), rows.length ? h("table", { class: "cards" },
    h("thead", {}, h("tr", {}, ["Deployment", "Status", "Traffic", "Age", "Message", ""].map((t, i) => h("th", { scope: "col", class: i === 2 || i === 3 ? "num" : "" }, t)))),
    h("tbody", {}, rows)) : h("p", { class: "muted" }, "No deployments yet."));
}

function drawSplit(details) {
  const box = document.getElementById("split");
  if (!box || box.contains(document.activeElement)) return; // never redraw under the user's hands
  const name = details.app.name;
  const ready = details.deployments.filter((d) => d.status === "ready").slice(0, 4);
  if (ready.length < 2) {
    fill(box, h("p", { class: "muted" }, "A split needs two ready deployments."));
    return;
  }
  const inputs = ready.map((d) => h("input", { type: "number", min: 0, max: 100, step: 1, value: d.weight, id: `weight-${d.id}`, "data-weight": d.id }));
  const total = h("span", { class: "split-total", id: "split-total", "aria-live": "polite" });
  const save = h("button", { type: "submit", id: "split-save" }, "Apply split");
  const sum = () => inputs.reduce((acc, input) => acc + (Number(input.value) || 0), 0);
  const update = () => {
    const value = sum();
    total.textContent = `Total ${value} %`;
    total.classList.toggle("bad", value !== 100);
    save.disabled = value !== 100;
  };
  const even = h("button", { type: "button", class: "quiet", id: "split-even", onclick: () => {
    const share = Math.floor(100 / inputs.length);
    inputs.forEach((input, i) => { input.value = i === 0 ? 100 - share * (inputs.length - 1) : share; });
    update();
  } }, "Split evenly");
  inputs.forEach((input) => input.addEventListener("input", update));
  const form = h("form", { class: "split", onsubmit: (event) => {
    event.preventDefault();
    const weights = Object.fromEntries(inputs.map((input) => [input.dataset.weight, Number(input.value) || 0]));
    const words = Object.entries(weights).map(([d, w]) => `${d} ${w} %`).join(", ");
    change("Traffic split", () => api("PUT", `/v1/apps/${name}/traffic`, { weights }),
      { title: `Split ${name}'s traffic?`, text: `New requests go ${words}. A deployment at 0 % drains.`, ok: "Apply" }, "traffic");
  } },
  ready.map((d, i) => h("div", { class: "split-row" }, h("label", { for: inputs[i].id, class: "inline" }, h("code", {}, d.id), d.message ? h("span", { class: "muted" }, d.message) : null), inputs[i], h("span", {}, "%"))),
  h("div", { class: "actions" }, total, even, save),
  h("p", { class: "note" }, "A visitor stays on the deployment first picked for them (a sticky cookie, roost_split), so a split moves new visitors, not returning ones."));
  fill(box, form);
  update();
}

function drawInstances() {
  const details = state.details;
  const box = document.getElementById("instances-body");
  if (!box || !details) return;
  const instances = details.instances;
  if (!instances.length) {
    fill(box, h("p", { class: "muted", id: "no-instances" }, "No instance runs now; a request starts one."));
    return;
  }
  fill(box, h("table", {},
    h("thead", {}, h("tr", {}, ["Instance", "State", "PID", "Uptime", "Memory", "CPU", "Start", "Restarts"].map((t, i) => h("th", { scope: "col", class: i >= 2 && i !== 6 ? "num" : "" }, t)))),
    h("tbody", {}, instances.map((i) => h("tr", { "data-instance": i.id },
      h("td", {}, h("code", {}, i.id), h("div", { class: "muted" }, i.deployment)),
      h("td", {}, badge(i.state)),
      h("td", { class: "num" }, i.pid ?? "–"),
      h("td", { class: "num", "data-started": i.started_at }, age(i.started_at)),
      h("td", { class: "num" }, size(i.memory)),
      h("td", { class: "num" }, i.cpu === null ? "–" : `${i.cpu.toFixed(1)} %`),
      h("td", {}, i.start_kind === "fork" ? "warm (fork)" : "cold (fresh)"),
      h("td", { class: "num" }, i.restarts))))));
}

function tickUptimes() {
  for (const cell of document.querySelectorAll("[data-started]")) cell.textContent = age(Number(cell.dataset.started));
}

function drawScale(details) {
  const box = document.getElementById("scale-body");
  if (!box || box.contains(document.activeElement)) return;
  const name = details.app.name;
  const scale = details.settings.scale || {};
  const field = (key, label, type) => h("label", {}, label, h("input", { name: key, id: `scale-${key}`, type: type || "number", min: 0, value: scale[key] ?? "" }));
  const form = h("form", { class: "fields", onsubmit: (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const body = {};
    for (const key of ["min", "max", "concurrency"]) if (data[key] !== "") body[key] = Number(data[key]);
    if (data.idle_timeout !== "") body.idle_timeout = /^\d+(\.\d+)?$/.test(data.idle_timeout) ? Number(data.idle_timeout) : data.idle_timeout;
    change("Scale", () => api("PATCH", `/v1/apps/${name}/scale`, body),
      Number(body.max) < (details.instances.length || 0) ? { title: "Fewer instances?", text: "Instances above the new maximum drain and stop.", ok: "Scale" } : null);
  } },
  field("min", "Min"), field("max", "Max"), field("concurrency", "Concurrency"), field("idle_timeout", "Idle timeout (s)", "text"),
  h("button", { type: "submit" }, "Save"));
  fill(box, form, h("p", { class: "note" }, `Mode ${details.app.mode}; settings from ${Object.values(details.sources || {}).filter((v, i, a) => a.indexOf(v) === i).join(", ") || "defaults"}.`));
}

function certificateText(domain) {
  const until = domain.not_after ? new Date(domain.not_after * 1000).toLocaleDateString() : "";
  switch (domain.state) {
    case "valid": return `valid until ${until}`;
    case "pending": return "pending (being issued)";
    case "failing": return `failing: ${domain.last_error || "the CA refused"}${domain.next_attempt ? ` · next try ${clock(domain.next_attempt)}` : ""}${until ? ` · old one valid until ${until}` : ""}`;
    case "expired": return `expired ${until}`;
    default: return "none (plain HTTP)";
  }
}

async function drawDomains(details) {
  const box = document.getElementById("domains-body");
  if (!box || box.contains(document.activeElement)) return;
  const name = details.app.name;
  let domains;
  try {
    domains = await api("GET", `/v1/apps/${name}/domains`);
  } catch (e) { fill(box, h("p", { class: "muted" }, e.message)); return; }
  const fallback = details.url.startsWith("https:") ? "served over HTTPS" : "none (plain HTTP)";
  const remove = (host) => h("button", { type: "button", class: "small quiet", "aria-label": `Remove ${host}`, disabled: !state.me.admin,
    onclick: () => change(`Remove ${host}`, () => api("DELETE", `/v1/apps/${name}/domains/${encodeURIComponent(host)}`),
      { title: `Remove ${host}?`, text: `Requests for ${host} stop reaching ${name} at once.`, ok: "Remove" }) }, "Remove");
  const hostInput = h("input", { id: "domain-host", name: "host", required: true, placeholder: "app.example.com", autocomplete: "off" });
  const form = h("form", { class: "fields", onsubmit: (event) => {
    event.preventDefault();
    change(`Add ${hostInput.value.trim()}`, () => api("POST", `/v1/apps/${name}/domains`, { host: hostInput.value.trim() }));
    hostInput.value = "";
  } }, h("label", { for: "domain-host" }, "Domain", hostInput), h("button", { type: "submit", disabled: !state.me.admin }, "Add"));
  if (box.contains(document.activeElement)) return;
  fill(box, h("table", {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Host"), h("th", { scope: "col" }, "Certificate"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
    h("tbody", {},
      h("tr", {}, h("td", {}, new URL(details.url).hostname, h("span", { class: "muted" }, " (default)")), h("td", {}, fallback), h("td", {})),
      domains.map((d) => h("tr", { "data-domain": d.host, "data-state": d.state }, h("td", {}, d.host),
        h("td", { class: d.state === "failing" || d.state === "expired" ? "bad" : "" }, d.source ? certificateText(d) : fallback), h("td", {}, remove(d.host)))))),
  form, state.me.admin ? null : h("p", { class: "note" }, "Adding a domain needs the admin role."));
}

async function loadCron(name) {
  const box = document.getElementById("cron-body");
  try {
    const jobs = await api("GET", `/v1/apps/${name}/cron`);
    fill(box, jobs.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Job", "Schedule", "Next", "Last"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, jobs.map((j) => h("tr", {}, h("td", {}, j.name, h("div", { class: "muted" }, j.path)), h("td", {}, h("code", {}, j.schedule)),
        h("td", { class: "num" }, clock(j.next_run)),
        h("td", {}, j.last_run ? `${clock(j.last_run)} · ${j.last_status ? `HTTP ${j.last_status}` : j.last_error || "–"}` : "never")))))
      : h("p", { class: "muted" }, "No cron jobs (roost.toml's [cron])."));
  } catch (e) { fill(box, h("p", { class: "muted" }, e.message)); }
}

async function loadEnv(name, reveal) {
  const box = document.getElementById("env-body");
  try {
    const vars = await api("GET", `/v1/apps/${name}/env${reveal ? "?reveal=true" : ""}`);
    const button = h("button", { type: "button", class: "quiet", id: "env-reveal", onclick: () => loadEnv(name, !reveal) }, reveal ? "Hide values" : "Reveal values");
    const unset = (v) => h("button", { type: "button", class: "small quiet", "aria-label": `Unset ${v.name}`, onclick: async () => {
      if (await change(`Unset ${v.name}`, () => api("POST", `/v1/apps/${name}/env/unset`, { names: [v.name] }),
        { title: `Unset ${v.name}?`, text: "The app restarts (rolling) without it; code that needs it may fail.", ok: "Unset" }, "env")) loadEnv(name, reveal);
    } }, "Unset");
    const nameInput = h("input", { id: "env-name", name: "name", required: true, pattern: "[A-Za-z_][A-Za-z0-9_]*", autocomplete: "off", placeholder: "NAME" });
    const valueInput = h("input", { id: "env-value", name: "value", type: "password", autocomplete: "off", placeholder: "value" });
    const form = h("form", { class: "fields", onsubmit: async (event) => {
      event.preventDefault();
      const values = { [nameInput.value.trim()]: valueInput.value };
      if (await change(`Set ${nameInput.value.trim()}`, () => api("POST", `/v1/apps/${name}/env`, { values }), null, "env")) {
        form.reset();
        loadEnv(name, reveal);
      }
    } },
    h("label", { for: "env-name" }, "Name", nameInput), h("label", { for: "env-value" }, "Value", valueInput),
    h("button", { type: "submit", id: "env-set" }, "Set"));
    fill(box, vars.length ? h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col", class: "hide-narrow" }, "From"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
      h("tbody", {}, vars.map((v) => h("tr", { "data-env": v.name }, h("td", {}, h("code", {}, v.name)), h("td", { class: "env-value" }, v.value), h("td", { class: "muted hide-narrow" }, v.source), h("td", {}, v.source === "roost env" ? unset(v) : null)))))
      : h("p", { class: "muted" }, "No variables yet."),
    vars.length ? h("div", { class: "actions" }, button, h("span", { class: "note" }, "Revealing needs the deployer role and is recorded in the audit log.")) : null,
    form, h("p", { class: "note" }, "Values are stored encrypted; setting or unsetting one restarts the app (rolling)."));
  } catch (e) {
    if (reveal) say(`Reveal refused: ${e.message}`, true);
    else fill(box, h("p", { class: "muted" }, e.message));
  }
}

// ---------------------------------------------------------------- events and logs

async function loadEvents(name) {
  try {
    const events = await api("GET", `/v1/events?app=${encodeURIComponent(name)}&limit=30`);
    const list = document.getElementById("events-list");
    if (!list || state.app !== name) return;
    const shown = new Set([...list.children].map((li) => li.dataset.id));
    for (const event of events) if (!shown.has(String(event.id))) addEvent(event, true);
  } catch { /* the stream still brings new ones */ }
}

function addEvent(event, older) {
  const list = document.getElementById("events-list");
  if (!list || list.querySelector(`[data-id="${event.id}"]`)) return;
  const item = h("li", { "data-kind": event.kind, "data-id": event.id }, h("time", { datetime: new Date(event.at * 1000).toISOString() }, clock(event.at)),
    h("span", {}, h("span", { class: "kind" }, event.kind), event.message));
  if (older) {
    const after = [...list.children].find((li) => Number(li.dataset.id) < event.id);
    list.insertBefore(item, after || null);
  } else list.prepend(item);
  while (list.children.length > 200) list.lastChild.remove();
}

const logFilter = { kind: "all", level: "all", deployment: "", follow: true };
function logControls() {
  const select = (id, label, options, key) => h("label", {}, label, h("select", { id, onchange: (e) => { logFilter[key] = e.target.value; redrawLog(); } },
    options.map(([value, text]) => h("option", { value }, text))));
  return h("div", { class: "logbar" },
    select("log-kind", "Lines", [["all", "all"], ["request", "requests"], ["app", "app output"]], "kind"),
    select("log-level", "Level", [["all", "any"], ["warning", "warnings and errors"], ["error", "errors"]], "level"),
    h("label", {}, "Deployment", h("input", { id: "log-deployment", placeholder: "all", size: 10, oninput: (e) => { logFilter.deployment = e.target.value.trim(); redrawLog(); } })),
    h("label", { class: "inline" }, h("input", { type: "checkbox", id: "log-follow", checked: true, onchange: (e) => { logFilter.follow = e.target.checked; } }), "Follow"));
}

const logLines = [];
function levelOf(line) {
  if (line.kind === "request") return line.status >= 500 ? "error" : line.status >= 400 ? "warning" : "info";
  if (/\b(error|critical|exception|traceback)\b/i.test(line.text)) return "error";
  if (/\bwarn(ing)?\b/i.test(line.text) || line.source === "stderr") return "warning";
  return "info";
}
function shown(line) {
  const level = levelOf(line);
  if (logFilter.kind !== "all" && line.kind !== logFilter.kind) return false;
  if (logFilter.level === "error" && level !== "error") return false;
  if (logFilter.level === "warning" && level === "info") return false;
  return !logFilter.deployment || line.deployment.startsWith(logFilter.deployment);
}
function lineNode(line) {
  const level = levelOf(line);
  return h("span", { class: `l-${line.kind === "request" && level === "info" ? "request" : level}` },
    `${clock(line.at)} ${line.deployment} ${line.text}\n`);
}
function addLog(line) {
  logLines.push(line);
  if (logLines.length > 2000) logLines.shift();
  const pre = document.getElementById("log");
  if (!pre || !shown(line)) return;
  pre.append(lineNode(line));
  while (pre.childNodes.length > 1000) pre.firstChild.remove();
  if (logFilter.follow) pre.scrollTop = pre.scrollHeight;
}
function redrawLog() {
  const pre = document.getElementById("log");
  if (!pre) return;
  fill(pre, ...logLines.filter(shown).slice(-1000).map(lineNode));
  if (logFilter.follow) pre.scrollTop = pre.scrollHeight;
}

async function followBuild(name, deployment, focus = true) {
  const pre = document.getElementById("build-log");
  document.getElementById("build-which").textContent = `Deployment ${deployment}:`;
  pre.hidden = false;
  fill(pre);
  const token = (state.buildToken = {});
  try {
    const response = await fetch(`/v1/apps/${name}/deployments/${deployment}/log`, { headers: { "X-Roost-UI": "1" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done || state.buildToken !== token) break;
      pre.append(decoder.decode(value, { stream: true }));
      pre.scrollTop = pre.scrollHeight;
    }
  } catch (e) {
    pre.append(`\n(${e.message})`);
  }
  if (focus) pre.focus();
}

// ---------------------------------------------------------------- charts

const CHARTS = [
  { id: "requests", title: "Requests by status", unit: (v) => rate(v), series: [["2xx", 1, "c2"], ["3xx", 2, "c3"], ["4xx", 3, "c4"], ["5xx", 4, "c5"]], value: (p, i) => p.requests[i] },
  { id: "latency", title: "Latency p50 / p95", unit: ms, series: [["p50", "p50", "c3"], ["p95", "p95", "c1"]], value: (p, key) => p[key] ?? 0 },
  { id: "starts", title: "Starts", unit: (v) => `${v}`, series: [["cold", 0, "c5"], ["warm", 1, "c4"], ["hot", 2, "c2"]], value: (p, i) => p.starts[i] },
  { id: "instances", title: "Instances", unit: (v) => `${v}`, series: [["ready", "instances", "c3"]], value: (p, key) => p[key] },
  { id: "memory", title: "Memory", unit: size, series: [["memory", "memory", "c1"]], value: (p, key) => p[key] },
];

function drawCharts(points) {
  const grid = document.getElementById("chart-grid");
  if (!grid) return;
  if (!grid.children.length) {
    grid.append(...CHARTS.map((c) => h("figure", { class: "chart", id: `chart-${c.id}` },
      h("figcaption", { id: `chart-${c.id}-title` }, h("span", {}, c.title), h("span", { class: "num", id: `chart-${c.id}-now` })),
      h("div", { id: `chart-${c.id}-svg` }),
      h("div", { class: "legend", "aria-hidden": "true" }, c.series.map(([label, , color]) => h("span", { class: `k-${color}` }, label))))));
  }
  for (const chart of CHARTS) drawChart(chart, points);
}

function drawChart(chart, points) {
  const holder = document.getElementById(`chart-${chart.id}-svg`);
  const width = Math.max(160, holder.clientWidth || 300), height = 110, pad = 4, axis = 18;
  // the last hour at most; while the daemon has kept less, the last five minutes at least
  const now = Date.now() / 1000;
  const start = Math.max(now - 3600, Math.min(points.length ? points[0].at - 10 : now, now - 300));
  const values = chart.series.map(([, key]) => points.map((p) => chart.value(p, key)));
  const top = Math.max(...values.flat(), 0) || 1;
  const x = (at) => axis + ((at - start) / (now - start)) * (width - axis - pad);
  const y = (v) => height - pad - (v / top) * (height - 2 * pad - 8);
  const last = points.length ? points[points.length - 1] : null;
  const latest = chart.series.map(([label, key]) => `${label} ${chart.unit(last ? chart.value(last, key) : 0)}`).join(", ");
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${chart.title}, last hour; now ${latest}`, "data-chart": chart.id, "data-points": points.length,
    "data-last": last ? chart.series.reduce((acc, [, key]) => acc + Number(chart.value(last, key) || 0), 0) : 0,
    "data-peak": Math.max(0, ...points.map((p) => chart.series.reduce((acc, [, key]) => acc + Number(chart.value(p, key) || 0), 0))) });
  svg.append(s("title", {}, `${chart.title}: now ${latest}`));
  for (const share of [0, 0.5, 1]) svg.append(s("line", { class: "grid-line", x1: axis, x2: width - pad, y1: y(top * share), y2: y(top * share) }));
  svg.append(s("text", { x: 0, y: 10 }, compact(top, chart)));
  svg.append(s("text", { x: axis, y: height - 6 }, `−${Math.round((now - start) / 60)} min`));
  chart.series.forEach(([, , color], index) => {
    if (!points.length) return;
    const coords = points.map((p, i) => `${x(p.at).toFixed(1)},${y(values[index][i]).toFixed(1)}`);
    if (coords.length === 1) coords.unshift(`${x(points[0].at - 10).toFixed(1)},${y(values[index][0]).toFixed(1)}`);
    svg.append(s("polyline", { class: `stroke-${color}`, points: coords.join(" "), "vector-effect": "non-scaling-stroke" }));
  });
  fill(holder, svg);
  document.getElementById(`chart-${chart.id}-now`).textContent = last ? chart.unit(chart.series.reduce((acc, [, key]) => acc + Number(chart.value(last, key) || 0), 0)) : "–";
}

function compact(top, chart) {
  if (chart.id === "memory") return size(top);
  if (chart.id === "latency") return ms(top);
  return top >= 10 ? top.toFixed(0) : top.toFixed(top < 1 ? 2 : 1);
}

// ---------------------------------------------------------------- start

async function start() {
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  try {
    const me = await api("GET", "/ui/session");
    signedIn(me);
  } catch (e) {
    if (e.message !== "not logged in") showLogin(e.message);
  }
}

document.addEventListener("DOMContentLoaded", start);
