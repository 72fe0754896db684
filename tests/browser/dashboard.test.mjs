// Browser tests of `onboard serve` in headless Chromium (Debian's package, driven by
// playwright-core). Started by tests/browser/run.sh, which builds a demo run, starts the
// server and sets ONBOARD_URL, ONBOARD_PASSWORD and ONBOARD_CLINICIAN_PRACTICE.
// Screenshots of the main pages go to tests/browser/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const BASE = process.env.ONBOARD_URL;
const PASSWORD = process.env.ONBOARD_PASSWORD;
const PRACTICE = process.env.ONBOARD_CLINICIAN_PRACTICE;
const SHOTS = new URL('./artifacts/', import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });

let browser;
before(async () => {
  assert.ok(BASE && PASSWORD && PRACTICE, 'run through tests/browser/run.sh');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
});
after(async () => { await browser?.close(); });

/** Sign in through the form; the browser context keeps the session cookie. */
async function signIn(user) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${BASE}/login`);
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL('**/risk'), page.click('form.login button[type=submit]')]);
  return { ctx, page };
}

const shot = (page, name) => page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: true });

/** Every displayed count of a page: `*` (suppressed) or a whole number. */
async function countsOn(page) {
  return page.$$eval('.count', (els) => els.map((e) => e.textContent.trim()));
}

/** A patient reference the analyst can open (for trying patient URLs as others). */
async function someReference() {
  const { ctx } = await signIn('anal');
  const r = await ctx.request.get(`${BASE}/api/v1/cohort?band=very_high`);
  const body = await r.json();
  await ctx.close();
  return body.rows[0].reference;
}

test('an unauthenticated request gets nothing', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  for (const path of ['/risk', '/cohorts?band=high', `/patients/${'0'.repeat(32)}`, '/quality', '/population']) {
    await page.goto(`${BASE}${path}`);
    assert.match(page.url(), /\/login$/, `${path} sends to sign-in`);
    assert.equal(await page.locator('#band-table, #cohort, #explanation-card, #dq').count(), 0);
  }
  await shot(page, 'login');
  for (const path of ['/api/v1/risk/distribution', '/api/v1/cohort', '/api/v1/quality', '/api/v1/me']) {
    const r = await ctx.request.get(`${BASE}${path}`);
    assert.equal(r.status(), 401, path);
  }
  // A wrong password does not sign in.
  await page.goto(`${BASE}/login`);
  await page.fill('input[name=user]', 'clin');
  await page.fill('input[name=password]', 'wrong');
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('.error');
  assert.match(page.url(), /\/login$/);
  await ctx.close();
});

test('the session cookie is HttpOnly, Secure and SameSite=Strict', async () => {
  const { ctx } = await signIn('comm');
  const c = (await ctx.cookies()).find((x) => x.name === 'onboard_session');
  assert.ok(c, 'session cookie set');
  assert.equal(c.httpOnly, true);
  assert.equal(c.secure, true);
  assert.equal(c.sameSite, 'Strict');
  await ctx.close();
});

test('the clinician sees only their practices\u2019 patients and their explanation cards', async () => {
  const { ctx, page } = await signIn('clin');
  await shot(page, 'clinician-risk');
  await page.goto(`${BASE}/cohorts?decile=10`);
  const practices = await page.$$eval('#cohort tbody tr', (trs) => trs.map((t) => t.dataset.practice));
  assert.ok(practices.length > 0, 'the clinician has high-risk patients');
  assert.deepEqual([...new Set(practices)], [PRACTICE]);
  await shot(page, 'clinician-cohort');
  const api = await (await ctx.request.get(`${BASE}/api/v1/cohort?per_page=1000`)).json();
  assert.ok(api.rows.length > 0 && api.rows.every((r) => r.practice === PRACTICE));
  // The first patient's card: factors with values, typical values and evidence.
  await page.click('#cohort a.patient >> nth=0');
  await page.waitForSelector('#explanation-card');
  assert.match(new URL(page.url()).pathname, /^\/patients\/[0-9a-f]{32}$/, 'an opaque reference, not a person key');
  assert.ok((await page.locator('#explanation-card tr.factor').count()) > 0, 'the card lists factors');
  assert.ok(await page.locator('#referral').isVisible());
  await shot(page, 'clinician-patient');
  // Someone else's patient by URL: not found in their scope.
  const foreign = await (async () => {
    const { ctx: a } = await signIn('anal');
    const rows = (await (await a.request.get(`${BASE}/api/v1/cohort?per_page=1000`)).json()).rows;
    await a.close();
    return rows.find((r) => r.practice !== PRACTICE).reference;
  })();
  const r = await page.goto(`${BASE}/patients/${foreign}`);
  assert.equal(r.status(), 404);
  await ctx.close();
});

test('the commissioner sees aggregates, no count in 1\u20137, and 403 on every patient-level route', async () => {
  const ref = await someReference();
  const { ctx, page } = await signIn('comm');
  for (const [path, name] of [['/risk', 'commissioner-risk'], ['/risk?by=imd_quintile', 'commissioner-imd'], ['/risk?by=ethnic_group', null], ['/quality', 'commissioner-quality']]) {
    await page.goto(`${BASE}${path}`);
    const counts = await countsOn(page);
    assert.ok(counts.length > 0, `${path} shows counts`);
    for (const c of counts) {
      assert.ok(c === '*' || (/^\d+$/.test(c) && (Number(c) === 0 || Number(c) > 7)), `${path}: count ${c}`);
    }
    assert.equal(await page.locator('a[href^="/patients/"], a[href^="/cohorts"]').count(), 0, 'no patient links');
    if (name) await shot(page, name);
  }
  for (const path of ['/cohorts?band=very_high', '/cohorts?decile=10', `/patients/${ref}`]) {
    const r = await page.goto(`${BASE}${path}`);
    assert.equal(r.status(), 403, path);
  }
  for (const path of ['/api/v1/cohort', '/api/v1/cohort?band=high', `/api/v1/patients/${ref}`, '/api/v1/audit']) {
    const r = await ctx.request.get(`${BASE}${path}`);
    assert.equal(r.status(), 403, path);
  }
  await ctx.close();
});

test('the analyst sees pseudonymised rows of every practice; the admin sees the audit log', async () => {
  const { ctx, page } = await signIn('anal');
  await page.goto(`${BASE}/cohorts?band=high`);
  const practices = await page.$$eval('#cohort tbody tr', (trs) => trs.map((t) => t.dataset.practice));
  assert.ok(new Set(practices).size > 1, 'rows from several practices');
  await shot(page, 'analyst-cohort');
  await page.goto(`${BASE}/population`);
  await shot(page, 'analyst-population');
  assert.equal((await page.goto(`${BASE}/admin/audit`)).status(), 403);
  await ctx.close();
  const admin = await signIn('admin');
  await admin.page.goto(`${BASE}/admin/audit`);
  const users = await admin.page.$$eval('#audit tbody tr td:nth-child(2)', (tds) => tds.map((t) => t.textContent));
  assert.ok(users.includes('clin') && users.includes('anal'), 'patient-level access is audited');
  await shot(admin.page, 'admin-audit');
  await admin.page.goto(`${BASE}/quality`);
  await shot(admin.page, 'admin-quality');
  await admin.ctx.close();
});

test('no person key in the access log; the audit log names user, page and person key', () => {
  const access = readFileSync(process.env.ONBOARD_ACCESS_LOG, 'utf8');
  const audit = readFileSync(process.env.ONBOARD_AUDIT_LOG, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(audit.length > 0);
  const keys = new Set(audit.flatMap((r) => r.person_keys));
  for (const line of access.split('\n')) {
    for (const k of keys) assert.ok(!line.includes(k), `person key in access log: ${line}`);
    assert.ok(!/\/patients\/[0-9a-f]{8}/.test(line), `a reference in access log: ${line}`);
  }
  const clin = audit.find((r) => r.user === 'clin' && r.page === '/patients/{ref}');
  assert.ok(clin && clin.role === 'clinician' && clin.person_keys.length === 1 && clin.at.endsWith('Z'));
});
