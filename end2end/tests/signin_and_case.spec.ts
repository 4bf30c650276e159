import { test, expect } from '@playwright/test';

const EMAIL = process.env.MV_E2E_EMAIL!;
const PASSWORD = process.env.MV_E2E_PASSWORD!;

test('a doctor signs in and opens a case', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  // Wait for the wasm to load and hydrate the page.
  await page.goto('/login', { waitUntil: 'networkidle' });
  await expect(page.getByRole('heading', { name: 'Sign in to MedVision' })).toBeVisible();
  // Hydrated: a wrong password shows the error in place, no reload.
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill('not the password at all');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('e-mail or password is not correct');
  await expect(page).toHaveURL(/\/login$/);

  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/cases');
  await expect(page.getByRole('heading', { name: 'Cases' })).toBeVisible();
  await expect(page.getByText('AI output is a suggestion')).toBeVisible();

  await page.getByRole('link', { name: 'New case' }).first().click();
  await expect(page.getByRole('heading', { name: 'New case' })).toBeVisible();
  await page.getByLabel('Patient pseudonym or MRN').fill('Zoë Ångström');
  await page.getByLabel('Age (years)').fill('sixty');
  await page.getByLabel('Body part').fill('head');
  await page.getByLabel('Urgency').selectOption('stat');
  await page.getByLabel('Clinical history').fill('Sudden headache <script>alert(1)</script>');
  await page.getByRole('button', { name: 'Open case' }).click();
  // The field error appears next to the field.
  await expect(page.getByText('must be a whole number of years')).toBeVisible();

  await page.getByLabel('Age (years)').fill('61');
  await page.getByRole('button', { name: 'Open case' }).click();
  await page.waitForURL(/\/cases\/[0-9a-f-]{36}$/);
  await expect(page.getByRole('heading', { name: /Zoë Ångström/ })).toBeVisible();
  await expect(page.getByText('Sudden headache <script>alert(1)</script>')).toBeVisible();
  await expect(page.getByText('STAT').first()).toBeVisible();

  // A real DICOM through the page: de-identified, stored, shown in the viewer.
  await page.locator('input[type=file]').setInputFiles(process.env.MV_E2E_DICOM!);
  await expect(page.getByRole('status')).toContainText('1 file(s) accepted in 1 study.');
  await expect(page.getByText(/De-identification: \d+ changes/)).toBeVisible();
  const slice = page.getByRole('img', { name: 'Image slice' });
  await expect(slice).toBeVisible();
  await expect
    .poll(() => slice.evaluate((i: HTMLImageElement) => (i.complete ? i.naturalWidth : 0)))
    .toBeGreaterThan(0);
  await page.getByLabel('Window preset').selectOption('bone');
  await expect(slice).toHaveAttribute('src', /window=bone/);

  await page.goto('/cases');
  await expect(page.getByRole('link', { name: 'Zoë Ångström' })).toBeVisible();
  expect(errors).toEqual([]);
});
