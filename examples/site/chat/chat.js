// A chat room on wharf's hub (/hub/chat), with no build step.
//
// Transports, best first: WebSocket, then Server-Sent Events, then long-polling.
// Every message carries an id; the page remembers the last one and, whenever it
// (re)connects, asks for what came after it, so a reconnect loses nothing. Ids the
// hub no longer keeps are announced as "missed" and shown as such.
"use strict";

const channel = "/hub/chat";
const log = document.getElementById("log");
const status = document.getElementById("status");
const wanted = new URLSearchParams(location.search).get("transport");
let lastId = 0;          // the last message shown
let transport = null;    // the transport in use: "websocket", "sse" or "poll"
let socket = null;       // the open WebSocket, if any
let wsFailures = 0;

function show(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  log.appendChild(li);
  log.scrollTop = log.scrollHeight;
}

// One message or notice from the hub, as JSON.
function receive(json) {
  const m = JSON.parse(json);
  if (m.missed) {
    show(`(messages ${m.missed.from}–${m.missed.to} are no longer kept)`, "notice");
    lastId = Math.max(lastId, m.missed.to);
    return;
  }
  if (m.id <= lastId) return; // already shown (a reconnect can repeat the edge)
  lastId = m.id;
  let who = "?", text = m.data;
  try { ({ name: who, text } = JSON.parse(m.data)); } catch (_) { /* plain text */ }
  const li = document.createElement("li");
  li.dataset.id = m.id;
  li.textContent = `${who}: ${text}`;
  log.appendChild(li);
  log.scrollTop = log.scrollHeight;
}

function setStatus(t, s) {
  transport = t;
  status.textContent = s;
  status.dataset.transport = t || "";
}

function connect() {
  if (wanted === "sse" || wanted === "poll") return wanted === "sse" ? sse() : poll();
  if (!("WebSocket" in window) || wsFailures >= 2) return sse();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${channel}?since=${lastId}`;
  const ws = new WebSocket(url);
  let opened = false;
  ws.onopen = () => { opened = true; wsFailures = 0; socket = ws; setStatus("websocket", "connected (WebSocket)"); };
  ws.onmessage = (e) => receive(e.data);
  ws.onclose = () => {
    socket = null;
    if (!opened) wsFailures++;
    setStatus(null, "disconnected; reconnecting…");
    setTimeout(connect, 1000);
  };
}

function sse() {
  if (!("EventSource" in window)) return poll();
  // Later reconnects send Last-Event-ID by themselves; the first asks with since.
  const es = new EventSource(`${channel}?since=${lastId}`);
  es.onopen = () => setStatus("sse", "connected (Server-Sent Events)");
  es.onmessage = (e) => receive(e.data);
  es.addEventListener("missed", (e) => receive(JSON.stringify({ missed: JSON.parse(e.data) })));
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) { setStatus(null, "event stream refused; long-polling"); poll(); }
    else setStatus(null, "disconnected; reconnecting…");
  };
}

async function poll() {
  setStatus("poll", "connected (long-polling)");
  for (;;) {
    try {
      const res = await fetch(`${channel}?since=${lastId}`, { cache: "no-store" });
      if (!res.ok) throw new Error(res.status);
      const body = await res.json();
      if (body.missed) receive(JSON.stringify({ missed: body.missed }));
      body.messages.forEach((m) => receive(JSON.stringify(m)));
      lastId = Math.max(lastId, body.last);
      setStatus("poll", "connected (long-polling)");
    } catch (e) {
      setStatus("poll", "disconnected; retrying…");
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

document.getElementById("say").onsubmit = async (e) => {
  e.preventDefault();
  const input = document.getElementById("text");
  const data = JSON.stringify({ name: document.getElementById("name").value, text: input.value });
  input.value = "";
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(data);
  else await fetch(channel, { method: "POST", body: data });
};

connect();
