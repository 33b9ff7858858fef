// sluice browser test: drives /admin and /a/{id} in the system Chromium against a running server:
// the flows, axe-core (WCAG 2.2 A/AA) in every state, keyboard only, a hidden tab, and no JavaScript.
// Env: SLUICE_URL (base URL), SLUICE_ADMIN_KEY, SLUICE_JWT_SECRET; optional CHROMIUM_PATH, HEADFUL=1,
// ONLY=g,j (run only the scenarios with those letters).
// Run: npm ci && node run.mjs   (prints "N passed, M failed"; exit code 1 on any failure)
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
const T = 20000; // default wait for a UI change, ms

fs.mkdirSync(ART, { recursive: true });

// ---------- helpers ----------
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
async function newPage(name, options = {}) {
  const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 390, height: 844 }, ...options });
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.setDefaultTimeout(T);
  page.on('pageerror', (e) => console.log(`  [${name}] page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) console.log(`  [${name}] console: ${m.text()}`); });
  return page;
}
const shot = (page, name) => page.screenshot({ path: path.join(ART, name + '.png'), fullPage: true });
async function switchLanguage(page, code) {
  await page.click('#lang-menu summary');
  await page.click(`#lang-menu a[data-lang="${code}"]`);
}
// axe-core with every WCAG 2.0-2.2 A and AA rule: zero violations allowed.
// A user who joined over HTTP: their purchase token once admitted, and a purchase with it.
async function tokenOf(id, jwt, ticket) {
  return until('token of ' + ticket, async () => (await http('GET', `/api/activities/${id}/tickets/${ticket}`, { bearer: jwt })).json?.token);
}
async function joinOverHttp(id, sub) {
  const jwt = mintJwt(sub);
  const r = await http('POST', `/api/activities/${id}/join`, { bearer: jwt });
  assert.ok(r.status === 201 || r.status === 200, 'join: ' + r.text);
  return { jwt, ticket: r.json.ticket, buy: async () => {
    const token = await tokenOf(id, jwt, r.json.ticket);
    const b = await http('POST', `/api/activities/${id}/purchase`, { bearer: jwt, body: { token } });
    assert.equal(b.status, 201, b.text);
  } };
}
// Presses Tab until `selector` has the focus; it must show a focus ring.
async function tabTo(page, selector, max = 40) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const ring = await page.evaluate((sel) => {
      const el = document.activeElement;
      if (!el || !el.matches(sel)) return null;
      const cs = getComputedStyle(el);
      return { style: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
    }, selector);
    if (ring) {
      assert.ok(ring.style !== 'none' && ring.width >= 2, `${selector} shows a visible focus ring (${JSON.stringify(ring)})`);
      return;
    }
  }
  throw new Error('Tab never reached ' + selector);
}
const focused = (page) => page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.tagName));
const userUrl = (id, jwt) => `${BASE}/a/${encodeURIComponent(id)}?access_token=${encodeURIComponent(jwt)}`;
const positionOf = async (page) => num(await page.locator('#position').textContent());
const ticketOf = (page, id, sub) => page.evaluate(([k]) => { const v = localStorage.getItem(k); return v ? JSON.parse(v).ticket : null; }, ['sluice:ticket:' + id + ':' + sub]);

let passed = 0, failed = 0;
async function check(name, fn) {
  if (process.env.ONLY && !process.env.ONLY.split(',').some((k) => name.startsWith(`(${k})`))) return;
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
  // the key travels in headers only: never in a URL (the event stream opens with a ticket)
  const keyInUrl = [];
  page.on('request', (r) => { if (r.url().includes(ADMIN_KEY)) keyInUrl.push(r.url()); });
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
  await until('stream live', async () => (await page.locator('#live-dot').getAttribute('class')).includes('on'));
  // the payments card: the mode and this activity's row
  await page.locator('#payments').waitFor({ state: 'visible' });
  await until('payment mode shown', async () => (await page.locator('#pay-mode').textContent()) !== '–');
  await page.locator(`#pay-rows tr[data-activity="${id}"]`).waitFor({ state: 'attached' });
  await page.waitForTimeout(1500);
  await shot(page, 'a4-admin-live');
  assert.deepEqual(keyInUrl, [], 'the admin key was in a URL');

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

  // the language menu switches the live texts
  await switchLanguage(page, 'zh');
  await until('Chinese position text', async () => /第 \d+ 位/.test(await page.locator('#position').textContent()));
  await shot(page, 'c3-chinese');
  await switchLanguage(page, 'en');

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

async function axeEveryState() {
  // pre-queue (and the Chinese page)
  const pre = 'bt-g-pre-' + RUN;
  await createSale(pre, 5, { rate_per_sec: 5 }, { opens_at: new Date(Date.now() + 3600e3).toISOString().replace(/\.\d{3}Z$/, 'Z') });
  const p = await newPage('axe-prequeue');
  await p.goto(userUrl(pre, mintJwt('g-pre-' + RUN)));
  await until('pre-queue shown', async () => /pre-queue/i.test(await p.locator('#status').textContent()));
  await p.locator('#prequeue-countdown').waitFor({ state: 'visible' });
  await axe(p, 'pre-queue');
  await switchLanguage(p, 'zh');
  await until('Chinese pre-queue', async () => (await p.getAttribute('html', 'lang')) === 'zh-CN' && /预排队/.test(await p.locator('#status').textContent()));
  await axe(p, 'pre-queue, Chinese');
  await shot(p, 'g1-axe-prequeue-zh');

  // signed out, admitted, waiting, order, sold out
  const id = 'bt-g-' + RUN;
  await createSale(id, 1, { rate_per_sec: 5 });
  const out = await newPage('axe-signed-out');
  await out.goto(`${BASE}/a/${id}`);
  await out.locator('#login-form').waitFor({ state: 'visible' });
  await axe(out, 'signed out');
  const a = await newPage('axe-admitted');
  await a.goto(userUrl(id, mintJwt('g-first-' + RUN)));
  await a.locator('#buy').waitFor({ state: 'visible' });
  await axe(a, 'admitted');
  const b = await newPage('axe-waiting');
  await b.goto(userUrl(id, mintJwt('g-second-' + RUN)));
  await b.locator('#position').waitFor({ state: 'visible' });
  await b.locator('#alerts').waitFor({ state: 'visible' });
  await axe(b, 'waiting');
  await b.click('#lang-menu summary');
  await axe(b, 'waiting, language menu open');
  await b.keyboard.press('Escape');
  await a.click('#buy');
  await a.locator('#order-id').waitFor({ state: 'visible' });
  await axe(a, 'order placed');
  await a.click('#pay');
  await until('paid', async () => /paid/i.test(await a.locator('#order-status').textContent()));
  await until('sold out', async () => /sold out/i.test(await b.locator('#status').textContent()));
  await axe(b, 'sold out');
  await shot(b, 'g2-axe-sold-out');

  // error: no such waiting room
  const e = await newPage('axe-error');
  const res = await e.goto(`${BASE}/a/no-such-${RUN}`);
  assert.equal(res.status(), 404);
  await e.locator('#error').waitFor({ state: 'visible' });
  assert.match(await e.locator('h1').textContent(), /no such waiting room/i);
  await axe(e, 'error (no such activity)');
  await shot(e, 'g3-axe-error');

  // the dashboard, before and after the key; with a webhook receiver that is down
  const hookUrl = `http://127.0.0.1:9/hooks-${RUN}`;
  const hook = await http('POST', '/api/admin/webhooks', { bearer: ADMIN_KEY, body: { url: hookUrl, events: ['order.created'] } });
  assert.equal(hook.status, 201, hook.text);
  const d = await newPage('axe-admin');
  await d.setViewportSize({ width: 1280, height: 900 });
  await d.goto(BASE + '/admin');
  await axe(d, 'dashboard, no key');
  await d.fill('#admin-key', ADMIN_KEY);
  await d.click('#key-save');
  await d.locator('#act-' + id).waitFor({ state: 'visible' });
  await d.locator('#webhooks-table').waitFor({ state: 'visible' });
  assert.match(await d.locator('#webhooks-body').textContent(), new RegExp(hookUrl));
  await axe(d, 'dashboard, connected');
  await http('DELETE', '/api/admin/webhooks/' + hook.json.id, { bearer: ADMIN_KEY });
}

async function keyboardOnly() {
  const id = 'bt-h-' + RUN;
  await createSale(id, 2, { rate_per_sec: 20, max_active: 1 });
  const holder = await joinOverHttp(id, 'h-holder-' + RUN);
  await until('holder admitted', async () => (await adminView(id)).held === 1, 5000);
  const page = await newPage('keyboard');
  await page.goto(`${BASE}/a/${id}`);
  await page.locator('#login-form').waitFor({ state: 'visible' });
  // join: sign up from the keyboard
  await tabTo(page, '#username');
  await page.keyboard.type('kb' + RUN.replace(/[^a-z0-9]/g, ''));
  await tabTo(page, '#password');
  await page.keyboard.type('correct horse battery staple');
  await tabTo(page, '#register');
  await page.keyboard.press('Enter');
  await page.locator('#position').waitFor({ state: 'visible' });
  assert.equal(await positionOf(page), 1);
  // leave, then join again
  await tabTo(page, '#leave');
  await page.keyboard.press('Enter');
  await page.locator('#rejoin').waitFor({ state: 'visible' });
  assert.equal(await focused(page), 'rejoin', 'focus moves to "Join the line" after leaving');
  await page.keyboard.press('Enter');
  await page.locator('#position').waitFor({ state: 'visible' });
  // admitted: focus lands on Buy
  await holder.buy();
  await page.locator('#buy').waitFor({ state: 'visible' });
  await until('Buy focused', async () => (await focused(page)) === 'buy');
  await page.keyboard.press('Enter');
  await page.locator('#order-id').waitFor({ state: 'visible' });
  await until('Pay focused', async () => (await focused(page)) === 'pay');
  await page.keyboard.press('Enter');
  await until('paid', async () => /paid/i.test(await page.locator('#order-status').textContent()));
  // switch language
  await tabTo(page, '#lang-menu summary');
  await page.keyboard.press('Enter');
  await tabTo(page, '#lang-menu a[data-lang="zh"]');
  await page.keyboard.press('Enter');
  await until('Chinese order status', async () => (await page.locator('#order-status').textContent()).includes('已付款'));
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
  await shot(page, 'h1-keyboard-zh');
}

// Headless Chromium keeps every page visible (checked: a second tab, a minimised window,
// Target.activateTarget), so the test flips the Page Visibility API the way a background tab would.
const SPIES = () => {
  window.__notes = []; window.__asked = 0; window.__live = [];
  const Real = window.Notification;
  if (Real) {
    const Spy = function (title, opts) {
      const n = new Real(title, opts), rec = { title, body: opts && opts.body, shown: false };
      window.__notes.push(rec);
      n.addEventListener('show', () => { rec.shown = true; });
      return n;
    };
    Spy.requestPermission = (...a) => { window.__asked++; return Real.requestPermission(...a); };
    Object.defineProperty(Spy, 'permission', { get: () => Real.permission });
    window.Notification = Spy;
  }
  window.__hide = () => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  };
  document.addEventListener('DOMContentLoaded', () => {
    for (const id of ['announce', 'announce-now']) {
      const el = document.getElementById(id);
      new MutationObserver(() => window.__live.push({ id, at: Date.now(), text: el.textContent })).observe(el, { childList: true, characterData: true, subtree: true });
    }
  });
};

async function hiddenTabAlerts() {
  // asking for notifications: never on load, only with the button
  const ask = await newPage('notify-ask');
  await ask.addInitScript(SPIES);
  const idAsk = 'bt-i-ask-' + RUN;
  await createSale(idAsk, 1, { rate_per_sec: 1, max_active: 1 });
  await joinOverHttp(idAsk, 'i-ask-holder-' + RUN);
  await ask.goto(userUrl(idAsk, mintJwt('i-ask-' + RUN)));
  await ask.locator('#notify').waitFor({ state: 'visible' });
  assert.equal(await ask.evaluate(() => window.__asked), 0, 'no permission prompt on load');
  await ask.click('#notify');
  await until('permission asked once', async () => (await ask.evaluate(() => window.__asked)) === 1);

  const id = 'bt-i-' + RUN;
  await createSale(id, 5, { rate_per_sec: 50, max_active: 1, token_ttl_secs: 120 });
  const h = await joinOverHttp(id, 'i-holder-' + RUN);
  await until('holder admitted', async () => (await adminView(id)).held === 1, 5000);
  const w1 = await joinOverHttp(id, 'i-w1-' + RUN);
  const w2 = await joinOverHttp(id, 'i-w2-' + RUN);
  const page = await newPage('hidden', { permissions: ['notifications'] });
  await page.addInitScript(SPIES);
  await page.goto(userUrl(id, mintJwt('i-user-' + RUN)));
  await until('position 3', async () => (await positionOf(page)) === 3);
  const bar = () => page.locator('#progress-wrap').getAttribute('aria-valuenow').then(Number);
  assert.equal(await bar(), 0, 'progress starts at 0');
  assert.match(await page.title(), /No\. 3 in line/);
  await until('first position announced', async () => (await page.evaluate(() => window.__live)).some((e) => /number 3/.test(e.text)));
  // the line moves twice within a few seconds: the bar follows every step...
  await h.buy();
  await until('position 2', async () => (await positionOf(page)) === 2);
  const mid = await bar();
  await w1.buy();
  await until('position 1', async () => (await positionOf(page)) === 1);
  assert.ok(mid > 0 && (await bar()) > mid, 'the progress bar moves as the line does');
  // ...but the polite live region says it at most every 5 s, and only the latest
  await until('position 1 announced', async () => (await page.evaluate(() => window.__live)).some((e) => /number 1/.test(e.text)), 15000);
  const polite = (await page.evaluate(() => window.__live)).filter((e) => e.id === 'announce' && e.text);
  for (let i = 1; i < polite.length; i++) assert.ok(polite[i].at - polite[i - 1].at >= 4900, 'announcements 5 s apart: ' + JSON.stringify(polite));
  assert.ok(!polite.some((e) => /number 2/.test(e.text)), 'a step passed within the gap is not announced: ' + JSON.stringify(polite));
  // the tab goes to the background; admission comes
  const before = await page.title();
  await page.evaluate(() => window.__hide());
  await w2.buy();
  await page.waitForFunction(() => /your turn/i.test(document.title));
  assert.notEqual(await page.title(), before);
  await until('notification shown', async () => (await page.evaluate(() => window.__notes)).some((n) => n.shown && /your turn/i.test(n.title)));
  const urgent = (await page.evaluate(() => window.__live)).filter((e) => e.id === 'announce-now' && e.text);
  assert.equal(urgent.length, 1, 'admission announced once, assertively');
  assert.match(urgent[0].text, /your turn/i);
  // the token's countdown runs
  const secs = (txt) => { const [m, s] = txt.split(':').map(Number); return m * 60 + s; };
  const first = secs(await page.locator('#token-countdown').textContent());
  assert.ok(first > 100 && first <= 120, 'countdown starts near the token life: ' + first);
  await page.waitForFunction((f) => { const [m, s] = document.getElementById('token-countdown').textContent.split(':').map(Number); return m * 60 + s < f; }, first);
  await shot(page, 'i1-hidden-admitted');
}

// Without JavaScript every step is a page load: a form posted (and its 303) or a meta refresh.
async function submit(page, selector) {
  await Promise.all([page.waitForEvent('load'), page.click(selector)]);
}
async function afterRefreshes(page, what, ok, timeout = 30000) {
  const end = Date.now() + timeout;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await page.waitForEvent('load', { timeout: Math.max(1, end - Date.now()) });
  }
}
async function withoutJavaScript() {
  const id = 'bt-j-' + RUN;
  await createSale(id, 4, { rate_per_sec: 50, max_active: 1 });
  const h = await joinOverHttp(id, 'j-holder-' + RUN);
  await until('holder admitted', async () => (await adminView(id)).held === 1, 5000);
  const w = await joinOverHttp(id, 'j-w-' + RUN);
  const page = await newPage('nojs', { javaScriptEnabled: false });
  let loads = 0;
  page.on('load', () => { loads++; });
  await page.goto(`${BASE}/a/${id}`);
  await page.fill('#nojs-username', 'nj' + RUN.replace(/[^a-z0-9]/g, ''));
  await page.fill('#nojs-password', 'correct horse battery staple');
  await submit(page, '#nojs button[value=register]');
  await submit(page, '#nojs-rejoin');
  const position = async () => ((await page.locator('#nojs-position').count()) ? num(await page.locator('#nojs-position').textContent()) : NaN);
  assert.equal(await position(), 2);
  const refresh = await page.locator('meta[http-equiv=refresh]').getAttribute('content');
  assert.match(refresh, new RegExp(`^\\d+; url=/a/${id}$`), 'refreshes to the bare page: ' + refresh);
  assert.ok(Number(refresh.split(';')[0]) >= 5, 'a polite interval');
  const bar = Number(await page.locator('#nojs-progress').getAttribute('value'));
  await shot(page, 'j1-nojs-waiting');
  // the line moves: the page sees it on its next refresh
  const seen = loads;
  await h.buy();
  await afterRefreshes(page, 'position 1', async () => (await position()) === 1);
  assert.ok(loads > seen, 'the page reloaded itself');
  assert.ok(Number(await page.locator('#nojs-progress').getAttribute('value')) > bar, 'the progress element moves');
  await w.buy();
  await afterRefreshes(page, 'admitted', async () => (await page.locator('#nojs-buy').count()) === 1);
  assert.equal(await page.locator('meta[http-equiv=refresh]').count(), 0, 'no refresh while buying');
  assert.match(await page.locator('#nojs-buy-by').textContent(), /about \d+:\d\d left/);
  await shot(page, 'j2-nojs-admitted');
  await submit(page, '#nojs-buy');
  assert.match(await page.locator('#nojs-order-status').textContent(), /waiting for payment/i);
  await submit(page, '#nojs-payNow');
  assert.match(await page.locator('#nojs-order-status').textContent(), /paid/i);
  const orderId = (await page.locator('#nojs-order-id').textContent()).trim();
  const o = await http('GET', '/api/orders/' + encodeURIComponent(orderId), { bearer: ADMIN_KEY });
  assert.equal(o.json.order.status, 'paid');
  // the Chinese page, also without JavaScript; the choice is kept
  await page.goto(`${BASE}/a/${id}?lang=zh`);
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
  assert.equal((await page.locator('#nojs-order-status').textContent()).trim(), '已付款');
  await page.goto(`${BASE}/a/${id}`);
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN', 'the choice is kept');
  await shot(page, 'j3-nojs-paid-zh');
  // the host site's link: the token becomes a cookie, the address after the form has none
  const other = await newPage('nojs-link', { javaScriptEnabled: false });
  await other.goto(userUrl(id, mintJwt('j-link-' + RUN)));
  await submit(other, '#nojs-rejoin');
  assert.equal(await other.locator('#nojs-buy').count(), 1, 'joined and admitted (the last unit)');
  assert.ok(!other.url().includes('access_token'), 'no token in the address after the form');
}

// axe-core is JavaScript: on a page loaded without it, axe never finishes. So the page as
// the server sent it for this state is checked in a page with JavaScript where the
// <noscript> tags are unwrapped and the page's own script is left out: the same markup
// and style sheet, laid out as a browser without JavaScript lays them out.
async function axeWithoutJs(page, what) {
  const html = (await page.content())
    .replace(/<\/?noscript>/g, '')
    .replace(/<script src="\/assets\/waiting\.js"><\/script>/, '');
  assert.ok(html.includes('id="nojs"'), what + ': the no-JavaScript state is in the page');
  const url = page.url();
  const check = await newPage('axe-nojs');
  await check.route(url, (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html }));
  await check.goto(url);
  await axe(check, what);
  await check.context().close();
}

// An invite-only line without JavaScript: the link's code fills a labelled field; no
// code and a code someone else used are refused on the page; axe-core stays clean.
async function inviteWithoutJavaScript() {
  const id = 'bt-k-' + RUN;
  await createSale(id, 5, { rate_per_sec: 50, access: 'invite' });
  const r = await http('POST', `/api/admin/activities/${id}/invites`, { bearer: ADMIN_KEY, body: { count: 1 } });
  assert.equal(r.status, 201, r.text);
  const code = r.json.codes[0];
  const page = await newPage('nojs-invite', { javaScriptEnabled: false });
  await page.goto(userUrl(id, mintJwt('k-ann-' + RUN)) + '&invite=' + encodeURIComponent(code));
  assert.equal(await page.inputValue('#nojs-invite'), code, 'the link fills the field');
  assert.equal((await page.locator('label[for=nojs-invite]').textContent()).trim(), 'Invite code');
  await axeWithoutJs(page, 'invite field, no JavaScript');
  await shot(page, 'k1-nojs-invite');
  await page.fill('#nojs-invite', '');
  await submit(page, '#nojs-rejoin');
  assert.match(await page.locator('#error').textContent(), /by invitation only/);
  await axeWithoutJs(page, 'invite refused, no JavaScript');
  await shot(page, 'k2-nojs-invite-refused');
  await page.fill('#nojs-invite', code);
  await submit(page, '#nojs-rejoin');
  assert.equal(await page.locator('#nojs-buy').count(), 1, 'joined and admitted');
  const other = await newPage('nojs-invite-taken', { javaScriptEnabled: false });
  await other.goto(userUrl(id, mintJwt('k-bob-' + RUN)) + '&invite=' + encodeURIComponent(code));
  await submit(other, '#nojs-rejoin');
  assert.match(await other.locator('#error').textContent(), /already been used by someone else/);
  assert.equal(await other.locator('#nojs-buy').count(), 0, 'no place');
}

// An invite-only line with JavaScript, reached without a code: the page (German, from the
// browser) asks for one in a labelled field, says each refusal in its language, and stops
// there: the WebSocket opens are counted at every step, so a retry loop shows as extra
// opens or as the "reconnecting" line. A code typed in joins and stays in the address.
async function inviteWithJavaScript() {
  const id = 'bt-l-' + RUN;
  await createSale(id, 5, { rate_per_sec: 50, access: 'invite' });
  const r = await http('POST', `/api/admin/activities/${id}/invites`, { bearer: ADMIN_KEY, body: { count: 2 } });
  assert.equal(r.status, 201, r.text);
  const [code, used] = r.json.codes;
  const bob = await http('POST', `/api/activities/${id}/join`, { bearer: mintJwt('l-bob-' + RUN), body: { invite: used } });
  assert.equal(bob.status, 201, bob.text);
  const page = await newPage('invite-js', { locale: 'de-DE' });
  let opens = 0;
  page.on('websocket', () => { opens++; });
  const stopped = async (what, n) => {
    assert.equal(opens, n, what + ': WebSocket opens');
    assert.equal(await page.locator('#conn').textContent(), '', what + ': no reconnect pending');
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'invite-code', what + ': focus on the field');
    assert.equal(await page.getAttribute('#invite-code', 'aria-invalid'), 'true');
    assert.match(await page.getAttribute('#invite-code', 'aria-describedby'), /\binvite-error\b/);
  };

  await page.goto(userUrl(id, mintJwt('l-ann-' + RUN)));
  await page.locator('#invite-form').waitFor({ state: 'visible' });
  assert.equal(await page.getAttribute('html', 'lang'), 'de');
  assert.equal((await page.locator('label[for=invite-code]').textContent()).trim(), 'Einladungscode');
  assert.match(await page.locator('#invite-error').textContent(), /nur mit Einladung/);
  assert.match(await page.locator('#announce').textContent(), /nur mit Einladung/, 'said in the polite live region');
  assert.equal(await page.locator('#error').isVisible(), false, 'no English contract message');
  await stopped('refused without a code', 1);
  await axe(page, 'invite field, JavaScript');
  await shot(page, 'l1-js-invite-missing');

  // an empty field is answered on the page: nothing that cannot work is sent
  await page.click('#invite-join');
  await stopped('empty code', 1);

  // a code someone else used: refused in the page's language, and again no retry
  await page.fill('#invite-code', used);
  await page.click('#invite-join');
  await until('taken code refused', async () => /bereits von jemand anderem/.test(await page.locator('#invite-error').textContent()));
  await stopped('a used code', 2);
  assert.ok(page.url().includes('invite=' + encodeURIComponent(used)), 'the typed code is in the address');
  await switchLanguage(page, 'fr');
  await until('the refusal in French', async () => /déjà été utilisé/.test(await page.locator('#invite-error').textContent()));
  assert.equal((await page.locator('label[for=invite-code]').textContent()).trim(), "Code d'invitation");
  await page.focus('#invite-code');
  await axe(page, 'invite refused, JavaScript');
  await shot(page, 'l2-js-invite-taken-fr');
  assert.equal(opens, 2, 'the language switch opens no socket');

  // the person's own code: joined (and admitted: stock and rate allow it at once)
  await page.fill('#invite-code', code);
  await page.press('#invite-code', 'Enter');
  await page.locator('#buy').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#invite-form').isVisible(), false);
  assert.equal(opens, 3);
  assert.ok(page.url().includes('invite=' + encodeURIComponent(code)), 'the code is kept in the address');
  assert.ok(!page.url().includes('invite=' + encodeURIComponent(used)));
  // a reload joins with it again: no field
  await page.reload();
  await page.locator('#buy').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#invite-form').isVisible(), false, 'no field after a reload');
  await shot(page, 'l3-js-invite-joined');
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
  await check('(g) axe-core: no WCAG 2.2 A/AA violation in any state of the page, nor on the dashboard', axeEveryState);
  await check('(h) keyboard only: join, leave, join again, buy, pay, switch language', keyboardOnly);
  await check('(i) hidden tab: title, notification, one assertive alert; throttled polite position; bar and countdown move', hiddenTabAlerts);
  await check('(j) without JavaScript: sign up, join, the position moves across refreshes, admitted, buy, pay; Chinese', withoutJavaScript);
  await check('(k) without JavaScript, invite-only: the link fills the code; no code and a used code refused on the page', inviteWithoutJavaScript);
  await check('(l) invite-only without a code: the field, refusals in the page language, no reconnect loop; a typed code joins', inviteWithJavaScript);
} finally {
  for (const c of contexts) await c.close().catch(() => {});
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed (screenshots in ${ART})`);
process.exit(failed ? 1 : 0);
