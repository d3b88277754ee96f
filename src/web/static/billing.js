// makrcave dashboard, the Billing view. For the space's admins: open charges (a button makes a
// member's draft invoice of them), drafts to finalize, recent payments, and the integrity chain's
// status (an alarm when a link is broken); the platform's readers see the same without the
// buttons. For a member: their wallet and their invoices. Every invoice has its PDF. It uses
// dashboard.js's helpers ($, api, currentSpace, oneAtATime, spaceAdmin, token). Built with
// textContent only: descriptions and names are data. Money writes send an Idempotency-Key made
// when the button is drawn, so a double click or a retry after a lost answer makes one draft,
// finalizes once.
"use strict";

// ISO 4217 minor units that are not two decimals (as src/domain/currency.rs): amounts are
// integers in minor units and are shown in major units with these decimals.
const MINOR_DIGITS = {
  BHD: 3, BIF: 0, CLF: 4, CLP: 0, DJF: 0, GNF: 0, IQD: 3, ISK: 0, JOD: 3, JPY: 0, KMF: 0, KRW: 0,
  KWD: 3, LYD: 3, OMR: 3, PYG: 0, RWF: 0, TND: 3, UGX: 0, UYI: 0, UYW: 4, VND: 0, VUV: 0, XAF: 0,
  XOF: 0, XPF: 0,
};
const PAYMENT_LABELS = { open: "open", partially_paid: "partly paid", paid: "paid", void: "void" };

// "12.34 EUR", "1200 JPY", "-0.005 BHD": the server's format (domain::currency::format_money).
function money(minor, currency) {
  const digits = MINOR_DIGITS[currency] ?? 2;
  const sign = minor < 0 ? "-" : "";
  const text = String(Math.abs(minor)).padStart(digits + 1, "0");
  const major = digits ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
  return `${sign}${major} ${currency}`;
}

function billingNode(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function billingBase() {
  return `/api/v1/makerspaces/${encodeURIComponent(currentSpace())}/billing`;
}

// A money write: POST with the button's Idempotency-Key.
async function moneyWrite(path, payload, key) {
  const res = await fetch(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json", "Idempotency-Key": key },
    body: JSON.stringify(payload),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.detail || res.statusText), { status: res.status });
  return body;
}

// A button that runs `action` once per key: disabled while it runs, a new key only after a
// refusal (the same request would be refused again).
function moneyButton(label, className, action) {
  const button = billingNode("button", className, label);
  button.type = "button";
  button.dataset.key = crypto.randomUUID();
  button.addEventListener("click", async () => {
    if (button.disabled) return;
    button.disabled = true;
    try {
      await action(button.dataset.key);
    } catch (e) {
      $("billing-error").textContent = `${label}: ${e.message}`;
      button.dataset.key = crypto.randomUUID();
      button.disabled = false;
      return;
    }
    loadBilling();
  });
  return button;
}

// The invoice's PDF: a link to it, which the page downloads with the signed-in token (a plain
// link would carry no Authorization header).
function pdfLink(invoice) {
  const a = billingNode("a", "pdf", "PDF");
  a.href = `${billingBase()}/invoices/${encodeURIComponent(invoice.id)}.pdf`;
  a.addEventListener("click", async (event) => {
    event.preventDefault();
    const res = await fetch(a.href, { headers: { Authorization: `Bearer ${token()}` } });
    if (!res.ok) { $("billing-error").textContent = `Cannot download the PDF: ${res.statusText}`; return; }
    const url = URL.createObjectURL(await res.blob());
    const save = billingNode("a");
    save.href = url;
    save.download = invoice.number ? `${invoice.number}.pdf` : `draft-${invoice.id}.pdf`;
    save.click();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  });
  return a;
}

function invoiceRow(invoice, names) {
  const li = billingNode("li", `invoice status-${invoice.status}`);
  li.dataset.invoiceId = invoice.id;
  li.dataset.status = invoice.status;
  const title = invoice.number || "Draft";
  li.append(billingNode("strong", "number", title));
  if (names) li.append(billingNode("span", "who", names.get(invoice.member_id) || invoice.member_id));
  li.append(
    billingNode("span", "amount", money(invoice.total_minor, invoice.currency)),
    billingNode("span", "when", `${invoice.period_from} – ${invoice.period_to}`),
  );
  if (invoice.status !== "draft") {
    const label = PAYMENT_LABELS[invoice.payment_status] || invoice.payment_status;
    li.append(billingNode("span", `badge payment-${invoice.payment_status}`, label));
  }
  li.append(pdfLink(invoice));
  return li;
}

// A member's open charges, one draft button a member.
function renderOpenCharges(charges, names) {
  const byMember = new Map();
  for (const c of charges) {
    if (!byMember.has(c.member_id)) byMember.set(c.member_id, []);
    byMember.get(c.member_id).push(c);
  }
  const body = $("open-charges").querySelector("tbody");
  const rows = [];
  for (const [member, list] of byMember) {
    list.forEach((c, i) => {
      const row = billingNode("tr");
      row.dataset.chargeId = c.id;
      row.append(
        billingNode("td", "who", names.get(member) || member),
        billingNode("td", "description", c.description),
        billingNode("td", "amount", money(c.total_minor, c.currency)),
      );
      const action = billingNode("td");
      if (i === 0 && spaceAdmin) {
        const days = list.map((x) => x.usage_at.slice(0, 10)).sort();
        const today = new Date().toISOString().slice(0, 10);
        const period = { member_id: member, period_from: days[0], period_to: days[days.length - 1] > today ? days[days.length - 1] : today };
        const button = moneyButton("Make a draft", "make-draft", (key) => moneyWrite(`${billingBase()}/invoices`, period, key));
        button.dataset.memberId = member;
        action.append(button);
      }
      row.append(action);
      rows.push(row);
    });
  }
  body.replaceChildren(...rows);
  $("open-charges").hidden = charges.length === 0;
  $("open-charges-empty").hidden = charges.length > 0;
  $("open-charges-count").textContent = charges.length ? String(charges.length) : "";
}

function renderDrafts(drafts, names) {
  $("drafts").replaceChildren(...drafts.map((d) => {
    const li = invoiceRow(d, names);
    if (spaceAdmin) {
      li.append(moneyButton("Finalize", "finalize",
        (key) => moneyWrite(`${billingBase()}/invoices/${encodeURIComponent(d.id)}/finalize`, null, key)));
    }
    return li;
  }));
  $("drafts-count").textContent = drafts.length ? String(drafts.length) : "";
  $("drafts-empty").hidden = drafts.length > 0;
}

function renderPayments(payments, names) {
  $("payments").replaceChildren(...payments.map((p) => {
    const li = billingNode("li", `payment kind-${p.kind}`);
    li.append(
      billingNode("strong", "", money(p.amount_minor, p.currency)),
      billingNode("span", "who", `${p.kind} by ${p.method.replace("_", " ")} · ${names.get(p.member_id) || p.member_id}`),
      billingNode("span", "when", p.created_at.slice(0, 10)),
    );
    return li;
  }));
  $("payments-empty").hidden = payments.length > 0;
}

function renderIntegrity(check) {
  const p = $("integrity");
  p.classList.toggle("alarm", !check.ok);
  p.dataset.ok = String(check.ok);
  p.textContent = check.ok
    ? `Integrity chain holds: ${check.documents} finalized documents checked.`
    : `Integrity alarm: ${check.first_broken.kind.replace("_", " ")} ${check.first_broken.number || check.first_broken.id} is broken — ${check.reason}`;
}

function renderWallet(wallet) {
  $("wallet-balance").textContent = wallet ? money(wallet.balance_minor, wallet.currency) : "";
  $("wallet-rows").replaceChildren(...(wallet ? wallet.entries : []).map((e) => {
    const li = billingNode("li", "wallet-entry");
    li.append(
      billingNode("strong", "", money(e.amount_minor, wallet.currency)),
      billingNode("span", "who", `${(e.kind || "").replace("_", " ")}${e.reason ? `: ${e.reason}` : ""}`),
      billingNode("span", "when", (e.created_at || "").slice(0, 10)),
    );
    return li;
  }));
  $("wallet-empty").hidden = Boolean(wallet && wallet.entries.length);
}

// The names of members, for admins (others see only themselves).
async function memberNames() {
  const page = await api(`/api/v1/makerspaces/${encodeURIComponent(currentSpace())}/members?page_size=200`).catch(() => null);
  return new Map(page ? page.members.map((m) => [m.id, m.full_name]) : []);
}

async function fetchAdminBilling(base, integrity) {
  const [open, drafts, finalized] = await Promise.all([
    api(`${base}/charges?status=open&page_size=200`),
    api(`${base}/invoices?status=draft&page_size=100`),
    api(`${base}/invoices?status=finalized&page_size=20`),
  ]);
  // Payments are read from the latest invoices that have some.
  const paid = finalized.invoices.filter((i) => i.paid_minor !== 0);
  const details = await Promise.all(paid.map((i) => api(`${base}/invoices/${encodeURIComponent(i.id)}`)));
  const payments = details.flatMap((d) => d.payments.map((p) => ({ ...p, member_id: d.member_id })))
    .sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, 20);
  return { open: open.charges, drafts: drafts.invoices, payments, integrity };
}

async function fetchBilling() {
  const space = currentSpace();
  if (!space) return;
  const base = billingBase();
  try {
    // Who may check the integrity chain reads everyone's billing (the space's admins and the
    // platform's readers); the buttons are for the space's admins only (spaceAdmin). Others
    // are members, who see their own.
    const integrity = await api(`${base}/integrity`).catch((e) => (e.status === 403 ? null : Promise.reject(e)));
    const admin = integrity !== null;
    const names = admin ? await memberNames() : new Map();
    const [invoices, adminView] = await Promise.all([
      api(`${base}/invoices?page_size=50`),
      admin ? fetchAdminBilling(base, integrity) : null,
    ]);
    // A member's wallet: their member id is on their own invoices and charges.
    let wallet = null;
    if (!admin) {
      const own = invoices.invoices[0] || (await api(`${base}/charges?page_size=1`)).charges[0];
      if (own) {
        wallet = await api(`/api/v1/makerspaces/${encodeURIComponent(space)}/members/${encodeURIComponent(own.member_id)}/wallet?page_size=50`);
      }
    }
    if (space !== currentSpace()) return;
    $("billing-error").textContent = "";
    $("billing-admin").hidden = !admin;
    $("billing-member").hidden = admin;
    $("integrity").hidden = !admin;
    $("invoices").replaceChildren(...invoices.invoices.filter((i) => !admin || i.status !== "draft").map((i) => invoiceRow(i, admin ? names : null)));
    $("invoices-empty").hidden = invoices.invoices.length > 0;
    if (adminView) {
      renderOpenCharges(adminView.open, names);
      renderDrafts(adminView.drafts, names);
      renderPayments(adminView.payments, names);
      renderIntegrity(adminView.integrity);
    } else {
      renderWallet(wallet);
    }
  } catch (e) {
    $("billing-error").textContent = `Cannot load billing: ${e.message}`;
  }
}

const loadBilling = oneAtATime(fetchBilling);

document.addEventListener("view", (event) => {
  if (event.detail === "billing") loadBilling();
});

// Whether the person administers the space comes with the snapshot: draw again once it is known.
document.addEventListener("floor", (event) => {
  if (event.detail.type === "snapshot" && !$("billing").hidden) loadBilling();
});
