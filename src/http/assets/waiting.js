// sluice waiting room: identity, WebSocket queue (HTTP polling fallback), purchase and order, en/zh texts.
'use strict';
(function () {
  // The texts: one table (src/http/assets/i18n.json), embedded in the page by the server.
  const I18N = JSON.parse(document.getElementById('i18n').textContent);
  let lang = I18N[document.documentElement.dataset.lang] ? document.documentElement.dataset.lang : 'en';
  const t = (k, v) => String((I18N[lang] && I18N[lang][k]) || I18N.en[k] || k).replace(/\{(\w+)\}/g, (_, n) => (v && n in v ? v[n] : ''));
  const locale = () => (lang === 'zh' ? 'zh-CN' : lang);
  const $ = (id) => document.getElementById(id);
  const show = (id, on) => { $(id).hidden = !on; };

  const parts = location.pathname.split('/').filter(Boolean);
  const ID = decodeURIComponent(parts[parts.indexOf('a') + 1] || new URLSearchParams(location.search).get('activity') || '');
  // An invite-only activity's code: from the link the operator sent (`?invite=`), or typed
  // into the field the page shows after an invite refusal.
  let INVITE = new URLSearchParams(location.search).get('invite') || '';
  // The join refusals a person can act on (src/domain/activity/access.rs), said in the page's language.
  const INVITE_REFUSALS = {
    'this activity is invite-only: join with an invite code': 'inviteMissing',
    'no such invite code': 'inviteUnknown',
    'that invite code belongs to someone else': 'inviteTaken',
  };
  const S = {
    act: null, jwt: null, sub: null, ticket: null, first: 0, pos: 0, eta: null, wfr: false, paused: false,
    state: 'idle', final: false, needPow: false, missing: false, mode: 'ws', ws: null, wsFails: 0, attempt: 0, retryAt: 0, retryTimer: null,
    pollTimer: null, token: null, deadline: 0, opensAt: 0, order: null, note: '', online: true, inviteErr: '',
  };

  // ---------- HTTP ----------
  async function api(path, opts) {
    opts = opts || {};
    const headers = { Accept: 'application/json' };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (opts.auth !== false && S.jwt) headers.Authorization = 'Bearer ' + S.jwt;
    let res;
    try {
      res = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    } catch (e) {
      throw Object.assign(new Error(e.message || 'network error'), { code: 'network', status: 0 });
    }
    let data = null;
    try { data = await res.json(); } catch (_) { /* empty body */ }
    if (!res.ok) {
      const err = (data && data.error) || {};
      throw Object.assign(new Error(err.message || res.status + ' ' + res.statusText), { code: err.code || 'http_' + res.status, status: res.status });
    }
    return data;
  }
  const actPath = (suffix) => '/api/activities/' + encodeURIComponent(ID) + (suffix || '');
  function showError(msg) { $('error').textContent = msg; show('error', !!msg); }

  // ---------- formatting ----------
  const money = (c) => new Intl.NumberFormat(locale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format((c || 0) / 100);
  const when = (s) => (s ? new Date(s).toLocaleString(locale()) : '–');
  function clock(secs) {
    secs = Math.max(0, Math.floor(secs));
    const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
    const p = (x) => String(x).padStart(2, '0');
    return (h ? h + ':' + p(m) : m) + ':' + p(s);
  }
  function etaText(secs) {
    if (secs < 60) return t('etaSoon');
    const m = Math.ceil(secs / 60);
    return m < 60 ? t('etaMin', { m }) : t('etaHour', { h: Math.floor(m / 60), m: m % 60 });
  }

  // ---------- rendering ----------
  function applyStatic() {
    document.documentElement.lang = locale();
    document.documentElement.dataset.lang = lang;
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    $('lang-current').textContent = t('langName');
    document.querySelectorAll('#lang-menu a[data-lang]').forEach((a) => {
      if (a.dataset.lang === lang) a.setAttribute('aria-current', 'true'); else a.removeAttribute('aria-current');
    });
    if (S.missing) $('activity-name').textContent = t('notFoundTitle');
    renderNotify();
  }
  function setLang(code) {
    if (!I18N[code]) return;
    lang = code;
    document.cookie = 'sluice_lang=' + code + '; path=/; max-age=31536000; samesite=lax';
    applyStatic(); renderActivity(); render();
  }
  function renderActivity() {
    const a = S.act;
    if (!a) return;
    $('activity-name').textContent = a.name;
    $('phase').hidden = false; $('facts').hidden = false;
    $('phase').textContent = t('phase_' + a.phase);
    $('phase').className = 'badge ' + a.phase;
    $('price').textContent = money(a.price_cents);
    $('units-left').textContent = a.available + ' / ' + a.capacity;
    $('per-user').textContent = a.per_user_limit;
    show('opens-wrap', !!a.opens_at);
    $('opens-at').textContent = when(a.opens_at);
    renderSlots();
  }
  function renderSlots() {
    const a = S.act;
    const appt = !!(a && a.kind === 'appointment');
    show('slot-wrap', appt);
    const q = $('quantity');
    q.max = String((a && a.per_user_limit) || 1);
    if (+q.value > +q.max) q.value = q.max;
    if (!appt) return;
    const sel = $('slot'), keep = sel.value;
    sel.textContent = '';
    // A slot can still take this buyer if units are free or held (the buyer's own hold sits in some slot's `held`).
    const open = (s) => s.available + (s.held || 0) > 0;
    for (const s of a.slots || []) {
      const o = document.createElement('option');
      o.value = s.id;
      o.textContent = s.available > 0 ? t('slotLeft', { label: s.label, n: s.available }) : open(s) ? t('slotHeld', { label: s.label }) : t('slotFull', { label: s.label });
      o.disabled = !open(s);
      sel.appendChild(o);
    }
    const slots = a.slots || [];
    const pick = slots.find((s) => s.id === keep && open(s)) || slots.find((s) => s.available > 0) || slots.find(open);
    if (pick) sel.value = pick.id;
  }
  function render() {
    const st = S.state, waiting = st === 'waiting' || st === 'restarting';
    show('login', st === 'idle' && !S.jwt && !S.missing);
    show('queue', (st !== 'idle' || !!S.jwt) && !S.missing);
    show('alerts', ['waiting', 'prequeue', 'restarting', 'connecting'].includes(st) && !!S.jwt && !S.missing);
    show('who', !!S.sub);
    $('user-id').textContent = S.sub || '';
    let status = t(st === 'refused' ? 'st_noplace' : 'st_' + st);
    if (st === 'waiting' && S.paused) status = t('st_paused');
    $('status').textContent = status;
    const hasPos = waiting && S.pos > 0;
    show('position', hasPos); show('ahead', hasPos); show('eta', hasPos && S.eta != null);
    show('progress-wrap', hasPos); show('progress-label', hasPos);
    if (hasPos) {
      $('position').textContent = t('position', { n: S.pos });
      const ahead = S.pos - 1;
      $('ahead').textContent = ahead === 0 ? t('ahead0') : ahead === 1 ? t('ahead1') : t('aheadN', { n: ahead });
      $('eta').textContent = t('eta', { t: etaText(S.eta || 0) });
      const p = S.first > 0 ? Math.max(0, Math.min(100, Math.round((1 - S.pos / S.first) * 100))) : 0;
      $('progress-bar').style.width = p + '%';
      $('progress-wrap').setAttribute('aria-valuenow', String(p));
      $('progress-text').textContent = t('progress', { p });
    }
    let note = ['waiting', 'ordered', 'restarting', 'connecting'].includes(st) ? S.note : '';
    if (waiting && S.wfr) note = t('wfr');
    if (waiting && S.paused) note = t('pausedNote');
    if (st === 'prequeue') note = t('prequeueNote');
    $('note').textContent = note;
    show('note', !!note);
    show('prequeue-countdown', st === 'prequeue' && S.opensAt > 0);
    show('leave', ['waiting', 'prequeue', 'restarting', 'connecting'].includes(st) && !!S.jwt);
    const rejoin = ['left', 'expired', 'superseded'].includes(st) || (st === 'ordered' && S.order && S.order.status === 'cancelled');
    show('rejoin', rejoin);
    renderInvite();
    $('rejoin').textContent = st === 'superseded' ? t('useHere') : t('rejoin');
    show('admitted', st === 'admitted');
    show('order', !!S.order);
    if (S.order) renderOrder();
    renderConn();
    tick();
    announce();
  }
  // The invite field, after an invite refusal; its error is kept as a text key so a
  // change of language says it again.
  function renderInvite() {
    const on = S.state === 'refused' && !!S.inviteErr;
    show('invite-form', on);
    $('invite-error').textContent = on ? t(S.inviteErr) : '';
    show('invite-error', on);
    const code = $('invite-code');
    if (on) code.setAttribute('aria-invalid', 'true'); else code.removeAttribute('aria-invalid');
    code.setAttribute('aria-describedby', on ? 'invite-error invite-hint' : 'invite-hint');
  }
  function renderOrder() {
    const o = S.order;
    $('order-id').textContent = o.id;
    $('order-amount').textContent = money(o.amount_cents) + (o.quantity > 1 ? ' (×' + o.quantity + ')' : '');
    $('order-status').textContent = t('os_' + o.status);
    $('order-pay-by').textContent = when(o.pay_by);
    show('pay-by-wrap', o.status === 'pending_payment');
    show('order-slot-wrap', !!o.slot_id);
    $('order-slot').textContent = o.slot_id || '';
    // payment.mode = "external": the shop confirms payment, the buyer cannot.
    const shopPays = document.documentElement.dataset.payment === 'external';
    show('pay', o.status === 'pending_payment' && !shopPays);
    show('shop-pays', o.status === 'pending_payment' && shopPays);
    show('cancel', o.status === 'pending_payment');
  }
  function renderConn() {
    let c = '';
    if (!S.online) c = t('offline');
    else if (S.retryTimer) c = t('reconnecting', { s: Math.max(1, Math.ceil((S.retryAt - Date.now()) / 1000)) });
    else if (S.mode === 'poll' && S.pollTimer) c = t('polling');
    else if (S.ws && S.ws.readyState === 1) c = '● ' + t('live');
    $('conn').textContent = c;
  }
  function tick() {
    if (S.state === 'admitted') $('token-countdown').textContent = clock((S.deadline - Date.now()) / 1000);
    renderTitle();
    if (S.state === 'prequeue') $('prequeue-countdown').textContent = t('opensIn', { t: clock((S.opensAt - Date.now()) / 1000) });
    if (S.retryTimer) renderConn();
  }
  setInterval(tick, 1000);

  // ---------- what the page says: the title, screen-reader announcements, "your turn" alerts ----------
  function renderTitle() {
    const name = S.act ? S.act.name : S.missing ? t('notFoundTitle') : 'sluice';
    let title = name + ' · sluice';
    if (S.state === 'admitted') title = t('titleTurn', { t: clock((S.deadline - Date.now()) / 1000) }) + ' · ' + name;
    else if (S.state === 'waiting' && S.pos > 0) title = t('titleWaiting', { n: S.pos }) + ' · ' + name;
    if (document.title !== title) document.title = title;
  }
  // Position changes go to a polite live region, only when worth telling and at most
  // every POLITE_GAP_MS; a change of state is said at once; admission assertively.
  const POLITE_GAP_MS = 5000;
  const A = { pos: null, at: -Infinity, timer: null, state: null };
  function polite(text) { A.at = Date.now(); $('announce').textContent = text; }
  function urgent(text) { clearTimeout(A.timer); A.timer = null; $('announce-now').textContent = text; }
  function worthTelling(pos, last) {
    if (last == null) return true;
    if (pos === last) return false;
    if (pos <= 3) return true; // near the front every step matters
    if (pos <= 10 && last > 10) return true;
    return Math.abs(last - pos) >= Math.max(2, Math.ceil(last * 0.1)); // a tenth of the way
  }
  function announcePosition() {
    if (S.state !== 'waiting' || !(S.pos > 0) || !worthTelling(S.pos, A.pos)) return;
    const wait = A.at + POLITE_GAP_MS - Date.now();
    if (wait > 0) { if (!A.timer) A.timer = setTimeout(() => { A.timer = null; announcePosition(); }, wait); return; }
    A.pos = S.pos;
    polite(t('position', { n: S.pos }) + '. ' + $('ahead').textContent);
  }
  function announce() {
    const st = S.state;
    if (st !== A.state) {
      A.state = st;
      if (st === 'admitted') { A.pos = null; urgent(t('announceTurn', { t: clock((S.deadline - Date.now()) / 1000) })); }
      else if (['prequeue', 'sold_out', 'closed', 'expired', 'left', 'superseded', 'restarting'].includes(st)) polite($('status').textContent);
    }
    announcePosition();
  }
  // "Your turn" while the person looks elsewhere: a notification (if they allowed it
  // with the button), and the sound and vibration they chose.
  let audio = null;
  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      audio.resume();
      [0, 0.35].forEach((at) => {
        const o = audio.createOscillator(), g = audio.createGain();
        o.frequency.value = 880; g.gain.value = 0.2;
        o.connect(g); g.connect(audio.destination);
        o.start(audio.currentTime + at); o.stop(audio.currentTime + at + 0.2);
      });
    } catch (_) { /* no audio here */ }
  }
  let shown = null;
  function alertTurn() {
    const left = clock((S.deadline - Date.now()) / 1000), name = S.act ? S.act.name : '';
    if ($('sound').checked) { beep(); if (navigator.vibrate) navigator.vibrate([300, 150, 300]); }
    if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
      try {
        shown = new Notification(t('titleTurn', { t: left }), { body: t('notifyBody', { name, t: left }), tag: 'sluice-' + ID, lang: locale(), requireInteraction: true });
        shown.onclick = () => { window.focus(); shown.close(); };
      } catch (_) { /* notifications need a service worker here */ }
    }
  }
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) return;
    if (shown) { shown.close(); shown = null; }
    if (S.state === 'admitted') $('buy').focus();
  });
  function renderNotify() {
    const has = 'Notification' in window, perm = has ? Notification.permission : 'denied';
    show('notify', has && perm === 'default');
    const msg = !has ? '' : perm === 'granted' ? t('notifyOn') : perm === 'denied' ? t('notifyDenied') : '';
    $('notify-state').textContent = msg;
    show('notify-state', !!msg);
  }
  async function askNotify() {
    try { await Notification.requestPermission(); } catch (_) { /* old browsers: callback form only */ }
    renderNotify();
    $(Notification.permission === 'default' ? 'notify' : 'sound').focus();
  }

  // ---------- place storage ----------
  const key = (kind) => 'sluice:' + kind + ':' + ID + ':' + S.sub;
  function saveTicket(ticket) {
    if (ticket !== S.ticket) S.first = 0;
    S.ticket = ticket;
    localStorage.setItem(key('ticket'), JSON.stringify({ ticket, first: S.first }));
  }
  function dropTicket() { S.ticket = null; S.first = 0; localStorage.removeItem(key('ticket')); }
  function setPos(pos, eta) {
    S.pos = pos;
    S.eta = eta;
    if (!S.first || pos > S.first) { S.first = pos; if (S.ticket) saveTicket(S.ticket); }
  }

  // ---------- optional join proof of work: SHA-256(nonce ":" s) with `bits` leading zero bits ----------
  const SHA_K = [], SHA_H = [];
  for (let n = 2; SHA_K.length < 64; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) if (n % d === 0) { prime = false; break; }
    if (!prime) continue;
    if (SHA_H.length < 8) SHA_H.push((Math.pow(n, 1 / 2) * 4294967296) | 0);
    SHA_K.push((Math.pow(n, 1 / 3) * 4294967296) | 0);
  }
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  function sha256Words(msg) { // msg: ASCII string
    const b = [];
    for (let i = 0; i < msg.length; i++) b.push(msg.charCodeAt(i) & 255);
    const bits = b.length * 8;
    b.push(0x80);
    while (b.length % 64 !== 56) b.push(0);
    b.push(0, 0, 0, 0, (bits >>> 24) & 255, (bits >>> 16) & 255, (bits >>> 8) & 255, bits & 255);
    const h = SHA_H.slice(), w = new Int32Array(64);
    for (let o = 0; o < b.length; o += 64) {
      for (let i = 0; i < 16; i++) w[i] = (b[o + 4 * i] << 24) | (b[o + 4 * i + 1] << 16) | (b[o + 4 * i + 2] << 8) | b[o + 4 * i + 3];
      for (let i = 16; i < 64; i++) {
        const x = w[i - 15], y = w[i - 2];
        w[i] = (w[i - 16] + (rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3)) + w[i - 7] + (rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10))) | 0;
      }
      let [A, B, C, D, E, F, G, H] = h;
      for (let i = 0; i < 64; i++) {
        const t1 = (H + (rotr(E, 6) ^ rotr(E, 11) ^ rotr(E, 25)) + ((E & F) ^ (~E & G)) + SHA_K[i] + w[i]) | 0;
        const t2 = ((rotr(A, 2) ^ rotr(A, 13) ^ rotr(A, 22)) + ((A & B) ^ (A & C) ^ (B & C))) | 0;
        H = G; G = F; F = E; E = (D + t1) | 0; D = C; C = B; B = A; A = (t1 + t2) | 0;
      }
      [A, B, C, D, E, F, G, H].forEach((v, i) => { h[i] = (h[i] + v) | 0; });
    }
    return h;
  }
  function zeroBits(h) { let n = 0; for (const x of h) { if (x === 0) n += 32; else return n + Math.clz32(x); } return n; }
  async function powParams() {
    if (!S.act) await loadActivity();
    const want = S.needPow || (S.act && S.act.admission && S.act.admission.join_pow_bits > 0);
    if (!want) return null;
    const c = await api(actPath('/challenge'));
    if (!c.bits) return null;
    S.note = t('pow'); render();
    for (let i = 0; ; i++) {
      if (zeroBits(sha256Words(c.nonce + ':' + i)) >= c.bits) { S.needPow = false; S.note = ''; return { pow_nonce: c.nonce, pow_solution: String(i) }; }
      if (i % 20000 === 19999) await new Promise((r) => setTimeout(r, 0)); // keep the page responsive
    }
  }
  window.sluiceSha256 = sha256Words; // for tests

  // ---------- frames (WebSocket, or synthesized from polling) ----------
  function onFrame(m) {
    switch (m.type) {
      case 'queued': saveTicket(m.ticket); setPos(m.position, m.eta_secs); S.state = 'waiting'; S.note = ''; break;
      case 'position': setPos(m.position, m.eta_secs); S.wfr = !!m.waiting_for_returns; if (S.state !== 'admitted') S.state = 'waiting'; break;
      case 'prequeue': if (m.ticket) saveTicket(m.ticket); S.opensAt = Date.parse(m.opens_at) || 0; S.state = 'prequeue'; break;
      case 'admitted':
        // A gate: the pass opens the protected site; the server sets its cookie.
        if (m.pass) { S.final = true; location.assign('/api/gate/' + encodeURIComponent(ID) + '/enter?pass=' + encodeURIComponent(m.pass)); return; }
        S.token = m.token;
        S.deadline = m.expires_in_secs != null ? Date.now() + m.expires_in_secs * 1000 : Date.parse(m.expires_at);
        S.note = ''; S.paused = false;
        if (S.state !== 'admitted') { S.state = 'admitted'; render(); alertTurn(); }
        loadActivity().then(() => $('buy').focus());
        break;
      case 'paused': S.paused = true; loadActivity(); break;
      case 'resumed': S.paused = false; S.note = t('resumed'); loadActivity(); break;
      case 'sold_out': S.final = true; if (S.state !== 'admitted') { S.state = 'sold_out'; dropTicket(); } loadActivity(); break;
      case 'closed': S.final = true; S.state = 'closed'; dropTicket(); loadActivity(); break;
      case 'superseded': S.final = true; S.state = 'superseded'; break;
      case 'revoked': S.final = true; S.state = 'left'; dropTicket(); break;
      case 'restarting': S.state = S.state === 'waiting' ? 'restarting' : S.state; S.attempt = 0; break;
      case 'error': onErrorFrame(m); break;
      default: break;
    }
    render();
  }
  function onErrorFrame(m) {
    if (m.code === 'not_found' && S.ticket) { dropTicket(); S.attempt = 0; return; } // stale place: join afresh
    if (m.code === 'token_expired') { S.final = true; S.state = 'expired'; S.token = null; dropTicket(); loadActivity(); return; }
    if (m.code === 'invalid_request' && /proof-of-work/i.test(m.message || '')) { S.needPow = true; return; }
    if (m.code === 'unauthorized') { S.final = true; logout(); }
    if (m.code === 'forbidden') { refused(m.message || m.code); return; }
    showError(m.message || m.code);
  }
  // A refused join (no or a bad invite code, or banned): retrying cannot help, so the
  // page stops (no reconnect, no polling) until the person submits a code.
  function refused(message) {
    S.final = true;
    clearRetry(); stopPolling(); dropTicket();
    S.state = 'refused'; S.pos = 0; S.token = null;
    const k = INVITE_REFUSALS[message];
    if (!k) { S.inviteErr = ''; render(); showError(message); return; }
    inviteRefused(k);
  }
  function inviteRefused(k) {
    S.inviteErr = k;
    showError('');
    const code = $('invite-code');
    if (!code.value) code.value = INVITE;
    render();
    polite(t(k));
    code.focus();
  }
  function submitInvite(e) {
    e.preventDefault();
    const code = $('invite-code').value.trim();
    if (!code) { inviteRefused('inviteMissing'); return; } // nothing that could work is sent
    INVITE = code;
    // Kept in the address, so a reload (or the link copied from it) joins with it.
    const q = new URLSearchParams(location.search);
    q.set('invite', code);
    history.replaceState(null, '', location.pathname + '?' + q + location.hash);
    S.inviteErr = '';
    rejoin();
  }

  // ---------- WebSocket ----------
  async function connect() {
    clearRetry();
    if (S.final || !S.jwt) return;
    if (S.mode === 'poll') { startPolling(); return; }
    const q = new URLSearchParams({ access_token: S.jwt });
    if (S.ticket) q.set('ticket', S.ticket);
    if (INVITE) q.set('invite', INVITE);
    if (!S.ticket || S.needPow) {
      try { const pow = await powParams(); if (pow) Object.entries(pow).forEach(([k, v]) => q.set(k, v)); } catch (e) { showError(e.message); }
      if (S.final || S.ws) return;
    }
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/activities/' + encodeURIComponent(ID) + '?' + q;
    let ws, heard = false;
    try { ws = new WebSocket(url); } catch (_) { S.wsFails = 2; S.mode = 'poll'; startPolling(); return; }
    S.ws = ws;
    if (S.state === 'idle') S.state = 'connecting';
    ws.onopen = () => { S.attempt = 0; renderConn(); };
    ws.onmessage = (e) => {
      if (S.ws !== ws) return;
      heard = true; S.wsFails = 0;
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      onFrame(m);
    };
    ws.onclose = () => {
      if (S.ws !== ws) return;
      S.ws = null;
      if (!heard) S.wsFails++;
      if (S.final) { render(); return; }
      if (!heard) probe().then(() => { if (S.final) return; if (S.wsFails >= 2) { S.mode = 'poll'; startPolling(); } else retryLater(); });
      else retryLater();
    };
  }
  // A socket that never spoke: find out over HTTP whether identity or ticket is the reason.
  async function probe() {
    try {
      if (S.ticket) {
        const r = await api(actPath('/tickets/' + encodeURIComponent(S.ticket)));
        if (['expired', 'left', 'sold_out', 'closed'].includes(r.status)) { dropTicket(); S.wsFails = 0; }
      } else {
        await api('/api/orders');
      }
    } catch (e) {
      if (e.status === 401) { S.final = true; logout(); showError(e.message); } else if (e.status === 404) { dropTicket(); S.wsFails = 0; }
    }
  }
  function retryLater() {
    const base = S.state === 'restarting' ? 1500 : Math.min(30000, 1000 * 2 ** S.attempt);
    const delay = Math.round(base * (0.6 + Math.random() * 0.8));
    S.attempt = Math.min(S.attempt + 1, 10);
    S.retryAt = Date.now() + delay;
    S.retryTimer = setTimeout(() => { S.retryTimer = null; connect(); }, delay);
    render();
  }
  function clearRetry() { if (S.retryTimer) clearTimeout(S.retryTimer); S.retryTimer = null; }
  window.addEventListener('online', () => { S.online = true; if (S.retryTimer) { S.attempt = 0; connect(); } renderConn(); });
  window.addEventListener('offline', () => { S.online = false; renderConn(); });

  // ---------- HTTP polling fallback ----------
  async function startPolling() {
    stopPolling();
    S.mode = 'poll';
    if (S.state === 'idle') S.state = 'connecting';
    try {
      if (!S.ticket) onTicket(await api(actPath('/join'), { method: 'POST', body: joinBody(await powParams()) }));
      showError('');
    } catch (e) { if (e.code === 'forbidden') refused(e.message); else { if (e.status === 401) { logout(); } showError(e.message); } }
    if (!S.final && S.state !== 'admitted') S.pollTimer = setTimeout(poll, 2000);
    render();
  }
  async function poll() {
    S.pollTimer = null;
    if (S.final || S.state === 'admitted' || !S.jwt) return;
    try {
      if (!S.ticket) onTicket(await api(actPath('/join'), { method: 'POST', body: joinBody(await powParams()) }));
      else onTicket(await api(actPath('/tickets/' + encodeURIComponent(S.ticket))));
    } catch (e) {
      if (e.status === 404) dropTicket(); else if (e.status === 401) { logout(); showError(e.message); return; } else if (e.code === 'forbidden') { refused(e.message); return; } else showError(e.message);
    }
    if (!S.final && S.state !== 'admitted') S.pollTimer = setTimeout(poll, 2000);
    renderConn();
  }
  function stopPolling() { if (S.pollTimer) clearTimeout(S.pollTimer); S.pollTimer = null; }
  function joinBody(pow) { return INVITE ? Object.assign({ invite: INVITE }, pow || {}) : (pow || undefined); }
  function onTicket(r) {
    const fresh = r.ticket && r.ticket !== S.ticket;
    if (r.ticket) saveTicket(r.ticket);
    switch (r.status) {
      case 'waiting': onFrame({ type: fresh || S.state !== 'waiting' ? 'queued' : 'position', ticket: r.ticket, position: r.position, eta_secs: r.eta_secs }); break;
      case 'prequeue': onFrame({ type: 'prequeue', opens_at: (S.act && S.act.opens_at) || '' }); break;
      case 'admitted': if (r.pass || r.token !== S.token) onFrame({ type: 'admitted', token: r.token, pass: r.pass, expires_at: r.expires_at }); break;
      case 'expired': onFrame({ type: 'error', code: 'token_expired' }); break;
      case 'sold_out': case 'closed': onFrame({ type: r.status }); break;
      case 'left': S.final = true; S.state = 'left'; dropTicket(); render(); break;
      default: break;
    }
  }

  // ---------- actions ----------
  async function loadActivity() {
    try { S.act = await api(actPath(), { auth: false }); S.missing = false; renderActivity(); } catch (e) {
      if (e.status === 404) { S.missing = true; S.final = true; $('activity-name').textContent = t('notFoundTitle'); showError(t('notFound')); render(); } else showError(e.message);
    }
  }
  function leave() {
    S.final = true;
    clearRetry(); stopPolling();
    const ws = S.ws;
    S.ws = null; // frames after this are not ours to show
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: 'leave' }));
    else {
      if (ws) ws.close();
      if (S.ticket) api(actPath('/tickets/' + encodeURIComponent(S.ticket)), { method: 'DELETE' }).catch((e) => showError(e.message));
    }
    dropTicket();
    S.state = 'left'; S.pos = 0;
    render();
    $('rejoin').focus();
  }
  function rejoin() {
    showError('');
    if (S.order && S.order.status === 'cancelled') { S.order = null; localStorage.removeItem(key('order')); }
    S.final = false; S.wsFails = 0; S.attempt = 0; S.state = 'connecting'; S.pos = 0; S.note = '';
    if (S.ws) { const w = S.ws; S.ws = null; w.close(); }
    S.mode = 'ws';
    connect();
    render();
    $('status').focus();
  }
  async function buy() {
    showError('');
    const body = { token: S.token, quantity: Math.max(1, parseInt($('quantity').value, 10) || 1) };
    if (S.act && S.act.kind === 'appointment') body.slot_id = $('slot').value;
    $('buy').disabled = true;
    try {
      const r = await api(actPath('/purchase'), { method: 'POST', body });
      S.order = r.order; S.final = true; S.state = 'ordered'; S.note = t('bought'); polite(t('st_ordered') + ' ' + t('bought'));
      localStorage.setItem(key('order'), r.order.id);
      dropTicket(); stopPolling();
      if (S.ws) { const w = S.ws; S.ws = null; w.close(); }
      render();
      loadActivity();
      ($('pay').hidden ? $('cancel') : $('pay')).focus();
    } catch (e) {
      if (e.code === 'sold_out' && S.act && S.act.kind === 'appointment') { await loadActivity(); showError(e.message + ' ' + t('pickSlot')); $('slot').focus(); } else if (e.code === 'token_expired') { onFrame({ type: 'error', code: 'token_expired' }); showError(e.message); } else showError(e.message);
    } finally { $('buy').disabled = false; }
  }
  async function orderAction(what) {
    showError('');
    try {
      const r = await api('/api/orders/' + encodeURIComponent(S.order.id) + '/' + what, { method: 'POST' });
      S.order = r.order;
      S.note = t(r.order.status === 'paid' ? 'paid' : 'cancelled'); polite(S.note);
      if (r.order.status === 'cancelled') localStorage.removeItem(key('order'));
      render(); loadActivity();
    } catch (e) { showError(e.message); }
  }

  // ---------- identity ----------
  function claims(jwt) {
    try {
      const p = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(decodeURIComponent(escape(atob(p + '==='.slice((p.length + 3) % 4)))));
    } catch (_) { return null; }
  }
  function useToken(jwt) {
    const c = claims(jwt);
    if (!c || !c.sub || (c.exp && c.exp * 1000 < Date.now())) return false;
    if (S.jwt === jwt) return true;
    if (S.ws) { const w = S.ws; S.ws = null; w.close(); }
    clearRetry(); stopPolling();
    S.jwt = jwt; S.sub = String(c.sub);
    sessionStorage.setItem('sluice:jwt', jwt);
    try {
      const saved = JSON.parse(localStorage.getItem(key('ticket')) || 'null');
      S.ticket = (saved && saved.ticket) || null; S.first = (saved && saved.first) || 0;
    } catch (_) { S.ticket = null; }
    S.final = false; S.state = 'connecting'; S.mode = 'ws'; S.wsFails = 0; S.attempt = 0; S.order = null; S.token = null;
    begin();
    return true;
  }
  async function begin() {
    showError('');
    render();
    const oid = localStorage.getItem(key('order'));
    if (oid) {
      try {
        const r = await api('/api/orders/' + encodeURIComponent(oid));
        if (r.order.status !== 'cancelled') { S.order = r.order; S.final = true; S.state = 'ordered'; render(); return; }
      } catch (_) { /* gone: join normally */ }
      localStorage.removeItem(key('order'));
    }
    connect();
  }
  function logout() {
    if (S.ws) { const w = S.ws; S.ws = null; w.close(); }
    clearRetry(); stopPolling();
    sessionStorage.removeItem('sluice:jwt');
    Object.assign(S, { jwt: null, sub: null, ticket: null, state: 'idle', final: false, token: null, order: null, pos: 0 });
    render();
  }
  async function login(register) {
    const username = $('username').value.trim(), password = $('password').value;
    if (!username || !password) { showError(t('needCreds')); return; }
    showError('');
    const btn = register ? $('register') : $('login-submit');
    btn.disabled = true;
    try {
      if (register) await api('/api/auth/register', { method: 'POST', body: { username, password }, auth: false });
      const r = await api('/api/auth/login', { method: 'POST', body: { username, password }, auth: false });
      $('password').value = '';
      useToken(r.access_token);
    } catch (e) { showError(e.message); } finally { btn.disabled = false; }
  }

  // ---------- wiring ----------
  document.querySelectorAll('#lang-menu a[data-lang]').forEach((a) => a.addEventListener('click', (e) => {
    e.preventDefault();
    setLang(a.dataset.lang);
    $('lang-menu').open = false;
    $('lang-menu').querySelector('summary').focus();
  }));
  $('notify').addEventListener('click', askNotify);
  $('sound').checked = localStorage.getItem('sluice:sound') === '1';
  $('sound').addEventListener('change', () => {
    localStorage.setItem('sluice:sound', $('sound').checked ? '1' : '0');
    if ($('sound').checked && !audio) { try { audio = new (window.AudioContext || window.webkitAudioContext)(); } catch (_) { /* no audio */ } }
  });
  $('login-form').addEventListener('submit', (e) => { e.preventDefault(); login(false); });
  $('register').addEventListener('click', () => login(true));
  $('leave').addEventListener('click', leave);
  $('rejoin').addEventListener('click', rejoin);
  $('invite-form').addEventListener('submit', submitInvite);
  $('buy').addEventListener('click', buy);
  $('pay').addEventListener('click', () => orderAction('pay'));
  $('cancel').addEventListener('click', () => orderAction('cancel'));
  $('logout').addEventListener('click', logout);
  window.addEventListener('message', (e) => {
    const d = e.data;
    if (d && d.type === 'sluice-token' && typeof d.token === 'string' && (e.source === window.parent || e.source === window.opener) && e.source !== window) {
      if (!useToken(d.token)) showError('invalid token');
    }
  });

  applyStatic();
  render();
  loadActivity().then(() => {
    if (S.state === 'prequeue' && !S.opensAt && S.act && S.act.opens_at) { S.opensAt = Date.parse(S.act.opens_at); render(); }
  });
  setInterval(() => { if (!document.hidden && ['waiting', 'prequeue', 'admitted'].includes(S.state)) loadActivity(); }, 15000);
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get('access_token');
  if (fromUrl) {
    params.delete('access_token');
    history.replaceState(null, '', location.pathname + (params.toString() ? '?' + params : '') + location.hash);
  }
  if (!(fromUrl && useToken(fromUrl))) {
    const kept = sessionStorage.getItem('sluice:jwt');
    if (!(kept && useToken(kept))) render();
  }
  if (window.parent !== window) window.parent.postMessage({ type: 'sluice-ready', activity: ID }, '*');
})();
