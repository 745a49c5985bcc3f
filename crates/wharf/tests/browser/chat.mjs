// Drives examples/site/chat in headless Chromium: two pages exchange messages; one
// loses its connection and catches up on its return; the SSE and long-poll fallbacks
// work too, asked for and on their own when WebSocket (and SSE) fail. Usage: node chat.mjs BASE_URL [ROOT_CA_PEM [quic]]
//
// With a root CA, Chromium gets a fresh NSS database (HOME) that trusts it, as a user
// would set it up (certutil), rather than --ignore-certificate-errors. With "quic",
// Chromium speaks HTTP/3 to BASE_URL's origin from the first request (as it would
// once it has seen the Alt-Svc), with `localhost` mapped to 127.0.0.1 where wharf
// listens; WebSockets still go over TCP (Chromium has no RFC 9220).
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, rootCa, quic] = process.argv.slice(2);
const home = mkdtempSync(join(tmpdir(), "wharf-chromium-"));
if (rootCa) {
  const db = join(home, ".pki", "nssdb");
  mkdirSync(db, { recursive: true });
  execFileSync("certutil", ["-d", `sql:${db}`, "-N", "--empty-password"]);
  execFileSync("certutil", ["-d", `sql:${db}`, "-A", "-t", "C,,", "-n", "wharf", "-i", rootCa]);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  env: { ...process.env, HOME: home },
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         ...(quic
           ? [`--origin-to-force-quic-on=${new URL(base).host}`,
              "--host-resolver-rules=MAP localhost 127.0.0.1"]
           : ["--disable-quic"])],
});
const deadline = 15000;

async function open(query = "") {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(`${base}/chat/${query}`);
  await page.fill("#name", query ? query.slice(11) : "user");
  return { context, page };
}

async function transport(page) {
  await page.waitForFunction(() => document.getElementById("status").dataset.transport, null, { timeout: deadline });
  return page.$eval("#status", (s) => s.dataset.transport);
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.click("button");
}

async function sees(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#log li")].some((li) => li.textContent.endsWith(t)),
    text, { timeout: deadline });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

try {
  const a = await open();
  const b = await open();
  check((await transport(a.page)) === "websocket", "A uses WebSocket");
  check((await transport(b.page)) === "websocket", "B uses WebSocket");
  await say(a.page, "hello from A");
  await sees(b.page, "hello from A");
  await say(b.page, "hello from B");
  await sees(a.page, "hello from B");

  // B goes offline and its socket drops; A talks meanwhile; B catches up on return.
  await b.context.setOffline(true);
  await b.page.evaluate(() => socket && socket.close());
  await b.page.waitForFunction(() => !document.getElementById("status").dataset.transport, null, { timeout: deadline });
  await say(a.page, "while B was away 1");
  await say(a.page, "while B was away 2");
  await sees(a.page, "while B was away 2");
  await b.context.setOffline(false);
  await sees(b.page, "while B was away 1");
  await sees(b.page, "while B was away 2");
  const ids = await b.page.$$eval("#log li[data-id]", (lis) => lis.map((li) => +li.dataset.id));
  check(ids.every((id, i) => i === 0 || id > ids[i - 1]), `B shows each message once, in order: ${ids}`);

  // The fallbacks, each with a WebSocket page.
  for (const kind of ["sse", "poll"]) {
    const c = await open(`?transport=${kind}`);
    check((await transport(c.page)) === kind, `${kind} page uses ${kind}`);
    await say(a.page, `to the ${kind} page`);
    await sees(c.page, `to the ${kind} page`);
    await say(c.page, `from the ${kind} page`);
    await sees(a.page, `from the ${kind} page`);
    await c.context.close();
  }

  // The automatic fallbacks: a page whose WebSocket handshakes fail (its sockets
  // go to a path that is not the hub's, answered 404) turns to Server-Sent Events
  // after two tries; one whose event stream is refused as well long-polls.
  for (const [kind, refused] of [["sse", ["WebSocket"]], ["poll", ["WebSocket", "EventSource"]]]) {
    const context = await browser.newContext();
    await context.addInitScript((names) => {
      for (const name of names) {
        const Real = window[name];
        window[name] = class extends Real {
          constructor(url, options) { super(String(url).replace("/hub/", "/no-hub/"), options); }
        };
      }
    }, refused);
    const page = await context.newPage();
    page.on("pageerror", (e) => console.error("page error:", e.message));
    await page.goto(`${base}/chat/`);
    await page.fill("#name", `fallback-${kind}`);
    check((await transport(page)) === kind, `a page without ${refused.join(" or ")} falls back to ${kind}`);
    await say(a.page, `to the fallback-${kind} page`);
    await sees(page, `to the fallback-${kind} page`);
    await say(page, `from the fallback-${kind} page`);
    await sees(a.page, `from the fallback-${kind} page`);
    await context.close();
  }
  console.log("chat: ok");
} finally {
  await browser.close();
}
