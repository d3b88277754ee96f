// makrcave kiosk: a tablet beside the machines. A USB card reader types the card's UID and
// Enter into the focused (off-screen) input; the page asks the server and shows the answer
// in plain words. Plain JavaScript, shipped inside the binary.
"use strict";

const $ = (id) => document.getElementById(id);
const DEVICE_KEY = "makrcave.kiosk.device";
const MACHINE_KEY = "makrcave.kiosk.machine";
const REASONS = {
  granted: "Unlocked",
  unknown_card: "This card is not known here. Ask a staff member to register it.",
  member_suspended: "Your membership is suspended.",
  member_expired: "Your membership has expired.",
  member_pending: "Your membership is not active yet.",
  membership_inactive: "Your membership does not allow this.",
  insufficient_skills: "You need a certification for this machine:",
  reserved_by_other: "Someone else has booked this machine now.",
  maintenance: "This machine is in maintenance.",
  machine_offline: "This machine is offline.",
  machine_error: "This machine reports an error. Please tell a staff member.",
  machine_busy: "Someone else is using this machine.",
  unknown_machine: "This machine is not set up for this kiosk.",
  not_your_session: "Only the card that unlocked this machine, or a staff member's, locks it.",
  kiosk_slowed_down: "Too many unknown cards here. Please wait a moment and try again.",
};
// How long the page waits for a card after "lock" was pressed.
const LOCK_WAIT_MS = 15000;
// How often the page reads the machine's state again (to know whether it waits for its bed).
const REFRESH_MS = 3000;
const CLEAR_HINT = "Take what the last job left off the bed, then tap your card to confirm it is clear";

// A device token in the URL fragment (#device=...) sets the kiosk up, then leaves the address bar.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("device")) {
  localStorage.setItem(DEVICE_KEY, fragment.get("device"));
  history.replaceState(null, "", location.pathname + location.search);
}
const fixedMachine = new URLSearchParams(location.search).get("machine");
let machine = null; // the machine view
let resetTimer = null;
// Set while the page waits for the card that locks (the lock button was pressed).
let lockWait = null;

function device() { return localStorage.getItem(DEVICE_KEY); }

async function call(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${device()}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw Object.assign(new Error(data.detail || res.statusText), { status: res.status, errorType: data.error_type });
  }
  return data;
}

function show(section) {
  for (const id of ["setup", "picker", "ready"]) $(id).hidden = id !== section;
}

async function start() {
  if (!device()) return show("setup");
  let machines;
  try {
    machines = await call("GET", "/api/v1/kiosk/machines");
  } catch (e) {
    if (e.status === 401) localStorage.removeItem(DEVICE_KEY);
    $("setup-error").textContent = e.message;
    return show("setup");
  }
  const wanted = fixedMachine || localStorage.getItem(MACHINE_KEY);
  machine = machines.find((m) => m.equipment_id === wanted) || null;
  $("change-machine").hidden = Boolean(fixedMachine) || !machine;
  if (!machine) return pick(machines);
  ready();
}

function pick(machines) {
  show("picker");
  $("machines").replaceChildren(...machines.map((m) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = m.name;
    const small = document.createElement("small");
    small.textContent = m.state.replace("_", " ");
    b.append(small);
    b.addEventListener("click", () => {
      localStorage.setItem(MACHINE_KEY, m.equipment_id);
      machine = m;
      $("change-machine").hidden = false;
      ready();
    });
    return b;
  }));
}

function ready() {
  show("ready");
  $("machine-name").textContent = machine.name;
  $("ready-title").textContent = machine.name;
  $("result").hidden = true;
  $("tap-hint").hidden = false;
  $("lock").hidden = machine.state !== "in_use";
  showHint();
  focusCard();
}

// A machine whose job ended waits for a person to confirm its bed is clear: then a tap
// confirms it instead of unlocking.
function awaitingClear() { return machine && machine.state === "awaiting_clear"; }

function showHint() {
  if (!lockWait) $("tap-hint").textContent = awaitingClear() ? CLEAR_HINT : TAP_HINT;
}

// Reads the machine's state again (a job may end, a bed be cleared on the dashboard).
async function refreshMachine() {
  if (!machine || $("ready").hidden) return;
  try {
    const machines = await call("GET", "/api/v1/kiosk/machines");
    const fresh = machines.find((m) => m.equipment_id === machine.equipment_id);
    if (fresh) machine = fresh;
    showHint();
  } catch {
    // The next refresh tries again; a tap still goes to the server, which decides.
  }
}
setInterval(refreshMachine, REFRESH_MS);

async function clearBed(uid) {
  try {
    const answer = await call("POST", "/api/v1/kiosk/clear", { equipment_id: machine.equipment_id, card_uid: uid });
    if (answer.cleared) {
      machine.state = "idle";
      showResult({ granted: false, reason: "Bed cleared. Thank you!" });
      $("result").className = "result granted";
      $("result").dataset.reason = "cleared";
    } else {
      showResult({ granted: false, reason: answer.reason === "not_awaiting_clear" ? "The bed was already cleared." : answer.reason });
      machine.state = answer.reason === "not_awaiting_clear" ? "idle" : machine.state;
    }
  } catch (err) {
    showResult(failure(err));
  }
  showHint();
}

function focusCard() {
  const input = $("card");
  input.value = "";
  input.focus();
}

function formatUntil(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return ` until ${d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
}

function showResult(answer) {
  const box = $("result");
  box.className = `result ${answer.granted ? "granted" : "denied"}`;
  const text = answer.granted
    ? `${REASONS.granted}${formatUntil(answer.until)}${answer.member_name ? ` · ${answer.member_name}` : ""}`
    : REASONS[answer.reason] || answer.reason;
  box.replaceChildren(document.createTextNode(text));
  if (answer.missing_skills && answer.missing_skills.length) {
    const list = document.createElement("ul");
    list.id = "missing-skills";
    for (const skill of answer.missing_skills) {
      const li = document.createElement("li");
      li.textContent = skill;
      list.append(li);
    }
    box.append(list);
  }
  box.dataset.reason = answer.reason;
  box.hidden = false;
  $("tap-hint").hidden = true;
  $("lock").hidden = !answer.granted;
  clearTimeout(resetTimer);
  resetTimer = setTimeout(() => { $("result").hidden = true; $("tap-hint").hidden = false; }, 8000);
}

function failure(err) {
  return { granted: false, reason: REASONS[err.errorType] ? err.errorType : err.message };
}

// Locks with the tapped card (or none, where the kiosk lets any card lock). Without a card at a
// kiosk that needs one, the page asks for it and the next tap locks.
async function lock(uid) {
  clearTimeout(lockWait);
  lockWait = null;
  const body = { equipment_id: machine.equipment_id };
  if (uid) body.card_uid = uid;
  try {
    const answer = await call("POST", "/api/v1/kiosk/lock", body);
    if (answer.reason === "card_required") {
      $("tap-hint").textContent = "Tap your card to lock the machine";
      $("result").hidden = true;
      $("tap-hint").hidden = false;
      lockWait = setTimeout(() => { lockWait = null; $("tap-hint").textContent = TAP_HINT; }, LOCK_WAIT_MS);
      return;
    }
    showHint();
    if (answer.locked || answer.reason === "not_in_use") {
      showResult({ granted: false, reason: answer.locked ? "Locked. Thank you!" : "Nothing to lock." });
      $("result").className = "result granted";
      $("lock").hidden = true;
    } else {
      showResult({ granted: false, reason: answer.reason });
      $("lock").hidden = false;
    }
  } catch (err) {
    $("tap-hint").textContent = TAP_HINT;
    showResult(failure(err));
  }
}

const TAP_HINT = $("tap-hint").textContent;

$("card").addEventListener("keydown", async (e) => {
  if (e.key !== "Enter") return;
  const uid = e.target.value.trim();
  e.target.value = "";
  if (!uid || !machine) return;
  if (lockWait) return lock(uid);
  if (awaitingClear()) return clearBed(uid);
  try {
    showResult(await call("POST", "/api/v1/kiosk/unlock", { equipment_id: machine.equipment_id, card_uid: uid }));
  } catch (err) {
    showResult(failure(err));
  }
});

$("lock").addEventListener("click", async () => {
  await lock(null);
  focusCard();
});

$("change-machine").addEventListener("click", () => {
  localStorage.removeItem(MACHINE_KEY);
  start();
});

$("setup-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem(DEVICE_KEY, $("device-token").value.trim());
  start();
});

// The reader types into the focused input: keep it focused whatever is touched.
document.addEventListener("click", () => { if (!$("ready").hidden) $("card").focus(); });
$("card").addEventListener("blur", () => setTimeout(() => { if (!$("ready").hidden) $("card").focus(); }, 50));

start();
