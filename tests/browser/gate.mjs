// sluice browser test of a gate (docs/gate.md): a real nginx serves a small origin site
// under /shop/ guarded by `auth_request` to sluice; a person in headless Chromium is sent
// to the waiting page, waits behind someone else's pass, is admitted, lands on the origin
// page (the pass cookie set by the hand-off), and is sent back once the pass expires.
// Env: SLUICE_URL (the server under test), SLUICE_ADMIN_KEY, SLUICE_JWT_SECRET; optional
// CHROMIUM_PATH, NGINX_PATH. Run: node gate.mjs (exit code 1 on failure).
import { chromium } from 'playwright-core';
import { BASE, axe, http, mintJwt } from './helpers.mjs';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ADMIN_KEY = process.env.SLUICE_ADMIN_KEY || 'sluice-dev-admin-key';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const NGINX = process.env.NGINX_PATH || (fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx');
const ID = 'gate-' + Date.now().toString(36) + crypto.randomBytes(2).toString('hex');
const TTL = 6; // pass lifetime, s: long enough to see the person wait; the test waits for two to expire
const T = 20000;

const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on('error', reject);
});

/// nginx in front of the origin and sluice, as docs/gate.md configures it.
async function startNginx(port) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-gate-'));
  fs.mkdirSync(path.join(dir, 'origin/shop'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'origin/shop/index.html'),
    '<!doctype html><html lang="en"><head><title>The shop</title></head><body><main><h1>Welcome to the shop</h1></main></body></html>\n');
  const upstream = new URL(BASE).host;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
    root ${dir}/origin;
    location /shop/ { auth_request /_sluice/verify; error_page 401 = @waiting; }
    location = /_sluice/verify {
      internal;
      proxy_pass http://${upstream}/api/gate/${ID}/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }
    location @waiting { return 302 /a/${ID}; }
    location ~ ^/(api|a|ws|assets|healthz|\\.well-known)(/|$) {
      proxy_pass http://${upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
    }
  }
}
`);
  const child = spawn(NGINX, ['-p', dir + '/', '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return { child, dir }; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error('nginx did not start: ' + (fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : ''));
}

let browser, nginx, page, failed = false;
try {
  const port = await freePort();
  const FRONT = `http://127.0.0.1:${port}`;
  nginx = await startNginx(port);
  const created = await http('POST', '/api/admin/activities', {
    bearer: ADMIN_KEY,
    body: { id: ID, name: 'The shop', kind: 'gate', gate: { origin_url: FRONT + '/shop/', pass_ttl_secs: TTL },
            admission: { rate_per_sec: 100, max_active: 1, reconnect_grace_secs: 60 } },
  });
  assert.equal(created.status, 201, created.text);
  // Someone else holds the one pass: the person waits behind them.
  const first = await http('POST', `/api/activities/${ID}/join`, { bearer: mintJwt('gate-first') });
  assert.ok(first.json && first.json.pass, 'the first visitor is admitted: ' + first.text);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: process.env.HEADFUL !== '1', args: ['--no-sandbox'] });
  page = await (await browser.newContext({ locale: 'en-US' })).newPage();
  page.setDefaultTimeout(T);

  // Without a pass, the site sends the person to the waiting page.
  await page.goto(FRONT + '/shop/');
  assert.equal(new URL(page.url()).pathname, `/a/${ID}`, 'sent to the waiting page');
  // Signed in by the host site (a known user), the person waits in line.
  await page.goto(`${FRONT}/a/${ID}?access_token=${encodeURIComponent(mintJwt('gate-person'))}`);
  await page.waitForFunction(() => /number 1 in line/i.test(document.body.innerText), null, { timeout: T });
  await axe(page, 'gate waiting page');

  // The first pass expires; the person is admitted and lands on the origin.
  await page.waitForURL(FRONT + '/shop/', { timeout: T + TTL * 1000 });
  assert.equal(await page.textContent('h1'), 'Welcome to the shop');
  const cookies = await page.context().cookies(FRONT);
  const pass = cookies.find((c) => c.name === 'sluice_pass');
  assert.ok(pass && pass.httpOnly && pass.sameSite === 'Lax' && pass.path === '/', JSON.stringify(cookies));
  const verified = await fetch(`${BASE}/api/gate/${ID}/verify`, { headers: { Authorization: 'Bearer ' + pass.value } });
  assert.equal(verified.status, 204);

  // Once the pass expires, the origin refuses again (back to the waiting page).
  const end = Date.now() + T;
  for (;;) {
    await page.goto(FRONT + '/shop/');
    if (new URL(page.url()).pathname === `/a/${ID}`) break;
    assert.ok(Date.now() < end, 'the origin still serves after the pass expired');
    await new Promise((r) => setTimeout(r, 250));
  }
  console.log('gate: 1 passed, 0 failed');
} catch (e) {
  failed = true;
  console.log('gate: FAILED: ' + (e && e.stack ? e.stack : e));
  if (page) console.log('  at ' + page.url() + ': ' + (await page.innerText('body').catch(() => '')).slice(0, 600));
} finally {
  if (browser) await browser.close();
  if (nginx) { nginx.child.kill('SIGKILL'); fs.rmSync(nginx.dir, { recursive: true, force: true }); }
}
process.exit(failed ? 1 : 0);
