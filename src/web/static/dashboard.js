// makrcave dashboard: one card per machine, updated live over the WebSocket (the Floor view):
// its state, its job, a "Bed cleared" button once a job ended on it, and a flag when its prints
// keep failing. The Today, Stock, Queue and Billing views are in today.js, stock.js, queue.js and
// billing.js. Plain JavaScript, no dependencies: it ships inside the binary.
// Every WebSocket message is also dispatched on `document` as a "floor" event, for the views.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "makrcave.token";
const SPACE_KEY = "makrcave.space";
const VIEW_KEY = "makrcave.view";
const VIEWS = ["floor", "today", "stock", "queue", "billing"];
const STATE_LABELS = {
  offline: "Offline", idle: "Idle", reserved: "Reserved", in_use: "In use", running: "Running",
  paused: "Paused", awaiting_clear: "Bed to clear", error: "Error", maintenance: "Maintenance",
};
const TYPE_LABELS = {
  "3d_printer": "3D printer", sla_printer: "SLA printer", laser_cutter: "Laser cutter",
  cnc_machine: "CNC", workstation: "Workstation", tool: "Tool",
};

let socket = null;
let reconnectDelay = 500;
const machines = new Map(); // equipment_id -> latest view
const cards = new Map();    // equipment_id -> card element
const people = new Map();   // user_id -> name, for those the token may see
const health = new Map();   // equipment_id -> its failed prints of the week (GET .../jobs/machine-health)
let healthWindowDays = 7;
// The snapshot says whether the signed-in person administers the space (admin-only buttons).
let spaceAdmin = false;

function personName(userId) { return people.get(userId) || userId; }

// The names of the space's members (makerspace admins may list them; others see user ids).
async function loadPeople() {
  const space = currentSpace();
  const page = await api(`/api/v1/makerspaces/${encodeURIComponent(space)}/members?page_size=200`).catch(() => null);
  if (!page || space !== currentSpace()) return;
  for (const m of page.members) if (m.user_id) people.set(m.user_id, m.full_name);
  for (const [id, card] of cards) render(card, machines.get(id));
}

function token() { return localStorage.getItem(TOKEN_KEY); }

// A view's loader: runs `fetchOnce` one call at a time; a call made while it runs (a change
// arrived meanwhile) runs it once more afterwards.
function oneAtATime(fetchOnce) {
  let running = null;
  let again = false;
  return async function load() {
    if (running) { again = true; return running; }
    running = (async () => {
      do {
        again = false;
        await fetchOnce();
      } while (again);
    })();
    try { await running; } finally { running = null; }
  };
}

async function api(path, method = "GET", payload) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: payload === undefined ? undefined : JSON.stringify(payload) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.detail || res.statusText), { status: res.status });
  return body;
}

// The view shown: ?view=today in the address, else the last one chosen.
function currentView() {
  const wanted = new URLSearchParams(location.search).get("view") || localStorage.getItem(VIEW_KEY);
  return VIEWS.includes(wanted) ? wanted : "floor";
}

function showView(view) {
  localStorage.setItem(VIEW_KEY, view);
  const params = new URLSearchParams(location.search);
  params.set("view", view);
  history.replaceState(null, "", `${location.pathname}?${params}${location.hash}`);
  $("views").hidden = false;
  for (const v of VIEWS) {
    $(v).hidden = v !== view;
    $(`tab-${v}`).setAttribute("aria-pressed", String(v === view));
  }
  document.dispatchEvent(new CustomEvent("view", { detail: view }));
}

function showLogin(message) {
  $("login").hidden = false;
  for (const v of VIEWS) $(v).hidden = true;
  $("views").hidden = true;
  $("space").hidden = true;
  $("logout").hidden = true;
  $("login-error").textContent = message || "";
  fetch("/demo/token").then((r) => { $("demo").hidden = !r.ok; }).catch(() => {});
}

// An invitation link (/?invite=CODE): say what it is, and accept it once signed in.
const INVITE_KEY = "makrcave.invite";
const inviteFromUrl = new URLSearchParams(location.search).get("invite");
if (inviteFromUrl) {
  sessionStorage.setItem(INVITE_KEY, inviteFromUrl);
  history.replaceState(null, "", location.pathname + location.hash);
}

async function showInvite() {
  const code = sessionStorage.getItem(INVITE_KEY);
  if (!code) return;
  $("invite").hidden = false;
  const res = await fetch("/api/v1/invites/validate", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ invite_token: code }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    $("invite-text").textContent = body.detail || "This invitation cannot be used.";
    $("invite-accept").hidden = true;
    sessionStorage.removeItem(INVITE_KEY);
    return;
  }
  $("invite-text").textContent = `You are invited to join ${body.makerspace_name} as ${body.role.replace("_", " ")}.` +
    (token() ? "" : " Sign in below, then accept.");
  $("invite-accept").hidden = !token();
}

$("invite-accept").addEventListener("click", async () => {
  const code = sessionStorage.getItem(INVITE_KEY);
  const res = await fetch(`/api/v1/members/invites/${encodeURIComponent(code)}/accept`, {
    method: "POST", headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" }, body: "{}",
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    $("invite-error").textContent = body.detail || res.statusText;
    return;
  }
  sessionStorage.removeItem(INVITE_KEY);
  localStorage.setItem(SPACE_KEY, body.makerspace_id);
  $("invite").hidden = true;
  start();
});
$("invite-dismiss").addEventListener("click", () => {
  sessionStorage.removeItem(INVITE_KEY);
  $("invite").hidden = true;
});

async function start() {
  showInvite();
  if (!token()) return showLogin();
  let spaces;
  try {
    spaces = await api("/api/v1/makerspaces");
  } catch (e) {
    if (e.status === 401) localStorage.removeItem(TOKEN_KEY);
    return showLogin(e.message);
  }
  $("login").hidden = true;
  $("logout").hidden = false;
  const select = $("space");
  select.replaceChildren(...spaces.map((s) => new Option(s.name, s.id)));
  select.hidden = spaces.length < 2;
  const wanted = new URLSearchParams(location.search).get("makerspace") || localStorage.getItem(SPACE_KEY);
  if (spaces.some((s) => s.id === wanted)) select.value = wanted;
  showView(currentView());
  if (!spaces.length) {
    $("summary").textContent = "Your token gives access to no makerspace.";
    return;
  }
  connect();
}

function currentSpace() { return $("space").value; }

$("kiosk-alert-dismiss").addEventListener("click", () => { $("kiosk-alert").hidden = true; });

function connect() {
  if (socket) socket.close();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/ws?token=${encodeURIComponent(token())}`);
  socket = ws;
  ws.onopen = () => {
    reconnectDelay = 500;
    setConnection(true);
    ws.send(JSON.stringify({ type: "subscribe", makerspace_id: currentSpace() }));
    loadPeople();
  };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    dispatch(msg);
    if (msg.type === "snapshot") {
      spaceAdmin = msg.admin === true;
      machines.clear();
      cards.clear();
      $("machines").replaceChildren();
      msg.machines.forEach(upsert);
      summarize();
      loadHealth();
    } else if (msg.type === "job" && msg.job.status === "failed") {
      loadHealth();
    } else if (msg.type === "machine") {
      upsert(msg.machine);
      summarize();
    } else if (msg.type === "machine_removed") {
      machines.delete(msg.equipment_id);
      cards.get(msg.equipment_id)?.remove();
      cards.delete(msg.equipment_id);
      summarize();
    } else if (msg.type === "member" && msg.member.user_id && !msg.member.removed) {
      people.set(msg.member.user_id, msg.member.name);
    } else if (msg.type === "error") {
      $("summary").textContent = msg.detail;
    } else if (msg.type === "unsubscribed" && msg.reason) {
      // The server ended the subscription: the membership no longer lets this person in.
      machines.clear();
      cards.clear();
      $("machines").replaceChildren();
      $("summary").textContent = `You no longer have access to this makerspace (${msg.reason.replace(/_/g, " ")}).`;
    } else if (msg.type === "kiosk_alert") {
      // Sent to the space's admins only: a kiosk saw too many unknown cards.
      const until = new Date(msg.until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
      $("kiosk-alert-text").textContent =
        `Kiosk "${msg.kiosk_name}" saw ${msg.unknown_cards} unknown cards in ${msg.window_s} s: slowed down until ${until}.`;
      $("kiosk-alert").hidden = false;
    }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    setConnection(false);
    // 4001: the token expired. Reconnecting with it cannot work: sign in again.
    if (event.code === 4001) {
      socket = null;
      localStorage.removeItem(TOKEN_KEY);
      return showLogin("Your session has expired: sign in again.");
    }
    setTimeout(() => { if (socket === ws) connect(); }, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 10000);
  };
}

// After the cards are drawn, so that the views see the same machines.
function dispatch(msg) {
  queueMicrotask(() => document.dispatchEvent(new CustomEvent("floor", { detail: msg })));
}

function setConnection(live) {
  const pill = $("connection");
  pill.textContent = live ? "live" : "offline";
  pill.className = `pill ${live ? "pill-on" : "pill-off"}`;
}

function upsert(m) {
  machines.set(m.equipment_id, m);
  let card = cards.get(m.equipment_id);
  if (!card) {
    card = $("card").content.firstElementChild.cloneNode(true);
    card.id = `machine-${m.equipment_id}`;
    card.dataset.equipmentId = m.equipment_id;
    card.querySelector(".clear-bed").addEventListener("click", () => clearBed(card));
    cards.set(m.equipment_id, card);
    const list = $("machines");
    const after = [...list.children].find((c) => machines.get(c.dataset.equipmentId).name.localeCompare(m.name) > 0);
    list.insertBefore(card, after || null);
  }
  render(card, m);
}

function render(card, m) {
  card.dataset.state = m.state;
  card.querySelector(".name").textContent = m.name;
  card.querySelector(".state").textContent = STATE_LABELS[m.state] || m.state;
  card.querySelector(".type").textContent = `${TYPE_LABELS[m.type] || m.type} · ${m.equipment_id}`;
  const job = card.querySelector(".job");
  job.hidden = !m.job;
  if (m.job) {
    const p = typeof m.job.progress === "number" ? m.job.progress : null;
    job.querySelector(".file").textContent = m.job.file || m.job.id || "job";
    job.querySelector(".fill").style.width = `${p ?? 0}%`;
    const remaining = typeof m.job.remaining_s === "number" ? ` · ${formatDuration(m.job.remaining_s)} left` : "";
    job.querySelector(".progress-text").textContent = p === null ? remaining : `${p.toFixed(1)}%${remaining}`;
  }
  const session = card.querySelector(".session");
  session.hidden = !m.session;
  if (m.session) {
    const until = m.session.until
      ? ` until ${new Date(m.session.until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false })}`
      : "";
    session.textContent = `Unlocked by ${personName(m.session.user_id)}${until}`;
  }
  // Why the machine is in error, when it says (OctoPrint refusing the key, a failed job).
  const fault = card.querySelector(".fault");
  fault.hidden = !m.error;
  fault.textContent = m.error || "";
  // A job ended: nothing starts on it until a person says its bed is clear.
  card.querySelector(".bed").hidden = m.state !== "awaiting_clear";
  renderHealth(card, m.equipment_id);
  const temps = card.querySelector(".temps");
  const rows = [];
  const t = m.temps || {};
  if (t.nozzle != null) rows.push(["Nozzle", degrees(t.nozzle, t.nozzle_target)]);
  if (t.bed != null) rows.push(["Bed", degrees(t.bed, t.bed_target)]);
  if (t.chamber != null) rows.push(["Chamber", degrees(t.chamber)]);
  if (m.relay_on != null) rows.push(["Plug", m.relay_on ? "on" : "off"]);
  if (m.power_w != null) rows.push(["Power", `${Math.round(m.power_w)} W`]);
  temps.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
  renderSpools(card.querySelector(".spools"), m);
  card.querySelector(".heard").textContent = m.last_heard ? `Last heard ${timeAgo(m.last_heard)}` : "Never heard from";
  card.querySelector(".heard").dataset.lastHeard = m.last_heard || "";
}

// Any person of the space may confirm the bed is clear (it is a fact seen at the machine); the
// card follows the machine's next state over the WebSocket.
async function clearBed(card) {
  const button = card.querySelector(".clear-bed");
  const error = card.querySelector(".bed-error");
  button.disabled = true;
  error.textContent = "";
  const path = `/api/v1/makerspaces/${encodeURIComponent(currentSpace())}/equipment/${encodeURIComponent(card.dataset.equipmentId)}/clear`;
  try {
    await api(path, "POST");
  } catch (e) {
    error.textContent = e.message;
  } finally {
    button.disabled = false;
  }
}

// The machines' failed prints of the week, fetched on connecting and after each failure.
async function loadHealth() {
  const space = currentSpace();
  const report = await api(`/api/v1/makerspaces/${encodeURIComponent(space)}/jobs/machine-health`).catch(() => null);
  if (!report || space !== currentSpace()) return;
  health.clear();
  for (const h of report.machines) health.set(h.equipment_id, h);
  healthWindowDays = report.window_days;
  for (const [id, card] of cards) renderHealth(card, id);
}

function renderHealth(card, equipmentId) {
  const h = health.get(equipmentId);
  const flagged = Boolean(h && h.flagged);
  const line = card.querySelector(".health");
  line.hidden = !flagged;
  line.textContent = flagged ? `${h.failures} failed prints in ${healthWindowDays} days: check the machine` : "";
  card.classList.toggle("flagged", flagged);
}

// The loaded spools (slot, colour swatch, material, grams left), and the trays a printer
// reports that disagree with them (another material or colour, or no spool registered).
function renderSpools(list, m) {
  const spools = m.spools || [];
  const trays = new Map((m.tray_matches || []).map((t) => [t.slot, t]));
  const item = (slot, color, text, warning) => {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    // Only a colour of the form the server sends becomes a style.
    if (/^#[0-9A-Fa-f]{6}$/.test(color || "")) swatch.style.backgroundColor = color;
    const label = document.createElement("span");
    label.textContent = `${slot} · ${text}`;
    li.append(swatch, label);
    if (warning) {
      const warn = document.createElement("span");
      warn.className = "warn";
      warn.textContent = warning;
      li.append(warn);
    }
    return li;
  };
  const rows = spools.map((s) => {
    const tray = trays.get(s.slot);
    const warning = tray && tray.status === "mismatch" ? `printer reports ${tray.material || "empty"}` : "";
    return item(s.slot, s.color, `${s.material || "filament"} · ${Math.round(s.remaining_g)} g`, warning);
  });
  for (const tray of trays.values()) {
    if (tray.status === "unregistered") rows.push(item(tray.slot, tray.color, tray.material, "unregistered"));
  }
  list.hidden = rows.length === 0;
  list.replaceChildren(...rows);
}

function degrees(value, target) {
  return target ? `${value.toFixed(1)} / ${Math.round(target)} °C` : `${value.toFixed(1)} °C`;
}

function formatDuration(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min`;
}

function timeAgo(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return new Date(iso).toLocaleString();
}

function summarize() {
  const counts = {};
  for (const m of machines.values()) counts[m.state] = (counts[m.state] || 0) + 1;
  $("empty").hidden = machines.size > 0;
  $("summary").textContent = machines.size
    ? `${machines.size} machines · ` + Object.entries(counts).map(([s, n]) => `${n} ${STATE_LABELS[s] || s}`.toLowerCase()).join(" · ")
    : "";
}

// Keep "last heard" fresh without waiting for messages.
setInterval(() => {
  for (const el of document.querySelectorAll(".heard")) {
    if (el.dataset.lastHeard) el.textContent = `Last heard ${timeAgo(el.dataset.lastHeard)}`;
  }
}, 5000);

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem(TOKEN_KEY, $("token").value.trim());
  start();
});
$("demo").addEventListener("click", async () => {
  const res = await fetch("/demo/token");
  if (!res.ok) return;
  const body = await res.json();
  localStorage.setItem(TOKEN_KEY, body.token);
  localStorage.setItem(SPACE_KEY, body.makerspace_id);
  start();
});
$("logout").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  if (socket) { const s = socket; socket = null; s.close(); }
  showLogin();
});
for (const v of VIEWS) $(`tab-${v}`).addEventListener("click", () => showView(v));
$("space").addEventListener("change", () => {
  localStorage.setItem(SPACE_KEY, currentSpace());
  connect();
});

// A token in the URL fragment (#token=...) signs in directly, and is removed from the address bar.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  localStorage.setItem(TOKEN_KEY, fragment.get("token"));
  history.replaceState(null, "", location.pathname + location.search);
}
start();
