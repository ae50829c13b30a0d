// SkyKoi web chat: one page, one WebSocket to the gateway that served it.
// The protocol is shared/PROTOCOL.md. Model text only ever reaches the DOM
// through markdown.js (text nodes) or textContent; nothing here turns a
// string into markup, so the page's CSP is a second wall, not the only one.

import { renderMarkdown } from "./markdown.js";

const CLIENT_ID = "skykoi-webchat";
const CLIENT_MODE = "webchat";
const CLIENT_VERSION = "1.0.0";
const ROLE = "operator";
// Whoever holds the token is the Koi's owner: the settings view needs admin
// (config.get/set, sessions.reset/delete). The Go clients ask for the same
// list (client.OwnerScopes); gateway/webui/scopes_test.go keeps them equal,
// so keep this on one line.
const SCOPES = ["operator.read", "operator.write", "operator.admin"];
const CAPS = ["tool-events"];
const MAIN_KEY = "agent:main:main";
const TOKEN_STORE = "skykoi.webchat.token";
const SESSION_STORE = "skykoi.webchat.session";
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
// The gateway closes a connection that has not sent connect within 10 s; we
// give up a little earlier so the retry does not race that close.
const CHALLENGE_TIMEOUT_MS = 8000;
const HISTORY_LIMIT = 200;
const TOOL_TEXT_LIMIT = 20000;

const AUTH_FAILED_TEXT = "The token was not accepted. Open the link with #token=… again or paste the token.";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  deviceNote: $("device-note"),
  banner: $("banner"),
  tokenForm: $("token-form"),
  tokenInput: $("token-input"),
  messages: $("messages"),
  composer: $("composer"),
  input: $("input"),
  send: $("send"),
  stop: $("stop"),
  reset: $("reset"),
  sessions: $("sessions"),
  newSession: $("new-session"),
  modelWarning: $("model-warning"),
  settingsToggle: $("settings-toggle"),
  settings: $("settings"),
  configPath: $("config-path"),
  configText: $("config-text"),
  configIssues: $("config-issues"),
  configStatus: $("config-status"),
  configSave: $("config-save"),
  configReload: $("config-reload"),
  adminSessions: $("admin-sessions"),
  adminStatus: $("admin-sessions-status"),
  attachments: $("attachments"),
  fileInput: $("file-input"),
  attach: $("attach"),
};

const state = {
  token: "",
  device: undefined, // undefined: not loaded yet; null: none for this page
  deviceDisabled: false,
  ws: null,
  connected: false,
  attempt: 0,
  reconnectTimer: 0,
  stopReconnecting: false,
  nextDelayMs: 0,
  reqSeq: 0,
  pending: new Map(), // request id → {resolve, reject}
  session: MAIN_KEY,
  sessionList: [],
  localSessions: new Set(), // created here, not yet known to the gateway
  runs: new Map(), // runId → live run view
  activeRuns: new Map(), // runId → sessionKey, for the Stop button
  ownRuns: new Set(), // runs this page started
  historyToken: 0,
  sessionsTimer: 0,
  modelError: "", // why the model cannot answer, from health; "" when it can
  settingsOpen: false,
  configHash: "", // config.get's hash: config.set refuses a file changed since
  configEdited: false, // unsaved edits in the config box, never overwritten
  confirmDelete: "", // session key whose delete waits for a second click
  files: [], // attachments for the next message: {name, mimeType, size, content}
  attachPolicy: null, // hello-ok policy.attachments
};

class GatewayError extends Error {
  constructor(err) {
    super(err?.message || "request failed");
    this.code = err?.code || "UNAVAILABLE";
    this.details = err?.details || {};
    this.retryable = !!err?.retryable;
    this.retryAfterMs = err?.retryAfterMs || 0;
  }
}

// ---- storage -------------------------------------------------------------

// sessionStorage can throw (storage disabled, sandboxed frames); the page
// still works for as long as the tab stays open.
function storeGet(key) {
  try {
    return sessionStorage.getItem(key) || "";
  } catch {
    return "";
  }
}

function storeSet(key, value) {
  try {
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  } catch {
    /* kept in memory only */
  }
}

// takeTokenFromFragment moves #token=… into sessionStorage and removes it from
// the address bar, so the secret is neither in history nor in a copied URL.
// A fragment is never sent to a server, which is why the link uses one.
function takeTokenFromFragment() {
  const hash = location.hash.replace(/^#/, "");
  if (!hash) return;
  const params = new URLSearchParams(hash);
  if (!params.has("token")) return;
  const token = (params.get("token") || "").trim();
  if (token) {
    state.token = token;
    storeSet(TOKEN_STORE, token);
  }
  params.delete("token");
  const rest = params.toString();
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? "#" + rest : ""));
}

// ---- device identity ------------------------------------------------------

const DB_NAME = "skykoi-webchat";
const DB_STORE = "device";
const DB_KEY = "ed25519";

function idbOpen() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(DB_STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function idbDo(db, mode, fn) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(DB_STORE, mode);
    const req = fn(tx.objectStore(DB_STORE));
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

function bytesToHex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

function base64url(buf) {
  let s = "";
  for (const b of new Uint8Array(buf)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// loadDevice returns this browser's device identity, creating it on first
// use. The private key is generated non-extractable: script (ours or an
// injected one) can ask the browser to sign with it but can never read it.
// IndexedDB stores the CryptoKey object itself, so the key survives reloads
// without ever existing as bytes the page could see.
async function loadDevice() {
  if (!globalThis.crypto?.subtle || !globalThis.indexedDB) {
    return { device: null, reason: "this page is not in a secure context (use https or 127.0.0.1)" };
  }
  let db = null;
  try {
    db = await idbOpen();
  } catch {
    db = null; // private windows may refuse IndexedDB; use a key for this page only
  }
  try {
    let rec = db ? await idbDo(db, "readonly", (s) => s.get(DB_KEY)) : null;
    if (!rec?.privateKey || !rec?.publicRaw) {
      const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
      const publicRaw = await crypto.subtle.exportKey("raw", pair.publicKey);
      rec = { privateKey: pair.privateKey, publicRaw, createdAt: Date.now() };
      if (db) {
        try {
          // add, not put: when two tabs race, the first key wins and the
          // other tab adopts it instead of silently replacing it.
          await idbDo(db, "readwrite", (s) => s.add(rec, DB_KEY));
        } catch {
          const stored = await idbDo(db, "readonly", (s) => s.get(DB_KEY)).catch(() => null);
          if (stored?.privateKey && stored?.publicRaw) rec = stored;
        }
      }
    }
    const id = bytesToHex(await crypto.subtle.digest("SHA-256", rec.publicRaw));
    return { device: { id, publicKey: base64url(rec.publicRaw), privateKey: rec.privateKey, persistent: !!db }, reason: "" };
  } catch (err) {
    return { device: null, reason: "this browser cannot make Ed25519 keys (" + (err?.name || "error") + ")" };
  } finally {
    db?.close();
  }
}

// normalizeMeta matches the gateway: JavaScript trim, ASCII-only lower case.
function normalizeMeta(s) {
  return (s || "").trim().replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function clientPlatform() {
  return (navigator.platform || "").trim() || "web";
}

async function deviceProof(dev, nonce, token, platform) {
  const signedAt = Date.now();
  const payload = [
    "v3", dev.id, CLIENT_ID, CLIENT_MODE, ROLE, SCOPES.join(","), String(signedAt),
    token, nonce, normalizeMeta(platform), normalizeMeta(""),
  ].join("|");
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, dev.privateKey, new TextEncoder().encode(payload));
  return { id: dev.id, publicKey: dev.publicKey, signature: base64url(sig), signedAt, nonce };
}

function setDeviceNote(kind, text) {
  ui.deviceNote.dataset.device = kind;
  ui.deviceNote.textContent = text;
}

// ---- connection -----------------------------------------------------------

// randomID works outside secure contexts too, where crypto.randomUUID is
// missing (the gateway opened over plain http on a LAN address).
function randomID() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = bytesToHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  ui.status.dataset.base = text;
  ui.status.textContent = kind === "connected" && state.modelError ? text + " — the model is unreachable" : text;
  document.body.dataset.connection = kind;
  ui.send.disabled = kind !== "connected";
  ui.reset.disabled = kind !== "connected";
}

function showBanner(text, kind = "error") {
  ui.banner.textContent = text;
  ui.banner.dataset.kind = kind;
  ui.banner.hidden = !text;
}

function socketURL() {
  // Same origin as the page, so the gateway's Origin check passes directly
  // and through nginx, whose Host is the browser's.
  const u = new URL(".", location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  u.hash = "";
  u.search = "";
  return u.href;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = 0;
  if (!state.token) {
    askForToken();
    return;
  }
  state.stopReconnecting = false;
  setStatus("connecting", state.attempt ? "Reconnecting…" : "Connecting…");
  let ws;
  try {
    ws = new WebSocket(socketURL());
  } catch (err) {
    setStatus("disconnected", "Cannot open a connection: " + err.message);
    scheduleReconnect();
    return;
  }
  state.ws = ws;
  let challenged = false;
  const challengeTimer = setTimeout(() => {
    if (!challenged && state.ws === ws) ws.close(4000, "no challenge");
  }, CHALLENGE_TIMEOUT_MS);
  ws.onmessage = (ev) => {
    if (state.ws !== ws) return;
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!challenged && frame.type === "event" && frame.event === "connect.challenge") {
      challenged = true;
      clearTimeout(challengeTimer);
      handshake(ws, frame.payload?.nonce || "");
      return;
    }
    onFrame(frame);
  };
  ws.onclose = (ev) => {
    clearTimeout(challengeTimer);
    if (state.ws !== ws) return;
    onClose(ev);
  };
}

async function handshake(ws, nonce) {
  const platform = clientPlatform();
  const params = {
    minProtocol: 3,
    maxProtocol: 4,
    client: { id: CLIENT_ID, version: CLIENT_VERSION, platform, mode: CLIENT_MODE, displayName: "Web chat" },
    role: ROLE,
    scopes: SCOPES,
    caps: CAPS,
    auth: { token: state.token },
    locale: navigator.language || undefined,
    userAgent: navigator.userAgent,
  };
  if (state.device === undefined) {
    // A key store that never answers must not hold the sign-in past the
    // gateway's 10 s handshake limit, again on every retry.
    const { device, reason } = await Promise.race([
      loadDevice(),
      new Promise((resolve) => setTimeout(() => resolve({ device: null, reason: "the browser's key store did not answer" }), 3000)),
    ]);
    state.device = device;
    if (!device) setDeviceNote("none", "No device key: " + reason + ". Connected with the token alone.");
  }
  if (state.device && !state.deviceDisabled) {
    try {
      params.device = await deviceProof(state.device, nonce, state.token, platform);
    } catch (err) {
      state.deviceDisabled = true;
      setDeviceNote("none", "Signing failed (" + (err?.name || "error") + "); connected with the token alone.");
    }
  }
  if (state.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
  let hello;
  try {
    hello = await request("connect", params, ws);
  } catch (err) {
    onConnectError(err);
    return;
  }
  onHello(hello);
}

// applyHealth shows, from the moment the page connects, whether runs can
// work: without it a page with no model credentials looks healthy until the
// first message fails.
function applyHealth(health) {
  const model = health?.model;
  if (!model) return;
  state.modelError = model.reachable === false ? model.error || "The model is unreachable." : "";
  ui.modelWarning.textContent = state.modelError;
  ui.modelWarning.hidden = !state.modelError;
  if (state.modelError) ui.status.dataset.model = "unreachable";
  else delete ui.status.dataset.model;
  if (ui.status.dataset.state === "connected") setStatus("connected", ui.status.dataset.base || "Connected");
}

function onHello(hello) {
  state.connected = true;
  applyHealth(hello?.snapshot?.health);
  state.attempt = 0;
  state.nextDelayMs = 0;
  state.attachPolicy = hello?.policy?.attachments || null;
  setStatus("connected", "Connected" + (hello?.server?.host ? " to " + hello.server.host : ""));
  showBanner("");
  ui.tokenForm.hidden = true;
  // Whatever ran while we were away is in the history now, or will send
  // its next event with its whole text so far.
  state.runs.clear();
  state.ownRuns.clear();
  if (state.device && !state.deviceDisabled) {
    setDeviceNote("verified", "Device " + state.device.id.slice(0, 12) + (state.device.persistent ? "" : " (this tab only)"));
  }
  refreshSessions();
  loadHistory();
  if (state.settingsOpen) loadSettings();
}

function onConnectError(err) {
  const code = err.details?.code || err.code;
  if (code === "AUTH_TOKEN_MISSING" || code === "AUTH_TOKEN_MISMATCH" || code === "AUTH_PASSWORD_MISSING" || code === "AUTH_PASSWORD_MISMATCH") {
    // Retrying with the same token only burns rate-limit attempts.
    state.stopReconnecting = true;
    state.token = "";
    storeSet(TOKEN_STORE, "");
    setStatus("auth-failed", "Not signed in");
    showBanner(AUTH_FAILED_TEXT);
    askForToken();
    return;
  }
  if (code === "AUTH_RATE_LIMITED") {
    const wait = Math.max(1000, err.retryAfterMs || 60000);
    state.nextDelayMs = wait;
    setStatus("rate-limited", "Locked out for now");
    showBanner(`Too many failed sign-in attempts from this address. Trying again in ${humanDuration(wait)}.`);
    return;
  }
  if (typeof code === "string" && code.startsWith("DEVICE_AUTH_")) {
    // The token already checked out; the device is an extra we can drop.
    state.deviceDisabled = true;
    state.nextDelayMs = 1;
    const hint = code === "DEVICE_AUTH_SIGNATURE_EXPIRED" ? " (is this computer's clock right?)" : "";
    setDeviceNote("none", `The device key was not accepted (${code})${hint}; using the token alone.`);
    return;
  }
  if (err.message === "protocol mismatch") {
    state.stopReconnecting = true;
    setStatus("disconnected", "Incompatible gateway");
    showBanner("This page and the gateway do not share a protocol version. Reload the page.");
    return;
  }
  showBanner("Could not sign in: " + err.message);
}

function onClose(ev) {
  const wasConnected = state.connected;
  state.connected = false;
  state.ws = null;
  for (const { reject } of state.pending.values()) reject(new GatewayError({ code: "UNAVAILABLE", message: "connection closed" }));
  state.pending.clear();
  state.activeRuns.clear();
  updateStop();
  if (state.stopReconnecting) return;
  if (ev.code === 1012) {
    setStatus("restarting", "The Koi is restarting…");
    showBanner("The Koi is restarting…", "info");
  } else if (ui.status.dataset.state !== "rate-limited") {
    setStatus("disconnected", wasConnected ? "Connection lost" : "Cannot reach the Koi");
  }
  scheduleReconnect();
}

// scheduleReconnect waits with exponential backoff (capped at 30 s) and
// jitter, so many tabs reconnecting after a restart do not arrive at the same
// instant.
function scheduleReconnect() {
  if (state.stopReconnecting || state.reconnectTimer) return;
  let delay = state.nextDelayMs;
  state.nextDelayMs = 0;
  if (!delay) {
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** state.attempt);
    delay = cap / 2 + Math.random() * (cap / 2);
  }
  state.attempt++;
  if (ui.status.dataset.state === "disconnected") {
    ui.status.textContent += ` — retrying in ${humanDuration(delay)}`;
  }
  state.reconnectTimer = setTimeout(() => {
    state.reconnectTimer = 0;
    connect();
  }, delay);
}

function humanDuration(ms) {
  const s = Math.ceil(ms / 1000);
  if (s < 60) return s + (s === 1 ? " second" : " seconds");
  const m = Math.ceil(s / 60);
  return m + (m === 1 ? " minute" : " minutes");
}

function request(method, params, ws = state.ws) {
  return new Promise((resolve, reject) => {
    if (!ws || ws.readyState !== WebSocket.OPEN || (method !== "connect" && !state.connected)) {
      reject(new GatewayError({ code: "UNAVAILABLE", message: "not connected" }));
      return;
    }
    const id = "w" + ++state.reqSeq;
    state.pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ type: "req", id, method, params }));
  });
}

function onFrame(frame) {
  if (frame.type === "res") {
    const p = state.pending.get(frame.id);
    if (!p) return;
    state.pending.delete(frame.id);
    if (frame.ok) p.resolve(frame.payload);
    else p.reject(new GatewayError(frame.error));
    return;
  }
  if (frame.type !== "event") return;
  const payload = frame.payload || {};
  switch (frame.event) {
    case "chat":
      onChat(payload);
      break;
    case "agent":
      onAgent(payload);
      break;
    case "sessions.changed":
      if ((payload.keys || []).includes(state.session) && payload.reason === "reset") loadHistory();
      refreshSessionsSoon();
      break;
    case "health":
      applyHealth(payload);
      break;
    case "shutdown":
      state.nextDelayMs = Math.min(BACKOFF_MAX_MS, Math.max(500, payload.restartExpectedMs || 0));
      setStatus("restarting", "The Koi is restarting…");
      showBanner("The Koi is restarting…", "info");
      break;
  }
}

function askForToken() {
  setStatus(ui.status.dataset.state === "auth-failed" ? "auth-failed" : "no-token", "Not signed in");
  ui.tokenForm.hidden = false;
  ui.tokenInput.value = "";
  ui.tokenInput.focus();
}

// ---- messages -------------------------------------------------------------

function nearBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function scrollDown(force) {
  if (force || nearBottom()) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function messageEl(role) {
  const art = document.createElement("article");
  art.className = "msg " + role;
  const who = document.createElement("h2");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Koi";
  art.append(who);
  return art;
}

function textEl(text) {
  const div = document.createElement("div");
  div.className = "md";
  renderMarkdown(text, div);
  return div;
}

function userEl(text, files = []) {
  const art = messageEl("user");
  const body = document.createElement("div");
  body.className = "plain";
  // What the person typed is shown as typed.
  body.textContent = text;
  art.append(body);
  if (files.length) {
    const list = document.createElement("p");
    list.className = "files";
    for (const f of files) {
      const span = document.createElement("span");
      span.className = "sent-file";
      span.textContent = "📎 " + f;
      list.append(span);
    }
    art.append(list);
  }
  return art;
}

// ---- files in and out ------------------------------------------------------

const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function bytesToBase64(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

function renderAttachments() {
  ui.attachments.replaceChildren();
  ui.attachments.hidden = state.files.length === 0;
  state.files.forEach((f, i) => {
    const li = document.createElement("li");
    li.textContent = f.name;
    const rm = document.createElement("button");
    rm.type = "button";
    rm.className = "secondary";
    rm.textContent = "×";
    rm.title = "Remove " + f.name;
    rm.addEventListener("click", () => {
      state.files.splice(i, 1);
      renderAttachments();
    });
    li.append(rm);
    ui.attachments.append(li);
  });
}

// addFiles reads files into the next message, checking the limits the
// gateway advertised so a file too large is refused here, at once.
async function addFiles(list) {
  const pol = state.attachPolicy || {};
  for (const file of list) {
    const image = IMAGE_TYPES.has(file.type);
    const ceiling = image ? pol.maxImageBytes : pol.maxBytes;
    if (ceiling && file.size > ceiling) {
      showBanner(`${file.name} is ${file.size} bytes; the Koi accepts at most ${ceiling} bytes per ${image ? "image" : "file"}.`);
      continue;
    }
    if (pol.maxCount && state.files.length >= pol.maxCount) {
      showBanner(`At most ${pol.maxCount} files per message.`);
      break;
    }
    const content = bytesToBase64(await file.arrayBuffer());
    state.files.push({ name: file.name, mimeType: file.type || "", size: file.size, content });
  }
  renderAttachments();
}

function encodePath(p) {
  return p.split("/").map(encodeURIComponent).join("/");
}

// download fetches a workspace file with the token in a header (never in a
// URL, where logs and history would keep it) and saves it from a blob.
async function download(path, link) {
  try {
    const res = await fetch("/files/" + encodePath(path), { headers: { Authorization: "Bearer " + state.token }, cache: "no-store" });
    if (!res.ok) {
      let why = res.statusText;
      try {
        why = (await res.json()).error || why;
      } catch {}
      throw new Error(why);
    }
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = path.split("/").pop();
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    link.dataset.state = "downloaded";
  } catch (err) {
    link.dataset.state = "error";
    link.after(errorEl("Download failed: " + err.message));
  }
}

// workspacePath is p as a path inside the workspace, or "" when the page
// cannot tell (absolute paths, climbing out).
function workspacePath(p) {
  if (typeof p !== "string") return "";
  p = p.trim().replace(/^\.\//, "");
  if (!p || p.startsWith("/") || p.startsWith("~") || p.includes("\\")) return "";
  const segs = p.split("/");
  if (segs.some((s) => s === "" || s === "." || s === "..")) return "";
  return p;
}

function fileLink(path) {
  const a = document.createElement("a");
  a.href = "#";
  a.className = "file-link";
  a.dataset.path = path;
  a.textContent = "⬇ " + path;
  a.addEventListener("click", (ev) => {
    ev.preventDefault();
    download(path, a);
  });
  return a;
}

// addFileLinks puts download links for paths under el, once each.
function addFileLinks(el, paths) {
  let box = el.querySelector(":scope > .files");
  for (const p of paths) {
    if (!p || el.querySelector(`:scope > .files [data-path="${CSS.escape(p)}"]`)) continue;
    if (!box) {
      box = document.createElement("p");
      box.className = "files";
      el.append(box);
    }
    box.append(fileLink(p));
  }
}

// mentionedPaths are workspace paths an answer names in backticks, like
// `out/report.pdf`: a name with an extension, relative, not climbing out.
function mentionedPaths(text) {
  const out = [];
  for (const m of String(text || "").matchAll(/`([^`\s]+\.[A-Za-z0-9]{1,8})`/g)) {
    const p = workspacePath(m[1]);
    if (p && !out.includes(p)) out.push(p);
  }
  return out;
}

function writtenPath(name, args) {
  if (name !== "write" && name !== "edit") return "";
  if (typeof args === "string") {
    try {
      args = JSON.parse(args);
    } catch {
      return "";
    }
  }
  return workspacePath(args?.path);
}

function clip(s) {
  s = String(s ?? "");
  return s.length > TOOL_TEXT_LIMIT ? s.slice(0, TOOL_TEXT_LIMIT) + "\n… (truncated)" : s;
}

function prettyArgs(args) {
  if (args === undefined || args === null) return "";
  if (typeof args === "string") {
    try {
      return JSON.stringify(JSON.parse(args), null, 2);
    } catch {
      return args;
    }
  }
  return JSON.stringify(args, null, 2);
}

// toolEl is a tool call, collapsed: the answer is what matters, the
// details are one click away.
function toolEl(name, args) {
  const d = document.createElement("details");
  d.className = "tool";
  d.dataset.state = "running";
  const sum = document.createElement("summary");
  const label = document.createElement("span");
  label.className = "tool-label";
  label.textContent = "Tool ";
  const code = document.createElement("code");
  code.className = "tool-name";
  code.textContent = name || "tool";
  const st = document.createElement("span");
  st.className = "tool-state";
  st.textContent = "running…";
  sum.append(label, code, " ", st);
  d.append(sum);
  const a = prettyArgs(args);
  if (a) d.append(section("Arguments", a));
  return d;
}

function section(title, text) {
  const wrap = document.createElement("div");
  wrap.className = "tool-section";
  const h = document.createElement("p");
  h.className = "tool-title";
  h.textContent = title;
  const pre = document.createElement("pre");
  pre.textContent = clip(text);
  wrap.append(h, pre);
  return wrap;
}

function toolResult(d, result, isError) {
  d.dataset.state = isError ? "error" : "done";
  d.querySelector(".tool-state").textContent = isError ? "failed" : "done";
  d.append(section(isError ? "Error" : "Result", result ?? ""));
}

function errorEl(text) {
  const p = document.createElement("p");
  p.className = "inline-error";
  p.setAttribute("role", "alert");
  p.textContent = text;
  return p;
}

function noteEl(text) {
  const p = document.createElement("p");
  p.className = "note";
  p.textContent = text;
  return p;
}

// A live run is one assistant article built from segments: text, then a
// tool call, then more text. chat events carry the run's whole text, so
// each segment shows the slice of it that arrived before the next tool.
function runView(runId, sessionKey) {
  let run = state.runs.get(runId);
  if (run) return run;
  const art = messageEl("assistant");
  art.dataset.runId = runId;
  art.setAttribute("aria-busy", "true");
  const seg = textEl("");
  seg.classList.add("pending");
  art.append(seg);
  run = { art, text: "", segStart: 0, seg, tools: new Map(), sessionKey, done: false };
  state.runs.set(runId, run);
  if (sessionKey === state.session) {
    ui.messages.append(art);
    scrollDown(false);
  }
  return run;
}

function renderSegment(run) {
  const stick = nearBottom();
  run.seg.replaceChildren();
  run.seg.classList.toggle("pending", !run.text && !run.done);
  renderMarkdown(run.text.slice(run.segStart), run.seg);
  if (stick) scrollDown(true);
}

function messageText(msg) {
  return (msg?.content || []).filter((c) => c?.type === "text").map((c) => c.text || "").join("\n");
}

function onChat(p) {
  if (!p.runId) return;
  const mine = p.sessionKey === state.session;
  const run = runView(p.runId, p.sessionKey);
  if (p.state === "delta") {
    if (!state.activeRuns.has(p.runId)) {
      // Joined mid-run (after a reconnect): Stop must still reach it.
      state.activeRuns.set(p.runId, p.sessionKey);
      updateStop();
    }
    run.text += p.deltaText || "";
    const full = p.message ? messageText(p.message) : "";
    // A page that joined mid-run missed earlier deltas; the full text fixes that.
    if (full && full !== run.text) run.text = full;
    renderSegment(run);
    return;
  }
  run.done = true;
  state.activeRuns.delete(p.runId);
  updateStop();
  if (p.message) {
    const full = messageText(p.message);
    if (!full.startsWith(run.text.slice(0, run.segStart))) run.segStart = 0;
    run.text = full;
  }
  renderSegment(run);
  addFileLinks(run.art, mentionedPaths(run.text));
  run.art.removeAttribute("aria-busy");
  if (mine) {
    if (p.state === "aborted") run.art.append(noteEl("Stopped."));
    if (p.state === "error") run.art.append(errorEl(p.errorMessage || "The run failed."));
    // A run another client started: its question is in the transcript.
    if (!state.ownRuns.has(p.runId)) loadHistory();
  }
  state.ownRuns.delete(p.runId);
  state.runs.delete(p.runId);
  refreshSessionsSoon();
}

function onAgent(p) {
  if (!p.runId) return;
  const data = p.data || {};
  if (p.stream === "lifecycle" && data.phase === "start") {
    state.activeRuns.set(p.runId, p.sessionKey);
    updateStop();
    if (p.sessionKey === state.session) runView(p.runId, p.sessionKey);
    return;
  }
  if (p.stream !== "tool") return;
  const run = runView(p.runId, p.sessionKey);
  if (data.phase === "start") {
    const d = toolEl(data.name, data.args);
    d.dataset.args = typeof data.args === "string" ? data.args : JSON.stringify(data.args ?? {});
    run.tools.set(data.toolCallId, d);
    renderSegment(run);
    run.seg.classList.remove("pending");
    run.art.append(d);
    // Text after the tool goes into a new segment below it.
    run.segStart = run.text.length;
    run.seg = textEl("");
    run.art.append(run.seg);
  } else if (data.phase === "result") {
    const d = run.tools.get(data.toolCallId);
    if (d) toolResult(d, data.result, data.isError);
    const p = !data.isError && writtenPath(data.name, d?.dataset.args);
    if (p) addFileLinks(run.art, [p]);
  }
  if (p.sessionKey === state.session) scrollDown(false);
}

function updateStop() {
  const active = [...state.activeRuns.values()].some((k) => k === state.session);
  ui.stop.hidden = !active;
}

function renderHistory(messages) {
  ui.messages.replaceChildren();
  const calls = new Map(); // toolCallId → details, to attach results
  let art = null;
  for (const m of messages) {
    const blocks = m.content || [];
    if (m.role === "user") {
      const results = blocks.filter((b) => b.type === "toolResult");
      for (const r of results) {
        const d = calls.get(r.toolCallId);
        if (d) toolResult(d, r.result, r.isError);
      }
      const text = messageText(m);
      const sent = blocks.filter((b) => b.type === "attachment").map((b) => b.path);
      if (text || sent.length || !results.length) {
        art = null;
        ui.messages.append(userEl(text, sent));
      }
      continue;
    }
    if (!art) {
      art = messageEl("assistant");
      ui.messages.append(art);
    }
    const links = [];
    for (const b of blocks) {
      if (b.type === "text" && b.text) {
        art.append(textEl(b.text));
        links.push(...mentionedPaths(b.text));
      } else if (b.type === "toolCall") {
        const d = toolEl(b.name, b.arguments);
        calls.set(b.id, d);
        art.append(d);
        links.push(writtenPath(b.name, b.arguments));
      }
    }
    addFileLinks(art, links);
    if (m.stopReason === "interrupted") art.append(noteEl("Stopped."));
    // A failed run leaves why in the transcript, so the turn reads the
    // same after a reload as it did live.
    if (m.stopReason === "error") art.append(errorEl(m.errorMessage || "The run failed."));
  }
  if (!messages.length) ui.messages.append(noteEl("No messages yet. Say hello."));
  // Runs still going in this session continue below the history.
  for (const run of state.runs.values()) {
    if (run.sessionKey === state.session && !run.done) ui.messages.append(run.art);
  }
  scrollDown(true);
}

async function loadHistory() {
  const token = ++state.historyToken;
  const key = state.session;
  let res;
  try {
    res = await request("chat.history", { sessionKey: key, limit: HISTORY_LIMIT });
  } catch (err) {
    if (token !== state.historyToken) return;
    if (err.code === "NOT_FOUND") {
      renderHistory([]);
      return;
    }
    ui.messages.append(errorEl("Could not load the conversation: " + err.message));
    return;
  }
  if (token !== state.historyToken || key !== state.session) return;
  // Live runs are re-created from events; what ended is now in the history.
  for (const [id, run] of state.runs) if (run.done) state.runs.delete(id);
  renderHistory(res.messages || []);
}

async function sendMessage(text) {
  if (!state.connected) {
    ui.messages.append(errorEl("Not connected; the message was not sent."));
    scrollDown(true);
    return false;
  }
  const cmd = text.trim();
  if (!state.files.length && (cmd === "/new" || cmd === "/reset")) {
    await resetSession();
    return true;
  }
  const empty = ui.messages.querySelector(":scope > .note:only-child");
  if (empty) empty.remove();
  const key = state.session;
  const files = state.files;
  state.files = [];
  renderAttachments();
  const user = userEl(text, files.map((f) => f.name));
  ui.messages.append(user);
  const runId = randomID();
  state.ownRuns.add(runId);
  runView(runId, key);
  scrollDown(true);
  try {
    const params = { sessionKey: key, message: text, idempotencyKey: runId };
    if (files.length) {
      params.attachments = files.map((f) => ({ type: IMAGE_TYPES.has(f.mimeType) ? "image" : "file", mimeType: f.mimeType, fileName: f.name, content: f.content }));
    }
    const res = await request("chat.send", params);
    if (res?.runId && res.runId !== runId) {
      const run = state.runs.get(runId);
      state.runs.delete(runId);
      if (run) state.runs.set(res.runId, run);
      state.ownRuns.add(res.runId);
    }
    state.localSessions.delete(key);
  } catch (err) {
    const run = state.runs.get(runId);
    state.runs.delete(runId);
    state.ownRuns.delete(runId);
    run?.art.remove();
    user.append(errorEl("Not sent: " + err.message));
    if (!state.files.length) {
      state.files = files; // kept for another try
      renderAttachments();
    }
    return false;
  }
  return true;
}

async function resetSession() {
  try {
    await request("chat.send", { sessionKey: state.session, message: "/new", idempotencyKey: randomID() });
  } catch (err) {
    ui.messages.append(errorEl("Could not reset: " + err.message));
    return;
  }
  await loadHistory();
  ui.messages.append(noteEl("Started afresh. The previous conversation is kept on the Koi."));
}

// ---- sessions -------------------------------------------------------------

function shortKey(key) {
  return key.startsWith("agent:main:") ? key.slice("agent:main:".length) : key;
}

function sessionTitle(s) {
  if (s.key === MAIN_KEY && !s.label) return "Main";
  return s.label || s.derivedTitle || shortKey(s.key);
}

function renderSessions() {
  const known = new Set(state.sessionList.map((s) => s.key));
  const list = [...state.sessionList];
  for (const k of state.localSessions) if (!known.has(k)) list.unshift({ key: k });
  if (!list.some((s) => s.key === MAIN_KEY)) list.push({ key: MAIN_KEY });
  if (!list.some((s) => s.key === state.session)) list.unshift({ key: state.session });
  ui.sessions.replaceChildren(
    ...list.map((s) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "session";
      b.dataset.key = s.key;
      const title = document.createElement("span");
      title.className = "session-title";
      title.textContent = sessionTitle(s);
      b.append(title);
      if (s.lastMessagePreview) {
        const prev = document.createElement("span");
        prev.className = "session-preview";
        prev.textContent = s.lastMessagePreview;
        b.append(prev);
      }
      if (s.key === state.session) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => switchSession(s.key));
      li.append(b);
      return li;
    }),
  );
}

async function refreshSessions() {
  try {
    const res = await request("sessions.list", { limit: 50 });
    state.sessionList = res.sessions || [];
  } catch {
    /* keep the list we have; the next change retries */
  }
  renderSessions();
  if (state.settingsOpen) renderAdminSessions();
}

// Several events in a burst (a run ending, a reset) need one refresh.
function refreshSessionsSoon() {
  clearTimeout(state.sessionsTimer);
  state.sessionsTimer = setTimeout(refreshSessions, 300);
}

function switchSession(key) {
  if (key === state.session) return;
  state.session = key;
  storeSet(SESSION_STORE, key);
  renderSessions();
  updateStop();
  ui.messages.replaceChildren();
  loadHistory();
  ui.input.focus();
}

function newSession() {
  const b = crypto.getRandomValues(new Uint8Array(4));
  const key = "agent:main:chat-" + bytesToHex(b);
  state.localSessions.add(key);
  switchSession(key);
}

// ---- settings -------------------------------------------------------------

function setConfigStatus(kind, text) {
  ui.configStatus.dataset.kind = kind;
  ui.configStatus.textContent = text;
}

// showIssues lists the validator's issues under the box, each as
// "path: message", so the owner sees every problem of one save at once.
function showIssues(issues) {
  ui.configIssues.replaceChildren(
    ...(issues || []).map((is) => {
      const li = document.createElement("li");
      li.className = "issue";
      if (is.path) {
        const path = document.createElement("span");
        path.className = "issue-path";
        path.textContent = is.path;
        li.append(path, ": ");
      }
      const where = is.line ? ` (line ${is.line}${is.column ? ", column " + is.column : ""})` : "";
      li.append(String(is.message || "invalid") + where);
      return li;
    }),
  );
  ui.configIssues.hidden = !issues?.length;
}

function toggleSettings(open) {
  state.settingsOpen = open;
  ui.settings.hidden = !open;
  ui.messages.hidden = open;
  ui.composer.hidden = open;
  ui.settingsToggle.textContent = open ? "Back to chat" : "Settings";
  ui.settingsToggle.setAttribute("aria-expanded", String(open));
  if (open) loadSettings();
  else ui.input.focus();
}

function loadSettings() {
  loadConfig(false);
  refreshSessions();
}

// loadConfig fills the box from config.get. Unsaved edits are kept unless
// the owner asked to reload (force): a reconnect must not eat them.
async function loadConfig(force) {
  let res;
  try {
    res = await request("config.get", {});
  } catch (err) {
    setConfigStatus("error", "Could not read the config: " + err.message);
    return;
  }
  ui.configPath.textContent = res.path || "";
  if (state.configEdited && !force) {
    return;
  }
  state.configHash = res.hash || "";
  state.configEdited = false;
  if (res.valid === false) {
    // The file no longer parses; its text may hold secrets, so the page
    // gets only the issues. A complete config saved here replaces it.
    ui.configText.value = "";
    showIssues(res.issues);
    setConfigStatus("error", "The config file on the Koi is not valid; write a complete config here and save to replace it.");
    return;
  }
  ui.configText.value = JSON.stringify(res.config ?? {}, null, 2) + "\n";
  showIssues([]);
  setConfigStatus("", "");
}

async function saveConfig() {
  ui.configSave.disabled = true;
  setConfigStatus("", "Saving…");
  try {
    const res = await request("config.set", { raw: ui.configText.value, baseHash: state.configHash });
    state.configHash = res.hash || state.configHash;
    state.configEdited = false;
    showIssues([]);
    const how = res.restartRequired ? "; it takes effect when the gateway restarts" : res.applied === "restart" ? "; the gateway moved to the new address" : " and applied";
    setConfigStatus("ok", "Saved" + how + ".");
  } catch (err) {
    // The text stays as typed, whatever went wrong: nothing is lost.
    const issues = err.details?.issues;
    showIssues(issues);
    if (issues?.length) setConfigStatus("error", "Not saved: fix the problems listed above and save again.");
    else if (err.details?.hash) setConfigStatus("error", "Not saved: the config changed on the Koi since it was loaded. Copy your edits, then reload.");
    else setConfigStatus("error", "Not saved: " + err.message);
  } finally {
    ui.configSave.disabled = false;
  }
}

// actionButton is one of the sessions list's buttons; data-action names it
// for the browser tests.
function actionButton(className, action, text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.dataset.action = action;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function renderAdminSessions() {
  const when = (ms) => (ms ? new Date(ms).toLocaleString() : "");
  ui.adminSessions.replaceChildren(
    ...state.sessionList.map((s) => {
      const li = document.createElement("li");
      li.className = "admin-session";
      li.dataset.key = s.key;
      const name = document.createElement("span");
      name.className = "admin-session-name";
      name.textContent = sessionTitle(s) + " (" + shortKey(s.key) + ")";
      const meta = document.createElement("span");
      meta.className = "admin-session-meta";
      meta.textContent = when(s.updatedAt);
      const reset = actionButton("secondary", "reset", "Reset", () =>
        adminSession("sessions.reset", s.key, "Reset " + sessionTitle(s) + "."));
      li.append(name, meta, reset);
      if (state.confirmDelete === s.key) {
        // A second, explicit click: deleting cannot be undone from here.
        const yes = actionButton("danger", "confirm-delete", "Delete for good", () => {
          state.confirmDelete = "";
          adminSession("sessions.delete", s.key, "Deleted " + sessionTitle(s) + ".");
        });
        const no = actionButton("secondary", "cancel-delete", "Keep", () => {
          state.confirmDelete = "";
          renderAdminSessions();
        });
        li.append(yes, no);
      } else {
        li.append(actionButton("danger", "delete", "Delete…", () => {
          state.confirmDelete = s.key;
          renderAdminSessions();
        }));
      }
      return li;
    }),
  );
  if (!state.sessionList.length) ui.adminSessions.append(noteEl("No sessions yet."));
}

async function adminSession(method, key, done) {
  ui.adminStatus.dataset.kind = "";
  ui.adminStatus.textContent = "";
  try {
    await request(method, { key });
    ui.adminStatus.dataset.kind = "ok";
    ui.adminStatus.textContent = done;
  } catch (err) {
    ui.adminStatus.dataset.kind = "error";
    ui.adminStatus.textContent = "Could not " + (method === "sessions.delete" ? "delete" : "reset") + " " + shortKey(key) + ": " + err.message;
  }
  if (method === "sessions.delete" && key === state.session) {
    state.localSessions.delete(key);
    state.session = MAIN_KEY;
    storeSet(SESSION_STORE, MAIN_KEY);
  }
  if (key === state.session) loadHistory();
  await refreshSessions();
}

// ---- wiring ---------------------------------------------------------------

ui.settingsToggle.addEventListener("click", () => toggleSettings(!state.settingsOpen));
ui.configText.addEventListener("input", () => {
  state.configEdited = true;
});
ui.configSave.addEventListener("click", () => saveConfig());
ui.configReload.addEventListener("click", () => loadConfig(true));

ui.composer.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  // Blank lines around a message are accidents of typing; indentation
  // inside it (code) is kept.
  const text = ui.input.value.replace(/^(?:[ \t]*\n)+/, "").trimEnd();
  if (!text.trim() && !state.files.length) return;
  ui.input.value = "";
  const ok = await sendMessage(text);
  if (!ok && !ui.input.value) ui.input.value = text;
  ui.input.focus();
});

ui.input.addEventListener("keydown", (ev) => {
  // Enter sends, Shift+Enter is a new line; an IME composing text keeps
  // Enter for itself.
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.attach.addEventListener("click", () => ui.fileInput.click());
ui.fileInput.addEventListener("change", async () => {
  await addFiles([...ui.fileInput.files]);
  ui.fileInput.value = "";
});
ui.composer.addEventListener("dragover", (ev) => {
  if (![...(ev.dataTransfer?.types || [])].includes("Files")) return;
  ev.preventDefault();
  ui.composer.classList.add("dragging");
});
ui.composer.addEventListener("dragleave", () => ui.composer.classList.remove("dragging"));
ui.composer.addEventListener("drop", async (ev) => {
  ui.composer.classList.remove("dragging");
  if (!ev.dataTransfer?.files?.length) return;
  ev.preventDefault();
  await addFiles([...ev.dataTransfer.files]);
});

ui.stop.addEventListener("click", async () => {
  try {
    await request("chat.abort", { sessionKey: state.session });
  } catch (err) {
    ui.messages.append(errorEl("Could not stop: " + err.message));
  }
});

ui.reset.addEventListener("click", () => resetSession());
ui.newSession.addEventListener("click", () => newSession());

ui.tokenForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = ui.tokenInput.value.trim();
  if (!t) return;
  state.token = t;
  storeSet(TOKEN_STORE, t);
  ui.tokenInput.value = "";
  ui.tokenForm.hidden = true;
  showBanner("");
  state.attempt = 0;
  connect();
  ui.input.focus();
});

// A page in a background tab whose socket died comes back at once when the
// person returns, instead of waiting out a long backoff.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !state.ws && state.reconnectTimer && !state.stopReconnecting &&
    ui.status.dataset.state !== "rate-limited") {
    state.nextDelayMs = 1;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = 0;
    scheduleReconnect();
  }
});

function start() {
  takeTokenFromFragment();
  if (!state.token) state.token = storeGet(TOKEN_STORE);
  state.session = storeGet(SESSION_STORE) || MAIN_KEY;
  renderSessions();
  updateStop();
  connect();
  if (state.token) ui.input.focus();
}

start();
