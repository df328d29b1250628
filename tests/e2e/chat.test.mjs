// The chat page in headless Chromium (playwright-core, Debian's chromium) against a running
// `bqai serve` (scripts/e2e.sh starts one and sets BQAI_URL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT, open as openOn, askAndWait, rowsOf } from './helpers.mjs';

const BASE = process.env.BQAI_URL;
const open = () => openOn(BASE);

test('ask, see the stages, SQL, table and chart, then follow a suggestion', async () => {
  const { page, context, seen } = await open();
  try {
    const first = await askAndWait(page, 'revenue by country in 2024', 0);
    assert.equal(await first.locator('.error').count(), 0, await first.textContent());
    const stages = await first.locator('.stages li').allTextContents();
    for (const s of ['Understanding', 'Writing SQL', 'Checking', 'Running']) {
      assert.ok(stages.some((t) => t.startsWith(s)), `stage ${s} in ${stages}`);
    }
    const sql1 = (await first.locator('pre.sql').textContent()).toLowerCase();
    assert.ok(sql1.includes('country') && sql1.includes('2024'), sql1);
    assert.match(await first.locator('.estimate').textContent(), /Scans about/);
    assert.ok(await rowsOf(first) > 1);
    assert.equal(await first.locator('svg.chart rect.bar').count() > 1, true, 'a bar chart');
    assert.equal(await page.locator('#status').getAttribute('aria-live'), 'polite');

    // Suggestion chips ask the follow-up when clicked.
    const chip = first.locator('button.suggestion').first();
    await chip.waitFor({ timeout: WAIT });
    const suggested = (await chip.textContent()).trim();
    await chip.click();
    const second = page.locator('article.turn').nth(1);
    await page.waitForFunction(
      () => document.querySelectorAll('article.turn')[1]?.getAttribute('aria-busy') === 'false',
      null, { timeout: WAIT },
    );
    assert.equal((await second.locator('h2.question').textContent()).trim(), suggested);
    assert.equal(await second.locator('.error').count(), 0, await second.textContent());
    const sql2 = (await second.locator('pre.sql').textContent()).toLowerCase();
    assert.ok(sql2.length > 0 && sql2 !== sql1, `follow-up SQL: ${sql2}`);
    if (/month/i.test(suggested)) assert.ok(sql2.includes('month'), sql2);
    assert.ok(await rowsOf(second) > 0, 'the follow-up has rows');

    // The conversation continues: "now by month" draws a line over the months of 2024.
    const third = await askAndWait(page, 'now by month', 2);
    const sql3 = (await third.locator('pre.sql').textContent()).toLowerCase();
    assert.ok(sql3.includes('month'), sql3);
    assert.ok(await rowsOf(third) > 1);
    assert.equal(await third.locator('svg.chart path.line').count(), 1, 'a line chart');
    assert.deepEqual(seen.dialogs, []);
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

test('a question with markup is shown as text', async () => {
  const { page, context, seen } = await open();
  try {
    const evil = 'revenue by country <img src=x onerror=alert(1)> <script>alert(2)</script>';
    const turn = await askAndWait(page, evil, 0);
    assert.equal((await turn.locator('h2.question').textContent()).trim(), evil);
    // No element came out of it, and nothing ran.
    assert.equal(await page.locator('img').count(), 0);
    assert.equal(await page.evaluate(() => document.querySelectorAll('img, main script').length), 0);
    await page.waitForTimeout(300);
    assert.deepEqual(seen.dialogs, []);
  } finally {
    await context.close();
  }
});

test('the keyboard reaches everything and the cancel button is off when idle', async () => {
  const { page, context } = await open();
  try {
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'question');
    assert.equal(await page.locator('#cancel-button').isDisabled(), true);
    await page.setViewportSize({ width: 390, height: 800 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.equal(overflow, false, 'no horizontal scrolling on a phone');
  } finally {
    await context.close();
  }
});
