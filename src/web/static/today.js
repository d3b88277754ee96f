// makrcave dashboard, the Today view: every machine's bookings of the day on a timeline (hours
// across, one row per machine) with the machine's live state beside its row, and what waits
// for an admin (booking requests, skill requests) with buttons to decide in place. It uses
// dashboard.js's helpers ($, api, currentSpace, machines, people) and its WebSocket feed ("floor"
// events): machine changes update the rows, booking and waitlist changes fetch the day again.
"use strict";

const ATTEMPT_LABELS = {
  granted: "unlocked", locked: "locked", not_in_use: "nothing to lock", unknown_card: "unknown card",
  member_suspended: "refused: membership suspended", member_expired: "refused: membership expired",
  member_pending: "refused: membership not active yet", membership_inactive: "refused: membership",
  insufficient_skills: "refused: certification missing", reserved_by_other: "refused: booked by someone else",
  maintenance: "refused: maintenance", machine_offline: "refused: machine offline",
  machine_error: "refused: machine error", machine_busy: "refused: in use by someone else",
};
const BOOKING_LABELS = {
  pending: "Awaiting approval", confirmed: "Confirmed", checked_in: "Checked in", completed: "Done",
  no_show: "No-show", cancelled: "Cancelled", rejected: "Rejected",
};
// Bookings that are off the book are not drawn.
const HIDDEN_STATUSES = new Set(["cancelled", "rejected"]);

const today = {
  bookings: [],   // today's reservations
  pending: [],    // reservations awaiting approval, from now on
  requests: [],   // pending skill requests
  waitlist: [],   // live waitlist entries
  attempts: [],   // the kiosks' latest unlocks and locks
  skills: new Map(), // skill_id -> name
  loading: null,
  again: false,
  timer: null,
  attemptsTimer: null,
};

function todayVisible() { return !$("today").hidden; }

function dayBounds() {
  const start = new Date();
  start.setHours(0, 0, 0, 0);
  const end = new Date(start);
  end.setDate(end.getDate() + 1);
  return [start, end];
}

function firstName(userId) {
  const name = people.get(userId);
  return name ? name.split(" ")[0] : userId;
}

function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

function span(r) {
  const start = new Date(r.start), end = new Date(r.end);
  const sameDay = start.toDateString() === new Date().toDateString();
  const day = sameDay ? "" : `${start.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" })} `;
  return `${day}${clock(start)}–${clock(end)}`;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Fetches the day (one fetch at a time; a change during a fetch fetches again after it).
async function loadToday() {
  if (today.loading) { today.again = true; return today.loading; }
  today.loading = (async () => {
    do {
      today.again = false;
      await fetchToday();
    } while (today.again);
  })();
  try { await today.loading; } finally { today.loading = null; }
}

async function fetchToday() {
  const space = currentSpace();
  if (!space) return;
  const base = `/api/v1/makerspaces/${encodeURIComponent(space)}`;
  const [from, to] = dayBounds();
  const q = (params) => new URLSearchParams(params).toString();
  const optional = (promise, fallback) => promise.catch(() => fallback);
  try {
    const [bookings, pending, requests, waitlist, members, skills, attempts] = await Promise.all([
      api(`${base}/reservations?${q({ from: from.toISOString(), to: to.toISOString(), limit: 1000 })}`),
      api(`${base}/reservations?${q({ status: "pending", from: new Date().toISOString(), limit: 200 })}`),
      optional(api(`/api/v1/skills/requests?${q({ makerspace_id: space, status: "pending" })}`), []),
      optional(api(`${base}/waitlist`), []),
      optional(api(`${base}/members?${q({ page_size: 200 })}`), { members: [] }),
      optional(api(`/api/v1/skills?${q({ makerspace_id: space })}`), []),
      optional(api(`${base}/kiosk-attempts`), []),
    ]);
    if (space !== currentSpace()) return;
    for (const m of members.members || []) if (m.user_id) people.set(m.user_id, m.full_name);
    for (const s of skills) today.skills.set(s.id, s.name);
    today.bookings = bookings.filter((r) => !HIDDEN_STATUSES.has(r.status));
    today.pending = pending;
    today.requests = requests;
    today.waitlist = waitlist;
    today.attempts = attempts.slice(0, 6);
    $("today-error").textContent = "";
  } catch (e) {
    $("today-error").textContent = `Cannot load the day: ${e.message}`;
  }
  renderToday();
}

// The hours shown: the working day (7:00 to 22:00), widened to every booking and to now.
function hourWindow(dayStart) {
  let first = 7, last = 22;
  const hourOf = (d) => (d - dayStart) / 3600000;
  const now = hourOf(new Date());
  first = Math.min(first, Math.floor(now));
  last = Math.max(last, Math.ceil(now + 0.01));
  for (const r of today.bookings) {
    first = Math.min(first, Math.floor(hourOf(new Date(r.start))));
    last = Math.max(last, Math.ceil(hourOf(new Date(r.end))));
  }
  return [Math.max(0, first), Math.min(24, last)];
}

function renderToday() {
  const [dayStart] = dayBounds();
  $("today-title").textContent = `Today · ${dayStart.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" })}`;
  const [first, last] = hourWindow(dayStart);
  const hours = last - first;
  const from = dayStart.getTime() + first * 3600000;
  const width = hours * 3600000;
  const pct = (t) => Math.min(100, Math.max(0, ((t - from) / width) * 100));

  const timeline = $("timeline");
  timeline.style.setProperty("--hours", hours);
  const head = el("div", "tl-row tl-head");
  head.append(el("div", "tl-machine", "Machine"));
  const scale = el("div", "tl-track tl-scale");
  for (let h = first; h < last; h++) {
    const tick = el("span", "tl-hour", `${String(h).padStart(2, "0")}:00`);
    tick.style.left = `${((h - first) / hours) * 100}%`;
    scale.append(tick);
  }
  const nowMark = el("div", "tl-now tl-now-head");
  nowMark.style.left = `${pct(Date.now())}%`;
  nowMark.append(el("span", "tl-now-label", clock(new Date())));
  scale.append(nowMark);
  head.append(scale);

  const rows = [head];
  const list = [...machines.values()].sort((a, b) => a.name.localeCompare(b.name));
  const nowLeft = pct(Date.now());
  for (const m of list) {
    const row = el("div", "tl-row");
    row.id = `tl-${m.equipment_id}`;
    row.dataset.equipmentId = m.equipment_id;
    const label = el("div", "tl-machine");
    label.append(el("span", "tl-name", m.name));
    const live = el("span", "tl-live");
    live.append(el("span", "state"), el("span", "tl-detail"));
    label.append(live);
    row.append(label);
    const track = el("div", "tl-track");
    for (const r of today.bookings.filter((b) => b.equipment_id === m.equipment_id)) {
      track.append(bookingBlock(r, pct));
    }
    const now = el("div", "tl-now");
    now.style.left = `${nowLeft}%`;
    track.append(now);
    row.append(track);
    paintState(row, m);
    rows.push(row);
  }
  if (!list.length) {
    const live = $("connection").textContent === "live";
    rows.push(el("p", "tl-empty", live ? "No machines in this makerspace yet." : "Connecting…"));
  }
  timeline.replaceChildren(...rows);
  renderInbox();
}

function bookingBlock(r, pct) {
  const start = new Date(r.start).getTime(), end = new Date(r.end).getTime();
  const block = el("div", `booking status-${r.status}`);
  block.id = `booking-${r.id}`;
  block.dataset.reservationId = r.id;
  block.dataset.status = r.status;
  block.style.left = `${pct(start)}%`;
  block.style.width = `${Math.max(0.6, pct(end) - pct(start))}%`;
  // Long and short labels: the block's width decides which shows (a container query).
  const who = el("span", "who");
  who.append(el("span", "long", personName(r.user_id)), el("span", "short", firstName(r.user_id)));
  const when = el("span", "when");
  when.append(el("span", "long", span(r)), el("span", "short", clock(new Date(r.start))));
  block.append(who, when);
  block.title = `${personName(r.user_id)} · ${span(r)} · ${BOOKING_LABELS[r.status] || r.status}` +
    (r.purpose ? `\n${r.purpose}` : "") + (r.kind === "maintenance" ? "\nMaintenance window" : "");
  if (r.kind === "maintenance") block.classList.add("maintenance");
  return block;
}

// The live state beside a row: the state, and who uses the machine or what it makes.
function paintState(row, m) {
  const state = row.querySelector(".tl-machine .state");
  row.dataset.state = m.state;
  state.textContent = STATE_LABELS[m.state] || m.state;
  const parts = [];
  if (m.session) {
    const until = m.session.until ? ` until ${clock(new Date(m.session.until))}` : "";
    parts.push(`${firstName(m.session.user_id)}${until}`);
  }
  if (m.job && typeof m.job.progress === "number") parts.push(`${m.job.progress.toFixed(0)}%`);
  const detail = parts.join(" · ");
  row.querySelector(".tl-detail").textContent = detail;
  state.title = detail;
}

function machineName(id) { return machines.get(id)?.name || id; }

// Whether a list already shows what `items` describe; a list is drawn again only when its
// content changes, so that a button never disappears under a click for a mere re-fetch.
function unchanged(list, items) {
  const key = JSON.stringify(items);
  if (list.dataset.key === key) return true;
  list.dataset.key = key;
  return false;
}

function renderInbox() {
  const bookings = $("pending-bookings");
  const bookingKey = today.pending.map((r) => [r.id, r.status, r.start, r.end, personName(r.user_id), machineName(r.equipment_id)]);
  if (!unchanged(bookings, bookingKey)) renderPendingBookings(bookings);
  const skills = $("pending-skills");
  const skillKey = today.requests.map((q) => [q.id, q.status, personName(q.user_id), today.skills.get(q.skill_id)]);
  if (!unchanged(skills, skillKey)) renderSkillRequests(skills);
  const waiting = $("waitlist");
  const waitKey = today.waitlist.map((w) => [w.id, w.status, personName(w.user_id), machineName(w.equipment_id)]);
  if (!unchanged(waiting, waitKey)) renderWaitlist(waiting);
  renderAttempts();
  $("pending-bookings-count").textContent = today.pending.length || "";
  $("pending-skills-count").textContent = today.requests.length || "";
  $("waitlist-count").textContent = today.waitlist.length || "";
  showInboxCount(today.pending.length + today.requests.length);
}

function renderPendingBookings(bookings) {
  bookings.replaceChildren(...today.pending.map((r) => {
    const item = el("li", "request");
    item.dataset.reservationId = r.id;
    item.append(el("strong", "", personName(r.user_id)));
    item.append(el("span", "what", `${machineName(r.equipment_id)} · ${span(r)}`));
    if (r.purpose) item.append(el("span", "why", r.purpose));
    item.append(actions(
      () => api(`/api/v1/makerspaces/${encodeURIComponent(r.makerspace_id)}/reservations/${encodeURIComponent(r.id)}/approve`, "POST", {}),
      () => api(`/api/v1/makerspaces/${encodeURIComponent(r.makerspace_id)}/reservations/${encodeURIComponent(r.id)}/reject`, "POST", { reason: "Declined from the dashboard" }),
    ));
    return item;
  }));
  if (!today.pending.length) bookings.append(el("li", "none", "Nothing to approve."));
}

function renderSkillRequests(skills) {
  skills.replaceChildren(...today.requests.map((q) => {
    const item = el("li", "request");
    item.dataset.requestId = q.id;
    item.append(el("strong", "", personName(q.user_id)));
    item.append(el("span", "what", `asks for ${today.skills.get(q.skill_id) || q.skill_id}`));
    if (q.reason) item.append(el("span", "why", q.reason));
    const decide = (status) => () => api(`/api/v1/skills/requests/${encodeURIComponent(q.id)}`, "PUT", { status });
    item.append(actions(decide("approved"), decide("rejected")));
    return item;
  }));
  if (!today.requests.length) skills.append(el("li", "none", "No skill requests."));
}

function renderWaitlist(waiting) {
  waiting.replaceChildren(...today.waitlist.map((w) => {
    const item = el("li", "request");
    item.append(el("strong", "", personName(w.user_id)));
    item.append(el("span", "what", `${machineName(w.equipment_id)} · ${span({ start: w.start, end: w.end })}`));
    item.append(el("span", "why", w.status === "offered" ? "Offered the slot" : "Waiting for the slot"));
    return item;
  }));
  if (!today.waitlist.length) waiting.append(el("li", "none", "Nobody is waiting."));
}

// The Today tab's badge: how many requests wait for a decision.
function showInboxCount(open) {
  $("inbox-count").hidden = !open;
  $("inbox-count").textContent = open;
}

// On the Floor view, only the badge is kept up to date.
async function loadInboxCount() {
  const space = currentSpace();
  if (!space) return;
  const q = (params) => new URLSearchParams(params).toString();
  const [pending, requests] = await Promise.all([
    api(`/api/v1/makerspaces/${encodeURIComponent(space)}/reservations?${q({ status: "pending", from: new Date().toISOString(), limit: 200 })}`).catch(() => []),
    api(`/api/v1/skills/requests?${q({ makerspace_id: space, status: "pending" })}`).catch(() => []),
  ]);
  if (space === currentSpace() && !todayVisible()) showInboxCount(pending.length + requests.length);
}

function renderAttempts() {
  const list = $("kiosk-activity");
  list.replaceChildren(...today.attempts.map((a) => {
    const item = el("li", a.granted ? "granted" : "denied");
    const who = a.user_id ? personName(a.user_id) : `card ${a.card_hint || "?"}`;
    item.append(el("strong", "", `${clock(new Date(a.at))} · ${who}`));
    item.append(el("span", "what", `${machineName(a.equipment_id)}: ${ATTEMPT_LABELS[a.reason] || a.reason}`));
    return item;
  }));
  if (!today.attempts.length) list.append(el("li", "none", "No card tapped yet."));
}

// The kiosks' attempts have no message of their own: ask again every few seconds.
async function loadAttempts() {
  const space = currentSpace();
  if (!space || !todayVisible()) return;
  const attempts = await api(`/api/v1/makerspaces/${encodeURIComponent(space)}/kiosk-attempts`).catch(() => null);
  if (!attempts || space !== currentSpace()) return;
  today.attempts = attempts.slice(0, 6);
  renderAttempts();
}

// Approve and reject buttons: they call the API, then the day is fetched again.
function actions(approve, reject) {
  const box = el("div", "actions");
  const yes = el("button", "approve", "Approve");
  const no = el("button", "reject secondary", "Reject");
  const error = el("span", "error");
  for (const [button, call] of [[yes, approve], [no, reject]]) {
    button.type = "button";
    button.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      error.textContent = "";
      try {
        await call();
      } catch (e) {
        error.textContent = e.message;
        yes.disabled = no.disabled = false;
        return;
      }
      loadToday();
    });
  }
  box.append(yes, no, error);
  return box;
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => (todayVisible() ? loadToday() : loadInboxCount()), 150);
}

document.addEventListener("floor", (event) => {
  const msg = event.detail;
  if (!todayVisible()) {
    if (msg.type === "snapshot" || msg.type === "reservation") refreshSoon();
    return;
  }
  if (msg.type === "snapshot" || msg.type === "machine_removed") {
    renderToday();
    refreshSoon();
  } else if (msg.type === "machine") {
    const row = document.getElementById(`tl-${msg.machine.equipment_id}`);
    if (row) paintState(row, msg.machine); else renderToday();
  } else if (msg.type === "reservation" || msg.type === "waitlist" || msg.type === "waitlist_offer") {
    refreshSoon();
  }
});

document.addEventListener("view", (event) => {
  clearInterval(today.timer);
  clearInterval(today.attemptsTimer);
  if (event.detail !== "today") return;
  renderToday();
  loadToday();
  // The now line moves, bookings start and end, skill requests arrive (they have no message).
  today.timer = setInterval(loadToday, 60000);
  today.attemptsTimer = setInterval(loadAttempts, 4000);
});
