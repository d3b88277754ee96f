// makrcave dashboard, the Queue view: the space's jobs by status (on a machine with its
// progress, paused, waiting with why each machine does not take it, finished lately), a form
// that submits a file as a job, Cancel for one's own jobs and the admins', and priority
// buttons for the admins. A member sees their own jobs only (the API filters them). It uses
// dashboard.js's helpers ($, api, token, oneAtATime, currentSpace, machines, personName,
// spaceAdmin) and its WebSocket feed ("floor" events): a `job` message updates its job at
// once, and the lists are fetched again shortly after (why a job waits changes with the
// machines).
// Built with textContent only: file names are data. Wrapped in a function so that its names
// do not meet the other views' (the pages' scripts share one global scope).
"use strict";

(() => {
  const ACTIVE = ["queued", "assigned", "sending", "printing", "paused"];
  const FINISHED = ["done", "failed", "cancelled"];
  // How many finished jobs are shown.
  const FINISHED_SHOWN = 10;
  const MAX_PRIORITY = 10;
  const STATUS_LABELS = {
    queued: "Queued", assigned: "Assigned", sending: "Sending", printing: "Printing", paused: "Paused",
    done: "Done", failed: "Failed", cancelled: "Cancelled",
  };
  // Why a machine does not take a job, in a few words (the API's `detail` says it in full).
  const WAIT_LABELS = {
    pinned_elsewhere: "pinned elsewhere", offline: "offline", maintenance: "maintenance",
    machine_error: "error", busy: "busy", bed_not_clear: "bed not cleared", equipment_type: "other type",
    material: "material", color: "colour", nozzle: "nozzle", build_volume: "too small", tags: "tags",
    booked: "booked", provider_refused: "refused", failed_here: "failed there", staggered: "staggered start",
  };
  // Waiting reasons listed per job; the rest are counted.
  const REASONS_SHOWN = 4;
  // Why a job waits also changes with time alone (a booking ends, staggered starts allow
  // another): while jobs wait and the view is shown, it is asked again this often.
  const WAITING_REFRESH_MS = 5000;

  // `subscribed`: the snapshot came, so the machines' names and whether the person administers
  // the space are known (the lists are drawn with both). `learnt`: while the lists are being
  // fetched, the jobs learnt meanwhile (submitted, changed on the feed), newer than the lists.
  const queue = { jobs: new Map(), timer: null, machineStates: new Map(), subscribed: false, learnt: null };

  // A job as it is now: drawn with the next render, and kept over a fetch already on its way.
  function learn(job) {
    queue.jobs.set(job.id, job);
    if (queue.learnt) queue.learnt.set(job.id, job);
  }

  function node(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function machineLabel(id) {
    return (machines.get(id) || {}).name || id;
  }

  // The signed-in person's user id, from the token's claims (only to know which jobs are
  // theirs to cancel: the server decides).
  function me() {
    try {
      const claims = JSON.parse(atob(token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return claims.sub;
    } catch {
      return null;
    }
  }

  function base() {
    return `/api/v1/makerspaces/${encodeURIComponent(currentSpace())}`;
  }

  // Fetches the lists (one fetch at a time; a change during a fetch fetches again after it).
  const loadQueue = oneAtATime(fetchQueue);

  function reloadSoon() {
    if (queue.timer) return;
    queue.timer = setTimeout(() => { queue.timer = null; loadQueue(); }, 300);
  }

  async function fetchQueue() {
    const space = currentSpace();
    if (!space) return;
    const q = (params) => new URLSearchParams(params).toString();
    queue.learnt = new Map();
    try {
      const [active, finished] = await Promise.all([
        api(`${base()}/jobs?${q({ status: ACTIVE.join(","), page_size: 200 })}`),
        api(`${base()}/jobs?${q({ status: FINISHED.join(","), page_size: FINISHED_SHOWN })}`),
      ]);
      if (space !== currentSpace()) return;
      const jobs = new Map([...active.jobs, ...finished.jobs].map((j) => [j.id, j]));
      // What was learnt meanwhile may be newer than the lists: a job just submitted does not
      // vanish from the view because the read began before it existed.
      const time = (job) => Date.parse(job.updated_at) || 0;
      for (const [id, job] of queue.learnt) {
        const read = jobs.get(id);
        if (!read || time(job) >= time(read)) jobs.set(id, job);
      }
      queue.jobs = jobs;
      $("queue-error").textContent = "";
    } catch (e) {
      $("queue-error").textContent = `Cannot load the queue: ${e.message}`;
    } finally {
      queue.learnt = null;
    }
    renderQueue();
  }

  // Higher priority first, then first come (the router's order, owners' turns aside).
  function byServingOrder(a, b) {
    return b.priority - a.priority || a.created_at.localeCompare(b.created_at);
  }

  function renderQueue() {
    const jobs = [...queue.jobs.values()];
    const running = jobs.filter((j) => ["assigned", "sending", "printing"].includes(j.status));
    const paused = jobs.filter((j) => j.status === "paused");
    const waiting = jobs.filter((j) => j.status === "queued").sort(byServingOrder);
    const finished = jobs.filter((j) => FINISHED.includes(j.status))
      .sort((a, b) => (b.finished_at || b.updated_at).localeCompare(a.finished_at || a.updated_at))
      .slice(0, FINISHED_SHOWN);
    fill("queue-running", running, "Nothing on a machine.");
    fill("queue-paused", paused, "Nothing paused.");
    fill("queue-waiting", waiting, "Nothing waiting.");
    fill("queue-finished", finished, "Nothing finished yet.");
    $("queue-running-count").textContent = running.length || "";
    $("queue-paused-count").textContent = paused.length || "";
    $("queue-waiting-count").textContent = waiting.length || "";
    const open = running.length + paused.length + waiting.length;
    $("queue-count").hidden = open === 0;
    $("queue-count").textContent = open;
  }

  function fill(listId, jobs, empty) {
    const list = $(listId);
    list.replaceChildren(...jobs.map(renderJob));
    if (!jobs.length) list.append(node("li", "none", empty));
  }

  function renderJob(job) {
    const li = node("li", `job status-${job.status}`);
    li.dataset.jobId = job.id;
    li.dataset.status = job.status;
    li.dataset.priority = job.priority;
    const copy = job.copies > 1 ? ` · copy ${job.copy_number} of ${job.copies}` : "";
    const title = node("strong", "", `${job.file_name}${copy}`);
    li.append(title);
    const facts = [STATUS_LABELS[job.status] || job.status, personName(job.owner_id)];
    if (job.priority) facts.push(`priority ${job.priority > 0 ? "+" : ""}${job.priority}`);
    li.append(node("span", "what", facts.join(" · ")));
    if (job.equipment_id && job.status !== "queued") {
      const progress = typeof job.progress === "number" ? ` · ${job.progress.toFixed(0)}%` : "";
      li.append(node("span", "machine", `on ${machineLabel(job.equipment_id)}${progress}`));
    }
    if (job.status === "queued") li.append(node("span", "why", whyWaiting(job.waiting)));
    if (job.status === "failed" && job.failure_reason) li.append(node("span", "why", job.failure_reason));
    const buttons = actions(job);
    if (buttons) li.append(buttons);
    return li;
  }

  // "p1: bed not cleared · p2: offline": each machine's first reason, in short.
  function whyWaiting(waiting) {
    if (!waiting) return "Waiting for the router.";
    if (waiting.fitting && waiting.fitting.length) return `Starting on ${waiting.fitting.map(machineLabel).join(", ")}`;
    const machinesHeld = waiting.machines || [];
    if (!machinesHeld.length) return "No machine of this type in the space.";
    const shown = machinesHeld.slice(0, REASONS_SHOWN)
      .map((w) => `${machineLabel(w.machine_id)}: ${WAIT_LABELS[w.reason] || w.reason}`);
    const more = machinesHeld.length - shown.length;
    return shown.join(" · ") + (more > 0 ? ` · +${more} more` : "");
  }

  function actions(job) {
    const box = node("div", "actions");
    const error = node("span", "error");
    const add = (className, text, call) => {
      const button = node("button", className, text);
      button.type = "button";
      button.addEventListener("click", async () => {
        for (const b of box.querySelectorAll("button")) b.disabled = true;
        error.textContent = "";
        try {
          const changed = await call();
          if (changed && changed.id) learn(changed);
          renderQueue();
        } catch (e) {
          error.textContent = e.message;
          for (const b of box.querySelectorAll("button")) b.disabled = false;
        }
      });
      box.append(button);
      return button;
    };
    const path = `${base()}/jobs/${encodeURIComponent(job.id)}`;
    if (spaceAdmin && job.status === "queued") {
      const to = (p) => () => api(`${path}/priority`, "POST", { priority: p });
      const up = add("priority-up secondary", "Priority +", to(job.priority + 1));
      up.disabled = job.priority >= MAX_PRIORITY;
      const down = add("priority-down secondary", "Priority −", to(job.priority - 1));
      down.disabled = job.priority <= -MAX_PRIORITY;
    }
    if (!FINISHED.includes(job.status) && (spaceAdmin || job.owner_id === me())) {
      add("cancel secondary", "Cancel", () => api(`${path}/cancel`, "POST"));
    }
    if (!box.childElementCount) return null;
    box.append(error);
    return box;
  }

  // The upload form: the file and a spec (copies, material) as one multipart request, as
  // the API takes it.
  async function submitJob(event) {
    event.preventDefault();
    const file = $("job-file").files[0];
    const result = $("job-result");
    if (!file) return;
    const spec = { copies: Number($("job-copies").value) || 1 };
    const material = $("job-material").value.trim();
    if (material) spec.requirements = { material };
    const form = new FormData();
    form.append("spec", JSON.stringify(spec));
    form.append("file", file, file.name);
    $("job-submit").disabled = true;
    result.className = "";
    result.textContent = "Sending…";
    try {
      const res = await fetch(`${base()}/jobs`, { method: "POST", headers: { Authorization: `Bearer ${token()}` }, body: form });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(body.detail || res.statusText);
      for (const job of body.jobs) learn(job);
      result.textContent = body.jobs.length > 1 ? `Queued ${body.jobs.length} copies of ${file.name}.` : `Queued ${file.name}.`;
      $("job-form").reset();
      renderQueue();
      reloadSoon();
    } catch (e) {
      result.className = "error";
      result.textContent = `Not queued: ${e.message}`;
    } finally {
      $("job-submit").disabled = false;
    }
  }

  $("job-form").addEventListener("submit", submitJob);

  document.addEventListener("floor", (event) => {
    const msg = event.detail;
    if (msg.type === "snapshot") {
      queue.subscribed = true;
      queue.machineStates = new Map(msg.machines.map((m) => [m.equipment_id, m.state]));
      loadQueue();
    } else if (msg.type === "job" && msg.makerspace_id === currentSpace()) {
      // The job as it is now; why others wait may have changed with it.
      const known = queue.jobs.get(msg.job.id);
      learn(Object.assign({}, msg.job, { waiting: msg.job.waiting || (known && known.waiting) }));
      renderQueue();
      reloadSoon();
    } else if (msg.type === "machine") {
      // A machine that changes state changes why jobs wait (telemetry alone does not).
      const before = queue.machineStates.get(msg.machine.equipment_id);
      queue.machineStates.set(msg.machine.equipment_id, msg.machine.state);
      if (before !== msg.machine.state && !$("queue").hidden) reloadSoon();
    }
  });

  setInterval(() => {
    const waiting = [...queue.jobs.values()].some((j) => j.status === "queued");
    if (waiting && !$("queue").hidden) loadQueue();
  }, WAITING_REFRESH_MS);

  document.addEventListener("view", (event) => {
    if (event.detail === "queue" && queue.subscribed) loadQueue();
  });
})();
