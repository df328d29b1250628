// How answers are shown (scripts/e2e.sh's open server with the demo dataset `shop`, BQAI_URL):
// the chart plots the measure and never an id, each new answer is scrolled into sight above the
// sticky footer, errors are a bubble in the conversation, the SQL is formatted and can be copied,
// and a reload never leaves a hidden context behind.
//
// The server is shared with chat.test.mjs, which expects its first question ("revenue by
// country in 2024") not to be cached and asks "now by month": the questions here differ.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT, open, askAndWait, rowsOf, columnOf, barsOf, askApi } from './helpers.mjs';

const BASE = process.env.BQAI_URL;

test('the chart plots the measure the SQL orders by, not the id column before it', async () => {
  const { page, context, seen } = await open(BASE);
  try {
    const question = 'top 3 products by revenue';
    const turn = await askAndWait(page, question, 0);
    assert.equal(await turn.locator('.error').count(), 0, await turn.textContent());
    const headers = (await turn.locator('table thead th').allTextContents()).map((t) => t.trim());
    assert.ok(/_id$/.test(headers[0]) && headers.includes('revenue'), `an id first, then the measure: ${headers}`);
    const dim = headers.find((h) => h !== headers[0] && h !== 'revenue');
    // What is plotted is said in words, above the chart and in its accessible name.
    assert.equal((await turn.locator('figcaption.chart-label').textContent()).trim(), `revenue by ${dim}`);
    assert.match(await turn.locator('svg.chart').getAttribute('aria-label'), new RegExp(`^revenue by ${dim}`));
    // The bars are the revenues of the rows (as the API answers them), labelled by the dimension.
    const api = await askApi(BASE, { question, dataset_id: 'shop' });
    const bars = await barsOf(turn);
    assert.equal(bars.length, 3);
    assert.deepEqual(bars.map((b) => b.value), api.result.rows.map((r) => r.revenue));
    assert.deepEqual(bars.map((b) => b.label), api.result.rows.map((r) => String(r[dim])));
    const ids = api.result.rows.map((r) => r[headers[0]]);
    assert.ok(!bars.some((b) => ids.includes(b.value)), 'no bar is an id');
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('each new answer is scrolled into view above the sticky footer', async () => {
  const { page, context, seen } = await open(BASE);
  try {
    await page.setViewportSize({ width: 1280, height: 720 });
    const questions = ['revenue by country in 2025', 'and by city', 'only web orders'];
    for (const [i, q] of questions.entries()) {
      const turn = await askAndWait(page, q, i);
      assert.equal(await turn.locator('.error').count(), 0, await turn.textContent());
      await turn.locator('table').waitFor({ timeout: WAIT });
      const box = await page.evaluate((n) => {
        const t = document.querySelectorAll('article.turn')[n];
        return {
          turnTop: t.getBoundingClientRect().top,
          answerTop: t.querySelector('.answer').getBoundingClientRect().top,
          footerTop: document.querySelector('footer.ask').getBoundingClientRect().top,
          scrolled: window.scrollY,
        };
      }, i);
      assert.ok(box.turnTop >= 0, `turn ${i + 1}: its top is not above the viewport (${JSON.stringify(box)})`);
      assert.ok(box.answerTop < box.footerTop, `turn ${i + 1}: its answer starts above the footer (${JSON.stringify(box)})`);
      if (i === 2) assert.ok(box.scrolled > 0, 'the page scrolled to the third answer');
    }
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('a refused question is an error bubble in the conversation, and the next one works', async () => {
  const { page, context, seen } = await open(BASE);
  try {
    const turn = await askAndWait(page, 'what is the meaning of life', 0);
    const bubble = turn.locator('.error-bubble[role=alert]');
    assert.equal(await bubble.count(), 1, await turn.textContent());
    assert.equal(await bubble.isVisible(), true);
    assert.match(await bubble.textContent(), /cannot be answered/);
    assert.match(await bubble.locator('.error-code').textContent(), /CANNOT_ANSWER/);
    assert.equal(await page.locator('#cancel-button').isDisabled(), true);
    const next = await askAndWait(page, 'revenue by country in 2025', 1);
    assert.equal(await next.locator('.error').count(), 0, await next.textContent());
    assert.ok(await rowsOf(next) > 1);
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('a dataset the server refuses is an error bubble in the turn, not a turn that waits forever', async () => {
  // The connection's `configure` names a dataset that does not exist (as if it had been taken
  // away since the page listed it): the server refuses it without a request id.
  const prepare = (page) => page.routeWebSocket(/\/api\/v1\/ws\/agent/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((message) => {
      const m = JSON.parse(message);
      if (m.type === 'configure') m.dataset_id = 'no_such_dataset';
      server.send(JSON.stringify(m));
    });
  });
  const { page, context } = await open(BASE, { connected: false, prepare });
  try {
    const turn = await askAndWait(page, 'revenue by country in 2025', 0);
    const bubble = turn.locator('.error-bubble[role=alert]');
    assert.equal(await bubble.count(), 1, await turn.textContent());
    assert.match(await bubble.textContent(), /no_such_dataset/);
    assert.equal(await page.locator('#cancel-button').isDisabled(), true);
  } finally {
    await context.close();
  }
});

test('the SQL is shown formatted and the copy button copies it as it ran', async () => {
  const { page, context, seen } = await open(BASE, { permissions: ['clipboard-read', 'clipboard-write'] });
  try {
    const question = 'revenue by country in 2023';
    const turn = await askAndWait(page, question, 0);
    const shown = await turn.locator('pre.sql').textContent();
    assert.match(shown, /^SELECT /);
    for (const clause of ['FROM', 'JOIN', 'WHERE', 'GROUP BY', 'ORDER BY', 'LIMIT']) {
      assert.match(shown, new RegExp(`\\n\\s*${clause} `), `${clause} starts a line:\n${shown}`);
    }
    const { sql } = await askApi(BASE, { question, dataset_id: 'shop' });
    assert.equal(shown.replace(/\s+/g, ' '), sql.replace(/\s+/g, ' '), 'only whitespace differs');
    const copy = turn.locator('button.copy-sql');
    assert.equal(await copy.textContent(), 'Copy SQL');
    await copy.click();
    await page.waitForFunction(() => document.querySelector('button.copy-sql').textContent === 'Copied');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), sql);
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('after a reload the conversation is shown again and continues', async () => {
  const { page, context, seen } = await open(BASE);
  try {
    const first = await askAndWait(page, 'revenue by country in 2023', 0);
    const sql1 = await first.locator('pre.sql').textContent();
    const conversation = await page.evaluate(() => sessionStorage.getItem('bqai.conversation'));
    assert.ok(conversation);
    await page.reload();
    await page.locator('#conn-text', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
    // The earlier turn is on the page again: its question, SQL and rows (a sample).
    const restored = page.locator('article.turn');
    assert.equal(await restored.count(), 1);
    assert.equal((await restored.first().locator('h2.question').textContent()).trim(), 'revenue by country in 2023');
    assert.equal(await restored.first().locator('pre.sql').textContent(), sql1);
    assert.ok(await rowsOf(restored.first()) > 0, 'rows of the earlier answer');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('bqai.conversation')), conversation);
    // …and the follow-up continues it, in sight.
    const second = await askAndWait(page, 'now per quarter', 1);
    const sql2 = (await second.locator('pre.sql').textContent()).toLowerCase();
    assert.ok(sql2.includes('quarter') && sql2.includes('2023'), sql2);
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('after a reload whose conversation is gone, the page is blank and nothing of it is used', async () => {
  const { page, context, seen } = await open(BASE);
  try {
    // Phrases no other test asks on this server: the built-in planner reuses the SQL of an
    // earlier ask of the same words, which would hide what this test checks.
    const first = await askAndWait(page, 'order count by channel in 2024', 0);
    assert.match(await first.locator('pre.sql').textContent(), /2024/);
    const conversation = await page.evaluate(() => sessionStorage.getItem('bqai.conversation'));
    const gone = await page.evaluate(async (id) => (await fetch('/api/v1/conversations/' + id, { method: 'DELETE' })).status, conversation);
    assert.equal(gone, 204);
    await page.reload();
    await page.locator('#conn-text', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator('article.turn').count(), 0);
    assert.notEqual(await page.evaluate(() => sessionStorage.getItem('bqai.conversation')), conversation);
    // A follow-up now has no earlier question: it is not filtered to 2024 (here the planner
    // cannot tell what to count, and says so).
    const turn = await askAndWait(page, 'now per week', 0);
    const sql = ((await turn.locator('pre.sql').textContent()) || '').toLowerCase();
    assert.ok(!sql.includes('2024'), sql);
    assert.deepEqual(seen.dialogs, []);
  } finally {
    await context.close();
  }
});
