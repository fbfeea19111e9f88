// The capstone's live dashboard (GET /dashboard) as an operator sees it, in headless Chromium.
//
// 1. At 1280 px and at 420 px: every figure on the page (an element with data-key, its path in
//    /stats.json, and data-value, the JSON value it shows) equals the value in the very
//    /stats.json answer the page rendered (body[data-rendered] is that answer's uptime_s), and has
//    visible text; the key figures are all there; the page does not scroll sideways and no text is
//    cut off; the base font is at least 14 px.
// 2. With Redis paused (CLIENT PAUSE), the page shows health "degraded" and an alert about Redis
//    within 8 s, then "ok" again within 10 s of the pause ending.
// 3. Optionally, a full-page screenshot at 1280 px, with some traffic shown.
// At no point may the page log a console error or throw.
//
// Usage: node dashboard.mjs DASHBOARD_URL REDIS_PORT [SCREENSHOT_PATH]
//   DASHBOARD_URL: e.g. http://127.0.0.1:3200/dashboard (its origin also serves the API, which
//                  this script sends a little traffic to, as user u1)
//   REDIS_PORT:    the port of the Redis that instance uses, paused with redis-cli
// CHROMIUM names the browser (default /usr/bin/chromium, Debian's package).

import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";
import { cutOff } from "./cut-off.mjs";

const [dashboardUrl, redisPort, screenshotPath] = process.argv.slice(2);
if (!dashboardUrl || !redisPort) {
  console.error("usage: node dashboard.mjs DASHBOARD_URL REDIS_PORT [SCREENSHOT_PATH]");
  process.exit(2);
}
const origin = new URL(dashboardUrl).origin;

const widths = [
  { name: "desktop", width: 1280, height: 900 },
  { name: "phone", width: 420, height: 860 },
];

const problems = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);
const passed = (line) => console.log(`ok: ${line}`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Requests a cache is there for, so that the layers, reads, routes and staleness have rows.
async function traffic() {
  const headers = { authorization: "Bearer u1" };
  const requests = [];
  for (let round = 0; round < 2; round++) {
    for (const id of [1, 2, 3, 7]) requests.push(["GET", `/products/${id}`]);
    requests.push(["GET", "/pages/tea/1"], ["GET", "/pages/coffee/1"], ["POST", "/news/3/views"]);
    requests.push(["GET", "/weather/paris"], ["GET", "/analytics/dashboard"]);
  }
  let answered = 0;
  for (const [method, path] of requests) {
    try {
      const response = await fetch(origin + path, { method, headers, signal: AbortSignal.timeout(5000) });
      await response.arrayBuffer();
      if (response.status < 500) answered++;
    } catch {
      // counted below
    }
  }
  if (answered === 0) problem("traffic", `none of ${requests.length} requests to ${origin} was answered`);
}

// Runs in the page: what is on screen now, in one go (the page cannot re-render in between).
function snapshot() {
  return {
    rendered: document.body.dataset.rendered,
    figures: [...document.querySelectorAll("[data-key]")].map((e) => ({
      key: e.dataset.key,
      value: e.dataset.value,
      text: (e.innerText || "").trim(),
      shown: e.getClientRects().length > 0,
    })),
  };
}

// The value at a dotted path; a name with a dot in it (an invalidation's) is matched whole.
function at(json, key) {
  const parts = key.split(".");
  let value = json;
  for (let i = 0; i < parts.length; ) {
    if (value === null || typeof value !== "object") return { found: false };
    let j = parts.length;
    while (j > i && !Object.prototype.hasOwnProperty.call(value, parts.slice(i, j).join("."))) j--;
    if (j === i) return { found: false };
    value = value[parts.slice(i, j).join(".")];
    i = j;
  }
  return { found: true, value };
}

// The whole page's text, tables and cards, none cut off (the page's width is checked apart).
const pageCutOff = { root: "body", boxes: "table, .card, .table-wrap", wholePage: false };

// A page on the dashboard that records every /stats.json answer it receives and every console
// error or uncaught exception.
async function open(browser, { name, width, height }) {
  const page = await browser.newPage({ viewport: { width, height } });
  const state = { answers: [], pending: 0, errors: [] };
  page.on("console", (message) => {
    if (message.type() === "error") state.errors.push(`console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => state.errors.push(`uncaught exception: ${error.message}`));
  page.on("response", (response) => {
    if (new URL(response.url()).pathname !== "/stats.json" || response.status() !== 200) return;
    state.pending++;
    response
      .json()
      .then((json) => state.answers.push(json))
      .catch(() => {}) // a body the page was gone before reading; the page's own view is checked
      .finally(() => state.pending--);
  });
  const where = `${name}, ${width} px`;
  const response = await page.goto(dashboardUrl, { waitUntil: "load" });
  if (!response || response.status() !== 200) {
    throw new Error(`${where}: GET ${dashboardUrl} answered ${response && response.status()}, expected 200`);
  }
  const title = await page.title();
  if (title !== "Capstone instance dashboard") {
    problem(where, `the title is "${title}", expected "Capstone instance dashboard"`);
  }
  return { page, state, where };
}

// The figures on screen against the /stats.json answer they were rendered from.
async function figuresMatch({ page, state, where }, label) {
  try {
    await page.waitForSelector("body[data-rendered]", { timeout: 10000 });
  } catch {
    throw new Error(`${where}: body[data-rendered] was not set within 10 s: the page never rendered a /stats.json answer`);
  }
  // At least two polls, and the one on screen among those recorded.
  const deadline = Date.now() + 10000;
  let shown, answer;
  for (;;) {
    shown = await page.evaluate(snapshot);
    answer = state.answers.find((a) => String(a.uptime_s) === shown.rendered);
    if (state.answers.length >= 2 && answer) break;
    if (Date.now() > deadline) {
      problem(
        where,
        `${label}: after 10 s, ${state.answers.length} /stats.json answers recorded (at least 2 expected), ` +
          `and the one on screen (uptime_s ${shown.rendered}) ${answer ? "among them" : "not among them"}`,
      );
      return false;
    }
    await sleep(200);
  }

  let bad = 0;
  for (const figure of shown.figures) {
    const { found, value } = at(answer, figure.key);
    const expected = found ? JSON.stringify(value) : undefined;
    if (!found) {
      problem(where, `${label}: [data-key="${figure.key}"] is shown, but /stats.json (uptime_s ${shown.rendered}) has no such path`);
      bad++;
    } else if (figure.value !== expected) {
      problem(
        where,
        `${label}: [data-key="${figure.key}"] has data-value ${figure.value}, but /stats.json (uptime_s ${shown.rendered}) has ${expected}`,
      );
      bad++;
    } else if (!figure.shown || !figure.text) {
      problem(where, `${label}: [data-key="${figure.key}"] (value ${figure.value}) has no visible text`);
      bad++;
    }
  }

  const required = [
    "configuration",
    "uptime_s",
    "health.status",
    "health.redis",
    "health.database",
    "hit_ratio",
    "last_minute.hit_ratio",
    "queue.pending",
    "queue.lag_ms",
    "rate_limit.allowed",
    "rate_limit.refused",
    "rate_limit.decided_locally",
    "requests",
    "server_errors",
    "database_queries",
    "memory.process_bytes",
    "memory.redis_used_bytes",
    "memory.redis_max_bytes",
  ];
  (answer.alerts || []).forEach((_, i) => required.push(`alerts.${i}.problem`, `alerts.${i}.recommendation`));
  const keys = new Set(shown.figures.map((f) => f.key));
  const missing = required.filter((k) => !keys.has(k));
  for (const [array, field] of [
    ["layers", "hit_ratio"],
    ["reads", "p99_ms"],
    ["routes", "p99_ms"],
    ["staleness", "p99_s"],
  ]) {
    const rows = answer[array] || [];
    if (rows.length && !rows.some((_, i) => keys.has(`${array}.${i}.${field}`))) missing.push(`${array}.N.${field}`);
  }
  for (const name of Object.keys(answer.invalidations || {})) {
    if (!keys.has(`invalidations.${name}`)) missing.push(`invalidations.${name}`);
  }
  if (missing.length) {
    problem(where, `${label}: figures in /stats.json not shown (no element with that data-key): ${missing.join(", ")}`);
    bad++;
  }
  if (!bad) {
    passed(
      `${where}, ${label}: ${shown.figures.length} figures equal /stats.json (uptime_s ${shown.rendered}, ` +
        `${state.answers.length} answers recorded; ${(answer.layers || []).length} layers, ${(answer.reads || []).length} reads, ` +
        `${(answer.routes || []).length} routes, ${(answer.alerts || []).length} alerts)`,
    );
  }
  return !bad;
}

async function fits({ page, where }) {
  const measured = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    font: parseFloat(getComputedStyle(document.body).fontSize),
  }));
  let bad = false;
  if (measured.scrollWidth > measured.innerWidth + 1) {
    problem(where, `the page is ${measured.scrollWidth} px wide in a ${measured.innerWidth} px window (scrolls sideways)`);
    bad = true;
  }
  if (!(measured.font >= 14)) {
    problem(where, `the base font is ${measured.font} px, expected at least 14 px`);
    bad = true;
  }
  for (const found of await page.evaluate(cutOff, pageCutOff)) {
    problem(where, found);
    bad = true;
  }
  if (!bad) passed(`${where}: no sideways scroll (${measured.scrollWidth} px in ${measured.innerWidth} px), no text cut off, base font ${measured.font} px`);
}

function noErrors({ state, where }, during) {
  if (state.errors.length) {
    for (const e of [...new Set(state.errors)].slice(0, 8)) problem(`${where}, ${during}`, e);
    state.errors.length = 0;
    return;
  }
  passed(`${where}, ${during}: no console error, no uncaught exception`);
}

// Health as on screen, and whether an alert mentions Redis.
async function waitForHealth(view, status, withRedisAlert, seconds) {
  const started = Date.now();
  try {
    await view.page.waitForFunction(
      ([status, withRedisAlert]) => {
        const el = document.querySelector('[data-key="health.status"]');
        if (!el || el.dataset.value !== JSON.stringify(status) || !el.innerText.trim()) return false;
        if (!withRedisAlert) return true;
        return [...document.querySelectorAll('[data-key^="alerts."][data-key$=".problem"], [data-key^="alerts."][data-key$=".recommendation"]')].some(
          (a) => /redis/i.test(a.innerText),
        );
      },
      [status, withRedisAlert],
      { timeout: seconds * 1000, polling: 100 },
    );
    return (Date.now() - started) / 1000;
  } catch {
    const seen = await view.page.evaluate(() => ({
      status: document.querySelector('[data-key="health.status"]')?.dataset.value,
      redis: document.querySelector('[data-key="health.redis"]')?.dataset.value,
      alerts: [...document.querySelectorAll('[data-key^="alerts."][data-key$=".problem"]')].map((a) => a.innerText.trim()),
      banner: document.getElementById("banner")?.hidden === false ? document.getElementById("banner").innerText : null,
    }));
    problem(
      view.where,
      `expected health.status "${status}"${withRedisAlert ? " and an alert mentioning Redis" : ""} within ${seconds} s; ` +
        `found health.status ${seen.status}, health.redis ${seen.redis}, alerts ${JSON.stringify(seen.alerts)}` +
        (seen.banner ? `, banner "${seen.banner}"` : ""),
    );
    return null;
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  await traffic();

  // 1. Figures, layout, errors at both widths (the desktop page is kept for what follows).
  const views = {};
  for (const width of [...widths].reverse()) {
    const view = await open(browser, width);
    views[width.name] = view;
    await figuresMatch(view, "first answers");
    await fits(view);
    noErrors(view, "loading and polling");
  }
  await views.phone.page.close();
  const desktop = views.desktop;

  // 2. Redis paused: degraded with an alert, then ok again.
  const pauseMs = 4000;
  execFileSync("redis-cli", ["-p", String(redisPort), "CLIENT", "PAUSE", String(pauseMs), "ALL"], { stdio: "pipe" });
  const pausedAt = Date.now();
  const degradedAfter = await waitForHealth(desktop, "degraded", true, 8);
  if (degradedAfter !== null) passed(`${desktop.where}: Redis paused for ${pauseMs / 1000} s, "degraded" and an alert about Redis shown after ${degradedAfter.toFixed(1)} s`);
  const remaining = Math.max(0, pauseMs - (Date.now() - pausedAt));
  await sleep(remaining);
  const okAfter = await waitForHealth(desktop, "ok", false, 10);
  if (okAfter !== null) passed(`${desktop.where}: "ok" shown again ${okAfter.toFixed(1)} s after the pause ended`);
  noErrors(desktop, "while Redis was paused and after");

  // 3. Figures back, with traffic, and a picture of it.
  await traffic();
  const before = Number(await desktop.page.evaluate(() => document.body.dataset.rendered));
  try {
    await desktop.page.waitForFunction((before) => Number(document.body.dataset.rendered) > before + 1, before, { timeout: 10000 });
  } catch {
    problem(desktop.where, "after the pause, no new /stats.json answer was rendered within 10 s");
  }
  await figuresMatch(desktop, "after the pause, with traffic");
  await fits(desktop);
  if (screenshotPath) {
    await desktop.page.screenshot({ path: screenshotPath, fullPage: true });
    passed(`screenshot at 1280 px saved to ${screenshotPath}`);
  }
  noErrors(desktop, "to the end");
  await desktop.page.close();
} catch (e) {
  problem("dashboard check", e && e.message ? e.message : String(e));
} finally {
  await browser.close();
}

if (problems.length) {
  console.error(`\nDASHBOARD CHECK FAILED: ${problems.length} problems`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(
  "the dashboard shows exactly what /stats.json says at 1280 px and 420 px, fits both, turns degraded with a Redis alert while Redis is paused and back to ok after, with no console error",
);
