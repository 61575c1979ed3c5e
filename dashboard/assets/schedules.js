// The dashboard's schedules section: the selected queue's periodic
// schedules, read-only, from api/schedules. It stands apart from app.js:
// it follows the queue app.js shows (#q-name) and reads again every 5 s
// while the queue section is shown. Everything from the server goes into
// the page as text, never as markup.
'use strict';

(function () {
  const box = document.getElementById('schedules');
  const section = document.getElementById('queue-section');
  const name = document.getElementById('q-name');
  if (!box || !section || !name) return;
  let shown = null; // the queue whose schedules are drawn
  let asked = 0; // the number of the last request, so that a late answer is dropped

  function cell(text, cls) {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function render(queue, body) {
    box.replaceChildren();
    if (!body.schedules.length) {
      const span = document.createElement('span');
      span.setAttribute('data-schedules', '0');
      span.textContent = 'No schedule.';
      box.append(span);
      return;
    }
    const t = document.createElement('table');
    t.setAttribute('data-schedules', String(body.schedules.length));
    const head = document.createElement('tr');
    for (const h of ['Schedule', 'When', 'Zone', 'Next tick', 'Paused', 'Message']) {
      const th = document.createElement('th');
      th.textContent = h;
      head.append(th);
    }
    const thead = document.createElement('thead');
    thead.append(head);
    const tb = document.createElement('tbody');
    for (const s of body.schedules) {
      const tr = document.createElement('tr');
      tr.setAttribute('data-schedule', s.name);
      tr.append(cell(s.name, 'id'), cell(s.cron ? s.cron : 'every ' + s.every), cell(s.zone || '–'),
        cell(s.next_ms ? new Date(s.next_ms).toISOString().replace('.000Z', 'Z') : '–'),
        cell(s.paused ? 'paused' : 'no'), cell(s.size + ' B', 'num'));
      tb.append(tr);
    }
    t.append(thead, tb);
    box.append(t);
  }

  async function load() {
    if (section.hidden) return;
    const queue = name.textContent;
    if (!queue) return;
    const n = ++asked;
    if (queue !== shown) box.replaceChildren();
    try {
      const r = await fetch('api/schedules?queue=' + encodeURIComponent(queue), { cache: 'no-store', credentials: 'same-origin' });
      const body = await r.json().catch(() => null);
      if (n !== asked) return;
      if (!r.ok) throw new Error((body && body.error) || (r.status + ' ' + r.statusText));
      shown = queue;
      render(queue, body);
    } catch (e) {
      if (n === asked) box.textContent = 'schedules: ' + e.message;
    }
  }

  new MutationObserver(load).observe(name, { childList: true, characterData: true, subtree: true });
  setInterval(load, 5000);
  load();
})();
