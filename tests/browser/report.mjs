// sluice browser test of the post-event report page (/admin/report?id=...): a finished
// sale's charts render as inline SVG, in English and in Chinese, with screenshots, and
// axe-core finds no WCAG 2.2 A/AA violation in either.
// Env as run.mjs: SLUICE_URL, SLUICE_ADMIN_KEY, SLUICE_JWT_SECRET; optional CHROMIUM_PATH, HEADFUL=1.
// Run: npm ci && node report.mjs   (prints "N passed, M failed"; exit code 1 on any failure)
import { chromium } from 'playwright-core';
import { BASE, axe, http, mintJwt } from './helpers.mjs';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ADMIN_KEY = process.env.SLUICE_ADMIN_KEY || 'sluice-dev-admin-key';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ART = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');
const RUN = Date.now().toString(36) + crypto.randomBytes(2).toString('hex');
const T = 20000;
fs.mkdirSync(ART, { recursive: true });

async function until(what, fn, timeout = T, every = 100) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error('timed out waiting for ' + what + (last instanceof Error ? ': ' + last.message : ''));
    await new Promise((r) => setTimeout(r, every));
  }
}

/// A finished sale: a pre-queue of 6 (one gives up), 2 later joiners, 3 units bought
/// (one order paid, one cancelled and bought again), then sold out.
async function finishedSale() {
  const id = 'bt-r-' + RUN;
  const opens = new Date(Date.now() + 1500).toISOString().replace(/\.\d+Z$/, 'Z');
  const c = await http('POST', '/api/admin/activities', {
    bearer: ADMIN_KEY,
    body: { id, name: 'Report ' + RUN, kind: 'sale', stock: 3, opens_at: opens, admission: { rate_per_sec: 50, max_active: 2 } },
  });
  assert.equal(c.status, 201, c.text);
  assert.match(c.json.fairness.commitment, /^[0-9a-f]{64}$/);
  const users = [];
  for (let i = 0; i < 6; i++) {
    const sub = `r-${i}-${RUN}`;
    const j = await http('POST', `/api/activities/${id}/join`, { bearer: mintJwt(sub) });
    assert.equal(j.status, 201, j.text);
    users.push({ sub, ticket: j.json.ticket });
  }
  await http('DELETE', `/api/activities/${id}/tickets/${users[5].ticket}`, { bearer: mintJwt(users[5].sub) });
  users.pop();
  await until('opening', async () => (await http('GET', `/api/activities/${id}/fairness`)).json?.seed);
  for (let i = 0; i < 2; i++) {
    const sub = `r-late-${i}-${RUN}`;
    const j = await http('POST', `/api/activities/${id}/join`, { bearer: mintJwt(sub) });
    users.push({ sub, ticket: j.json.ticket });
  }
  let cancelled = false;
  await until('sold out', async () => {
    for (const u of users) {
      if (u.done) continue;
      const v = (await http('GET', `/api/activities/${id}/tickets/${u.ticket}`, { bearer: mintJwt(u.sub) })).json;
      if (v?.status !== 'admitted' || !v.token) continue;
      const o = await http('POST', `/api/activities/${id}/purchase`, { bearer: mintJwt(u.sub), body: { token: v.token } });
      u.done = true;
      if (o.status !== 201) continue;
      const act = cancelled ? 'pay' : 'cancel';
      cancelled = true;
      await http('POST', `/api/orders/${o.json.order.id}/${act}`, { bearer: mintJwt(u.sub) });
    }
    return (await http('GET', '/api/admin/activities/' + id, { bearer: ADMIN_KEY })).json.phase === 'sold_out';
  });
  return id;
}

let passed = 0, failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try { await fn(); passed++; console.log(`ok   ${name} (${Date.now() - t0} ms)`); } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${String(e && e.stack || e).split('\n').slice(0, 4).join('\n     ')}`);
  }
}

async function reportRendersInBothLanguages(browser) {
  const id = await finishedSale();
  const report = await until('report written', async () => {
    const r = (await http('GET', `/api/admin/activities/${id}/report`, { bearer: ADMIN_KEY })).json;
    return r && r.sold_out_after_secs !== null ? r : null;
  });
  assert.equal(report.joins, 8);
  assert.equal(report.abandoned, 1);
  const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  try {
    const page = await ctx.newPage();
    page.setDefaultTimeout(T);
    page.on('pageerror', (e) => console.log(`  [report] page error: ${e.message}`));
    // The dashboard links to the report.
    await page.goto(BASE + '/admin');
    await page.fill('#admin-key', ADMIN_KEY);
    await page.click('#key-save');
    const link = page.locator(`#act-${id} a.report-link`);
    await link.waitFor({ state: 'visible' });
    await link.click();
    await page.waitForURL(/\/admin\/report\?id=/);
    await page.locator('body[data-ready="true"]').waitFor();
    for (const c of ['c-waiting', 'c-flow', 'c-wait', 'c-gaveup']) {
      const marks = await page.locator(`#${c} svg [data-value]`).count();
      assert.ok(marks > 0, c + ' has marks');
    }
    assert.equal(await page.locator('#f-joins').textContent(), '8');
    assert.equal(await page.locator('#h-gaveup').textContent(), 'Where people gave up');
    await page.screenshot({ path: path.join(ART, 'r1-report-en.png'), fullPage: true });
    await axe(page, 'report page (English)');
    await page.click('#lang-toggle');
    assert.equal(await page.locator('#h-gaveup').textContent(), '放弃排队的位置');
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
    assert.ok(await page.locator('#c-flow svg [data-value]').count() > 0);
    await page.screenshot({ path: path.join(ART, 'r2-report-zh.png'), fullPage: true });
    await axe(page, 'report page (Chinese)');
  } finally {
    await ctx.close();
  }
}

const health = await fetch(BASE + '/healthz').catch((e) => ({ ok: false, statusText: e.message }));
if (!health.ok) { console.error(`sluice is not reachable at ${BASE}: ${health.statusText}`); process.exit(2); }
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: !process.env.HEADFUL,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  await check('(r) the report of a finished sale renders its charts in English and Chinese', () => reportRendersInBothLanguages(browser));
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed (screenshots in ${ART})`);
process.exit(failed ? 1 : 0);
