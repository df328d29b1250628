// Shared by the browser tests: the browser, a page that records what went wrong, an ask.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const PW = process.env.PLAYWRIGHT_CORE_DIR;
if (!process.env.BQAI_URL || !PW) throw new Error('run through scripts/e2e.sh (BQAI_URL and PLAYWRIGHT_CORE_DIR)');
const { chromium } = await import(pathToFileURL(join(PW, 'index.mjs')).href);

export const WAIT = 60_000;
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.BQAI_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
});

/**
 * A fresh page on `base` that records dialogs, script errors, CSP violations and the WebSocket
 * messages it sends; waits for "Connected" unless `connected` is false. `chatPage: false` opens
 * some other site's page (no policy checks). `permissions` are granted to `base` (e.g.
 * clipboard-read); `prepare(page)` runs before the page loads (e.g. to route its WebSocket).
 */
export async function open(base, { connected = true, chatPage = true, permissions = [], prepare } = {}) {
  const context = await browser.newContext();
  if (permissions.length) await context.grantPermissions(permissions, { origin: base });
  const page = await context.newPage();
  if (prepare) await prepare(page);
  // `sent`: every WebSocket message the page sent, parsed (what it asked the server for).
  const seen = { dialogs: [], errors: [], sent: [] };
  page.on('websocket', (ws) => ws.on('framesent', (f) => {
    try { seen.sent.push(JSON.parse(f.payload)); } catch { /* not JSON */ }
  }));
  page.on('dialog', async (d) => { seen.dialogs.push(d.message()); await d.dismiss(); });
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') seen.errors.push(m.text()); });
  const response = await page.goto(base + '/');
  assert.equal(response.status(), 200);
  if (!chatPage) return { page, context, seen };
  const csp = response.headers()['content-security-policy'] || '';
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /connect-src 'self'/);
  if (connected) await page.locator('#conn-text', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
  return { page, context, seen };
}

/** Asks `question` and waits until the `index`-th turn is answered. */
export async function askAndWait(page, question, index) {
  await page.locator('#question').fill(question);
  await page.locator('#question').press('Enter');
  const turn = page.locator('article.turn').nth(index);
  await turn.locator('h2.question').waitFor({ timeout: WAIT });
  await page.waitForFunction(
    (i) => document.querySelectorAll('article.turn')[i]?.getAttribute('aria-busy') === 'false',
    index, { timeout: WAIT },
  );
  return turn;
}

export async function rowsOf(turn) {
  return turn.locator('table tbody tr').count();
}

/** The texts of column `name` of a turn's result table. */
export async function columnOf(turn, name) {
  const headers = (await turn.locator('table thead th').allTextContents()).map((t) => t.trim());
  const i = headers.indexOf(name);
  assert.ok(i >= 0, `column ${name} in ${headers}`);
  return turn.locator(`table tbody tr td:nth-child(${i + 1})`).allTextContents();
}

/** The chart's bars as {label, value} (from each bar's tooltip "label: value"). */
export async function barsOf(turn) {
  const tips = await turn.locator('svg.chart rect.bar title').allTextContents();
  return tips.map((t) => {
    const i = t.lastIndexOf(': ');
    return { label: t.slice(0, i), value: Number(t.slice(i + 2)) };
  });
}

/** POST /api/v1/ask on `base` (what the page's SQL is compared with). */
export async function askApi(base, body) {
  const r = await fetch(base + '/api/v1/ask', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return r.json();
}
