// The activity page (/activity) in headless Chromium against a server whose history
// scripts/e2e.sh seeded with known entries (BQAI_SEEDED_URL; the seeded days in
// BQAI_SEEDED_D1/D2/D4/OLD, relative to today in UTC):
//   D1: an ask asked twice (1 TiB billed, then from the cache)          $6.25
//   D2: one query shape run twice by bob (2 TiB, then 0), the slowest   $12.50
//   D4: the most expensive query (4 TiB), a failed and a rejected query $25.00
//   OLD (10 days ago): 8 TiB, outside the default 7-day range          $50.00
// and against the keys-on server (BQAI_AUTH_URL): the chat page's key works here, and a
// principal the key may not read is refused with the server's message, on the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT, open } from './helpers.mjs';

const BASE = process.env.BQAI_SEEDED_URL;
const D1 = process.env.BQAI_SEEDED_D1;
const D2 = process.env.BQAI_SEEDED_D2;
const D4 = process.env.BQAI_SEEDED_D4;
const OLD = process.env.BQAI_SEEDED_OLD;
const AUTH = process.env.BQAI_AUTH_URL;
const AUTH_KEY = process.env.BQAI_AUTH_KEY;
if (!BASE || !D1 || !D2 || !D4 || !OLD || !AUTH || !AUTH_KEY) {
  throw new Error('run through scripts/e2e.sh (BQAI_SEEDED_URL, BQAI_SEEDED_D1/D2/D4/OLD, BQAI_AUTH_URL, BQAI_AUTH_KEY)');
}

const id = (n) => `00000000-0000-4000-8000-00000000000${n}`;
const SQL = {
  ask: 'SELECT country, SUM(amount) AS revenue FROM shop.orders WHERE EXTRACT(YEAR FROM order_date) = 2024 GROUP BY country',
  slowest: 'SELECT status, COUNT(*) AS orders FROM shop.orders WHERE amount > 0 GROUP BY status',
  expensive: 'SELECT customer_id, SUM(amount) AS spent FROM shop.orders GROUP BY customer_id ORDER BY spent DESC',
  failed: 'SELECT missing_column FROM shop.orders',
};

const addDays = (day, n) => new Date(Date.parse(`${day}T00:00:00Z`) + n * 86400000).toISOString().slice(0, 10);
const todayUtc = () => new Date().toISOString().slice(0, 10);
function daysBetween(from, to) {
  const out = [];
  for (let d = from; d <= to; d = addDays(d, 1)) out.push(d);
  return out;
}

/** The chat page of `base`, then the activity page (its response checked for the policy). */
async function openActivity(base, { key } = {}) {
  const opened = await open(base, { connected: false });
  const { page, seen } = opened;
  if (key) await page.evaluate((k) => sessionStorage.setItem('bqai.key', k), key);
  const response = await page.goto(base + '/activity');
  assert.equal(response.status(), 200);
  const csp = response.headers()['content-security-policy'] || '';
  assert.match(csp, /script-src 'self';/);
  assert.match(csp, /connect-src 'self';/);
  // The chat page's connection attempts are not this page's business.
  seen.errors.length = 0;
  await loaded(page);
  return opened;
}

/** Waits until the activity page has loaded once. */
async function loaded(page) {
  await page.waitForFunction(() => Number(document.querySelector('main.activity')?.dataset.loads || 0) >= 1,
    null, { timeout: WAIT });
}

/** Submits the range form (after `fill`) and waits for the page to load again. */
async function apply(page, fill) {
  const before = Number(await page.locator('main.activity').getAttribute('data-loads'));
  if (fill) await fill();
  await page.locator('#apply').click();
  await page.waitForFunction((n) => Number(document.querySelector('main.activity').dataset.loads) > n, before,
    { timeout: WAIT });
}

/** The chart's bars: day, cost (data attributes), height, label (title and aria-label). */
async function bars(page) {
  return page.locator('#spend-chart rect.spend-bar').evaluateAll((rects) => rects.map((r) => ({
    day: r.getAttribute('data-day'),
    cost: Number(r.getAttribute('data-cost')),
    height: Number(r.getAttribute('height')),
    title: r.querySelector('title')?.textContent || '',
    label: r.getAttribute('aria-label') || '',
  })));
}

/** The ids of a section's rows, in order. */
async function rowIds(page, section) {
  return page.locator(`#${section} tr.entry-row`).evaluateAll((rows) => rows.map((r) => r.dataset.id));
}

/** Clicks the row `rowId` of `section` and waits for its entry in the detail panel. */
async function openRow(page, section, rowId) {
  await page.locator(`#${section} tr.entry-row[data-id="${rowId}"] button.entry-link`).click();
  await page.waitForFunction((i) => {
    const d = document.getElementById('detail');
    return !d.hidden && d.dataset.id === i && d.getAttribute('aria-busy') === 'false';
  }, rowId, { timeout: WAIT });
  return page.locator('#detail');
}

async function apiJson(base, path, key) {
  const r = await fetch(base + path, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  return { status: r.status, body: await r.json() };
}

test('the chat page links to the activity page', async () => {
  const { page, context, seen } = await open(BASE, { connected: false });
  try {
    const link = page.locator('#activity-link');
    assert.equal(await link.getAttribute('href'), '/activity');
    await link.click();
    await page.waitForURL((u) => u.origin === BASE && u.pathname === '/activity', { timeout: WAIT });
    await page.locator('#spend-chart').waitFor({ timeout: WAIT });
    // The first load leaves the address as it was: /activity stays "the last 7 days".
    assert.equal(page.url(), `${BASE}/activity`);
    // …and back.
    assert.equal(await page.locator('#chat-link').getAttribute('href'), '/');
    assert.deepEqual(seen.dialogs, []);
  } finally {
    await context.close();
  }
});

test('the last 7 days: spend per day, headline numbers and every list from the seeded history', async () => {
  const { page, context, seen } = await openActivity(BASE);
  try {
    const to = todayUtc();
    const from = addDays(to, -6);
    assert.equal(await page.locator('#from').inputValue(), from);
    assert.equal(await page.locator('#to').inputValue(), to);
    assert.equal(await page.locator('#error').isVisible(), false, await page.locator('#error').textContent());

    // One bar per day of the range; the seeded days carry their cost, the others are empty.
    const got = await bars(page);
    assert.deepEqual(got.map((b) => b.day), daysBetween(from, to));
    const want = { [D1]: 6.25, [D2]: 12.5, [D4]: 25 };
    for (const b of got) {
      const cost = want[b.day] ?? 0;
      assert.ok(Math.abs(b.cost - cost) < 1e-9, `${b.day}: ${b.cost} != ${cost}`);
      if (cost) {
        assert.ok(b.height > 0, `${b.day} has a visible bar`);
        assert.ok(b.title.startsWith(`${b.day}: $${cost.toFixed(2)}`), b.title);
        assert.equal(b.label, b.title);
      } else {
        assert.equal(b.height, 0, `${b.day} is empty`);
        assert.ok(b.title.startsWith(`${b.day}: $0.00`), b.title);
      }
    }
    assert.ok(!got.some((b) => b.day === OLD), 'the old day is outside the range');
    // Bars scale with the amounts: D4 ($25) is twice D2 ($12.50), four times D1 ($6.25).
    const h = Object.fromEntries(got.map((b) => [b.day, b.height]));
    assert.ok(Math.abs(h[D4] - 2 * h[D2]) < 0.05 && Math.abs(h[D4] - 4 * h[D1]) < 0.05, JSON.stringify(h));

    // Headline numbers: the 7 entries of the range (the old one is not counted).
    assert.equal(await page.locator('#total-spend').textContent(), '$43.75');
    assert.equal(await page.locator('#total-queries').textContent(), '7');
    assert.equal(await page.locator('#total-failures').textContent(), '1 failed · 1 rejected');
    const summary = await apiJson(BASE, `/api/v1/analytics/summary?group_by=day&from=${from}&to=${to}`);
    assert.equal(summary.status, 200);
    const p95 = summary.body.total.duration_ms.p95;
    assert.equal(await page.locator('#total-p95').textContent(), `${Math.round(p95).toLocaleString('en-US')} ms`);
    const caption = await page.locator('#spend-caption').textContent();
    assert.ok(caption.includes(`${from} to ${to}`) && caption.includes('$43.75') && caption.includes('3 of 7 days'), caption);

    // Top questions: the ask asked twice.
    const askRows = page.locator('#popular-ask tr.entry-row');
    assert.equal(await askRows.count(), 1);
    assert.equal((await askRows.first().locator('button.entry-link').textContent()).trim(), 'revenue by country in 2024');
    assert.equal((await askRows.first().locator('td').nth(1).textContent()).trim(), '2');
    assert.ok([id(1), id(2)].includes(await askRows.first().getAttribute('data-id')));

    // Top query shapes: the shape bob ran twice (either run is its example).
    const shapes = page.locator('#popular-sql tr.entry-row');
    const twice = shapes.filter({ hasText: 'SELECT status, COUNT(*) AS orders FROM shop.orders WHERE amount >' });
    assert.equal(await twice.count(), 1, await page.locator('#popular-sql').textContent());
    assert.equal((await twice.locator('td').nth(1).textContent()).trim(), '2');
    assert.ok([id(3), id(4)].includes(await twice.getAttribute('data-id')));
    assert.ok(!(await rowIds(page, 'popular-sql')).includes(id(8)), 'nothing from outside the range');

    // Slowest first: 4.5 s (the 9 s query is outside the range); most expensive: 4, 2, 1 TiB.
    const slowest = await rowIds(page, 'slowest');
    assert.equal(slowest[0], id(3));
    assert.ok(!slowest.includes(id(8)));
    assert.match(await page.locator(`#slowest tr[data-id="${id(3)}"]`).textContent(), /4,500 ms/);
    const expensive = await rowIds(page, 'expensive');
    assert.deepEqual(expensive.slice(0, 3), [id(5), id(3), id(1)]);
    assert.ok(!expensive.includes(id(8)));
    // Entries carry no cost: the page prices bytes billed at the summary's rate ($6.25/TiB).
    const headers = await page.locator('#expensive th').allTextContents();
    const cost = headers.indexOf('Cost');
    assert.ok(cost > 0, `a Cost column in ${headers}`);
    const costs = await page.locator(`#expensive tr.entry-row td:nth-child(${cost + 1})`).allTextContents();
    assert.deepEqual(costs.slice(0, 3), ['$25.00', '$12.50', '$6.25']);

    // Error codes: the failed and the rejected query.
    const codes = await page.locator('#errors tr.entry-row button.entry-link').allTextContents();
    assert.deepEqual([...codes].map((c) => c.trim()).sort(), ['INVALID_QUERY', 'SQL_REJECTED']);
    assert.equal(await page.locator('#errors tr.entry-row', { hasText: 'INVALID_QUERY' }).getAttribute('data-id'), id(6));
    assert.match(await page.locator('#errors').textContent(), /Unrecognized name: missing_column/);

    // A row opens its history entry: the SQL, the numbers, the status.
    assert.equal(await page.locator('#detail').isVisible(), false);
    let detail = await openRow(page, 'slowest', id(3));
    assert.equal(await detail.locator('#detail-sql').textContent(), SQL.slowest);
    assert.equal((await detail.locator('.fact-status dd').textContent()).trim(), 'succeeded');
    assert.equal((await detail.locator('.fact-duration dd').textContent()).trim(), '4,500 ms');
    assert.equal((await detail.locator('.fact-billed dd').textContent()).trim(), '2.2 TB');
    assert.equal((await detail.locator('.fact-cost dd').textContent()).trim(), '$12.50');
    detail = await openRow(page, 'expensive', id(5));
    assert.equal(await detail.locator('#detail-sql').textContent(), SQL.expensive);
    // The error row opens the failed entry, with its message and code.
    detail = await openRow(page, 'errors', id(6));
    assert.equal(await detail.locator('#detail-sql').textContent(), SQL.failed);
    assert.match(await detail.locator('.detail-error').textContent(), /Unrecognized name: missing_column at \[1:8\]/);
    assert.equal((await detail.locator('.fact-error-code dd').textContent()).trim(), 'INVALID_QUERY');
    // The question row opens the ask: its question and SQL.
    const askId = await askRows.first().getAttribute('data-id');
    detail = await openRow(page, 'popular-ask', askId);
    assert.equal(await detail.locator('#detail-sql').textContent(), SQL.ask);
    assert.equal((await detail.locator('.detail-question').textContent()).trim(), 'revenue by country in 2024');
    await page.locator('#detail-close').click();
    assert.equal(await page.locator('#detail').isVisible(), false);

    // On a phone: nothing wider than the screen (the tables scroll in their own box).
    await page.setViewportSize({ width: 390, height: 800 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.equal(overflow, false, 'no horizontal scrolling on a phone');

    assert.deepEqual(seen.dialogs, []);
    assert.deepEqual(seen.errors, [], 'no script error or CSP violation');
  } finally {
    await context.close();
  }
});

test('a principal and a longer range narrow and widen the page; a reversed range is refused', async () => {
  const { page, context, seen } = await openActivity(BASE);
  try {
    // bob only: his two runs of one shape on D2.
    await apply(page, () => page.locator('#principal').fill('bob'));
    assert.equal(await page.locator('#error').isVisible(), false, await page.locator('#error').textContent());
    assert.equal(await page.locator('#total-spend').textContent(), '$12.50');
    assert.equal(await page.locator('#total-queries').textContent(), '3');
    const mine = (await bars(page)).filter((b) => b.cost > 0);
    assert.deepEqual(mine.map((b) => [b.day, b.cost]), [[D2, 12.5]]);
    assert.equal(await page.locator('#popular-ask tr.entry-row').count(), 0);
    assert.match(await page.locator('#popular-ask').textContent(), /Nothing in this range/);
    assert.deepEqual(await page.locator('#errors tr.entry-row button.entry-link').allTextContents(), ['SQL_REJECTED']);
    // An applied range is kept in the address: a reload shows the same.
    assert.match(page.url(), /principal=bob/);
    await page.reload();
    await loaded(page);
    assert.equal(await page.locator('#principal').inputValue(), 'bob');
    assert.equal(await page.locator('#total-spend').textContent(), '$12.50');

    // Everyone, from the old day on: it is in, with its $50.
    await apply(page, async () => {
      await page.locator('#principal').fill('');
      await page.locator('#from').fill(OLD);
    });
    const got = await bars(page);
    assert.deepEqual(got.map((b) => b.day), daysBetween(OLD, todayUtc()));
    assert.equal(got.find((b) => b.day === OLD).cost, 50);
    assert.equal(await page.locator('#total-spend').textContent(), '$93.75');
    assert.equal(await page.locator('#total-queries').textContent(), '8');
    assert.equal((await rowIds(page, 'slowest'))[0], id(8));
    assert.equal((await rowIds(page, 'expensive'))[0], id(8));

    // Within the 90 days history is kept: no retention notice. Reaching past them: the
    // server's notice, on the page (its cut-off instant moves with the clock, so it is
    // compared without it).
    assert.equal(await page.locator('#retention').isVisible(), false);
    const longAgo = addDays(todayUtc(), -120);
    await apply(page, () => page.locator('#from').fill(longAgo));
    const api = await apiJson(BASE, `/api/v1/analytics/summary?group_by=day&from=${longAgo}&to=${todayUtc()}`);
    const notice = api.body.retention_notice;
    assert.match(notice, /90 days/);
    assert.equal(await page.locator('#retention').isVisible(), true);
    const noTime = (t) => t.replace(/\d{4}-\d{2}-\d{2}T[\d:.]+Z/g, '…');
    assert.equal(noTime(await page.locator('#retention').textContent()), noTime(notice));
    assert.equal((await bars(page)).length, 121);
    assert.equal(await page.locator('#total-spend').textContent(), '$93.75');

    // From after to: a visible message, no request.
    await apply(page, () => page.locator('#from').fill(addDays(todayUtc(), 1)));
    await page.locator('#error', { hasText: 'is after the end date' }).waitFor({ timeout: WAIT });
    assert.deepEqual(seen.dialogs, []);
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('with keys on: no key is a visible message; the chat page key works; another principal is refused', async () => {
  // Without a key: the page says so.
  let opened = await openActivity(AUTH);
  try {
    const error = opened.page.locator('#error');
    assert.equal(await error.isVisible(), true);
    assert.match(await error.textContent(), /needs an API key/);
  } finally {
    await opened.context.close();
  }

  // The key given on the chat page (same tab storage) is used by the activity page.
  opened = await open(AUTH, { connected: false });
  const { page, context } = opened;
  try {
    await page.locator('#api-key').fill(AUTH_KEY);
    await page.locator('#key-save').click();
    await page.locator('#conn-text', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
    await page.locator('#activity-link').click();
    await page.waitForURL((u) => u.origin === AUTH && u.pathname === '/activity', { timeout: WAIT });
    await loaded(page);
    assert.equal(await page.locator('#api-key').inputValue(), AUTH_KEY);
    assert.equal(await page.locator('#error').isVisible(), false, await page.locator('#error').textContent());
    assert.match(await page.locator('#total-queries').textContent(), /^\d[\d,]*$/);

    // An analyst asking for someone else's activity: the server's refusal, on the page.
    const refused = await apiJson(AUTH, '/api/v1/analytics/summary?group_by=day&principal=someone-else', AUTH_KEY);
    assert.equal(refused.status, 403);
    await apply(page, () => page.locator('#principal').fill('someone-else'));
    const error = page.locator('#error');
    assert.equal(await error.isVisible(), true);
    const text = await error.textContent();
    assert.ok(text.includes(refused.body.error.message), text);
    assert.ok(text.includes('FORBIDDEN'), text);
    assert.match(await page.locator('#spend .section-error').textContent(), /Could not load the summary/);
  } finally {
    await context.close();
  }
});
