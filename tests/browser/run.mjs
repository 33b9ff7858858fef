// sluice browser test: drives /admin and /a/{id} in the system Chromium against a running server.
// Env: SLUICE_URL (base URL), SLUICE_ADMIN_KEY, SLUICE_JWT_SECRET; optional CHROMIUM_PATH, HEADFUL=1.
// Run: npm ci && node run.mjs   (prints "N passed, M failed"; exit code 1 on any failure)
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BASE = (process.env.SLUICE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const ADMIN_KEY = process.env.SLUICE_ADMIN_KEY || 'sluice-dev-admin-key';
const JWT_SECRET = process.env.SLUICE_JWT_SECRET || 'sluice-dev-jwt-secret-change-me-0123456789';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ART = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');
const RUN = Date.now().toString(36) + crypto.randomBytes(2).toString('hex');
const T = 20000; // default wait for a UI change, ms

fs.mkdirSync(ART, { recursive: true });

// ---------- helpers ----------
const b64url = (b) => Buffer.from(b).toString('base64url');
function mintJwt(sub, ttlSecs = 3600) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + ttlSecs }));
  const sig = crypto.createHmac('sha256', JWT_SECRET).update(head + '.' + body).digest('base64url');
  return head + '.' + body + '.' + sig;
}
async function http(method, p, { bearer, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (bearer) headers.Authorization = 'Bearer ' + bearer;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(BASE + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, json, text };
}
async function createSale(id, stock, admission, extra = {}) {
  const r = await http('POST', '/api/admin/activities', {
    bearer: ADMIN_KEY,
    body: { id, name: 'Browser test ' + id, kind: 'sale', stock, price_cents: 1250, per_user_limit: 1, admission, ...extra },
  });
  assert.equal(r.status, 201, 'create ' + id + ': ' + r.text);
  return r.json;
}
const adminView = async (id) => (await http('GET', '/api/admin/activities/' + id, { bearer: ADMIN_KEY })).json;
const num = (s) => { const m = /\d+/.exec(s || ''); return m ? Number(m[0]) : NaN; };
async function until(what, fn, timeout = T, every = 200) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error('timed out waiting for ' + what + (last instanceof Error ? ': ' + last.message : ''));
    await new Promise((r) => setTimeout(r, every));
  }
}

let browser;
const contexts = [];
async function newPage(name) {
  const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 390, height: 844 } });
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.setDefaultTimeout(T);
  page.on('pageerror', (e) => console.log(`  [${name}] page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) console.log(`  [${name}] console: ${m.text()}`); });
  return page;
}
const shot = (page, name) => page.screenshot({ path: path.join(ART, name + '.png'), fullPage: true });
const userUrl = (id, jwt) => `${BASE}/a/${encodeURIComponent(id)}?access_token=${encodeURIComponent(jwt)}`;
const positionOf = async (page) => num(await page.locator('#position').textContent());
const ticketOf = (page, id, sub) => page.evaluate(([k]) => { const v = localStorage.getItem(k); return v ? JSON.parse(v).ticket : null; }, ['sluice:ticket:' + id + ':' + sub]);

let passed = 0, failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${String(e && e.stack || e).split('\n').slice(0, 4).join('\n     ')}`);
  }
}

// ---------- scenarios ----------
async function operatorCreatesAndWatches() {
  const page = await newPage('admin');
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(BASE + '/admin');
  await page.fill('#admin-key', ADMIN_KEY);
  await shot(page, 'a1-admin-key');
  await page.click('#key-save');
  await page.locator('#create-form').waitFor({ state: 'visible' });

  // the API's validation message is shown as is
  await page.fill('#c-id', 'Not A Valid Id');
  await page.fill('#c-name', 'bad');
  await page.click('#create-submit');
  await page.locator('#create-error').waitFor({ state: 'visible' });
  assert.match(await page.locator('#create-error').textContent(), /id/i);
  await shot(page, 'a2-admin-validation');

  const id = 'bt-a-' + RUN;
  await page.fill('#c-id', id);
  await page.fill('#c-name', 'Dashboard sale ' + RUN);
  await page.selectOption('#c-kind', 'sale');
  await page.fill('#c-stock', '1');
  await page.fill('#c-price', '9.99');
  await page.fill('#c-rate_per_sec', '1');
  await page.fill('#c-max_active', '1');
  await page.click('#create-submit');
  const card = page.locator('#act-' + id);
  await card.waitFor({ state: 'visible' });
  await page.locator(`#activities canvas[data-activity="${id}"]`).waitFor({ state: 'visible' });
  const v = await adminView(id);
  assert.equal(v.capacity, 1);
  assert.equal(v.price_cents, 999);
  assert.equal(v.admission.rate_per_sec, 1);
  await shot(page, 'a3-admin-created');

  // users join (over HTTP): the live counters and the chart move
  const canvasData = () => page.locator(`canvas[data-activity="${id}"]`).evaluate((c) => c.toDataURL());
  const before = await canvasData();
  for (let i = 0; i < 4; i++) {
    const r = await http('POST', `/api/activities/${id}/join`, { bearer: mintJwt(`a-user-${i}-${RUN}`) });
    assert.ok(r.status === 201 || r.status === 200, 'join: ' + r.text);
  }
  await until('waiting counter >= 3', async () => num(await card.locator('[data-counter="waiting"]').textContent()) >= 3);
  await until('admitted counter >= 1', async () => num(await card.locator('[data-counter="admitted_total"]').textContent()) >= 1);
  await until('held counter = 1', async () => num(await card.locator('[data-counter="held"]').textContent()) === 1);
  await until('chart redrawn', async () => (await canvasData()) !== before);
  await page.waitForTimeout(1500);
  await shot(page, 'a4-admin-live');

  // a live control: add stock from the card
  await card.locator('details summary').first().click();
  await page.fill('#stock-' + id, '2');
  await card.locator('form button[type=submit]').first().click();
  await until('capacity 3', async () => num(await card.locator('[data-counter="capacity"]').textContent()) === 3);
  await shot(page, 'a5-admin-stock-added');
}

async function twoUsersOneUnit() {
  const id = 'bt-b-' + RUN;
  await createSale(id, 1, { rate_per_sec: 1 });
  const [subA, subB] = ['b-first-' + RUN, 'b-second-' + RUN];
  const a = await newPage('first');
  await a.goto(userUrl(id, mintJwt(subA)));
  await a.locator('#buy').waitFor({ state: 'visible' });
  assert.match(await a.locator('#status').textContent(), /your turn/i);
  assert.match(await a.locator('#token-countdown').textContent(), /^\d+:\d\d$/);
  await shot(a, 'b1-first-admitted');

  const b = await newPage('second');
  await b.goto(userUrl(id, mintJwt(subB)));
  await b.locator('#position').waitFor({ state: 'visible' });
  assert.equal(await positionOf(b), 1, 'the second user is number 1 in line');
  assert.match(await b.locator('#ahead').textContent(), /next/i);
  assert.ok(await b.locator('#eta').isVisible());
  assert.ok(await ticketOf(b, id, subB), 'ticket kept in localStorage');
  await shot(b, 'b2-second-waiting');

  await a.click('#buy');
  await a.locator('#order-id').waitFor({ state: 'visible' });
  const orderId = (await a.locator('#order-id').textContent()).trim();
  assert.ok(orderId.length > 0, 'order id shown');
  assert.match(await a.locator('#order-status').textContent(), /waiting for payment/i);
  await shot(a, 'b3-first-order');
  await a.click('#pay');
  await until('order paid', async () => /paid/i.test(await a.locator('#order-status').textContent()));
  assert.equal(await a.locator('#pay').isVisible(), false);
  const o = await http('GET', '/api/orders/' + encodeURIComponent(orderId), { bearer: mintJwt(subA) });
  assert.equal(o.json.order.status, 'paid');
  await shot(a, 'b4-first-paid');

  // the only unit is sold and paid: the second user learns it at once
  await until('second user told sold out', async () => /sold out/i.test(await b.locator('#status').textContent()));
  assert.equal(await b.locator('#position').isVisible(), false);
  await shot(b, 'b5-second-sold-out');
}

async function secondAdmittedAfterFirstBuys() {
  const id = 'bt-b2-' + RUN;
  await createSale(id, 2, { rate_per_sec: 1, max_active: 1 });
  const [subA, subB] = ['b2-first-' + RUN, 'b2-second-' + RUN];
  const a = await newPage('first2');
  await a.goto(userUrl(id, mintJwt(subA)));
  await a.locator('#buy').waitFor({ state: 'visible' });
  const b = await newPage('second2');
  await b.goto(userUrl(id, mintJwt(subB)));
  await b.locator('#position').waitFor({ state: 'visible' });
  assert.equal(await positionOf(b), 1);
  await shot(b, 'b6-second-waiting-max-active');
  await a.click('#buy');
  await a.locator('#order-id').waitFor({ state: 'visible' });
  await b.locator('#buy').waitFor({ state: 'visible' });
  await shot(b, 'b7-second-admitted');
  await b.click('#buy');
  await b.locator('#order-id').waitFor({ state: 'visible' });
  await b.click('#cancel');
  await until('order cancelled', async () => /cancelled/i.test(await b.locator('#order-status').textContent()));
  await until('unit returned', async () => (await adminView(id)).available === 1);
  await shot(b, 'b8-second-cancelled');
}

async function reloadKeepsPlace() {
  const id = 'bt-c-' + RUN;
  await createSale(id, 1, { rate_per_sec: 1, max_active: 1, reconnect_grace_secs: 120 });
  // someone holds the only unit, three others wait ahead of our user
  const holder = await http('POST', `/api/activities/${id}/join`, { bearer: mintJwt('c-holder-' + RUN) });
  assert.ok(holder.status === 201, holder.text);
  await until('holder admitted', async () => (await adminView(id)).held === 1, 5000);
  for (let i = 0; i < 3; i++) await http('POST', `/api/activities/${id}/join`, { bearer: mintJwt(`c-ahead-${i}-${RUN}`) });
  const sub = 'c-user-' + RUN;
  const page = await newPage('reload');
  await page.goto(userUrl(id, mintJwt(sub)));
  await page.locator('#position').waitFor({ state: 'visible' });
  const pos1 = await positionOf(page);
  assert.equal(pos1, 4, 'three live places ahead');
  assert.match(await page.locator('#ahead').textContent(), /3 people ahead/);
  const ticket1 = await ticketOf(page, id, sub);
  assert.ok(ticket1, 'ticket stored');
  await shot(page, 'c1-before-reload');

  await page.reload();
  await page.locator('#position').waitFor({ state: 'visible' });
  await until('position frame after reload', async () => (await positionOf(page)) > 0);
  const pos2 = await positionOf(page);
  const ticket2 = await ticketOf(page, id, sub);
  assert.equal(ticket2, ticket1, 'same ticket after reload');
  assert.ok(pos2 <= pos1, `same or better place after reload (${pos1} -> ${pos2})`);
  const srv = await http('GET', `/api/activities/${id}/tickets/${encodeURIComponent(ticket1)}`, { bearer: mintJwt(sub) });
  assert.equal(srv.json.status, 'waiting');
  assert.equal(srv.json.position, pos2);
  await shot(page, 'c2-after-reload');

  // the language toggle switches the live texts
  await page.click('#lang-toggle');
  await until('Chinese position text', async () => /第 \d+ 位/.test(await page.locator('#position').textContent()));
  await shot(page, 'c3-chinese');
  await page.click('#lang-toggle');

  // leaving gives the place up on the server
  await page.click('#leave');
  await page.locator('#rejoin').waitFor({ state: 'visible' });
  await until('place given up', async () => (await http('GET', `/api/activities/${id}/tickets/${encodeURIComponent(ticket1)}`, { bearer: mintJwt(sub) })).json?.status !== 'waiting', 5000);
  await shot(page, 'c4-left');
}

async function loginFormJoins() {
  const id = 'bt-d-' + RUN;
  await createSale(id, 5, { rate_per_sec: 5 });
  const page = await newPage('login');
  await page.goto(`${BASE}/a/${id}`);
  await page.locator('#login-form').waitFor({ state: 'visible' });
  await shot(page, 'd1-login-form');
  await page.fill('#username', 'bt' + RUN.replace(/[^a-z0-9]/g, ''));
  await page.fill('#password', 'correct horse battery staple');
  await page.click('#register');
  await page.locator('#buy').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#login-form').isVisible(), false);
  await shot(page, 'd2-login-admitted');
}

async function appointmentSlotPicker() {
  const id = 'bt-e-' + RUN;
  const r = await http('POST', '/api/admin/activities', {
    bearer: ADMIN_KEY,
    body: { id, name: 'Clinic ' + RUN, kind: 'appointment', price_cents: 500, slots: [{ id: '0900', label: '09:00-09:30', capacity: 1 }, { id: '0930', label: '09:30-10:00', capacity: 1 }] },
  });
  assert.equal(r.status, 201, r.text);
  const sub = 'e-user-' + RUN;
  const page = await newPage('appointment');
  await page.goto(userUrl(id, mintJwt(sub)));
  await page.locator('#buy').waitFor({ state: 'visible' });
  await page.locator('#slot').waitFor({ state: 'visible' });
  // someone else takes 09:00 over HTTP while this page still offers it
  const other = mintJwt('e-other-' + RUN);
  const j = await http('POST', `/api/activities/${id}/join`, { bearer: other });
  const token = await until('other admitted', async () => (j.json.token || (await http('GET', `/api/activities/${id}/tickets/${j.json.ticket}`, { bearer: other })).json.token));
  const bought = await http('POST', `/api/activities/${id}/purchase`, { bearer: other, body: { token, slot_id: '0900' } });
  assert.equal(bought.status, 201, bought.text);
  await page.selectOption('#slot', '0900');
  await shot(page, 'e1-appointment-pick');
  await page.click('#buy');
  await page.locator('#error').waitFor({ state: 'visible' });
  assert.match(await page.locator('#error').textContent(), /full|0930/i);
  assert.equal(await page.locator('#slot').inputValue(), '0930', 'a free slot is picked after the refresh');
  await shot(page, 'e2-appointment-slot-full');
  await page.click('#buy'); // same purchase token, another slot
  await page.locator('#order-id').waitFor({ state: 'visible' });
  assert.equal((await page.locator('#order-slot').textContent()).trim(), '0930');
  await shot(page, 'e3-appointment-booked');
}

async function pollingFallback() {
  const id = 'bt-f-' + RUN;
  await createSale(id, 1, { rate_per_sec: 1, max_active: 1 });
  await http('POST', `/api/activities/${id}/join`, { bearer: mintJwt('f-holder-' + RUN) });
  await until('holder admitted', async () => (await adminView(id)).held === 1, 5000);
  const sub = 'f-user-' + RUN;
  const page = await newPage('polling');
  await page.routeWebSocket(/\/ws\//, (ws) => ws.close()); // every WebSocket fails
  await page.goto(userUrl(id, mintJwt(sub)));
  await page.locator('#position').waitFor({ state: 'visible' });
  assert.equal(await positionOf(page), 1);
  assert.match(await page.locator('#conn').textContent(), /2 seconds/);
  const ticket = await ticketOf(page, id, sub);
  assert.ok(ticket);
  await shot(page, 'f1-polling');
  await page.click('#leave');
  await until('left over HTTP', async () => (await http('GET', `/api/activities/${id}/tickets/${encodeURIComponent(ticket)}`, { bearer: mintJwt(sub) })).json?.status === 'left', 5000);
}

// ---------- main ----------
const health = await fetch(BASE + '/healthz').catch((e) => ({ ok: false, statusText: e.message }));
if (!health.ok) { console.error(`sluice is not reachable at ${BASE}: ${health.statusText}`); process.exit(2); }
browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: !process.env.HEADFUL,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  await check('(a) operator creates a sale in /admin and watches it live', operatorCreatesAndWatches);
  await check('(b) stock 1: first is admitted, buys and pays; second waits at 1, then sold out', twoUsersOneUnit);
  await check('(b2) max_active 1: second is admitted after the first buys', secondAdmittedAfterFirstBuys);
  await check('(c) a reload keeps the same ticket and place', reloadKeepsPlace);
  await check('(d) the login form registers, signs in and joins', loginFormJoins);
  await check('(e) appointment: a full slot is refused, another is booked with the same token', appointmentSlotPicker);
  await check('(f) without WebSocket the page falls back to HTTP polling', pollingFallback);
} finally {
  for (const c of contexts) await c.close().catch(() => {});
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed (screenshots in ${ART})`);
process.exit(failed ? 1 : 0);
