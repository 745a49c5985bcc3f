// Live reload in headless Chromium: the page at BASE/ reloads by itself when its
// file (SITE_DIR/index.html) changes. Usage: node live.mjs BASE_URL SITE_DIR
import { chromium } from "playwright-core";
import { appendFileSync } from "node:fs";
import { join } from "node:path";

const [base, site] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.documentElement.dataset.liveReload === "on", null, { timeout: 15000 });
  await page.evaluate(() => { window.beforeEdit = true; });
  const reloaded = page.waitForEvent("load", { timeout: 15000 });
  appendFileSync(join(site, "index.html"), '\n<p id="edited">edited</p>\n');
  await reloaded;
  if (await page.evaluate(() => window.beforeEdit)) throw new Error("the page did not reload");
  if (!(await page.$("#edited"))) throw new Error("the reload did not get the edit");
  console.log("live: ok");
} finally {
  await browser.close();
}
