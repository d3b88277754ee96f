// makrcave dashboard, the Stock view: what the space stocks and how much is left, what is
// running low, and what is on order, with a button to take a delivery in place. It uses
// dashboard.js's helpers ($, api, currentSpace) and its WebSocket feed ("floor" events): a
// `stock_alert` fetches the view again. Built with textContent only: item names are data.
"use strict";

const CATEGORY_LABELS = {
  filament: "Filament", resin: "Resin", sheet: "Sheet", component: "Component", tool: "Tool",
  consumable: "Consumable",
};
const ORDER_LABELS = { draft: "Draft", ordered: "Ordered", partially_received: "Partly received" };
// Orders still to be taken in (or sent).
const OPEN_ORDER_STATUSES = ["draft", "ordered", "partially_received"];

const stock = { loading: null, again: false };

function node(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// A quantity in its unit: "212.345 g", "3 sheets".
function amount(quantity, unit) {
  const plural = { sheet: "sheets", piece: "pieces" };
  const word = quantity === 1 ? unit : (plural[unit] || unit);
  return `${quantity} ${word}`;
}

// Fetches the view (one fetch at a time; a change during a fetch fetches again after it).
async function loadStock() {
  if (stock.loading) { stock.again = true; return stock.loading; }
  stock.loading = (async () => {
    do {
      stock.again = false;
      await fetchStock();
    } while (stock.again);
  })();
  try { await stock.loading; } finally { stock.loading = null; }
}

async function fetchStock() {
  const space = currentSpace();
  if (!space) return;
  const base = `/api/v1/makerspaces/${encodeURIComponent(space)}`;
  try {
    const [items, alerts, orders] = await Promise.all([
      api(`${base}/inventory?page_size=200`),
      api(`${base}/inventory/alerts?page_size=200`),
      // Orders are the admins' to see: others get 403, and no orders section.
      api(`${base}/purchase-orders?page_size=200`).catch((e) => (e.status === 403 ? null : Promise.reject(e))),
    ]);
    // A listing carries no lines: each open order is read whole.
    const open = orders ? orders.purchase_orders.filter((o) => OPEN_ORDER_STATUSES.includes(o.status)) : null;
    const details = open ? await Promise.all(open.map((o) => api(`${base}/purchase-orders/${encodeURIComponent(o.id)}`))) : null;
    if (space !== currentSpace()) return;
    $("stock-error").textContent = "";
    renderStock(items.items, alerts.alerts, details);
  } catch (e) {
    $("stock-error").textContent = `Cannot load the stock: ${e.message}`;
  }
}

function renderStock(items, alerts, orders) {
  const body = $("items").querySelector("tbody");
  body.replaceChildren(...items.map((item) => {
    const row = node("tr", item.low_stock ? "low" : "");
    row.dataset.itemId = item.id;
    const name = node("td", "name", item.name);
    if (item.filament && item.filament.color) {
      const swatch = node("span", "swatch");
      swatch.style.background = item.filament.color;
      name.prepend(swatch);
    }
    if (item.low_stock) name.append(node("span", "badge", "low"));
    row.append(
      name,
      node("td", "", CATEGORY_LABELS[item.category] || item.category),
      node("td", "level", amount(item.current_stock, item.unit)),
      node("td", "", amount(item.min_stock_level, item.unit)),
      node("td", "", item.location || ""),
    );
    return row;
  }));
  $("items-empty").hidden = items.length > 0;

  $("alerts").replaceChildren(...alerts.map((a) => {
    const li = node("li", `alert status-${a.status}`);
    li.dataset.alertId = a.id;
    li.append(
      node("strong", "", a.item_name),
      node("span", "when", ` ${amount(a.current_stock, a.unit)} left (minimum ${amount(a.min_stock_level, a.unit)})`),
    );
    if (a.status === "ordered") li.append(node("span", "badge", "on order"));
    return li;
  }));
  $("alerts-count").textContent = alerts.length ? String(alerts.length) : "";
  $("low-count").textContent = String(alerts.length);
  $("low-count").hidden = alerts.length === 0;

  $("orders-section").hidden = orders === null;
  if (orders === null) return;
  $("orders").replaceChildren(...orders.map(renderOrder));
  $("orders-count").textContent = orders.length ? String(orders.length) : "";
}

function renderOrder(order) {
  const li = node("li", `order status-${order.status}`);
  li.dataset.orderId = order.id;
  li.dataset.status = order.status;
  const supplier = order.supplier.kind === "makrx_store" ? "MakrX Store" : (order.supplier.name || "supplier");
  li.append(node("strong", "", `${supplier} · ${ORDER_LABELS[order.status] || order.status}`));
  const lines = node("ul", "lines");
  for (const line of order.lines) {
    lines.append(node("li", "", `${line.name}: ${line.quantity_received} of ${amount(line.quantity_ordered, line.unit)} in`));
  }
  li.append(lines);
  if (order.status === "ordered" || order.status === "partially_received") {
    const button = node("button", "receive", "Received all");
    button.type = "button";
    // One key per delivery: a click retried after a lost answer takes nothing in twice.
    button.dataset.key = crypto.randomUUID();
    button.addEventListener("click", () => receiveOrder(order, button));
    li.append(button);
  }
  return li;
}

async function receiveOrder(order, button) {
  button.disabled = true;
  const base = `/api/v1/makerspaces/${encodeURIComponent(currentSpace())}`;
  try {
    await api(`${base}/purchase-orders/${encodeURIComponent(order.id)}/receive`, "POST",
      { idempotency_key: button.dataset.key });
  } catch (e) {
    $("stock-error").textContent = `Cannot take the delivery in: ${e.message}`;
    button.disabled = false;
    return;
  }
  loadStock();
}

// On connecting (the snapshot) and on every alert: the tab's badge counts what runs low even
// while another view is shown.
document.addEventListener("floor", (event) => {
  const type = event.detail.type;
  if (type === "snapshot" || type === "stock_alert") loadStock();
});

document.addEventListener("view", (event) => {
  if (event.detail === "stock") loadStock();
});
