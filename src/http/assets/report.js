// sluice: the post-event report page. Reads GET /api/admin/activities/{id}/report with
// the dashboard's admin key and draws its charts as inline SVG (no library, no CDN).
(function () {
  'use strict';
  const I18N = {
    en: {
      title: 'post-event report', back: 'Dashboard', keyLabel: 'Admin API key', show: 'Show report',
      csv: 'Download per-minute CSV', waitingOverTime: 'People waiting over time',
      perMinute: 'Admissions and orders per minute', waitDist: 'Wait before admission',
      gaveUp: 'Where people gave up', joins: 'Joins', peak_waiting: 'Peak waiting', admitted: 'Admitted',
      orders: 'Orders', paid: 'Paid', cancelled: 'Cancelled', expired_tokens: 'Expired tokens',
      abandoned: 'Gave up', p50: 'Wait p50', p90: 'Wait p90', p99: 'Wait p99', max: 'Longest wait',
      sold_out_after_secs: 'Sold out after', never: 'never', none: 'nothing yet',
      seconds: '{n} s', minutes: 'minute', people: 'people', prequeue: 'pre-queue',
      upTo: '≤ {n}', further: 'further back', position: 'position in line',
      noId: 'Open this page from the dashboard (no activity id).', langButton: '中文', langLabel: 'Switch to Chinese',
    },
    zh: {
      title: '活动复盘报告', back: '控制台', keyLabel: '管理员 API 密钥', show: '查看报告',
      csv: '下载每分钟 CSV', waitingOverTime: '排队人数随时间变化',
      perMinute: '每分钟放行与下单', waitDist: '放行前的等待时长',
      gaveUp: '放弃排队的位置', joins: '加入人次', peak_waiting: '排队峰值', admitted: '已放行',
      orders: '订单', paid: '已支付', cancelled: '已取消', expired_tokens: '过期令牌',
      abandoned: '放弃', p50: '等待 p50', p90: '等待 p90', p99: '等待 p99', max: '最长等待',
      sold_out_after_secs: '售罄用时', never: '未售罄', none: '暂无数据',
      seconds: '{n} 秒', minutes: '分钟', people: '人', prequeue: '预排队',
      upTo: '≤ {n}', further: '更靠后', position: '队列位置',
      noId: '请从控制台打开此页面（缺少活动 id）。', langButton: 'English', langLabel: '切换到英文',
    },
  };
  let lang = localStorage.getItem('sluice:lang') || ((navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en');
  const t = (k, v) => String((I18N[lang] && I18N[lang][k]) || I18N.en[k] || k).replace(/\{(\w+)\}/g, (_, n) => (v && n in v ? v[n] : ''));
  const $ = (id) => document.getElementById(id);
  const id = new URLSearchParams(location.search).get('id') || '';
  let key = sessionStorage.getItem('sluice:adminKey') || '';
  let report = null;
  const SVG = 'http://www.w3.org/2000/svg';

  function svgEl(tag, attrs, text) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function frame(label) {
    const s = svgEl('svg', { viewBox: '0 0 480 220', role: 'img', 'aria-label': label });
    s.appendChild(svgEl('title', {}, label));
    return s;
  }
  const W = 480, H = 220, L = 44, R = 10, TOP = 10, B = 34;
  function axes(s, maxY, xLabels) {
    s.appendChild(svgEl('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
    s.appendChild(svgEl('line', { class: 'axis', x1: L, y1: TOP, x2: L, y2: H - B }));
    for (const f of maxY < 4 ? [0, 1] : [0, 0.5, 1]) {
      const y = H - B - f * (H - B - TOP);
      s.appendChild(svgEl('text', { x: L - 4, y: y + 4, 'text-anchor': 'end' }, String(Math.round(maxY * f))));
    }
    const step = Math.max(1, Math.ceil(xLabels.length / 6));
    xLabels.forEach((lab, i) => {
      if (i % step) return;
      const x = L + (i + 0.5) * (W - L - R) / xLabels.length;
      s.appendChild(svgEl('text', { x, y: H - B + 14, 'text-anchor': 'middle' }, lab));
    });
  }
  const yOf = (v, maxY) => H - B - (maxY ? v / maxY : 0) * (H - B - TOP);
  function empty(box) { box.replaceChildren(Object.assign(document.createElement('p'), { className: 'muted', textContent: t('none') })); }
  function legend(box, items) {
    const p = document.createElement('p');
    p.className = 'legend';
    for (const [label, color] of items) {
      const s = document.createElement('span');
      s.style.setProperty('--c', color);
      s.textContent = label;
      p.appendChild(s);
    }
    box.appendChild(p);
  }
  /// Bars for each series side by side in every x slot.
  function bars(box, label, xLabels, series) {
    if (!xLabels.length) return empty(box);
    const s = frame(label);
    const maxY = Math.max(1, ...series.flatMap((x) => x.values));
    axes(s, maxY, xLabels);
    const slot = (W - L - R) / xLabels.length;
    const bw = Math.max(1, (slot * 0.8) / series.length);
    series.forEach((ser, k) => ser.values.forEach((v, i) => {
      const x = L + i * slot + slot * 0.1 + k * bw;
      const y = yOf(v, maxY);
      const r = svgEl('rect', { x, y, width: bw, height: H - B - y, fill: ser.color, 'data-value': v });
      r.appendChild(svgEl('title', {}, xLabels[i] + ' · ' + ser.name + ': ' + v));
      s.appendChild(r);
    }));
    box.replaceChildren(s);
    if (series.length > 1) legend(box, series.map((x) => [x.name, x.color]));
  }
  function line(box, label, xLabels, values, color) {
    if (!xLabels.length) return empty(box);
    const s = frame(label);
    const maxY = Math.max(1, ...values);
    axes(s, maxY, xLabels);
    const slot = (W - L - R) / xLabels.length;
    const pts = values.map((v, i) => (L + (i + 0.5) * slot).toFixed(1) + ',' + yOf(v, maxY).toFixed(1));
    s.appendChild(svgEl('polyline', { points: pts.join(' '), fill: 'none', stroke: color, 'stroke-width': 2 }));
    values.forEach((v, i) => {
      const c = svgEl('circle', { cx: L + (i + 0.5) * slot, cy: yOf(v, maxY), r: 3, fill: color, 'data-value': v });
      c.appendChild(svgEl('title', {}, xLabels[i] + ': ' + v));
      s.appendChild(c);
    });
    box.replaceChildren(s);
  }
  const hhmm = (iso) => new Date(iso).toLocaleTimeString(lang === 'zh' ? 'zh-CN' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
  const secs = (v) => (v === null || v === undefined ? t('never') : t('seconds', { n: v }));

  /// The histogram's buckets grouped into at most 12 bins of equal width.
  function waitBins(hist) {
    if (!hist.length) return { labels: [], values: [] };
    const max = hist[hist.length - 1][0];
    const n = Math.min(12, hist.length);
    const width = Math.max(0.1, max / n);
    const values = new Array(n).fill(0);
    for (const [s, c] of hist) values[Math.min(n - 1, Math.floor(s / width))] += c;
    const labels = values.map((_, i) => '≤' + ((i + 1) * width).toFixed(width < 1 ? 1 : 0) + 's');
    return { labels, values };
  }

  function render() {
    if (!report) return;
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.querySelectorAll('[data-i18n]').forEach((n) => { n.textContent = t(n.dataset.i18n); });
    $('lang-toggle').textContent = t('langButton');
    $('lang-toggle').setAttribute('aria-label', t('langLabel'));
    $('activity-title').textContent = id;
    const r = report;
    const facts = [
      ['joins', r.joins], ['peak_waiting', r.peak_waiting], ['admitted', r.admitted], ['orders', r.orders],
      ['paid', r.paid], ['cancelled', r.cancelled], ['expired_tokens', r.expired_tokens], ['abandoned', r.abandoned],
      ['p50', secs(r.wait_secs.p50)], ['p90', secs(r.wait_secs.p90)], ['p99', secs(r.wait_secs.p99)],
      ['max', secs(r.wait_secs.max)], ['sold_out_after_secs', secs(r.sold_out_after_secs)],
    ];
    $('facts').replaceChildren(...facts.map(([k, v]) => {
      const d = document.createElement('div');
      d.append(Object.assign(document.createElement('dt'), { textContent: t(k) }),
        Object.assign(document.createElement('dd'), { textContent: String(v), id: 'f-' + k }));
      return d;
    }));
    const minutes = r.per_minute.map((m) => hhmm(m.minute));
    line($('c-waiting'), t('waitingOverTime'), minutes, r.per_minute.map((m) => m.waiting), '#0b5fff');
    bars($('c-flow'), t('perMinute'), minutes, [
      { name: t('admitted'), color: '#137333', values: r.per_minute.map((m) => m.admitted) },
      { name: t('orders'), color: '#a05a00', values: r.per_minute.map((m) => m.orders) },
    ]);
    const w = waitBins(r.wait_histogram);
    bars($('c-wait'), t('waitDist'), w.labels, [{ name: t('admitted'), color: '#0b5fff', values: w.values }]);
    const g = r.gave_up;
    bars($('c-gaveup'), t('gaveUp'),
      [t('prequeue')].concat(g.positions.map((p) => (p.up_to === null ? t('further') : t('upTo', { n: p.up_to })))),
      [{ name: t('abandoned'), color: '#b3261e', values: [g.prequeue].concat(g.positions.map((p) => p.count)) }]);
    $('summary').hidden = false;
    $('charts').hidden = false;
  }

  async function load() {
    $('error').hidden = true;
    if (!id) { $('error').textContent = t('noId'); $('error').hidden = false; return; }
    if (!key) { $('key-card').hidden = false; return; }
    const res = await fetch('/api/admin/activities/' + encodeURIComponent(id) + '/report', { headers: { Authorization: 'Bearer ' + key } });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      $('error').textContent = (body && body.error && body.error.message) || ('HTTP ' + res.status);
      $('error').hidden = false;
      if (res.status === 401 || res.status === 403) $('key-card').hidden = false;
      return;
    }
    report = body;
    $('key-card').hidden = true;
    render();
    document.body.dataset.ready = 'true';
  }

  async function downloadCsv() {
    const res = await fetch('/api/admin/activities/' + encodeURIComponent(id) + '/report?format=csv', { headers: { Authorization: 'Bearer ' + key } });
    const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(await res.blob()), download: id + '-per-minute.csv' });
    a.click();
    URL.revokeObjectURL(a.href);
  }

  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    key = $('admin-key').value.trim();
    sessionStorage.setItem('sluice:adminKey', key);
    load();
  });
  $('csv').addEventListener('click', () => { downloadCsv().catch(() => {}); });
  $('lang-toggle').addEventListener('click', () => { lang = lang === 'zh' ? 'en' : 'zh'; localStorage.setItem('sluice:lang', lang); render(); });
  load();
})();
