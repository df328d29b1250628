// The chat page against a server with API keys on (scripts/e2e.sh starts it with
// `[auth] mode = "api_key"` and makes an analyst key offline): without a key the page cannot
// connect and says why, a wrong key is refused, the right one is exchanged for a WebSocket
// ticket and the conversation works; the key stays in the tab's session storage only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT, open, askAndWait, rowsOf } from './helpers.mjs';

const BASE = process.env.BQAI_AUTH_URL;
const KEY = process.env.BQAI_AUTH_KEY;
if (!BASE || !KEY) throw new Error('run through scripts/e2e.sh (BQAI_AUTH_URL and BQAI_AUTH_KEY)');

async function enterKey(page, key) {
  await page.locator('#api-key').fill(key);
  await page.locator('#key-save').click();
}

test('without a key the page asks for one; a wrong key is refused', async () => {
  const { page, context, seen } = await open(BASE, { connected: false });
  try {
    await page.locator('#conn-text', { hasText: 'enter it above' }).waitFor({ timeout: WAIT });
    // No key, no dataset list: the picker stays hidden.
    assert.equal(await page.locator('#dataset').isVisible(), false);
    await enterKey(page, 'bqai_AAAAAAAAAAAA_' + 'B'.repeat(40));
    await page.locator('#conn-text', { hasText: 'The API key was not accepted.' }).waitFor({ timeout: WAIT });
    assert.deepEqual(seen.dialogs, []);
  } finally {
    await context.close();
  }
});

test('with the key: ticket, connection, a two-turn conversation; kept per tab only', async () => {
  const { page, context, seen } = await open(BASE, { connected: false });
  try {
    // The page fetches a ticket with the key and puts only the ticket on the upgrade URL.
    const upgrades = [];
    page.on('websocket', (ws) => upgrades.push(ws.url()));
    await enterKey(page, KEY);
    await page.locator('#conn-text', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
    assert.ok(upgrades.length >= 1, 'a WebSocket was opened');
    const last = new URL(upgrades[upgrades.length - 1]);
    assert.match(last.searchParams.get('ticket') || '', /^wst_/);
    assert.ok(!upgrades.some((u) => u.includes(KEY)), 'the key itself never goes into a URL');
    // The dataset picker is filled with the key (GET /api/v1/datasets): one dataset, shown
    // but nothing to choose.
    await page.locator('#dataset option').first().waitFor({ state: 'attached', timeout: WAIT });
    assert.deepEqual(await page.locator('#dataset option').allTextContents(), ['shop']);
    assert.equal(await page.locator('#dataset').isVisible(), true);
    assert.equal(await page.locator('#dataset').isDisabled(), true);

    const first = await askAndWait(page, 'revenue by country in 2024', 0);
    assert.equal(await first.locator('.error').count(), 0, await first.textContent());
    assert.ok(await rowsOf(first) > 1);
    const second = await askAndWait(page, 'now by month', 1);
    assert.equal(await second.locator('.error').count(), 0, await second.textContent());
    const sql = (await second.locator('pre.sql').textContent()).toLowerCase();
    assert.ok(sql.includes('month') && sql.includes('2024'), sql);

    // Session storage, not local storage: a reload in the tab reconnects by itself…
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    await page.reload();
    await page.locator('#conn-text', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
    // …and "Forget" drops it: the next connection has no credential and is refused.
    await page.locator('#key-clear').click();
    await page.locator('#conn-text', { hasText: 'enter it above' }).waitFor({ timeout: WAIT });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('bqai.key')), null);
    assert.deepEqual(seen.dialogs, []);
  } finally {
    await context.close();
  }
});
