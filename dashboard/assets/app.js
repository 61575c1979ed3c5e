// The mq dashboard's page. Everything from the server (queue names,
// message ids, contents, errors) goes into the page as text
// (textContent, setAttribute), never as markup.
'use strict';

(function () {
  const SERIES = ['queued', 'locked', 'backoff', 'done', 'dead'];
  const SVGNS = 'http://www.w3.org/2000/svg';

  const state = {
    overview: null,
    selected: null, // the queue shown below the table
    cursor: '',     // cursor of the page of messages shown
    next: '',       // cursor of the page after it
    page: 0,
    messages: [],
    deadCursor: '', // cursor of the page of dead letters shown
    deadNext: '',
    deadPage: 0,
    deadSeen: null, // the selected queue's dead count at the last poll
    minutes: null,  // the selected queue's handlings per minute: {queue, at, minutes}
    timer: null,
  };

  const $ = (id) => document.getElementById(id);

  // el makes an element with attributes and children (strings become text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  async function api(path, opts) {
    const r = await fetch(path, Object.assign({ cache: 'no-store', credentials: 'same-origin' }, opts || {}));
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    if (!r.ok) {
      const e = new Error((body && body.error) || r.statusText);
      e.status = r.status + (r.statusText ? ' ' + r.statusText : '');
      e.refused = r.status >= 400 && r.status < 500;
      throw e;
    }
    return body;
  }

  // post sends an action, with the header that the server's CSRF guard
  // asks for.
  function post(path, body) {
    return api(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-MQ-Dashboard': '1' },
      body: JSON.stringify(body),
    });
  }

  function setStatus(text, isError) {
    const s = $('status');
    s.textContent = text;
    s.className = isError ? 'err' : '';
  }

  // ---- notices: what actions did -----------------------------------------

  // At most this many results are shown; the oldest goes first.
  const MAX_NOTICES = 5;

  // notify shows an action's result in #notices, which stays in view
  // (sticky at the top) and which refreshes never redraw: it stays until
  // its Dismiss button is pressed. kind is 'ok' or 'error'.
  function notify(kind, text) {
    const box = $('notices');
    const dismiss = el('button', { type: 'button', class: 'dismiss', 'data-dismiss': '', 'aria-label': 'Dismiss', title: 'Dismiss' }, '×');
    const n = el('div', { class: 'notice notice-' + kind, role: kind === 'error' ? 'alert' : 'status', 'data-notice': kind },
      el('span', { class: 'notice-time' }, clock(Date.now(), true)),
      el('span', { class: 'notice-text' }, text),
      dismiss);
    dismiss.addEventListener('click', () => n.remove());
    box.append(n);
    while (box.children.length > MAX_NOTICES) box.firstElementChild.remove();
  }

  // runAction runs act, an action's request, and notifies its result,
  // named by what ("Requeue dead-1"); a refusal (4xx) says so with its
  // status.
  async function runAction(what, act) {
    try {
      notify('ok', what + ': ' + resultText(await act()));
    } catch (e) {
      notify('error', what + ': ' + (e.refused ? 'refused (' + e.status + '): ' : 'failed' + (e.status ? ' (' + e.status + ')' : '') + ': ') + e.message);
    }
  }

  // resultText says what an action's answer (actionResult) tells.
  function resultText(r) {
    if (!r || (!r.changed && !r.count)) return 'done, nothing to change';
    let t = 'done';
    if (r.count > 1) t += ', ' + r.count + ' items';
    if (r.kept) t += ', ' + r.kept + ' kept (their id is queued)';
    return t;
  }

  // clock formats Unix ms as a time of day, 15:04 or 15:04:05.
  function clock(ms, seconds) {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    return p(d.getHours()) + ':' + p(d.getMinutes()) + (seconds ? ':' + p(d.getSeconds()) : '');
  }

  function fmtDuration(ms) {
    if (!ms || ms < 0) return '';
    const s = Math.floor(ms / 1000);
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + (s % 60) + 's';
    const h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + (m % 60) + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  function fmtSize(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1024 / 1024).toFixed(1) + ' MiB';
  }

  // ---- the chart ----------------------------------------------------------

  // drawChart draws history (samples oldest first) as one line per series
  // into the svg element. Each line carries its values in data-values, the
  // latest last, for whoever reads the page (the browser test does).
  // opts.series names the series to draw (default: the counts'), and
  // opts.note the label at the top right.
  function drawChart(root, history, withDead, opts) {
    // A chart with axes is drawn at its width on the page, one unit a
    // pixel, so that its labels keep their shape at any width.
    const W = (opts.axes && Math.round(root.getBoundingClientRect().width)) || opts.width;
    const H = opts.height, pad = opts.pad;
    while (root.firstChild) root.firstChild.remove();
    root.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const series = opts.series || SERIES.filter((s) => s !== 'dead' || withDead);
    const points = history || [];
    let top = 1;
    for (const p of points) for (const s of series) top = Math.max(top, p[s] || 0);
    const t0 = points.length ? points[0].t : 0;
    const t1 = points.length ? points[points.length - 1].t : 1;
    const span = Math.max(t1 - t0, 1);
    const x = (t) => points.length < 2 ? W - pad.r : pad.l + (t - t0) / span * (W - pad.l - pad.r);
    const y = (v) => H - pad.b - v / top * (H - pad.t - pad.b);
    if (opts.axes) {
      root.append(svg('line', { class: 'axis', x1: pad.l, y1: y(0), x2: W - pad.r, y2: y(0) }));
      root.append(svg('line', { class: 'axis', x1: pad.l, y1: y(top), x2: W - pad.r, y2: y(top) }));
      const lt = svg('text', { class: 'label', x: pad.l - 6, y: y(top) + 4, 'text-anchor': 'end' });
      lt.textContent = String(top);
      const lb = svg('text', { class: 'label', x: pad.l - 6, y: y(0) + 4, 'text-anchor': 'end' });
      lb.textContent = '0';
      const ls = svg('text', { class: 'label', x: W - pad.r, y: pad.t - 5, 'text-anchor': 'end' });
      ls.textContent = opts.note || (points.length > 1 ? 'last ' + fmtDuration(span) : 'collecting samples…');
      root.append(lt, lb, ls);
      if (points.length > 1) drawTimeAxis(root, t0, t1, x, y(0), W - pad.l - pad.r, H);
    }
    root.dataset.samples = String(points.length);
    for (const s of series) {
      const vals = points.map((p) => p[s] || 0);
      const pts = points.map((p, i) => `${x(p.t).toFixed(1)},${y(vals[i]).toFixed(1)}`);
      if (points.length === 1) pts.unshift(`${pad.l},${y(vals[0]).toFixed(1)}`);
      const line = svg('polyline', { class: 's-' + s, points: pts.join(' ') });
      line.dataset.series = s;
      line.dataset.values = vals.join(',');
      root.append(line);
    }
  }

  // TICK_STEPS are the spacings the time axis may use, in ms.
  const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600].map((s) => s * 1000);

  // drawTimeAxis labels the chart's time axis with times of day at round
  // steps, as many as fit in width (a label every 70 px at most), and two
  // at least where a finer step keeps them 56 px apart. Each label carries
  // its time in data-tick (Unix ms).
  function drawTimeAxis(root, t0, t1, x, y0, width, H) {
    const span = t1 - t0;
    const most = Math.max(2, Math.floor(width / 70));
    // Round to the local clock, so that a minute's tick reads hh:mm:00.
    const offset = new Date(t0).getTimezoneOffset() * 60000;
    const ticks = (step) => {
      const out = [];
      for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) out.push(t);
      return out;
    };
    let i = TICK_STEPS.findIndex((s) => span / s <= most);
    if (i < 0) i = TICK_STEPS.length - 1;
    let step = TICK_STEPS[i];
    let times = ticks(step);
    if (times.length < 2 && i > 0 && TICK_STEPS[i - 1] / span * width >= 56) {
      step = TICK_STEPS[i - 1];
      times = ticks(step);
    }
    const box = root.getBoundingClientRect();
    for (const t of times) {
      const px = x(t);
      root.append(svg('line', { class: 'axis', x1: px, y1: y0, x2: px, y2: y0 + 4 }));
      const label = svg('text', { class: 'label', x: px, y: H - 4, 'text-anchor': 'middle', 'data-tick': t });
      label.textContent = clock(t, step < 60000);
      root.append(label);
      // A label that would run past an end of the chart moves in.
      const b = label.getBoundingClientRect();
      if (b.width && b.right > box.right - 2) label.setAttribute('x', px - (b.right - box.right + 2));
      else if (b.width && b.left < box.left + 2) label.setAttribute('x', px + (box.left + 2 - b.left));
    }
  }

  function drawLegend(counts, withDead) {
    const lg = $('legend');
    lg.replaceChildren();
    for (const s of SERIES) {
      if (s === 'dead' && !withDead) continue;
      lg.append(el('span', { class: 'key k-' + s, 'data-legend': s }, el('span', {}, `${s} ${counts ? counts[s] : '–'}`)));
    }
  }

  // ---- the queues table ---------------------------------------------------

  function renderQueues() {
    const ov = state.overview;
    const withDead = ov.features.dead_letters;
    for (const th of document.querySelectorAll('.dead-col')) th.hidden = !withDead;
    const body = $('queues').tBodies[0];
    body.replaceChildren();
    $('no-queues').hidden = ov.queues.length > 0;
    for (const q of ov.queues) {
      const c = q.counts;
      const tr = el('tr', { 'data-queue': q.name, class: q.name === state.selected ? 'selected' : false });
      const link = el('a', { class: 'queue-link', href: '#q=' + encodeURIComponent(q.name) }, q.name);
      tr.append(el('td', {}, link));
      for (const s of SERIES) {
        if (s === 'dead' && !withDead) continue;
        tr.append(el('td', { class: 'num', 'data-count': s }, c ? String(c[s] ?? '') : ''));
      }
      tr.append(el('td', { class: 'num', 'data-count': 'total' }, c ? String(c.total) : ''));
      if (c) {
        tr.append(el('td', {}, el('span', { class: 'badge ' + (c.paused ? 'paused' : 'running'), 'data-state': c.paused ? 'paused' : 'running' }, c.paused ? 'paused' : 'running')));
      } else {
        tr.append(el('td', { class: 'err' }, q.error || 'unavailable'));
      }
      const spark = svg('svg', { class: 'spark', preserveAspectRatio: 'none' });
      drawChart(spark, q.history, withDead, { width: 160, height: 28, pad: { l: 1, r: 1, t: 2, b: 2 }, axes: false });
      tr.append(el('td', {}, spark));
      tr.addEventListener('click', (ev) => {
        if (ev.target.closest('a')) return; // the link sets the hash itself
        location.hash = '#q=' + encodeURIComponent(q.name);
      });
      body.append(tr);
    }
  }

  // ---- the queue shown ----------------------------------------------------

  function selectedQueue() {
    return state.overview && state.overview.queues.find((q) => q.name === state.selected);
  }

  function renderSelected() {
    const q = selectedQueue();
    const sec = $('queue-section');
    if (!q) { sec.hidden = true; return; }
    sec.hidden = false;
    const ov = state.overview;
    $('q-name').textContent = q.name;
    const paused = !!(q.counts && q.counts.paused);
    $('q-paused').hidden = !paused;
    const handoffs = (q.counts && q.counts.handoffs_pending) || 0;
    $('q-handoffs').hidden = handoffs === 0;
    $('q-handoffs').textContent = `${handoffs} hand-offs pending`;
    $('pause').disabled = paused;
    $('resume').disabled = !paused;
    // The queue's limits (§19), one line, only when it has any.
    const lim = q.limits;
    $('q-limits').hidden = !lim;
    if (lim) {
      const parts = [];
      if (lim.rate !== 'none') parts.push('rate ' + lim.rate);
      if (lim.key_rate !== 'none') parts.push('per key ' + lim.key_rate);
      if (lim.concurrency) parts.push('concurrency ' + lim.concurrency);
      if (lim.key_concurrency) parts.push('per key ' + lim.key_concurrency + ' at once');
      parts.push(lim.slots_held + ' slots held', lim.parked + ' parked');
      $('q-limits').textContent = 'Limits: ' + parts.join(' · ');
    }
    // Ready by priority: the lengths of the priority lists, upper bounds;
    // shown for a queue using priorities.
    const c = q.counts || {};
    const prio = $('q-prio');
    prio.hidden = !(c.ready_high || c.ready_low);
    prio.textContent = prio.hidden ? '' : 'ready: \u2264' + c.ready_high + ' high, \u2264' + c.ready_low + ' low';
    prio.dataset.readyHigh = String(c.ready_high || 0);
    prio.dataset.readyLow = String(c.ready_low || 0);
    drawChart($('chart'), q.history, ov.features.dead_letters,
      { width: 800, height: 220, pad: { l: 44, r: 12, t: 18, b: 22 }, axes: true });
    drawLegend(q.counts, ov.features.dead_letters);
    drawMinutes();
  }

  // ---- handlings per minute -----------------------------------------------

  const MINUTE_SERIES = ['processed', 'failed'];

  // loadMinutes asks for the selected queue's last hour, minute by
  // minute, as the workers recorded it in Redis; at most every 10 s,
  // unless force.
  async function loadMinutes(force) {
    const queue = state.selected;
    if (!queue) return;
    const m = state.minutes;
    if (!force && m && m.queue === queue && Date.now() - m.at < 10000) return;
    try {
      const h = await api('api/history?queue=' + encodeURIComponent(queue));
      if (queue !== state.selected) return;
      const minutes = h.minutes.map((p) => ({ t: p.start_ms, processed: p.processed, failed: p.failed, dead: p.dead }));
      state.minutes = { queue: queue, at: Date.now(), minutes: minutes, error: null };
    } catch (e) {
      state.minutes = { queue: queue, at: Date.now(), minutes: [], error: e.message };
    }
    drawMinutes();
  }

  // drawMinutes draws the per-minute chart and its legend: the hour's
  // totals.
  function drawMinutes() {
    const m = state.minutes;
    const root = $('minutes-chart');
    const legend = $('minutes-legend');
    if (!m || m.queue !== state.selected) { root.replaceChildren(); legend.replaceChildren(); return; }
    drawChart(root, m.minutes, false, {
      width: 800, height: 160, pad: { l: 44, r: 12, t: 18, b: 22 }, axes: true,
      series: MINUTE_SERIES, note: 'per minute, by Redis\'s clock',
    });
    legend.replaceChildren();
    for (const s of MINUTE_SERIES) {
      const total = m.minutes.reduce((n, p) => n + (p[s] || 0), 0);
      legend.append(el('span', { class: 'key k-' + s, 'data-legend': s, 'data-total': total }, el('span', {}, `${s} ${total}`)));
    }
    $('minutes-info').textContent = m.error ? '(' + m.error + ')' : m.minutes.length ? '(the last ' + m.minutes.length + ' minutes)' : '';
  }

  // loadWorkers draws the selected queue's live workers; the page asks at
  // every poll, so that workers come and go as they start and stop.
  async function loadWorkers() {
    const box = $('workers');
    const queue = state.selected;
    try {
      const w = await api('api/workers?queue=' + encodeURIComponent(queue));
      if (queue === state.selected) renderWorkers(box, w);
    } catch (e) {
      if (queue === state.selected) box.textContent = 'workers: ' + e.message;
    }
  }

  // loadAllWorkers draws the live workers of every queue, while their box
  // is open: closed, it costs nothing (api/workers without a queue reads
  // every queue's heartbeats).
  async function loadAllWorkers() {
    const box = $('all-workers');
    if (!$('all-workers-box').open) return;
    try {
      const w = await api('api/workers');
      box.replaceChildren();
      if (!w.workers.length) {
        box.append(el('span', { 'data-all-workers': '0' }, 'No live worker.'));
        return;
      }
      const now = state.overview ? state.overview.now : Date.now();
      const t = el('table', { 'data-all-workers': String(w.workers.length) }, el('thead', {}, el('tr', {},
        el('th', {}, 'Queue'), el('th', {}, 'Worker'), el('th', {}, 'Host'), el('th', { class: 'num' }, 'PID'),
        el('th', { class: 'num' }, 'Busy'), el('th', { class: 'num' }, 'Handled'), el('th', {}, 'Last beat'))));
      const tb = el('tbody');
      for (const k of w.workers) {
        tb.append(el('tr', { 'data-all-worker': k.id, 'data-queue': k.queue },
          el('td', {}, el('a', { class: 'queue-link', href: '#q=' + encodeURIComponent(k.queue) }, k.queue)),
          idCell(k.id), el('td', {}, k.host), el('td', { class: 'num' }, String(k.pid)),
          el('td', { class: 'num' }, k.busy + '/' + k.handler_threads),
          el('td', { class: 'num' }, String(k.handled) + (k.failed ? ' (' + k.failed + ' failed)' : '')),
          el('td', {}, k.last_beat_ms ? (fmtDuration(now - k.last_beat_ms) || '0s') + ' ago' : 'never')));
      }
      t.append(tb);
      box.append(t);
    } catch (e) {
      box.textContent = 'workers: ' + e.message;
    }
  }

  // renderWorkers draws the queue's live workers, in every process, as
  // their heartbeats in Redis tell them (times by the Redis server's clock).
  function renderWorkers(box, w) {
    box.replaceChildren();
    if (!w.workers.length) {
      box.append(el('span', { 'data-workers': '0' }, 'No live worker.'));
      return;
    }
    const t = el('table', { 'data-workers': String(w.workers.length) }, el('thead', {}, el('tr', {},
      el('th', {}, 'Worker'), el('th', {}, 'Host'), el('th', { class: 'num' }, 'PID'),
      el('th', { class: 'num' }, 'Busy'), el('th', { class: 'num' }, 'Handled'),
      el('th', { class: 'num' }, 'Per second'), el('th', { class: 'num' }, 'Handling p50 / p99'),
      el('th', {}, 'Up'), el('th', {}, 'Last poll'),
      el('th', {}, 'Last beat'), el('th', {}, 'Version'))));
    const tb = el('tbody');
    const now = state.overview ? state.overview.now : Date.now();
    const ago = (ms) => (ms ? (fmtDuration(now - ms) || '0s') + ' ago' : 'never');
    state.beats = state.beats || {};
    const fmtMS = (v) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2)) + ' ms';
    for (const k of w.workers) {
      // Throughput: handlings between two heartbeats of this worker.
      const prev = state.beats[k.id];
      if (!prev || prev.beat !== k.last_beat_ms) {
        state.beats[k.id] = { beat: k.last_beat_ms, handled: k.handled, prev: prev };
      }
      const cur = state.beats[k.id];
      const base = cur.prev;
      const rate = base && cur.beat > base.beat ? (cur.handled - base.handled) * 1000 / (cur.beat - base.beat) : null;
      const wid = idCell(k.id);
      if (k.queues) {
        // A multi-queue worker: its queues and their order.
        const text = k.strict ? k.queues.map((x) => x.queue).join(' > ') + ' (strict)'
          : k.queues.map((x) => x.queue + ':' + x.weight).join(', ');
        wid.append(el('div', { class: 'muted', 'data-queues': text }, 'queues ' + text));
      }
      tb.append(el('tr', { 'data-worker': k.id },
        wid, el('td', {}, k.host), el('td', { class: 'num' }, String(k.pid)),
        el('td', { class: 'num', 'data-busy': k.busy + '/' + k.handler_threads }, k.busy + '/' + k.handler_threads),
        el('td', { class: 'num', 'data-handled': String(k.handled) }, String(k.handled) + (k.failed ? ' (' + k.failed + ' failed)' : '')),
        el('td', { class: 'num' }, rate === null ? '–' : rate.toFixed(1)),
        el('td', { class: 'num' }, k.handled ? fmtMS(k.handling_p50_ms) + ' / ' + fmtMS(k.handling_p99_ms) : '–'),
        el('td', {}, fmtDuration(now - k.started_ms) || '0s'),
        el('td', {}, ago(k.last_poll_ms)), el('td', {}, ago(k.last_beat_ms)), el('td', {}, k.version)));
    }
    t.append(tb);
    box.append(t);
  }

  // loadDead draws a page of the queue's dead letters, newest first, from
  // cursor ('' for the first page).
  async function loadDead(cursor) {
    const on = state.overview.features.dead_letters;
    $('dead-heading').hidden = !on;
    $('dead').hidden = !on;
    if (!on || !state.selected) return;
    if (cursor === undefined) cursor = state.deadCursor;
    const queue = state.selected;
    const bar = $('dead-toolbar');
    bar.replaceChildren();
    if (state.overview.actions) {
      bar.append(
        actionButton('Requeue all', true, () => post('api/dead/requeue', { queue: queue, all: true }), 'dead letters of ' + queue),
        actionButton('Delete all', true, () => post('api/dead/delete', { queue: queue, all: true }), 'dead letters of ' + queue));
    }
    const tb = $('dead-letters').tBodies[0];
    const info = $('dead-info');
    try {
      const d = await api('api/dead?queue=' + encodeURIComponent(queue) + '&cursor=' + encodeURIComponent(cursor || ''));
      if (queue !== state.selected) return; // another queue was chosen meanwhile
      if (!d.letters.length && cursor) { state.deadPage = 0; await loadDead(''); return; } // the page emptied
      state.deadCursor = cursor || '';
      state.deadNext = d.cursor;
      $('dead-total').textContent = '(' + d.total + ')';
      $('dead-total').dataset.total = String(d.total);
      tb.replaceChildren();
      for (const m of d.letters) {
        const why = el('td', { class: 'err' }, m.error);
        if (m.reason && m.reason !== 'dead' && m.reason !== 'failed') why.prepend(el('span', { class: 'st st-' + m.reason }, m.reason), ' ');
        const tr = el('tr', { 'data-dead': m.id },
          idCell(m.id), why,
          el('td', { class: 'num' }, String(m.attempts)), el('td', {}, fmtDuration(state.overview.now - m.died_ms) + ' ago'),
          el('td', {}, contentCell(m)));
        const actions = el('td');
        if (state.overview.actions) {
          actions.append(
            actionButton('Requeue', false, () => post('api/dead/requeue', { queue: queue, id: m.id }), m.id),
            actionButton('Delete', true, () => post('api/dead/delete', { queue: queue, id: m.id }), 'dead letter ' + m.id));
        }
        tr.append(actions);
        tb.append(tr);
      }
      if (!d.letters.length) tb.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No dead letter.')));
      info.textContent = d.total ? `page ${state.deadPage + 1}, ${d.letters.length} of ${d.total}` : '';
    } catch (e) {
      tb.replaceChildren(el('tr', {}, el('td', { class: 'err', colspan: 6 }, 'dead letters: ' + e.message)));
    }
    $('dead-next').disabled = !state.deadNext;
    $('dead-first').disabled = !state.deadCursor;
  }

  // idCell is a table cell showing an id on one line, cut with an
  // ellipsis when long; the whole id is its text and its title.
  function idCell(id) {
    return el('td', { class: 'id' }, el('span', { class: 'id-text', title: id }, id));
  }

  function contentCell(m) {
    if (m.empty) {
      return el('span', { class: 'muted', 'data-empty': '' },
        m.status && m.status.startsWith('done') ? 'no content: handled, kept for its dedupe window' : 'empty');
    }
    const box = el('div');
    if (m.decode_error) {
      box.append(el('div', { class: 'undecodable', 'data-undecodable': '' }, 'undecodable: ' + m.decode_error));
    }
    box.append(el('pre', { class: 'content' }, m.content + (m.truncated ? ' …(cut)' : '')));
    return box;
  }

  // actionButton runs act after a second click (the first asks to
  // confirm, for dangerous ones), notifies its result, naming target,
  // then reloads what it changed.
  function actionButton(label, dangerous, act, target) {
    const b = el('button', { type: 'button', class: dangerous ? 'danger' : false, 'data-action': label.toLowerCase() }, label);
    let armed = null;
    b.addEventListener('click', async (ev) => {
      ev.stopPropagation();
      if (dangerous && !armed) {
        b.textContent = 'Confirm ' + label.toLowerCase();
        b.className = 'confirm';
        armed = setTimeout(() => { armed = null; b.textContent = label; b.className = 'danger'; }, 5000);
        return;
      }
      clearTimeout(armed);
      b.disabled = true;
      await runAction(label + ' ' + target, act);
      await refresh();
      await loadMessages(state.cursor);
      await loadDead();
      // (how many actions have their reloads drawn: a test's next click
      // waits for it, or a redraw of the table under it can eat the click)
      document.body.dataset.actionsDone = String(Number(document.body.dataset.actionsDone || 0) + 1);
    });
    return b;
  }

  async function loadMessages(cursor) {
    if (!state.selected) return;
    const info = $('page-info');
    try {
      const p = await api('api/messages?queue=' + encodeURIComponent(state.selected) + '&cursor=' + encodeURIComponent(cursor || ''));
      state.cursor = cursor || '';
      state.next = p.cursor;
      state.messages = p.messages;
      renderMessages();
      info.textContent = `page ${state.page + 1}, ${p.messages.length} messages` + (p.cursor ? '' : ', the last page');
    } catch (e) {
      info.textContent = 'messages: ' + e.message;
    }
    $('next-page').disabled = !state.next;
    $('first-page').disabled = !state.cursor;
  }

  function renderMessages() {
    const filter = $('filter');
    const chosen = filter.value;
    const statuses = [...new Set(state.messages.map((m) => m.status))].sort();
    filter.replaceChildren(el('option', { value: '' }, 'every status'));
    for (const s of statuses) filter.append(el('option', { value: s, selected: s === chosen }, s));
    const tb = $('messages').tBodies[0];
    tb.replaceChildren();
    for (const m of state.messages) {
      if (chosen && m.status !== chosen) continue;
      const tr = el('tr', { 'data-message': m.id },
        idCell(m.id),
        el('td', {}, el('span', { class: 'st st-' + m.status }, m.status),
          m.policy ? el('div', { class: 'muted', title: 'its own policy' }, m.policy) : null,
          m.priority ? el('div', { class: 'muted', title: 'its priority' }, m.priority + ' priority') : null),
        el('td', { class: 'num' }, String(m.attempts)),
        el('td', { class: 'num' }, fmtDuration(m.age_ms)),
        el('td', { class: 'num' }, fmtDuration(m.backoff_ms)),
        el('td', { class: 'num' }, fmtSize(m.size)),
        el('td', {}, contentCell(m)));
      if (m.status.startsWith('locked')) showProgress(tr.cells[1], m.id);
      const actions = el('td');
      if (state.overview && state.overview.actions) {
        if (m.status.startsWith('queued') || m.status.startsWith('locked')) {
          actions.append(actionButton('Cancel', true, () => post('api/cancel', { queue: state.selected, id: m.id }), m.id));
        }
        actions.append(actionButton('Delete', true, () => post('api/delete', { queue: state.selected, id: m.id }), m.id));
      }
      tr.append(actions);
      tb.append(tr);
    }
    if (!tb.rows.length) tb.append(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No message on this page.')));
  }

  // showProgress adds, under a running message's status, the latest
  // progress its handler reported and whether a cancel was asked
  // (api/message, docs/protocol.md §20).
  async function showProgress(cell, id) {
    try {
      const m = await api('api/message?queue=' + encodeURIComponent(state.selected) + '&id=' + encodeURIComponent(id));
      if (m.progress) {
        cell.append(el('div', { class: 'muted', title: 'its handler\'s latest progress', 'data-progress': '' },
          'progress ' + m.progress.n + (m.progress.note ? ' ' + m.progress.note : '')));
      }
      if (m.cancel_requested_ms) cell.append(el('div', { class: 'muted' }, 'cancel asked'));
    } catch (_) {
      // gone meanwhile: nothing to show
    }
  }

  // ---- polling and navigation ---------------------------------------------

  async function refresh() {
    try {
      state.overview = await api('api/overview');
      const ov = state.overview;
      document.title = ov.title + ' dashboard';
      $('title').textContent = ov.title;
      const mode = $('mode');
      mode.textContent = ov.actions ? 'actions allowed' : 'read-only';
      mode.className = 'badge ' + (ov.actions ? 'actions' : 'readonly');
      for (const t of document.querySelectorAll('.actions-only')) t.hidden = !ov.actions;
      const first = document.body.dataset.loaded !== 'true';
      if (!state.selected && ov.queues.length) selectFromHash(ov.queues[0].name);
      else if (first && state.selected) {
        // Chosen by the hash before the first overview: draw what
        // depended on it (the action buttons, dead letters).
        renderMessages();
        loadDead();
      }
      renderQueues();
      renderSelected();
      if (state.selected) { loadWorkers(); loadMinutes(false); }
      loadAllWorkers();
      // Dead letters came or went (a worker buried one, say): redraw
      // their panel.
      const sq = selectedQueue();
      const dead = sq && sq.counts ? sq.counts.dead : null;
      if (!first && dead !== null && dead !== state.deadSeen) loadDead();
      state.deadSeen = dead;
      setStatus('updated ' + new Date(ov.now).toLocaleTimeString());
      document.body.dataset.loaded = 'true';
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    } catch (e) {
      setStatus('cannot load: ' + e.message, true);
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    const every = (state.overview && state.overview.interval_ms) || 2000;
    state.timer = setTimeout(async () => { await refresh(); schedule(); }, every);
  }

  function queueFromHash() {
    const m = /^#q=(.*)$/.exec(location.hash);
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch (_) { return null; }
  }

  // selectFromHash shows the queue the hash names, or fallback.
  function selectFromHash(fallback) {
    const q = queueFromHash() || fallback;
    if (!q || q === state.selected) return;
    state.selected = q;
    state.page = 0;
    state.cursor = '';
    state.deadPage = 0;
    state.deadCursor = '';
    $('filter').value = '';
    renderSelected();
    loadMessages('');
    loadWorkers();
    loadMinutes(true);
    if (state.overview) loadDead('');
  }

  window.addEventListener('hashchange', () => {
    selectFromHash(null);
    if (state.overview) renderQueues();
  });

  $('pause').addEventListener('click', async () => {
    const q = state.selected;
    await runAction('Pause ' + q, () => post('api/pause', { queue: q }));
    await refresh();
  });
  $('resume').addEventListener('click', async () => {
    const q = state.selected;
    await runAction('Resume ' + q, () => post('api/resume', { queue: q }));
    await refresh();
  });
  // The chart is drawn at its width: redraw it when that changes.
  window.addEventListener('resize', () => { if (state.overview) renderSelected(); });
  // The result a handler gave with a message's success (api/message,
  // which answers it also once the message left the queue, with a 404).
  $('result-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = $('result-id').value;
    const out = $('result');
    if (!state.selected || !id) return;
    try {
      const r = await fetch('api/message?queue=' + encodeURIComponent(state.selected) + '&id=' + encodeURIComponent(id),
        { cache: 'no-store', credentials: 'same-origin' });
      let body = null;
      try { body = await r.json(); } catch (_) { body = null; }
      if (body && body.result) {
        out.replaceChildren(el('div', { 'data-result-at': '' }, 'recorded ' + new Date(body.result.at_ms).toLocaleString()),
          contentCell(body.result));
      } else if (body && body.error) {
        out.replaceChildren('result: ' + body.error);
      } else if (body && body.status && body.status !== 'nil') {
        out.replaceChildren('no result yet: the message is ' + body.status);
      } else {
        out.replaceChildren('no result');
      }
    } catch (e) {
      out.replaceChildren('result: ' + e.message);
    }
  });

  $('next-page').addEventListener('click', () => { if (state.next) { state.page++; loadMessages(state.next); } });
  $('first-page').addEventListener('click', () => { state.page = 0; loadMessages(''); });
  $('filter').addEventListener('change', renderMessages);
  $('all-workers-box').addEventListener('toggle', loadAllWorkers);
  $('dead-next').addEventListener('click', () => { if (state.deadNext) { state.deadPage++; loadDead(state.deadNext); } });
  $('dead-first').addEventListener('click', () => { state.deadPage = 0; loadDead(''); });

  selectFromHash(null);
  refresh().then(schedule);
})();
