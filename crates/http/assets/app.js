// The bqai chat page. Talks to /api/v1/ws/agent (see docs/API.md). Everything that comes from
// a person, a model or the data is put on the page as text (textContent, createTextNode,
// SVG <text>): nothing here ever parses a string as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const KEY = 'bqai.key';
  const CONV = 'bqai.conversation';
  const STAGES = {
    understanding: 'Understanding', generating: 'Writing SQL', validating: 'Checking',
    estimating: 'Estimating cost', running: 'Running', correcting: 'Correcting',
  };
  const NUMERIC = new Set(['INT64', 'INTEGER', 'FLOAT64', 'FLOAT', 'NUMERIC', 'BIGNUMERIC', 'DECIMAL']);
  const TIME = new Set(['DATE', 'DATETIME', 'TIMESTAMP']);
  const FLOAT = new Set(['FLOAT64', 'FLOAT']);
  const COMPACT = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 2 });
  const DECIMALS = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

  let ws = null;
  let ready = false;
  let pending = [];          // messages to send once configured
  let inFlight = null;       // { id, turn }
  const turns = new Map();   // request_id -> turn view
  let counter = 0;

  // ---------- small DOM helpers (text only) ----------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }
  function say(text) { $('status').textContent = text; }
  function connection(on, text) {
    $('conn-dot').className = 'dot ' + (on ? 'on' : 'off');
    $('conn-text').textContent = text;
  }
  function fmtBytes(n) {
    if (!Number.isFinite(n)) return '?';
    const u = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
  }
  function cell(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  // ---------- connection ----------
  async function connect() {
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    ready = false;
    connection(false, 'Connecting…');
    let url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/ws/agent';
    const key = sessionStorage.getItem(KEY);
    if (key) {
      try {
        const r = await fetch('/api/v1/ws-ticket', {
          method: 'POST', headers: { Authorization: 'Bearer ' + key }, cache: 'no-store',
        });
        if (!r.ok) {
          connection(false, r.status === 401 ? 'The API key was not accepted.' : 'Could not get a ticket (' + r.status + ').');
          return;
        }
        const body = await r.json();
        if (body.ticket) url += '?ticket=' + encodeURIComponent(body.ticket);
      } catch (e) {
        connection(false, 'The server cannot be reached.');
        return;
      }
    }
    const socket = new WebSocket(url);
    ws = socket;
    socket.onopen = () => {
      const msg = { type: 'configure' };
      const conv = sessionStorage.getItem(CONV);
      if (conv) msg.conversation_id = conv;
      socket.send(JSON.stringify(msg));
    };
    socket.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      handle(m);
    };
    socket.onclose = (ev) => {
      if (ws !== socket) return;
      ready = false;
      ws = null;
      const why = ev.code === 1006 && !sessionStorage.getItem(KEY)
        ? 'Disconnected. If the server needs an API key, enter it above.'
        : 'Disconnected' + (ev.reason ? ': ' + ev.reason : '') + '. Asking again reconnects.';
      connection(false, why);
      if (inFlight) finish(inFlight.id, 'The connection closed before the answer came.');
    };
  }

  function send(msg) {
    if (ws && ready && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(msg));
    } else {
      pending.push(msg);
      if (!ws) connect();
    }
  }

  // ---------- events ----------
  function handle(m) {
    const t = m.request_id ? turns.get(m.request_id) : null;
    switch (m.type) {
      case 'configured':
        ready = true;
        if (m.conversation_id) sessionStorage.setItem(CONV, m.conversation_id);
        connection(true, 'Connected' + (m.dataset_id ? ' — dataset ' + m.dataset_id : ''));
        for (const p of pending.splice(0)) ws.send(JSON.stringify(p));
        break;
      case 'status':
        if (t) stage(t, m.stage, m.attempt);
        break;
      case 'sql':
        if (t) {
          if (m.sql) { t.sql.textContent = m.sql; t.sql.hidden = false; }
          t.explanation.textContent = m.explanation || '';
        }
        break;
      case 'estimate':
        if (t) t.estimate.textContent = 'Scans about ' + fmtBytes(m.bytes) + ' (≈ $' + Number(m.cost_usd || 0).toFixed(4) + ').';
        break;
      case 'result':
        if (t) result(t, m);
        break;
      case 'catalog':
        if (t) catalog(t, m);
        break;
      case 'suggestions':
        if (t) suggestions(t, m.items || []);
        break;
      case 'done':
        if (t) finish(m.request_id, null);
        break;
      case 'error':
        if (t) {
          finish(m.request_id, m.code === 'CANCELLED' ? 'Cancelled.' : (m.message || m.code));
        } else if (!m.request_id) {
          if (m.code === 'NOT_FOUND' && !ready) { sessionStorage.removeItem(CONV); connect(); }
          say('Error: ' + (m.message || m.code));
        }
        break;
      default:
        break;
    }
  }

  function stage(t, name, attempt) {
    for (const li of t.stages.children) li.classList.remove('current');
    const li = el('li', 'current', (STAGES[name] || name) + (attempt && attempt > 1 ? ' (try ' + attempt + ')' : ''));
    t.stages.appendChild(li);
    say(li.textContent + '…');
  }

  function result(t, m) {
    const cols = m.columns || [];
    const rows = m.rows || [];
    const wrap = el('div', 'table-wrap');
    wrap.tabIndex = 0;
    wrap.setAttribute('role', 'region');
    wrap.setAttribute('aria-label', 'Result rows');
    const table = el('table');
    const thead = el('thead');
    const hr = el('tr');
    for (const c of cols) {
      const th = el('th', null, c.name);
      th.scope = 'col';
      hr.appendChild(th);
    }
    thead.appendChild(hr);
    const tbody = el('tbody');
    for (const r of rows) {
      const tr = el('tr');
      for (const c of cols) {
        const v = r[c.name];
        const shown = FLOAT.has(c.type) && typeof v === 'number' ? DECIMALS.format(v) : cell(v);
        tr.appendChild(el('td', NUMERIC.has(c.type) ? 'num' : null, shown));
      }
      tbody.appendChild(tr);
    }
    table.append(thead, tbody);
    wrap.appendChild(table);
    const s = m.stats || {};
    const meta = el('p', 'meta', m.row_count + ' row' + (m.row_count === 1 ? '' : 's') +
      (m.truncated ? ' (more exist: capped)' : '') + ' · ' + (s.duration_ms ?? '?') + ' ms' +
      (s.cache_hit ? ' · from cache' : ''));
    const chart = drawChart(cols, rows);
    if (chart) t.body.appendChild(chart);
    t.body.append(wrap, meta);
  }

  function catalog(t, m) {
    const table = el('table');
    const hr = el('tr');
    for (const c of m.columns || []) hr.appendChild(el('th', null, c));
    const thead = el('thead');
    thead.appendChild(hr);
    const tbody = el('tbody');
    for (const r of m.rows || []) {
      const tr = el('tr');
      for (const v of r) tr.appendChild(el('td', null, cell(v)));
      tbody.appendChild(tr);
    }
    table.append(thead, tbody);
    const wrap = el('div', 'table-wrap');
    wrap.appendChild(table);
    t.body.appendChild(wrap);
  }

  // One dimension plus measures: bars; a time bucket plus measures: a line (first measure).
  function drawChart(cols, rows) {
    if (rows.length < 2 || rows.length > 200) return null;
    const dims = cols.filter((c) => !NUMERIC.has(c.type));
    const measures = cols.filter((c) => NUMERIC.has(c.type));
    if (dims.length !== 1 || measures.length < 1) return null;
    const dim = dims[0];
    const measure = measures[0];
    const isTime = TIME.has(dim.type) || /(^|_)(month|day|week|year|date|quarter|hour)s?($|_)/i.test(dim.name);
    const points = rows.map((r) => ({ label: cell(r[dim.name]), value: Number(r[measure.name]) }))
      .filter((p) => Number.isFinite(p.value));
    if (points.length < 2) return null;
    if (isTime) points.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
    const W = 760, H = 260, L = 60, R = 10, T = 12, B = 56;
    const max = Math.max(0, ...points.map((p) => p.value));
    const min = Math.min(0, ...points.map((p) => p.value));
    const span = max - min || 1;
    const y = (v) => T + (H - T - B) * (1 - (v - min) / span);
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img' });
    const title = svg('title');
    title.textContent = measure.name + ' by ' + dim.name + (isTime ? ' (line)' : ' (bars)');
    root.appendChild(title);
    root.setAttribute('aria-label', title.textContent);
    root.appendChild(svg('line', { x1: L, y1: y(0), x2: W - R, y2: y(0), class: 'axis' }));
    for (const v of [max, min]) {
      const tx = svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' });
      tx.textContent = COMPACT.format(v);
      root.appendChild(tx);
    }
    const step = (W - L - R) / points.length;
    const every = Math.ceil(points.length / 12);
    points.forEach((p, i) => {
      const cx = L + step * i + step / 2;
      if (isTime) {
        root.appendChild(svg('circle', { cx, cy: y(p.value), r: 3, class: 'pt' }));
      } else {
        const top = Math.min(y(p.value), y(0));
        const rect = svg('rect', { x: cx - step * 0.35, y: top, width: step * 0.7, height: Math.abs(y(p.value) - y(0)), class: 'bar' });
        const tip = svg('title');
        tip.textContent = p.label + ': ' + p.value;
        rect.appendChild(tip);
        root.appendChild(rect);
      }
      if (i % every === 0) {
        const tx = svg('text', { x: cx, y: H - B + 14, 'text-anchor': 'end', transform: 'rotate(-35 ' + cx + ' ' + (H - B + 14) + ')' });
        tx.textContent = p.label.length > 14 ? p.label.slice(0, 13) + '…' : p.label;
        root.appendChild(tx);
      }
    });
    if (isTime) {
      const d = points.map((p, i) => (i ? 'L' : 'M') + (L + step * i + step / 2).toFixed(1) + ' ' + y(p.value).toFixed(1)).join(' ');
      root.insertBefore(svg('path', { d, class: 'line' }), root.children[1]);
    }
    return root;
  }

  function suggestions(t, items) {
    if (!items.length) return;
    const box = el('div', 'suggestions');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', 'Follow-up questions');
    for (const s of items) {
      const b = el('button', 'suggestion secondary', s.question);
      b.type = 'button';
      b.addEventListener('click', () => ask(s.question));
      box.appendChild(b);
    }
    t.body.appendChild(box);
  }

  function finish(id, error) {
    const t = turns.get(id);
    if (t) {
      for (const li of t.stages.children) li.classList.remove('current');
      if (error) t.body.appendChild(el('p', 'error', error));
      t.article.setAttribute('aria-busy', 'false');
    }
    if (inFlight && inFlight.id === id) {
      inFlight = null;
      $('cancel-button').disabled = true;
      say(error ? error : 'Answered.');
    }
  }

  // ---------- asking ----------
  function ask(question) {
    question = question.trim();
    if (!question) return;
    if (inFlight) { say('Wait for the answer, or cancel it.'); return; }
    $('empty')?.remove();
    const id = 'q' + Date.now().toString(36) + '-' + (++counter);
    const article = el('article', 'turn');
    article.setAttribute('aria-busy', 'true');
    const h = el('h2', 'question', question);
    const stages = el('ol', 'stages');
    stages.setAttribute('aria-label', 'Progress');
    const explanation = el('p', 'explanation');
    const sqlBox = el('pre', 'sql');
    sqlBox.hidden = true;
    const estimate = el('p', 'estimate');
    const body = el('div', 'answer');
    article.append(h, stages, explanation, sqlBox, estimate, body);
    $('log').appendChild(article);
    const t = { article, stages, explanation, sql: sqlBox, estimate, body };
    turns.set(id, t);
    inFlight = { id, turn: t };
    $('cancel-button').disabled = false;
    article.scrollIntoView({ block: 'end' });
    say('Asking…');
    send({ type: 'ask', question, execute: $('execute').checked, request_id: id });
  }

  document.addEventListener('DOMContentLoaded', () => {
    const keyInput = $('api-key');
    keyInput.value = sessionStorage.getItem(KEY) || '';
    $('key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const k = keyInput.value.trim();
      if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY);
      sessionStorage.removeItem(CONV);
      connect();
    });
    $('key-clear').addEventListener('click', () => {
      keyInput.value = '';
      sessionStorage.removeItem(KEY);
      sessionStorage.removeItem(CONV);
      connect();
    });
    $('new-conversation').addEventListener('click', () => {
      sessionStorage.removeItem(CONV);
      for (const a of document.querySelectorAll('.turn')) a.remove();
      turns.clear();
      connect();
      $('question').focus();
    });
    $('ask-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const q = $('question');
      const text = q.value;
      if (!text.trim()) return;
      q.value = '';
      ask(text);
    });
    $('cancel-button').addEventListener('click', () => {
      if (inFlight && ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: 'cancel', request_id: inFlight.id }));
      }
    });
    connect();
  });
})();
