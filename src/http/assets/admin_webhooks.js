// sluice operator dashboard, webhook health: every receiver with its backlog, last
// success and last error (GET /api/admin/webhooks), refreshed every 3 s while the
// dashboard holds an admin key. Kept apart from admin.js.
'use strict';
(function () {
  const TEXT = {
    en: { url: 'Receiver', events: 'Events', pending: 'Pending', delivered: 'Delivered', failed: 'Failed tries',
      lastOk: 'Last success', lastError: 'Last error', never: 'never', none: 'No webhooks registered.' },
    zh: { url: '接收地址', events: '事件', pending: '待发送', delivered: '已送达', failed: '失败次数',
      lastOk: '最近成功', lastError: '最近错误', never: '无', none: '尚未注册 Webhook。' },
  };
  const t = (k) => (TEXT[(document.documentElement.lang || 'en').startsWith('zh') ? 'zh' : 'en'] || TEXT.en)[k];
  const section = document.getElementById('webhooks-section');
  const body = document.getElementById('webhooks-body');
  const empty = document.getElementById('webhooks-empty');
  const table = document.getElementById('webhooks-table');
  const when = (s) => (s ? new Date(s).toLocaleString() : t('never'));

  function cell(row, text) {
    const td = document.createElement('td');
    td.textContent = text;
    row.appendChild(td);
  }

  function render(hooks) {
    table.querySelectorAll('th[data-k]').forEach((th) => { th.textContent = t(th.dataset.k); });
    empty.textContent = t('none');
    empty.hidden = hooks.length > 0;
    table.hidden = hooks.length === 0;
    body.replaceChildren();
    for (const h of hooks) {
      const row = document.createElement('tr');
      const health = h.health || {};
      cell(row, h.url);
      cell(row, (h.events || []).join(', '));
      cell(row, String(health.pending ?? 0));
      cell(row, String(health.delivered ?? 0));
      cell(row, String(health.failed_attempts ?? 0));
      cell(row, when(health.last_success));
      cell(row, health.last_error ? when(health.last_error_at) + ': ' + health.last_error : t('never'));
      body.appendChild(row);
    }
  }

  async function refresh() {
    const key = sessionStorage.getItem('sluice:adminKey');
    if (!key) { section.hidden = true; return; }
    try {
      const res = await fetch('/api/admin/webhooks', { headers: { Authorization: 'Bearer ' + key, Accept: 'application/json' } });
      if (!res.ok) { section.hidden = true; return; }
      render((await res.json()).webhooks || []);
      section.hidden = false;
    } catch (_) { /* offline: keep the last table */ }
  }

  refresh();
  setInterval(refresh, 3000);
})();
