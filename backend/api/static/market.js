// GridTokenX market page: no framework, no CDN. Wallets are found through the Wallet Standard
// (Phantom, Solflare, Backpack and any other that registers); the page signs in with solana:signIn
// (or signMessage on the message the api builds) and signs transactions with solana:signTransaction.
// The key never reaches this page: it hands the wallet the transaction the api built and sends back
// what the wallet signed.
"use strict";

const KWH = 1e9, THBC = 1e6;
const $ = (id) => document.getElementById(id);
const state = { wallets: [], wallet: null, account: null, token: null, address: null, ws: null, lastId: null };

// --- base58 (Bitcoin alphabet), for addresses and signatures ----------------------------------------
const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
function b58encode(bytes) {
  const digits = [];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) { carry += digits[i] << 8; digits[i] = carry % 58; carry = (carry / 58) | 0; }
    while (carry) { digits.push(carry % 58); carry = (carry / 58) | 0; }
  }
  let out = "";
  for (const byte of bytes) { if (byte === 0) out += "1"; else break; }
  for (let i = digits.length - 1; i >= 0; i--) out += B58[digits[i]];
  return out;
}
const b64decode = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const b64encode = (bytes) => btoa(String.fromCharCode(...bytes));
const short = (key) => key ? `${key.slice(0, 4)}…${key.slice(-4)}` : "";
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function say(text) { $("status").textContent = text; }

// --- the api --------------------------------------------------------------------------------------------
async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const reply = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    const error = data.error || {};
    throw new Error(`${error.code || reply.status}: ${error.message || reply.statusText}`);
  }
  return data;
}

// --- Wallet Standard: discover wallets ------------------------------------------------------------------
function register(...wallets) {
  for (const w of wallets) {
    if (w.features && w.features["solana:signTransaction"] && !state.wallets.includes(w)) state.wallets.push(w);
  }
  renderWallets();
  return () => {};
}
window.addEventListener("wallet-standard:register-wallet", (event) => event.detail({ register }));
window.dispatchEvent(new CustomEvent("wallet-standard:app-ready", { detail: { register } }));

function renderWallets() {
  const select = $("wallets");
  select.innerHTML = state.wallets.map((w, i) => `<option value="${i}">${esc(w.name)}</option>`).join("");
  $("signin").disabled = state.wallets.length === 0;
  if (!state.wallets.length) say("No Solana wallet found: install Phantom, Solflare or Backpack to trade.");
  else if (!state.token) say(`${state.wallets.length} wallet(s) found. Sign in to trade.`);
}

async function signIn() {
  const wallet = state.wallets[Number($("wallets").value) || 0];
  say(`Signing in with ${wallet.name}…`);
  const input = await api("POST", "/auth/nonce", {});
  let message, signature, account;
  if (wallet.features["solana:signIn"]) {
    const [out] = await wallet.features["solana:signIn"].signIn({
      domain: input.domain, statement: input.statement, uri: input.uri, version: input.version,
      chainId: input.chainId, nonce: input.nonce, issuedAt: input.issuedAt, expirationTime: input.expirationTime });
    account = out.account; message = new TextDecoder().decode(out.signedMessage); signature = out.signature;
  } else {
    const { accounts } = await wallet.features["standard:connect"].connect();
    account = accounts[0];
    const challenge = await api("POST", "/auth/nonce", { address: account.address });
    const [out] = await wallet.features["solana:signMessage"].signMessage({
      account, message: new TextEncoder().encode(challenge.message) });
    message = challenge.message; signature = out.signature;
  }
  const session = await api("POST", "/auth/login", { message, signature: b58encode(signature) });
  Object.assign(state, { wallet, account, token: session.token, address: session.wallet });
  $("who").textContent = short(session.wallet) + (session.operator ? " (operator)" : "");
  $("mine").hidden = false;
  say(`Signed in as ${session.wallet}`);
  connectLive();
  refresh();
}

// Ask the api for a transaction, have the wallet sign it, send it back.
async function transact(method, path, body) {
  const prepared = await api(method, path, body);
  say(`Approve "${prepared.action}" in your wallet…`);
  const [out] = await state.wallet.features["solana:signTransaction"].signTransaction({
    account: state.account, transaction: b64decode(prepared.transaction) });
  const done = await api("POST", "/transactions", { intent: prepared.intent, transaction: b64encode(out.signedTransaction) });
  say(`${prepared.action}: confirmed ${short(done.signature)}`);
  return done;
}

// --- views ----------------------------------------------------------------------------------------------
function rows(id, items, row) { $(id).querySelector("tbody").innerHTML = items.map(row).join(""); }

async function refresh() {
  try {
    const [book, trades, meters] = await Promise.all([api("GET", "/orders/book?limit=50"),
      api("GET", "/trades?limit=20"), api("GET", "/meters?limit=50")]);
    rows("book", book.items, (o) => `<tr data-order="${esc(o.address)}"><td class="num">${(o.price / THBC).toFixed(2)}</td>
      <td class="num">${(o.remaining / KWH).toFixed(3)}</td><td class="short">${esc(short(o.seller))}</td>
      <td>${state.token && o.seller !== state.address ? `<input type="number" min="0.001" step="0.001" placeholder="all" aria-label="kWh">
      <button class="buy">Buy</button>` : ""}</td></tr>`);
    rows("trades", trades.items, (t) => `<tr><td class="num">${(t.amount / KWH).toFixed(3)}</td>
      <td class="num">${(t.price / THBC).toFixed(2)}</td><td class="num">${(t.cost / THBC).toFixed(2)}</td>
      <td class="short">${esc(short(t.buyer))}</td></tr>`);
    rows("meters", meters.items, (m) => `<tr><td>${esc(m.meter_id)}</td><td>${esc(m.status)}</td>
      <td class="num">${(m.minted / KWH).toFixed(3)}</td></tr>`);
    if (state.token) {
      const [me, mine] = await Promise.all([api("GET", "/users/me"), api("GET", "/orders/mine?limit=20")]);
      const b = me.balances;
      $("balances").textContent = `GRID ${(b.grid / KWH).toFixed(3)} kWh (+${(b.grid_in_escrow / KWH).toFixed(3)} on offer) · THBC ${(b.thbc / THBC).toFixed(2)}`;
      rows("my-orders", mine.items, (o) => `<tr data-order="${esc(o.address)}"><td class="short">${esc(short(o.address))}</td>
        <td>${esc(o.state)}</td><td class="num">${(o.remaining / KWH).toFixed(3)}</td>
        <td class="num">${(o.price / THBC).toFixed(2)}</td>
        <td>${["ACTIVE", "PARTIALLY_FILLED"].includes(o.state) ? '<button class="cancel">Cancel</button>' : ""}</td></tr>`);
    }
  } catch (error) { say(String(error.message || error)); }
}

let pending = null;
function refreshSoon() { clearTimeout(pending); pending = setTimeout(refresh, 150); }

// --- live feed: /ws, resumed from the last event id after a drop -------------------------------------
// What the live list says about an event, by its kind: docs/backend.md "Events" names the kinds and the
// fields of `data` (a test checks every kind and field used here against the indexer's).
const kwh = (base) => `${(base / KWH).toFixed(3)} kWh`, baht = (base) => `${(base / THBC).toFixed(2)} THBC`;
const DESCRIBE = {
  order_created: (d) => `${kwh(d.amount)} offered at ${baht(d.price)}/kWh`,
  order_filled: (d) => `${kwh(d.amount)} sold, ${kwh(d.remaining)} left`,
  trade_executed: (d) => `${kwh(d.amount)} at ${baht(d.price)}/kWh`,
  order_cancelled: (d) => `${kwh(d.refunded)} back to the seller`,
  order_expired: (d) => `${kwh(d.refunded)} back to the seller`,
  minted: (d) => `${kwh(d.amount)} minted for meter ${d.meter_id}`,
  grid_consumed: (d) => `${kwh(d.amount)} consumed`,
  thbc_issued: (d) => `${baht(d.amount)} issued against ${d.reference}`,
  thbc_redeemed: (d) => `${baht(d.amount)} redeemed, payout ${d.payout_reference}`,
  meter_registered: (d) => `meter ${d.meter_id} registered`,
  meter_status_changed: (d) => `meter ${d.meter_id} ${d.status}`,
  certificate_issued: (d) => `${d.to_wh - d.from_wh} Wh certificate requested`,
  certificate_validated: (d) => `${d.to_wh - d.from_wh} Wh certificate ${d.status}`,
  certificate_retired: (d) => `${d.to_wh - d.from_wh} Wh certificate ${d.status}`,
};
function describe(event) {
  const say = DESCRIBE[event.kind];
  return `#${event.id} ${event.kind}` + (say ? ` · ${say(event.data)}` : ` ${short(event.subject || "")}`);
}

function connectLive() {
  if (state.ws) state.ws.close();
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (state.lastId !== null) url.searchParams.set("since", state.lastId);
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "ready") { state.lastId = event.last_id; return; }
    state.lastId = event.id;
    const li = document.createElement("li");
    li.textContent = describe(event);
    $("live").prepend(li);
    refreshSoon();
  };
  ws.onclose = () => { if (state.ws === ws) setTimeout(connectLive, 1000); };
}

// --- actions --------------------------------------------------------------------------------------------
$("signin").addEventListener("click", () => signIn().catch((e) => say(String(e.message || e))));
$("sell").addEventListener("submit", (event) => {
  event.preventDefault();
  const amount = Math.round(Number($("sell-kwh").value) * KWH), price = Math.round(Number($("sell-price").value) * THBC);
  transact("POST", "/orders", { amount, price }).then(refresh).catch((e) => say(String(e.message || e)));
});
document.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-order]");
  if (!row) return;
  const order = row.dataset.order;
  if (event.target.classList.contains("buy")) {
    const kwh = row.querySelector("input").value;
    const body = kwh ? { amount: Math.round(Number(kwh) * KWH) } : {};
    transact("POST", `/orders/${order}/buy`, body).then(refresh).catch((e) => say(String(e.message || e)));
  } else if (event.target.classList.contains("cancel")) {
    transact("POST", `/orders/${order}/cancel`).then(refresh).catch((e) => say(String(e.message || e)));
  }
});

renderWallets();
refresh();
connectLive();
