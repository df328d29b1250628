// The bqai chat page. Talks to /api/v1/ws/agent (see docs/API.md). Everything that comes from
// a person, a model or the data is put on the page as text (textContent, createTextNode,
// SVG <text>): nothing here ever parses a string as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const KEY = 'bqai.key';
  const CONV = 'bqai.conversation';
  const DATASET = 'bqai.dataset';
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
  let configuring = false;   // a `configure` is waiting for its answer
  let pending = [];          // messages to send once configured
  let inFlight = null;       // { id, turn }
  const turns = new Map();   // request_id -> turn view
  let counter = 0;
  let configuredDataset = null; // the dataset of the connection's conversation
  let datasets = [];         // ids from GET /api/v1/datasets

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
  /** fetch() on this origin with the tab's API key, if there is one. */
  function api(path, options) {
    const opts = Object.assign({ cache: 'no-store' }, options || {});
    const key = sessionStorage.getItem(KEY);
    if (key) opts.headers = Object.assign({}, opts.headers, { Authorization: 'Bearer ' + key });
    return fetch(path, opts);
  }

  // ---------- SQL, formatted for reading ----------
  // Line breaks before the clauses of each query level (SELECT, FROM, JOIN, WHERE, GROUP BY,
  // HAVING, QUALIFY, WINDOW, ORDER BY, LIMIT, UNION…). Only whitespace outside string
  // literals, quoted names and comments changes; the copy button copies the SQL as it ran.
  const CLAUSES = new Set(['SELECT', 'FROM', 'WHERE', 'HAVING', 'QUALIFY', 'WINDOW', 'LIMIT', 'UNION', 'INTERSECT']);
  const JOIN_PREFIX = new Set(['LEFT', 'RIGHT', 'FULL', 'INNER', 'CROSS', 'OUTER', 'NATURAL']);
  function formatSql(sql) {
    const tokens = String(sql).match(/'(?:[^'\\]|\\.|'')*'?|"(?:[^"\\]|\\.)*"?|`[^`]*`?|--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)|[A-Za-z_][A-Za-z0-9_]*|\s+|[\s\S]/g) || [];
    const words = tokens.map((t) => (/^[A-Za-z_]/.test(t) ? t.toUpperCase() : null));
    const nextWord = (i) => {
      for (let j = i + 1; j < tokens.length; j++) {
        if (/^\s+$/.test(tokens[j])) continue;
        return words[j];
      }
      return null;
    };
    const stack = [];       // one entry per open parenthesis: is it a subquery?
    let out = '';
    let prev = null;        // the previous word (upper case), for "LEFT JOIN", "UNION ALL"
    let afterOpen = false;  // the next word is the first one inside a parenthesis
    const queryLevel = () => stack.length === 0 || stack[stack.length - 1];
    const indent = () => '  '.repeat(stack.filter(Boolean).length);
    for (let i = 0; i < tokens.length; i++) {
      const tok = tokens[i];
      const w = words[i];
      if (tok === '(') { stack.push(false); afterOpen = true; out += tok; continue; }
      if (tok === ')') { stack.pop(); afterOpen = false; out += tok; prev = null; continue; }
      if (/^\s+$/.test(tok)) { out += tok; continue; }
      if (w && afterOpen && (w === 'SELECT' || w === 'WITH')) stack[stack.length - 1] = true;
      afterOpen = false;
      if (w && queryLevel()) {
        let brk = false;
        if (CLAUSES.has(w)) brk = !(w === 'SELECT' && (prev === 'UNION' || prev === 'ALL' || prev === 'DISTINCT'));
        else if ((w === 'GROUP' || w === 'ORDER') && nextWord(i) === 'BY') brk = true;
        else if (JOIN_PREFIX.has(w) && !JOIN_PREFIX.has(prev)) {
          for (let j = i + 1; j < tokens.length; j++) {
            if (/^\s+$/.test(tokens[j])) continue;
            if (words[j] === 'JOIN') { brk = true; break; }
            if (!JOIN_PREFIX.has(words[j])) break;
          }
        } else if (w === 'JOIN') brk = !JOIN_PREFIX.has(prev);
        if (brk) out = out.replace(/[ \t]*\n?[ \t]*$/, '') + (out.trim() ? '\n' : '') + indent();
      }
      out += tok;
      if (w) prev = w;
      else if (!/^(--|\/\*)/.test(tok)) prev = null;
    }
    return out.trim();
  }

  // ---------- datasets ----------
  function chosenDataset() {
    const pick = $('dataset');
    if (!pick.hidden && pick.value) return pick.value;
    return sessionStorage.getItem(DATASET) || null;
  }

  function showDataset(id) {
    const pick = $('dataset');
    if (id && datasets.includes(id)) pick.value = id;
  }

  /** Fills the picker from GET /api/v1/datasets (every page). Hidden when none can be read. */
  async function loadDatasets() {
    const box = $('dataset-box');
    const pick = $('dataset');
    const ids = [];
    try {
      let token = null;
      for (let page = 0; page < 20; page++) {
        const r = await api('/api/v1/datasets?page_size=1000' + (token ? '&page_token=' + encodeURIComponent(token) : ''));
        if (!r.ok) throw new Error(String(r.status));
        const body = await r.json();
        for (const d of body.data || []) if (d && typeof d.dataset_id === 'string') ids.push(d.dataset_id);
        token = body.next_page_token;
        if (!token) break;
      }
    } catch (e) {
      ids.length = 0;
    }
    datasets = ids;
    pick.replaceChildren();
    for (const id of ids) {
      const o = el('option', null, id);
      o.value = id;
      pick.appendChild(o);
    }
    box.hidden = ids.length === 0;
    pick.hidden = ids.length === 0;
    pick.disabled = ids.length < 2;
    const stored = sessionStorage.getItem(DATASET);
    if (stored && !ids.includes(stored) && ids.length) sessionStorage.removeItem(DATASET);
    showDataset(sessionStorage.getItem(DATASET) || configuredDataset || ids[0]);
  }

  // ---------- connection ----------
  async function connect() {
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    ready = false;
    configuring = false;
    configuredDataset = null;
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
    socket.onopen = () => configure(socket, sessionStorage.getItem(DATASET), sessionStorage.getItem(CONV));
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

  /** Continues `conversation` (or starts one on `dataset`); `configured` or `error` answers. */
  function configure(socket, dataset, conversation) {
    const msg = { type: 'configure' };
    if (conversation) msg.conversation_id = conversation;
    if (dataset) msg.dataset_id = dataset;
    ready = false;
    configuring = true;
    socket.send(JSON.stringify(msg));
  }

  function send(msg) {
    if (ws && ready && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(msg));
    } else {
      pending.push(msg);
      if (!ws) connect();
      // Open but not configured (the last `configure` was refused): try again.
      else if (ws.readyState === WebSocket.OPEN && !configuring) {
        configure(ws, chosenDataset(), sessionStorage.getItem(CONV));
      }
    }
  }

  // ---------- events ----------
  function handle(m) {
    const t = m.request_id ? turns.get(m.request_id) : null;
    switch (m.type) {
      case 'configured':
        ready = true;
        configuring = false;
        configuredDataset = m.dataset_id || null;
        if (m.conversation_id) sessionStorage.setItem(CONV, m.conversation_id);
        else sessionStorage.removeItem(CONV);
        showDataset(configuredDataset);
        connection(true, 'Connected' + (m.dataset_id ? ' — dataset ' + m.dataset_id : ''));
        for (const p of pending.splice(0)) ws.send(JSON.stringify(p));
        break;
      case 'status':
        if (t) stage(t, m.stage, m.attempt);
        break;
      case 'sql':
        if (t) {
          if (m.sql) showSql(t, m.sql);
          t.explanation.textContent = m.explanation || '';
        }
        break;
      case 'estimate':
        if (t) t.estimate.textContent = 'Scans about ' + fmtBytes(m.bytes) + ' (≈ $' + Number(m.cost_usd || 0).toFixed(4) + ').';
        break;
      case 'result':
        if (t) { result(t, m); reveal(t); }
        break;
      case 'catalog':
        if (t) { catalog(t, m); reveal(t); }
        break;
      case 'suggestions':
        if (t) suggestions(t, m.items || []);
        break;
      case 'done':
        if (t) finish(m.request_id, null);
        break;
      case 'error':
        if (t) {
          finish(m.request_id, m.code === 'CANCELLED' ? 'Cancelled.' : (m.message || m.code), m.code);
        } else if (!m.request_id) {
          const refused = configuring;
          if (refused) configuring = false;
          if (m.code === 'NOT_FOUND' && refused && sessionStorage.getItem(CONV)) {
            // The conversation is gone: start a new one, and show nothing of the old one.
            sessionStorage.removeItem(CONV);
            clearLog();
            connect();
            say('The earlier conversation has expired; a new one was started.');
            return;
          }
          if (inFlight && refused) {
            // The connection could not be configured (a dataset refused…): the waiting ask
            // will not be sent; it ends here, with the reason in the conversation.
            pending = [];
            finish(inFlight.id, m.message || m.code, m.code);
          } else {
            say('Error: ' + (m.message || m.code));
          }
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

  /** The SQL of a turn: formatted for reading, with a button that copies it as it ran. */
  function showSql(t, sql) {
    t.rawSql = sql;
    t.sql.textContent = formatSql(sql);
    t.sqlBox.hidden = false;
  }

  async function copySql(t, button) {
    if (!t.rawSql) return;
    try {
      await navigator.clipboard.writeText(t.rawSql);
      button.textContent = 'Copied';
      say('The SQL is on the clipboard.');
    } catch (e) {
      // No clipboard (an insecure origin, or refused): select the text to copy by hand.
      const range = document.createRange();
      range.selectNodeContents(t.sql);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      button.textContent = 'Selected';
      say('The clipboard is not available: the SQL is selected, copy it with Ctrl+C.');
    }
    setTimeout(() => { button.textContent = 'Copy SQL'; }, 1500);
  }

  function table(columns, rows, cellOf) {
    const wrap = el('div', 'table-wrap');
    wrap.tabIndex = 0;
    wrap.setAttribute('role', 'region');
    wrap.setAttribute('aria-label', 'Result rows');
    const tableEl = el('table');
    const thead = el('thead');
    const hr = el('tr');
    for (const c of columns) {
      const th = el('th', null, c);
      th.scope = 'col';
      hr.appendChild(th);
    }
    thead.appendChild(hr);
    const tbody = el('tbody');
    for (const r of rows) {
      const tr = el('tr');
      columns.forEach((c, i) => {
        const [text, cls] = cellOf(r, i);
        tr.appendChild(el('td', cls, text));
      });
      tbody.appendChild(tr);
    }
    tableEl.append(thead, tbody);
    wrap.appendChild(tableEl);
    return wrap;
  }

  function result(t, m) {
    const cols = m.columns || [];
    const rows = m.rows || [];
    const wrap = table(cols.map((c) => c.name), rows, (r, i) => {
      const c = cols[i];
      const v = r[c.name];
      const shown = FLOAT.has(c.type) && typeof v === 'number' ? DECIMALS.format(v) : cell(v);
      return [shown, NUMERIC.has(c.type) ? 'num' : null];
    });
    const s = m.stats || {};
    const meta = el('p', 'meta', m.row_count + ' row' + (m.row_count === 1 ? '' : 's') +
      (m.truncated ? ' (more exist: capped)' : '') + ' · ' + (s.duration_ms ?? '?') + ' ms' +
      (s.cache_hit ? ' · from cache' : ''));
    const chart = drawChart(cols, rows, t.rawSql || '');
    if (chart) t.body.appendChild(chart);
    t.body.append(wrap, meta);
    if (m.query_id) t.body.appendChild(downloads(m.query_id));
  }

  // ---------- downloads: the whole result (not only the rows shown) as a file ----------
  const DOWNLOADS = [['csv', 'CSV'], ['xlsx', 'Excel'], ['parquet', 'Parquet']];

  function downloads(queryId) {
    const bar = el('div', 'downloads');
    bar.appendChild(el('span', 'meta', 'Download the whole result:'));
    for (const [format, label] of DOWNLOADS) {
      const b = el('button', 'secondary small download', label);
      b.type = 'button';
      b.dataset.format = format;
      b.addEventListener('click', () => download(queryId, format, b));
      bar.appendChild(b);
    }
    return bar;
  }

  /** Runs the answer's query again as an export and saves the file: streamed in the
   *  response when the result is small, else as a background job whose progress is shown
   *  until its signed download link is ready. */
  async function download(queryId, format, button) {
    button.disabled = true;
    say('Preparing the ' + button.textContent + ' file…');
    try {
      const r = await api('/api/v1/exports', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ query_id: queryId, format: format }),
      });
      if (!r.ok) {
        say(await errorMessage(r, 'The export failed'));
        return;
      }
      if (r.status === 202) {
        await followJob((await r.json()).status_url, button.textContent);
        return;
      }
      const blob = await r.blob();
      const disposition = r.headers.get('Content-Disposition') || '';
      const named = /filename="?([^";]+)"?/.exec(disposition);
      const href = URL.createObjectURL(blob);
      const name = named ? named[1] : 'export.' + format;
      save(href, name);
      setTimeout(() => URL.revokeObjectURL(href), 10_000);
      say('Downloaded ' + name + ' (' + fmtBytes(blob.size) + ').');
    } catch (e) {
      say('The export failed: ' + e.message);
    } finally {
      button.disabled = false;
    }
  }

  async function errorMessage(r, what) {
    try { return (await r.json()).error.message; } catch { return what + ' (' + r.status + ').'; }
  }

  function save(href, name) {
    const a = el('a');
    a.href = href;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  /** Polls an export job until it ends; then downloads its file through the signed link
   *  (no key needed, and the browser can resume it). */
  async function followJob(statusUrl, label) {
    for (;;) {
      const r = await api(statusUrl);
      if (!r.ok) {
        say(await errorMessage(r, 'The export job could not be read'));
        return;
      }
      const job = await r.json();
      if (job.status === 'succeeded') {
        save(job.download_url, job.file_name);
        say('Downloaded ' + job.file_name + ' (' + fmtBytes(job.bytes) + ').');
        return;
      }
      if (job.status !== 'queued' && job.status !== 'running') {
        say('The export ' + job.status + (job.error ? ': ' + job.error.message : '.'));
        return;
      }
      const done = job.progress == null ? '' : ' (' + Math.round(job.progress * 100) + '%)';
      say(job.status === 'queued'
        ? 'The ' + label + ' export is queued…'
        : 'Exporting ' + label + ': ' + job.rows.toLocaleString() + ' rows, ' +
          fmtBytes(job.bytes) + done + '…');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  function catalog(t, m) {
    t.body.appendChild(table(m.columns || [], m.rows || [], (r, i) => [cell(r[i]), null]));
  }

  // ---------- charts ----------
  /** A key: `id`, `…_id`, `key`, `…_key`, `pk`, or a column the SQL joins on. */
  function isKey(name, joinColumns) {
    const n = String(name).toLowerCase();
    return n === 'id' || n.endsWith('_id') || n === 'key' || n.endsWith('_key') || n === 'pk' ||
      n.endsWith('_pk') || joinColumns.has(n);
  }

  /** Upper-cases SQL keywords outside strings; returns the text with literals blanked. */
  function sqlSkeleton(sql) {
    return String(sql).replace(/'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*"|--[^\n]*|\/\*[\s\S]*?\*\//g, ' ');
  }

  /** Unqualified, unquoted, lower-case names of the columns the SQL joins on. */
  function joinColumns(sql) {
    const names = new Set();
    const s = sqlSkeleton(sql);
    const re = /\bON\b([\s\S]*?)(?=\b(?:JOIN|LEFT|RIGHT|FULL|INNER|CROSS|WHERE|GROUP|ORDER|HAVING|LIMIT|QUALIFY|UNION|WINDOW)\b|\)|$)/gi;
    let m;
    while ((m = re.exec(s))) {
      for (const id of m[1].match(/[`A-Za-z_][`\w.]*/g) || []) {
        const last = id.replace(/`/g, '').split('.').pop().toLowerCase();
        if (!/^(and|or|not|is|null|on)$/.test(last)) names.add(last);
      }
    }
    return names;
  }

  /** The first expression of the outermost ORDER BY: a column name, or a 1-based position. */
  function orderedBy(sql) {
    const s = sqlSkeleton(sql);
    let depth = 0;
    let found = -1;
    const re = /[()]|\bORDER\s+BY\b/gi;
    let m;
    while ((m = re.exec(s))) {
      if (m[0] === '(') depth++;
      else if (m[0] === ')') depth--;
      else if (depth === 0) found = m.index + m[0].length;
    }
    if (found < 0) return null;
    const first = s.slice(found).split(/,|\bLIMIT\b|\bOFFSET\b|;/i)[0]
      .replace(/\b(ASC|DESC|NULLS\s+(FIRST|LAST))\b/gi, '').trim();
    if (/^\d+$/.test(first)) return { position: Number(first) };
    if (!/^[`\w.]+$/.test(first)) return null;
    return { name: first.replace(/`/g, '').split('.').pop().toLowerCase() };
  }

  /**
   * The measure to plot: the column the SQL orders by when it is numeric and not a key, else
   * the last numeric column that is not a key. Keys (`id`, `…_id`, the join columns) never.
   */
  function pickMeasure(cols, sql, keys) {
    const measures = cols.filter((c) => NUMERIC.has(c.type) && !isKey(c.name, keys));
    if (!measures.length) return null;
    const by = sql ? orderedBy(sql) : null;
    if (by) {
      const hit = by.position ? cols[by.position - 1] : cols.find((c) => c.name.toLowerCase() === by.name);
      if (hit && measures.includes(hit)) return hit;
    }
    return measures[measures.length - 1];
  }

  // One dimension and a measure: bars; a time bucket and a measure: a line. NULL measures are
  // left out (not drawn as 0); no chart when fewer than two values remain.
  function drawChart(cols, rows, sql) {
    if (rows.length < 2 || rows.length > 200) return null;
    const keys = joinColumns(sql);
    const measure = pickMeasure(cols, sql, keys);
    if (!measure) return null;
    let dims = cols.filter((c) => !NUMERIC.has(c.type) && !isKey(c.name, keys));
    if (dims.length === 0) dims = cols.filter((c) => c !== measure && isKey(c.name, keys));
    if (dims.length !== 1) return null;
    const dim = dims[0];
    const isTime = TIME.has(dim.type) || /(^|_)(month|day|week|year|date|quarter|hour)s?($|_)/i.test(dim.name);
    const points = [];
    for (const r of rows) {
      const raw = r[measure.name];
      if (raw === null || raw === undefined || raw === '') continue;
      const value = Number(raw);
      if (Number.isFinite(value)) points.push({ label: cell(r[dim.name]), value });
    }
    if (points.length < 2) return null;
    if (isTime) points.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
    const W = 760, H = 260, L = 60, R = 10, T = 12, B = 56;
    const max = Math.max(0, ...points.map((p) => p.value));
    const min = Math.min(0, ...points.map((p) => p.value));
    const span = max - min || 1;
    const y = (v) => T + (H - T - B) * (1 - (v - min) / span);
    const what = measure.name + ' by ' + dim.name;
    const skipped = rows.length - points.length;
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img' });
    const title = svg('title');
    title.textContent = what + (isTime ? ' (line)' : ' (bars)');
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
    const figure = el('figure', 'chart-figure');
    const caption = el('figcaption', 'chart-label', what);
    if (skipped > 0) caption.appendChild(el('span', 'chart-note', ' (' + skipped + ' without a value left out)'));
    figure.append(caption, root);
    return figure;
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

  /** Scrolls a turn so its top is in view (the footer is sticky: see scroll-padding). */
  function reveal(t) {
    t.article.scrollIntoView({ block: 'start' });
  }

  function finish(id, error, code) {
    const t = turns.get(id);
    if (t) {
      for (const li of t.stages.children) li.classList.remove('current');
      if (error) {
        const bubble = el('div', 'error error-bubble');
        bubble.setAttribute('role', 'alert');
        bubble.appendChild(el('strong', 'error-title', code === 'CANCELLED' ? 'Cancelled' : 'No answer'));
        bubble.appendChild(el('p', 'error-message', error));
        if (code && code !== 'CANCELLED') bubble.appendChild(el('p', 'error-code', code));
        t.body.appendChild(bubble);
      }
      t.article.setAttribute('aria-busy', 'false');
      reveal(t);
    }
    if (inFlight && inFlight.id === id) {
      inFlight = null;
      $('cancel-button').disabled = true;
      say(error ? error : 'Answered.');
    }
  }

  // ---------- turns ----------
  function newTurn(question) {
    $('empty')?.remove();
    const article = el('article', 'turn');
    article.setAttribute('aria-busy', 'true');
    const h = el('h2', 'question', question);
    const stages = el('ol', 'stages');
    stages.setAttribute('aria-label', 'Progress');
    const explanation = el('p', 'explanation');
    const sqlBox = el('div', 'sql-box');
    sqlBox.hidden = true;
    const sqlBar = el('div', 'sql-bar');
    sqlBar.appendChild(el('span', 'sql-label', 'SQL'));
    const copy = el('button', 'secondary small copy-sql', 'Copy SQL');
    copy.type = 'button';
    sqlBar.appendChild(copy);
    const sql = el('pre', 'sql');
    sqlBox.append(sqlBar, sql);
    const estimate = el('p', 'estimate');
    const body = el('div', 'answer');
    article.append(h, stages, explanation, sqlBox, estimate, body);
    $('log').appendChild(article);
    const t = { article, stages, explanation, sqlBox, sql, estimate, body, rawSql: null };
    copy.addEventListener('click', () => copySql(t, copy));
    return t;
  }

  function clearLog() {
    for (const a of document.querySelectorAll('.turn')) a.remove();
    turns.clear();
    if (inFlight) {
      inFlight = null;
      $('cancel-button').disabled = true;
    }
    pending = [];
  }

  /**
   * After a reload: shows the turns of the tab's conversation (GET /api/v1/conversations/{id}),
   * so its context is in sight; when it cannot be read, the tab starts a new conversation.
   */
  async function restore() {
    const id = sessionStorage.getItem(CONV);
    if (!id) return;
    let conv = null;
    try {
      const r = await api('/api/v1/conversations/' + encodeURIComponent(id));
      if (r.ok) conv = await r.json();
    } catch (e) {
      conv = null;
    }
    if (!conv || !Array.isArray(conv.turns)) {
      sessionStorage.removeItem(CONV);
      return;
    }
    if (conv.dataset_id && !sessionStorage.getItem(DATASET)) showDataset(conv.dataset_id);
    for (const turn of conv.turns) {
      const t = newTurn(String(turn.question ?? ''));
      t.article.classList.add('restored');
      if (turn.sql) showSql(t, turn.sql);
      t.explanation.textContent = turn.explanation || '';
      const res = turn.result;
      if (res && Array.isArray(res.columns)) {
        const rows = Array.isArray(res.sample_rows) ? res.sample_rows : [];
        t.body.appendChild(table(res.columns.map(String), rows, (r, i) => {
          const v = Array.isArray(r) ? r[i] : undefined;
          return [typeof v === 'number' && !Number.isInteger(v) ? DECIMALS.format(v) : cell(v), typeof v === 'number' ? 'num' : null];
        }));
        const n = Number(res.row_count);
        t.body.appendChild(el('p', 'meta', 'Earlier answer: ' + (Number.isFinite(n) ? n : '?') + ' row' +
          (n === 1 ? '' : 's') + (Number.isFinite(n) && n > rows.length ? ', the first ' + rows.length + ' kept' : '') + '.'));
      }
      t.article.setAttribute('aria-busy', 'false');
    }
    if (conv.turns.length) {
      say('Continuing the conversation above: follow-ups use its context. "New conversation" starts afresh.');
      document.querySelector('.turn:last-of-type')?.scrollIntoView({ block: 'start' });
    }
  }

  /** Drops the conversation (page and server context) and starts a new one on `connect`. */
  function newConversation() {
    sessionStorage.removeItem(CONV);
    clearLog();
    connect();
  }

  // ---------- asking ----------
  function ask(question) {
    question = question.trim();
    if (!question) return;
    if (inFlight) { say('Wait for the answer, or cancel it.'); return; }
    const id = 'q' + Date.now().toString(36) + '-' + (++counter);
    const t = newTurn(question);
    turns.set(id, t);
    inFlight = { id, turn: t };
    $('cancel-button').disabled = false;
    reveal(t);
    say('Asking…');
    // The dataset travels with the conversation (`configure`): a connection that is not on
    // the chosen dataset (none was chosen yet) is moved to it first.
    const want = chosenDataset();
    if (ready && want && want !== configuredDataset) {
      const earlier = document.querySelectorAll('.turn').length > 1;
      configure(ws, want, earlier ? sessionStorage.getItem(CONV) : null);
    }
    send({ type: 'ask', question, execute: $('execute').checked, request_id: id });
  }

  document.addEventListener('DOMContentLoaded', async () => {
    const keyInput = $('api-key');
    keyInput.value = sessionStorage.getItem(KEY) || '';
    $('key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const k = keyInput.value.trim();
      if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY);
      newConversation();
      loadDatasets();
    });
    $('key-clear').addEventListener('click', () => {
      keyInput.value = '';
      sessionStorage.removeItem(KEY);
      newConversation();
      loadDatasets();
    });
    $('new-conversation').addEventListener('click', () => {
      newConversation();
      $('question').focus();
    });
    $('dataset').addEventListener('change', () => {
      const id = $('dataset').value;
      if (!id) return;
      sessionStorage.setItem(DATASET, id);
      newConversation();
      say('Dataset ' + id + ': a new conversation.');
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
    // The sticky footer covers the bottom of the page: scrolling keeps clear of it.
    const footer = document.querySelector('footer.ask');
    const pad = () => { document.documentElement.style.scrollPaddingBottom = footer.offsetHeight + 'px'; };
    pad();
    if (window.ResizeObserver) new ResizeObserver(pad).observe(footer);
    await loadDatasets();
    await restore();
    connect();
  });
})();
