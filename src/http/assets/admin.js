// sluice operator dashboard: admin key, create form, per-activity controls, live SSE counters and canvas charts.
'use strict';
(function () {
  const I18N = {
    en: {
      operator: 'operator', keyTitle: 'Admin key', keyLabel: 'Admin API key', connect: 'Connect', forget: 'Forget',
      createTitle: 'Create an activity', fId: 'Id (a-z, 0-9, -)', fName: 'Name', fKind: 'Kind', kindSale: 'Sale',
      kindAppt: 'Appointment release', fStock: 'Stock', fPrice: 'Price', fLimit: 'Per-user limit',
      fPayTimeout: 'Payment timeout (s)', fOpens: 'Opens at (local time, empty = now)', fCloses: 'Closes at (empty = never)',
      slots: 'Slots', slotId: 'Slot id', slotLabel: 'Label', slotCap: 'Capacity', addRow: 'Add slot row', remove: 'Remove',
      admission: 'Admission', create: 'Create', activities: 'Activities', none: 'No activities yet.',
      created: 'Created {id}.', live: 'live', offline: 'not connected', reconnecting: 'reconnecting…',
      rate_per_sec: 'Admissions per second', max_active: 'Max active tokens', token_ttl_secs: 'Token life (s)',
      queue_capacity: 'Queue capacity', reconnect_grace_secs: 'Reconnect grace (s)', wait_for_returns: 'Wait for returns',
      pause: 'Pause', resume: 'Resume', close: 'Close for good', confirmClose: 'Close {id} for good? This cannot be undone.',
      addStock: 'Add stock', add: 'Add', addSlots: 'Add or raise slots', apply: 'Apply', changeAdmission: 'Change admission live',
      nothingChanged: 'Nothing changed.', done: 'Done.', waitingPage: 'waiting page', badKey: 'The key was refused.',
      capacity: 'capacity', available: 'available', held: 'held', sold: 'sold', paid: 'paid', cancelled: 'cancelled',
      waiting: 'waiting', admitted_total: 'admitted', active_tokens: 'active tokens', pending_orders: 'pending orders',
      expired_total: 'expired tokens', c_waiting: 'waiting', c_adm: 'admissions/s', c_held: 'held', c_sold: 'sold',
      c_available: 'available', c_orders: 'orders/s', c_backlog: 'outbox backlog',
      phase_scheduled: 'scheduled', phase_open: 'open', phase_paused: 'paused', phase_sold_out: 'sold out', phase_closed: 'closed',
      langButton: '中文', langLabel: 'Switch to Chinese', reportPage: 'report',
      payTitle: 'Payments', payMode: 'Payment mode', payActivity: 'Activity',
      mode_simulated: 'simulated (buyers pay themselves; development)', mode_external: 'external (confirmed by the shop)',
    },
    zh: {
      operator: '运营后台', keyTitle: '管理密钥', keyLabel: '管理 API 密钥', connect: '连接', forget: '清除',
      createTitle: '创建活动', fId: '编号（a-z、0-9、-）', fName: '名称', fKind: '类型', kindSale: '抢购',
      kindAppt: '预约放号', fStock: '库存', fPrice: '价格', fLimit: '每人限购',
      fPayTimeout: '付款时限（秒）', fOpens: '开始时间（本地时间，留空 = 立即）', fCloses: '结束时间（留空 = 不结束）',
      slots: '时段', slotId: '时段编号', slotLabel: '名称', slotCap: '容量', addRow: '添加时段', remove: '删除',
      admission: '放行设置', create: '创建', activities: '活动', none: '暂无活动。',
      created: '已创建 {id}。', live: '实时', offline: '未连接', reconnecting: '重连中…',
      rate_per_sec: '每秒放行人数', max_active: '最多有效令牌', token_ttl_secs: '令牌有效期（秒）',
      queue_capacity: '队列容量', reconnect_grace_secs: '断线保留（秒）', wait_for_returns: '等待退回名额',
      pause: '暂停', resume: '恢复', close: '永久结束', confirmClose: '确定永久结束 {id}？此操作不可撤销。',
      addStock: '增加库存', add: '增加', addSlots: '增加或扩容时段', apply: '应用', changeAdmission: '实时修改放行设置',
      nothingChanged: '没有修改。', done: '完成。', waitingPage: '排队页面', badKey: '密钥被拒绝。',
      capacity: '总量', available: '可售', held: '占用', sold: '已售', paid: '已付款', cancelled: '已取消',
      waiting: '排队', admitted_total: '已放行', active_tokens: '有效令牌', pending_orders: '待付款订单',
      expired_total: '过期令牌', c_waiting: '排队人数', c_adm: '放行/秒', c_held: '占用', c_sold: '已售',
      c_available: '可售', c_orders: '订单/秒', c_backlog: '待同步订单',
      phase_scheduled: '未开始', phase_open: '进行中', phase_paused: '已暂停', phase_sold_out: '已售罄', phase_closed: '已结束',
      langButton: 'English', langLabel: '切换到英文', reportPage: '复盘报告',
      payTitle: '付款', payMode: '付款方式', payActivity: '活动',
      mode_simulated: '模拟（买家自行付款；开发用）', mode_external: '外部（由商店确认）',
    },
  };
  let lang = localStorage.getItem('sluice:lang') || ((navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en');
  const t = (k, v) => String((I18N[lang] && I18N[lang][k]) || I18N.en[k] || k).replace(/\{(\w+)\}/g, (_, n) => (v && n in v ? v[n] : ''));
  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else if (v !== false && v != null) e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of kids || []) if (c) e.appendChild(c);
    return e;
  }
  const ADM_NUM = ['rate_per_sec', 'max_active', 'token_ttl_secs', 'queue_capacity', 'reconnect_grace_secs'];
  const COUNTERS = ['capacity', 'available', 'held', 'sold', 'paid', 'cancelled', 'waiting', 'admitted_total', 'active_tokens', 'pending_orders', 'expired_total'];
  const SERIES = [['c_waiting', 'waiting', '#0b5fff'], ['c_adm', 'adm', '#1e8e3e'], ['c_held', 'held', '#a05a00'], ['c_sold', 'sold', '#7b1fa2'],
    ['c_available', 'available', '#00838f'], ['c_orders', 'orders', '#c2185b'], ['c_backlog', 'backlog', '#5b6470']];
  const HISTORY = 120;
  let key = sessionStorage.getItem('sluice:adminKey') || '';
  let es = null, esRetry = null, payMode = null;
  const views = new Map(), hist = new Map(), prev = new Map();

  // ---------- HTTP ----------
  async function api(path, method, body) {
    const headers = { Authorization: 'Bearer ' + key, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try { res = await fetch(path, { method: method || 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) }); } catch (e) { throw Object.assign(new Error(e.message), { status: 0 }); }
    let data = null;
    try { data = await res.json(); } catch (_) { /* no body */ }
    if (!res.ok) {
      const err = (data && data.error) || {};
      throw Object.assign(new Error(err.message || res.status + ' ' + res.statusText), { status: res.status, code: err.code });
    }
    return data;
  }
  const adminPath = (id, suffix) => '/api/admin/activities/' + encodeURIComponent(id) + (suffix || '');
  function flash(box, msg, ok) { box.textContent = msg || ''; box.className = 'msg ' + (ok ? 'success' : 'error'); box.hidden = !msg; }

  // ---------- key ----------
  async function connectWithKey(k) {
    key = k;
    flash($('key-error'), '');
    try {
      const r = await api('/api/admin/activities');
      sessionStorage.setItem('sluice:adminKey', key);
      $('create').hidden = false; $('list-section').hidden = false; $('payments').hidden = false;
      (r.activities || []).forEach(upsert);
      $('empty').hidden = views.size > 0;
      openEvents();
    } catch (e) {
      flash($('key-error'), e.status === 401 ? t('badKey') + ' ' + e.message : e.message);
      setLive('offline');
    }
  }
  function forget() {
    sessionStorage.removeItem('sluice:adminKey');
    key = ''; $('admin-key').value = '';
    if (es) es.close();
    es = null;
    $('create').hidden = true; $('list-section').hidden = true; $('payments').hidden = true;
    setLive('offline');
  }
  function setLive(state) {
    $('live-dot').className = 'live' + (state === 'live' ? ' on' : '');
    $('live-text').textContent = t(state);
  }

  // ---------- live events ----------
  // The key never goes in a URL: each stream opens with a single-use ticket (POST,
  // key in the header), so a dropped stream reopens with a new one.
  async function openEvents() {
    if (es) es.close();
    es = null;
    clearTimeout(esRetry);
    let ticket;
    try {
      ticket = (await api('/api/admin/events/ticket', 'POST')).ticket;
    } catch (e) {
      if (e.status === 401 || e.status === 403) { flash($('key-error'), t('badKey') + ' ' + e.message); setLive('offline'); } else { setLive('reconnecting'); esRetry = setTimeout(openEvents, 3000); }
      return;
    }
    es = new EventSource('/api/admin/events?ticket=' + encodeURIComponent(ticket));
    es.onmessage = (e) => {
      setLive('live');
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      for (const v of m.activities || []) { sample(v, m.ts_ms || Date.now(), m.outbox_backlog || 0); upsert(v); }
      $('empty').hidden = views.size > 0;
      if (m.payment_mode) { payMode = m.payment_mode; renderPayments(); }
    };
    es.onerror = () => {
      setLive('reconnecting');
      if (es) es.close();
      es = null;
      esRetry = setTimeout(openEvents, 3000);
    };
  }
  // ---------- payments ----------
  function renderPayments() {
    $('pay-mode').textContent = payMode ? t('mode_' + payMode) : '–';
    const tbody = $('pay-rows');
    tbody.textContent = '';
    for (const v of views.values()) {
      tbody.appendChild(el('tr', { 'data-activity': v.id }, [v.name, v.pending_orders, v.paid, v.cancelled].map((x) => el('td', { text: String(x != null ? x : '–') }))));
    }
  }
  function sample(v, ts, backlog) {
    const p = prev.get(v.id);
    const orders = v.orders_total != null ? v.orders_total : (v.sold || 0) + (v.cancelled || 0);
    let adm = 0, ord = 0;
    if (p && ts > p.ts) {
      const dt = (ts - p.ts) / 1000;
      adm = Math.max(0, (v.admitted_total - p.admitted) / dt);
      ord = Math.max(0, (orders - p.orders) / dt);
    }
    prev.set(v.id, { ts, admitted: v.admitted_total || 0, orders });
    const h = hist.get(v.id) || [];
    h.push({ ts, waiting: v.waiting, adm, held: v.held, sold: v.sold, available: v.available, orders: ord, backlog });
    while (h.length > HISTORY) h.shift();
    hist.set(v.id, h);
  }

  // ---------- cards ----------
  function upsert(v) {
    views.set(v.id, v);
    let card = document.getElementById('act-' + v.id);
    if (!card) { card = buildCard(v); $('activities').appendChild(card); }
    card.querySelector('h3 .name').textContent = v.name;
    const ph = card.querySelector('.badge');
    ph.textContent = t('phase_' + v.phase); ph.className = 'badge ' + v.phase;
    for (const c of COUNTERS) {
      const dd = card.querySelector('[data-counter="' + c + '"]');
      if (dd) { dd.textContent = v[c] != null ? v[c] : '–'; dd.parentElement.hidden = v[c] == null; }
    }
    card.querySelector('.pause').hidden = v.phase !== 'open' && v.phase !== 'scheduled';
    card.querySelector('.resume').hidden = v.phase !== 'paused';
    card.querySelector('.close').disabled = v.phase === 'closed';
    if (v.kind === 'appointment') renderSlotTable(card.querySelector('.slot-table tbody'), v.slots || []);
    drawChart(card.querySelector('canvas'), hist.get(v.id) || []);
    renderPayments();
  }
  function renderSlotTable(tbody, slots) {
    tbody.textContent = '';
    for (const s of slots) {
      tbody.appendChild(el('tr', {}, ['id', 'label', 'capacity', 'available', 'held', 'sold'].map((f) => el('td', { text: String(s[f] != null ? s[f] : '') }))));
    }
  }
  function slotRow(tbody) {
    const tr = el('tr', {}, [
      el('td', {}, [el('input', { 'aria-label': t('slotId'), class: 's-id', placeholder: '0900' })]),
      el('td', {}, [el('input', { 'aria-label': t('slotLabel'), class: 's-label', placeholder: '09:00-09:30' })]),
      el('td', {}, [el('input', { 'aria-label': t('slotCap'), class: 's-cap', type: 'number', min: '1', value: '1' })]),
    ]);
    tr.appendChild(el('td', {}, [el('button', { type: 'button', class: 'danger small', text: '×', 'aria-label': t('remove'), onclick: () => tr.remove() })]));
    tbody.appendChild(tr);
    return tr;
  }
  function readSlots(tbody) {
    return [...tbody.querySelectorAll('tr')].map((tr) => ({
      id: tr.querySelector('.s-id').value.trim(), label: tr.querySelector('.s-label').value.trim(), capacity: Number(tr.querySelector('.s-cap').value),
    })).filter((s) => s.id || s.label);
  }
  function buildCard(v) {
    const err = el('div', { class: 'msg error', role: 'alert', hidden: true });
    const act = (suffix, method, body) => api(adminPath(v.id, suffix), method || 'POST', body).then((nv) => { upsert(nv); flash(err, t('done'), true); return nv; }, (e) => { flash(err, e.message); throw e; });
    const facts = el('dl', { class: 'facts' }, COUNTERS.map((c) => el('div', {}, [el('dt', { text: t(c), 'data-i18n': c }), el('dd', { 'data-counter': c })])));
    const canvas = el('canvas', { 'data-activity': v.id, role: 'img', 'aria-label': v.name + ': ' + SERIES.map((s) => t(s[0])).join(', ') });
    const controls = el('div', { class: 'actions' }, [
      el('button', { type: 'button', class: 'secondary pause', text: t('pause'), 'data-i18n': 'pause', onclick: () => act('/pause').catch(() => {}) }),
      el('button', { type: 'button', class: 'secondary resume', text: t('resume'), 'data-i18n': 'resume', onclick: () => act('/resume').catch(() => {}) }),
      el('button', { type: 'button', class: 'danger close', text: t('close'), 'data-i18n': 'close', onclick: () => { if (confirm(t('confirmClose', { id: v.id }))) act('/close').catch(() => {}); } }),
    ]);
    let more;
    if (v.kind === 'sale') {
      const n = el('input', { type: 'number', min: '1', value: '10', id: 'stock-' + v.id });
      more = el('form', { class: 'row', novalidate: true, onsubmit: (e) => { e.preventDefault(); act('/stock', 'POST', { add: Number(n.value) }).catch(() => {}); } }, [
        el('div', {}, [el('label', { for: n.id, text: t('addStock'), 'data-i18n': 'addStock' }), n]),
        el('button', { type: 'submit', text: t('add'), 'data-i18n': 'add' })]);
    } else {
      const tb = el('tbody');
      slotRow(tb);
      more = el('div', {}, [
        el('table', {}, [tb]),
        el('div', { class: 'actions' }, [
          el('button', { type: 'button', class: 'secondary small', text: t('addRow'), 'data-i18n': 'addRow', onclick: () => slotRow(tb) }),
          el('button', { type: 'button', class: 'small', text: t('add'), 'data-i18n': 'add', onclick: () => act('/slots', 'POST', { slots: readSlots(tb) }).catch(() => {}) })]),
        el('table', { class: 'slot-table' }, [
          el('thead', {}, [el('tr', {}, ['slotId', 'slotLabel', 'capacity', 'available', 'held', 'sold'].map((k) => el('th', { text: t(k), 'data-i18n': k })))]),
          el('tbody')])]);
    }
    const admInputs = {};
    const admFields = ADM_NUM.map((f) => {
      const i = el('input', { type: 'number', min: '1', id: 'adm-' + f + '-' + v.id, value: v.admission ? v.admission[f] : '' });
      admInputs[f] = i;
      return el('div', {}, [el('label', { for: i.id, text: t(f), 'data-i18n': f }), i]);
    });
    const wfr = el('input', { type: 'checkbox', id: 'adm-wfr-' + v.id });
    wfr.checked = !!(v.admission && v.admission.wait_for_returns);
    admFields.push(el('div', {}, [el('label', { class: 'inline', for: wfr.id }, [wfr, el('span', { text: t('wait_for_returns'), 'data-i18n': 'wait_for_returns' })])]));
    const admForm = el('form', { novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      const cur = (views.get(v.id) || v).admission || {}, patch = {};
      for (const f of ADM_NUM) if (admInputs[f].value !== '' && Number(admInputs[f].value) !== cur[f]) patch[f] = Number(admInputs[f].value);
      if (wfr.checked !== !!cur.wait_for_returns) patch.wait_for_returns = wfr.checked;
      if (!Object.keys(patch).length) { flash(err, t('nothingChanged'), true); return; }
      act('/admission', 'PATCH', patch).catch(() => {});
    } }, [el('div', { class: 'row' }, admFields), el('div', { class: 'actions' }, [el('button', { type: 'submit', text: t('apply'), 'data-i18n': 'apply' })])]);
    return el('article', { class: 'card activity-card', id: 'act-' + v.id, 'data-id': v.id }, [
      el('h3', {}, [el('span', { class: 'name' }), document.createTextNode(' '), el('span', { class: 'badge' })]),
      el('p', { class: 'small muted' }, [document.createTextNode(v.id + ' · ' + v.kind + ' · '), el('a', { href: '/a/' + encodeURIComponent(v.id), target: '_blank', rel: 'noopener', text: t('waitingPage'), 'data-i18n': 'waitingPage' }),
        document.createTextNode(' · '), el('a', { href: '/admin/report?id=' + encodeURIComponent(v.id), class: 'report-link', text: t('reportPage'), 'data-i18n': 'reportPage' })]),
      facts, canvas, controls, err,
      el('details', {}, [el('summary', { text: v.kind === 'sale' ? t('addStock') : t('addSlots'), 'data-i18n': v.kind === 'sale' ? 'addStock' : 'addSlots' }), more]),
      el('details', {}, [el('summary', { text: t('changeAdmission'), 'data-i18n': 'changeAdmission' }), admForm]),
    ]);
  }

  // ---------- chart: one canvas per activity, a small panel per series ----------
  function drawChart(canvas, h) {
    const dpr = window.devicePixelRatio || 1, W = canvas.clientWidth || 500, H = canvas.clientHeight || 260;
    if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) { canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr); }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const cols = W < 420 ? 2 : W < 700 ? 3 : 4, rows = Math.ceil(SERIES.length / cols);
    const pw = W / cols, ph = H / rows, pad = 6, now = h.length ? h[h.length - 1].ts : Date.now();
    const span = Math.min(HISTORY, Math.max(30, h.length ? (now - h[0].ts) / 1000 : 0)) * 1000; // seconds shown, 30..120
    SERIES.forEach(([label, field, color], i) => {
      const x0 = (i % cols) * pw + pad, y0 = Math.floor(i / cols) * ph + pad, w = pw - 2 * pad, hh = ph - 2 * pad;
      const vals = h.map((p) => p[field] || 0), last = vals.length ? vals[vals.length - 1] : 0;
      const max = Math.max(1, ...vals);
      g.fillStyle = '#5b6470'; g.font = '11px system-ui, sans-serif'; g.textBaseline = 'top';
      g.fillText(t(label), x0, y0);
      g.fillStyle = '#1b1f24'; g.font = 'bold 13px system-ui, sans-serif';
      g.fillText(fmt(last), x0, y0 + 13);
      const top = y0 + 30, bottom = y0 + hh;
      g.strokeStyle = '#d9dde3'; g.lineWidth = 1;
      g.beginPath(); g.moveTo(x0, bottom + 0.5); g.lineTo(x0 + w, bottom + 0.5); g.stroke();
      g.fillStyle = '#8a929c'; g.font = '10px system-ui, sans-serif'; g.textAlign = 'right';
      g.fillText(fmt(max), x0 + w, y0 + 2); g.textAlign = 'left';
      if (vals.length < 2) return;
      g.strokeStyle = color; g.lineWidth = 1.8; g.beginPath();
      h.forEach((p, j) => {
        const x = x0 + w - ((now - p.ts) / span) * w, y = bottom - (vals[j] / max) * (bottom - top);
        if (j === 0) g.moveTo(Math.max(x0, x), y); else g.lineTo(Math.max(x0, x), y);
      });
      g.stroke();
    });
  }
  const fmt = (n) => (Number.isInteger(n) ? String(n) : n < 10 ? n.toFixed(1) : String(Math.round(n)));
  window.addEventListener('resize', () => views.forEach((v) => drawChart(document.querySelector('canvas[data-activity="' + CSS.escape(v.id) + '"]'), hist.get(v.id) || [])));

  // ---------- create form ----------
  function buildAdmissionInputs() {
    const box = $('c-admission');
    for (const f of ADM_NUM) box.appendChild(el('div', {}, [el('label', { for: 'c-' + f, text: t(f), 'data-i18n': f }), el('input', { id: 'c-' + f, type: 'number', min: '1' })]));
    box.appendChild(el('div', {}, [el('label', { class: 'inline', for: 'c-wfr' }, [el('input', { id: 'c-wfr', type: 'checkbox' }), el('span', { text: t('wait_for_returns'), 'data-i18n': 'wait_for_returns' })])]));
    const defaults = { rate_per_sec: 50, max_active: 200, token_ttl_secs: 120, queue_capacity: 1000000, reconnect_grace_secs: 60 };
    for (const f of ADM_NUM) $('c-' + f).placeholder = String(defaults[f]);
  }
  const isoOrNull = (v) => (v ? new Date(v).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined);
  async function create(e) {
    e.preventDefault();
    flash($('create-error'), ''); $('create-ok').hidden = true;
    const kind = $('c-kind').value;
    const body = { id: $('c-id').value.trim(), name: $('c-name').value.trim(), kind };
    if (kind === 'sale') body.stock = Number($('c-stock').value); else body.slots = readSlots($('c-slots'));
    if ($('c-price').value !== '') body.price_cents = Math.round(Number($('c-price').value) * 100);
    if ($('c-limit').value !== '') body.per_user_limit = Number($('c-limit').value);
    if ($('c-paytimeout').value !== '') body.payment_timeout_secs = Number($('c-paytimeout').value);
    const opens = isoOrNull($('c-opens').value), closes = isoOrNull($('c-closes').value);
    if (opens) body.opens_at = opens;
    if (closes) body.closes_at = closes;
    const adm = {};
    for (const f of ADM_NUM) if ($('c-' + f).value !== '') adm[f] = Number($('c-' + f).value);
    if ($('c-wfr').checked) adm.wait_for_returns = true;
    if (Object.keys(adm).length) body.admission = adm;
    $('create-submit').disabled = true;
    try {
      const v = await api('/api/admin/activities', 'POST', body);
      upsert(v); $('empty').hidden = true;
      flash($('create-ok'), t('created', { id: v.id }), true);
      $('c-id').value = ''; $('c-name').value = '';
    } catch (err) {
      flash($('create-error'), err.message);
    } finally { $('create-submit').disabled = false; }
  }
  function syncKind() {
    const appt = $('c-kind').value === 'appointment';
    $('c-slots-wrap').hidden = !appt; $('c-stock-wrap').hidden = appt;
    if (appt && !$('c-slots').children.length) slotRow($('c-slots'));
  }

  // ---------- language ----------
  function applyLang() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.querySelectorAll('[data-i18n]').forEach((n) => { n.textContent = t(n.dataset.i18n); });
    $('lang-toggle').textContent = t('langButton');
    $('lang-toggle').setAttribute('aria-label', t('langLabel'));
    setLive(es ? 'live' : 'offline');
    views.forEach(upsert);
  }

  $('key-form').addEventListener('submit', (e) => { e.preventDefault(); connectWithKey($('admin-key').value.trim()); });
  $('key-forget').addEventListener('click', forget);
  $('create-form').addEventListener('submit', create);
  $('c-kind').addEventListener('change', syncKind);
  $('c-add-slot').addEventListener('click', () => slotRow($('c-slots')).querySelector('input').focus());
  $('lang-toggle').addEventListener('click', () => { lang = lang === 'zh' ? 'en' : 'zh'; localStorage.setItem('sluice:lang', lang); applyLang(); });
  buildAdmissionInputs();
  syncKind();
  applyLang();
  if (key) { $('admin-key').value = key; connectWithKey(key); }
})();
