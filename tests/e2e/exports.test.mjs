// Downloads from the chat page (scripts/e2e.sh's open server with the demo dataset `shop`):
// each answer offers its whole result as CSV, Excel and Parquet through POST /api/v1/exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { WAIT, open, askAndWait, rowsOf } from './helpers.mjs';

const BASE = process.env.BQAI_URL;

test('an answer downloads its whole result as a CSV file', async () => {
  const { page, context, seen } = await open(BASE);
  try {
    const turn = await askAndWait(page, 'revenue by country in 2025', 0);
    assert.equal(await turn.locator('.error').count(), 0, await turn.textContent());
    const headers = (await turn.locator('table thead th').allTextContents()).map((t) => t.trim());
    const shown = await rowsOf(turn);
    const labels = (await turn.locator('.downloads button.download').allTextContents()).map((t) => t.trim());
    assert.deepEqual(labels, ['CSV', 'Excel', 'Parquet']);

    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT }),
      turn.locator('button.download[data-format=csv]').click(),
    ]);
    assert.match(download.suggestedFilename(), /^bqai-export-[0-9a-f-]+\.csv$/);
    const text = await readFile(await download.path(), 'utf8');
    const lines = text.split('\r\n').filter((l) => l !== '');
    assert.deepEqual(lines[0].split(','), headers);
    assert.equal(lines.length - 1, shown, 'every row of the answer');
    await page.locator('#status', { hasText: /Downloaded bqai-export-.*\.csv/ }).waitFor({ timeout: WAIT });

    // The Excel file is a zip (PK…), not an error page.
    const [xlsx] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT }),
      turn.locator('button.download[data-format=xlsx]').click(),
    ]);
    assert.match(xlsx.suggestedFilename(), /\.xlsx$/);
    const zip = await readFile(await xlsx.path());
    assert.equal(zip.subarray(0, 2).toString('latin1'), 'PK');
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});

// The data server (scripts/e2e.sh) calls no result small: a download is an export job, followed
// on the page until its signed link is ready, then fetched through the link (no key).
test('a large result downloads through an export job and its signed link', async () => {
  const DATA = process.env.BQAI_DATA_URL;
  const { page, context, seen } = await open(DATA);
  try {
    const turn = await askAndWait(page, 'top 3 companies by amount', 0);
    assert.equal(await turn.locator('.error').count(), 0, await turn.textContent());
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT }),
      turn.locator('button.download[data-format=csv]').click(),
    ]);
    assert.match(download.suggestedFilename(), /^bqai-export-[0-9a-f-]+\.csv$/);
    assert.match(download.url(), /\/api\/v1\/exports\/[0-9a-f-]+\/download\?expires=\d+&sig=[0-9a-f]+$/);
    const text = await readFile(await download.path(), 'utf8');
    const lines = text.split('\r\n').filter((l) => l !== '');
    assert.equal(lines.length, 4, text);
    assert.match(lines[1], /^Umbrella,200/);
    await page.locator('#status', { hasText: /Downloaded bqai-export-.*\.csv/ }).waitFor({ timeout: WAIT });
    // The job is listed with its history entry.
    const jobs = await page.evaluate(async () => (await (await fetch('/api/v1/exports')).json()).data);
    assert.equal(jobs[0].status, 'succeeded');
    assert.equal(jobs[0].rows, 3);
    assert.deepEqual(seen.errors, []);
  } finally {
    await context.close();
  }
});
