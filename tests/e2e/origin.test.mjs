// A page on another origin, in a browser on the same machine, must not read data through the
// browser — with authentication off above all (scripts/e2e.sh's open server, BQAI_URL):
// - its WebSocket to the server is refused at the upgrade (Origin check);
// - a page whose own name resolves to the server (DNS rebinding, simulated with Chromium's
//   --host-resolver-rules) is refused by the server, which does not answer to that name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WAIT, open } from './helpers.mjs';

const BASE = process.env.BQAI_URL;
const PORT = new URL(BASE).port;
const { chromium } = await import(pathToFileURL(join(process.env.PLAYWRIGHT_CORE_DIR, 'index.mjs')).href);

// The other site: one page that tries to use bqai's WebSocket and REST API from its origin.
const ATTACK = `<!doctype html><meta charset="utf-8"><title>elsewhere</title><script>
window.outcome = { opened: false, events: [], closed: null, fetched: null };
const ws = new WebSocket('ws://127.0.0.1:${PORT}/api/v1/ws/agent');
ws.onopen = () => {
  window.outcome.opened = true;
  ws.send(JSON.stringify({ type: 'ask', question: 'number of customers by country', request_id: 'x1' }));
};
ws.onmessage = (m) => window.outcome.events.push(JSON.parse(m.data).type);
ws.onclose = (e) => { window.outcome.closed = e.code; };
fetch('http://127.0.0.1:${PORT}/api/v1/datasets')
  .then((r) => r.text()).then((t) => { window.outcome.fetched = t; })
  .catch(() => { window.outcome.fetched = 'blocked'; });
</script>`;

let site;
let sitePort;
before(async () => {
  site = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(ATTACK);
  });
  await new Promise((ok) => site.listen(0, '127.0.0.1', ok));
  sitePort = site.address().port;
});
after(() => site?.close());

test("another origin's page cannot open the WebSocket or read the API", async () => {
  const { page, context } = await open(`http://127.0.0.1:${sitePort}`, { connected: false, chatPage: false });
  try {
    await page.waitForFunction(() => window.outcome.closed !== null && window.outcome.fetched !== null,
      null, { timeout: WAIT });
    const outcome = await page.evaluate(() => window.outcome);
    assert.equal(outcome.opened, false, 'the upgrade was refused');
    assert.deepEqual(outcome.events, []);
    assert.equal(outcome.fetched, 'blocked', 'CORS keeps the answer from the page');
  } finally {
    await context.close();
  }
});

test('the chat page on its own origin still connects', async () => {
  const { context } = await open(BASE);
  await context.close();
});

test('a rebound name is refused: the server does not answer to it', async () => {
  const browser = await chromium.launch({
    executablePath: process.env.BQAI_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--host-resolver-rules=MAP rebind.test 127.0.0.1'],
  });
  try {
    const page = await browser.newPage();
    const response = await page.goto(`http://rebind.test:${PORT}/`);
    assert.equal(response.status(), 400);
    const body = await response.json();
    assert.equal(body.error.code, 'HOST_NOT_ALLOWED');
    const api = await page.evaluate(async () => {
      const r = await fetch('/api/v1/datasets');
      return { status: r.status, body: await r.text() };
    });
    assert.equal(api.status, 400);
    assert.doesNotMatch(api.body, /shop/);
    const ws = await page.evaluate(() => new Promise((done) => {
      const s = new WebSocket(`ws://${location.host}/api/v1/ws/agent`);
      s.onopen = () => done('opened');
      s.onclose = () => done('refused');
    }));
    assert.equal(ws, 'refused');
  } finally {
    await browser.close();
  }
});
