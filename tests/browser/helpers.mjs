// Helpers shared by the browser tests (run.mjs, report.mjs): a user JWT, JSON calls to
// the server under test, and the axe-core WCAG 2.2 A/AA check.
// Env: SLUICE_URL, SLUICE_JWT_SECRET (as the tests document).
import { AxeBuilder } from '@axe-core/playwright';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

export const BASE = (process.env.SLUICE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const JWT_SECRET = process.env.SLUICE_JWT_SECRET || 'sluice-dev-jwt-secret-change-me-0123456789';

const b64url = (b) => Buffer.from(b).toString('base64url');

/// An HS256 identity token for `sub`, as a shop would mint it.
export function mintJwt(sub, ttlSecs = 3600) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + ttlSecs }));
  const sig = crypto.createHmac('sha256', JWT_SECRET).update(head + '.' + body).digest('base64url');
  return head + '.' + body + '.' + sig;
}

/// A JSON call: `{status, json, text}`.
export async function http(method, p, { bearer, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (bearer) headers.Authorization = 'Bearer ' + bearer;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(BASE + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];

/// Zero WCAG 2.2 A/AA violations on the page as it is now.
export async function axe(page, what) {
  const r = await new AxeBuilder({ page }).withTags(WCAG_TAGS).analyze();
  const found = r.violations.map((v) => `${v.id}: ${v.help} [${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}]`);
  assert.deepEqual(found, [], `${what}: WCAG 2.2 A/AA violations`);
  assert.ok(r.passes.length >= 10, `${what}: axe checked too little (${r.passes.length} rules passed)`);
}
