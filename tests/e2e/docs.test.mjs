// The API docs page (/docs/, Swagger UI vendored in the binary) renders every operation with
// no network access beyond the server: every request to any other host is aborted and counted,
// and the page must make none. It must also load under its Content-Security-Policy without a
// violation or a script error, and be reachable from the chat page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT, open } from './helpers.mjs';

const BASE = process.env.BQAI_URL;

test('the docs page renders every operation offline, under its policy', async () => {
  const { page, context, seen } = await open(BASE, { connected: false, chatPage: false });
  const elsewhere = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.origin === new URL(BASE).origin) return route.continue();
    elsewhere.push(url.href);
    return route.abort();
  });
  try {
    // From the chat page's link, as a person would.
    await page.locator('#api-docs').click();
    await page.waitForURL(`${BASE}/docs/`, { timeout: WAIT });
    const csp = await page.evaluate(async () => (await fetch(location.href)).headers.get('content-security-policy'));
    assert.match(csp, /script-src 'self';/);
    await page.locator('.opblock').first().waitFor({ timeout: WAIT });
    const spec = await (await fetch(`${BASE}/openapi.json`)).json();
    const operations = Object.values(spec.paths)
      .flatMap((item) => Object.keys(item).filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m)));
    const shown = await page.locator('.opblock').count();
    assert.equal(shown, operations.length, 'one block per operation');
    await page.getByText('/api/v1/ask', { exact: true }).first().waitFor({ timeout: WAIT });
    assert.deepEqual(elsewhere, [], 'no request left the server');
    const problems = seen.errors.filter((e) => !e.includes('favicon'));
    assert.deepEqual(problems, [], 'no script error or CSP violation');
    assert.deepEqual(seen.dialogs, []);
  } finally {
    await context.close();
  }
});
