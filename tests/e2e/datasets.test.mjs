// Two datasets on one server: scripts/e2e.sh's third server runs `serve --data <dir>/exports`
// (companies.csv: company,amount with some amounts empty) next to the demo `shop`
// (BQAI_DATA_URL). The page offers a dataset picker filled from GET /api/v1/datasets, remembered
// per tab, sent with each new conversation; changing it starts a new conversation. Charts leave
// NULL measures out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT, open, askAndWait, rowsOf, columnOf, barsOf } from './helpers.mjs';

const BASE = process.env.BQAI_DATA_URL;
if (!BASE) throw new Error('run through scripts/e2e.sh (BQAI_DATA_URL)');

async function conversationOf(page) {
  return page.evaluate(async () => {
    const id = sessionStorage.getItem('bqai.conversation');
    const r = await fetch('/api/v1/conversations/' + id);
    return { id, status: r.status, body: await r.json() };
  });
}

test('the picker lists both datasets; asks go to the chosen one, remembered in the tab', async () => {
  const { page, context, seen } = await open(BASE);
  try {
    const picker = page.locator('#dataset');
    assert.equal(await picker.isVisible(), true);
    assert.equal(await picker.isEnabled(), true);
    const options = (await picker.locator('option').allTextContents()).map((t) => t.trim()).sort();
    assert.deepEqual(options, ['exports', 'shop']);
    // With one --data folder, its dataset is the default.
    await page.locator('#conn-text', { hasText: 'dataset exports' }).waitFor({ timeout: WAIT });
    assert.equal(await picker.inputValue(), 'exports');

    // A question about the CSV: answered on exports, the empty amounts last (not in the top 3).
    const top = await askAndWait(page, 'top 3 companies by amount', 0);
    assert.equal(await top.locator('.error').count(), 0, await top.textContent());
    assert.match(await top.locator('pre.sql').textContent(), /exports\.companies/);
    assert.equal(await rowsOf(top), 3);
    const headers = (await top.locator('table thead th').allTextContents()).map((t) => t.trim());
    const amounts = await columnOf(top, headers.find((h) => /amount/.test(h)));
    assert.deepEqual(amounts.map((a) => Number(a.replace(/[^\d.-]/g, ''))), [200, 120, 80], `amounts ${amounts}`);
    const onExports = await conversationOf(page);
    assert.equal(onExports.body.dataset_id, 'exports');
    assert.equal(onExports.body.turns.length, 1);

    // Choosing shop starts a new conversation on shop: the page is cleared.
    await picker.selectOption('shop');
    await page.locator('#conn-text', { hasText: 'dataset shop' }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator('article.turn').count(), 0);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('bqai.dataset')), 'shop');
    const configure = seen.sent.filter((m) => m.type === 'configure').pop();
    assert.equal(configure.dataset_id, 'shop');
    assert.equal(configure.conversation_id, undefined, 'a new conversation');
    const shop = await askAndWait(page, 'revenue by country in 2024', 0);
    assert.equal(await shop.locator('.error').count(), 0, await shop.textContent());
    assert.match(await shop.locator('pre.sql').textContent(), /shop\.customers/);
    assert.ok(await rowsOf(shop) > 1);
    const onShop = await conversationOf(page);
    assert.notEqual(onShop.id, onExports.id);
    assert.equal(onShop.body.dataset_id, 'shop');
    assert.deepEqual(onShop.body.turns.map((t) => t.question), ['revenue by country in 2024']);

    // Remembered in the tab: after a reload the picker is still on shop, and so is the
    // conversation; a new conversation is on shop too.
    await page.reload();
    await page.locator('#conn-text', { hasText: 'dataset shop' }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#dataset').inputValue(), 'shop');
    await page.locator('#new-conversation').click();
    await page.locator('#conn-text', { hasText: 'dataset shop' }).waitFor({ timeout: WAIT });
    const fresh = await conversationOf(page);
    assert.notEqual(fresh.id, onShop.id);
    assert.equal(fresh.body.dataset_id, 'shop');
    assert.equal(seen.sent.filter((m) => m.type === 'configure').pop().dataset_id, 'shop');
    const again = await askAndWait(page, 'top 3 products by revenue', 0);
    assert.equal(await again.locator('.error').count(), 0, await again.textContent());
    assert.match(await again.locator('pre.sql').textContent(), /shop\.products/);
    assert.deepEqual(seen.dialogs, []);
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('the chart leaves NULL measures out, and draws nothing when every value is NULL', async () => {
  const { page, context, seen } = await open(BASE);
  try {
    await page.locator('#dataset').selectOption('exports');
    await page.locator('#conn-text', { hasText: 'dataset exports' }).waitFor({ timeout: WAIT });
    const all = await askAndWait(page, 'amount by company', 0);
    assert.equal(await all.locator('.error').count(), 0, await all.textContent());
    assert.equal(await rowsOf(all), 6, 'every company is in the table, with or without an amount');
    const bars = await barsOf(all);
    assert.deepEqual(bars.map((b) => b.label).sort(), ['Acme', 'Initech', 'Stark', 'Umbrella']);
    assert.ok(bars.every((b) => b.value > 0), JSON.stringify(bars));
    assert.match(await all.locator('figcaption.chart-label').textContent(), /amount by company.*2 without a value/);

    await page.locator('#new-conversation').click();
    await page.locator('#conn-text', { hasText: 'dataset exports' }).waitFor({ timeout: WAIT });
    const none = await askAndWait(page, 'amount by company where company is Globex or Hooli', 0);
    assert.equal(await none.locator('.error').count(), 0, await none.textContent());
    assert.equal(await rowsOf(none), 2);
    assert.equal(await none.locator('svg.chart').count(), 0, 'no chart of nothing but NULLs');
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});
