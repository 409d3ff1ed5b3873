// The admin dashboard in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; playwright never downloads a browser here).
// Run by tests/check_dashboard.sh, which starts the relay with one dead
// push and passes PR_DASH_URL (the page on a TCP admin listener) and
// PR_DASH_KEY (an admin key). Checks: the page loads with no console
// errors or CSP violations, its queue and provider numbers match
// GET /v1/admin/stats, the dead push is listed, Retry requeues it (the API
// shows it left "dead"), and a lookup shows the attempt history.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const url = process.env.PR_DASH_URL;
const key = process.env.PR_DASH_KEY;
const origin = new URL(url).origin;
const T = 15000;
let passed = 0, failed = 0;

function ok(name) { passed++; console.log('PASS: ' + name); }
function fail(name, why) { failed++; console.log('FAIL: ' + name + ': ' + why); }
function check(cond, name, why) { cond ? ok(name) : fail(name, why); return cond; }

async function api(method, path) {
  const r = await fetch(origin + path, {
    method, headers: { Authorization: 'Bearer ' + key },
    signal: AbortSignal.timeout(5000),
  });
  const j = await r.json();
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status + ' ' + JSON.stringify(j));
  return j;
}
const sleep = ms => new Promise(r => setTimeout(r, ms));

async function withTimeout(p, ms, what) {
  let t;
  const to = new Promise((_, rej) => { t = setTimeout(() => rej(new Error(what + ': timed out')), ms); });
  try { return await Promise.race([p, to]); } finally { clearTimeout(t); }
}

const profile = process.env.PR_DASH_PROFILE || mkdtempSync(join(tmpdir(), 'pr-dash-'));
let browser;
try {
  // A persistent context on a fresh profile directory: --user-data-dir.
  browser = await withTimeout(chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  }), 40000, 'launch chromium');
  const page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(T);
  const errors = [];
  // A 404 is expected for the lookup of "alice" as a message id;
  // Chromium logs each failed load as a console error.
  const expected404 = [/\/v1\/admin\/messages\/alice$/];
  let load404 = 0, console404 = 0;
  page.on('response', r => {
    if (r.status() >= 400) {
      const path = new URL(r.url()).pathname;
      if (r.status() === 404 && expected404.some(re => re.test(path))) load404++;
      else errors.push('HTTP ' + r.status() + ' ' + r.url());
    }
  });
  page.on('console', m => {
    if (m.type() !== 'error') return;
    if (/^Failed to load resource: .* 404/.test(m.text())) console404++;
    else errors.push(m.text());
  });
  page.on('pageerror', e => errors.push(String(e)));
  const external = [];
  page.on('request', r => { if (!r.url().startsWith(origin)) external.push(r.url()); });

  const resp = await page.goto(url + '#key=' + encodeURIComponent(key), { timeout: T });
  check(resp.status() === 200, 'GET /admin/ is 200', 'status ' + resp.status());
  const h = resp.headers();
  check(/^text\/html; charset=utf-8$/i.test(h['content-type'] || ''), 'content type',
    h['content-type']);
  check(/default-src 'none'/.test(h['content-security-policy'] || ''), 'strict CSP',
    h['content-security-policy']);
  check(!page.url().includes('key='), 'key removed from the address', page.url());

  // The page loaded its data (queue table, dead row).
  await page.waitForSelector('body[data-loaded="1"]', { timeout: T });
  await page.waitForSelector('#dead tr[data-job] button.retry', { timeout: T });

  // Numbers against the API. Nothing moves in between: the only push is dead.
  const st = await api('GET', '/v1/admin/stats');
  const shown = await page.$$eval('#queue tbody tr', rows =>
    Object.fromEntries(rows.map(r => [r.dataset.state, r.cells[1].textContent])));
  let same = Object.keys(st.queue).length === Object.keys(shown).length &&
    Object.entries(st.queue).every(([k, v]) => shown[k] === String(v));
  check(same, 'queue depth matches /v1/admin/stats',
    JSON.stringify(shown) + ' vs ' + JSON.stringify(st.queue));
  check(shown.dead === '1', 'one dead job shown', JSON.stringify(shown));
  const msgs = await page.textContent('#messages');
  check(msgs === String(st.messages), 'message count matches', msgs + ' vs ' + st.messages);
  const prov = await page.$$eval('#providers tbody tr[data-provider]', rows =>
    Object.fromEntries(rows.map(r => [r.dataset.provider,
      [r.cells[1].textContent, r.cells[2].textContent, r.cells[3].textContent]])));
  same = Object.entries(st.providers || {}).every(([k, v]) => prov[k] &&
    prov[k][0] === (v.paused ? 'paused' : 'active') &&
    prov[k][1] === String(v.sent) && prov[k][2] === String(v.failed));
  check(same && Object.keys(prov).length === Object.keys(st.providers || {}).length,
    'provider status matches', JSON.stringify(prov) + ' vs ' + JSON.stringify(st.providers));

  // The dead list has the job; its data is shown as text (no markup injected).
  const list = await api('GET', '/v1/admin/messages?state=dead');
  check(list.messages.length === 1 && list.messages[0].id === 'm-dead-1',
    'API lists the dead message', JSON.stringify(list));
  const detail = await api('GET', '/v1/admin/messages/m-dead-1');
  const job = detail.pushes.find(p => p.state === 'dead');
  const jobs = await page.$$eval('#dead tr[data-job]', rows => rows.map(r => r.dataset.job));
  check(job && jobs.length === 1 && jobs[0] === String(job.job_id),
    'dead list shows the dead job', JSON.stringify(jobs));

  // Lookup by message id shows the attempt history.
  await page.fill('#q', 'm-dead-1');
  await page.click('#lookup button[type=submit]');
  await page.waitForSelector('#result table', { timeout: T });
  const text = await page.textContent('#result');
  check(text.includes('m-dead-1') && text.includes('503'),
    'lookup shows the message and the failed attempt', text.slice(0, 300));
  check(await page.$('#result b') === null, 'payload is not rendered as markup', 'found <b>');
  await page.fill('#q', 'alice');
  await page.click('#lookup button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#result') &&
    document.querySelector('#result').textContent.includes('Messages for user alice'), null,
    { timeout: T });
  ok('lookup by user lists the message');

  if (process.env.PR_DASH_SCREENSHOT)
    await page.screenshot({ path: process.env.PR_DASH_SCREENSHOT, fullPage: true });

  // Retry: the job leaves "dead" (pending, then sent: the mock's 503 was once).
  await page.click('#dead tr[data-job="' + job.job_id + '"] button.retry');
  let state = 'dead';
  for (let i = 0; i < 100 && state === 'dead'; i++) {
    const d = await api('GET', '/v1/admin/messages/m-dead-1');
    state = d.pushes.find(p => p.job_id === job.job_id).state;
    if (state === 'dead') await sleep(100);
  }
  check(state !== 'dead', 'Retry requeued the job', 'still ' + state);
  await page.waitForFunction(() => {
    const m = document.querySelector('#dead-msg');
    return m && /dead \u2192 pending/.test(m.textContent);
  }, null, { timeout: T });
  ok('page reports the requeue');
  await page.waitForFunction(() => !document.querySelector('#dead tr[data-job]'), null,
    { timeout: T });
  ok('dead list is empty after the retry');

  if (console404 > load404) errors.push(console404 - load404 + ' unexpected 404(s)');
  check(errors.length === 0, 'no console errors or CSP violations', errors.join(' | '));
  check(external.length === 0, 'no request leaves the relay', external.join(' '));
} catch (e) {
  fail('dashboard', e && e.stack ? e.stack : String(e));
} finally {
  if (browser) await withTimeout(browser.close(), 10000, 'close').catch(() => {});
  if (!process.env.PR_DASH_PROFILE) rmSync(profile, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed || !passed ? 1 : 0);
