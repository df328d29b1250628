// The bqai activity page: spend per day, the most asked questions and most run query shapes,
// the slowest and most expensive queries and the error codes of a date range, from
// /api/v1/analytics/* (see docs/API.md); a row opens its history entry (/api/v1/history/{id}).
// Like the chat page, everything that comes from a person, a model or the data is put on the
// page as text (textContent, SVG <title>/<text>): nothing here ever parses a string as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const KEY = 'bqai.key'; // the chat page's key: one key per tab for both pages
  const LIMIT = 10;
  const MAX_CHART_DAYS = 1000;
  const DAY_MS = 86400000;
  const TIB = 1099511627776;
  const INT = new Intl.NumberFormat('en-US');
  const USD = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
  const USD_SMALL = new Intl.NumberFormat('en-US', {
    style: 'currency', currency: 'USD', minimumFractionDigits: 4, maximumFractionDigits: 4,
  });

  let generation = 0;      // the latest load; older answers are dropped
  let detailGeneration = 0;
  let detailTrigger = null; // what opened the detail panel (focus goes back there)
  // The server's price per TiB billed, read off the last summary (its cost is bytes billed ×
  // price / 2^40, and history entries carry no cost of their own); null until bytes were billed.
  let usdPerTib = null;

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

  // ---------- formats ----------
  function num(v) {
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }
  function fmtInt(v) {
    const n = num(v);
    return n === null ? '—' : INT.format(n);
  }
  function fmtUsd(v) {
    const n = num(v);
    if (n === null) return '—';
    return n !== 0 && Math.abs(n) < 0.01 ? USD_SMALL.format(n) : USD.format(n);
  }
  function fmtBytes(v) {
    let n = num(v);
    if (n === null) return '—';
    const u = ['B', 'KB', 'MB', 'GB', 'TB', 'PB', 'EB'];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
  }
  function fmtMs(v) {
    const n = num(v);
    if (n === null) return '—';
    return INT.format(Math.round(n)) + ' ms';
  }
  function fmtRate(v) {
    const n = num(v);
    if (n === null) return '—';
    const pct = n <= 1 ? n * 100 : n;
    return (Number.isInteger(pct) ? pct : pct.toFixed(1)) + '%';
  }
  /** An RFC 3339 instant as "YYYY-MM-DD HH:MM UTC" (the text as given when it does not parse). */
  function fmtWhen(s) {
    if (s === null || s === undefined || s === '') return '—';
    const d = new Date(String(s));
    if (Number.isNaN(d.getTime())) return String(s);
    return d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }
  /** An entry's estimated cost: its own field if it has one, else bytes billed × the price. */
  function costOf(e) {
    if (e.estimated_cost_usd !== undefined && e.estimated_cost_usd !== null) return num(e.estimated_cost_usd);
    const billed = num(e.bytes_billed);
    return usdPerTib === null || billed === null ? null : billed / TIB * usdPerTib;
  }
  function oneLine(s) {
    return String(s ?? '').replace(/\s+/g, ' ').trim();
  }
  function principalsText(p) {
    if (Array.isArray(p)) return p.length ? p.map((x) => (x === null ? 'anonymous' : String(x))).join(', ') : '—';
    return p === null || p === undefined ? '—' : String(p);
  }

  // ---------- dates (UTC days, "YYYY-MM-DD") ----------
  const DATE = /^\d{4}-\d{2}-\d{2}$/;
  function today() { return new Date().toISOString().slice(0, 10); }
  function addDays(day, n) {
    return new Date(Date.parse(day + 'T00:00:00Z') + n * DAY_MS).toISOString().slice(0, 10);
  }
  function daysFrom(from, to) {
    const out = [];
    for (let d = from; d <= to && out.length <= MAX_CHART_DAYS; d = addDays(d, 1)) out.push(d);
    return out;
  }
  /** The UTC day of an instant the server answered with (`end`: an exclusive midnight is the day before). */
  function dayOf(s, end) {
    if (typeof s !== 'string') return null;
    if (DATE.test(s)) return s;
    const t = Date.parse(s);
    if (Number.isNaN(t)) return null;
    const d = new Date(t);
    const midnight = d.getUTCHours() === 0 && d.getUTCMinutes() === 0 && d.getUTCSeconds() === 0 && d.getUTCMilliseconds() === 0;
    return new Date(end && midnight ? t - 1 : t).toISOString().slice(0, 10);
  }

  // ---------- the API ----------
  /** fetch() on this origin with the tab's API key, if there is one. */
  function api(path) {
    const opts = { cache: 'no-store', headers: { Accept: 'application/json' } };
    const key = sessionStorage.getItem(KEY);
    if (key) opts.headers.Authorization = 'Bearer ' + key;
    return fetch(path, opts);
  }

  /** GET `path` as JSON: `{ body }`, or `{ error, code, status }` with a message to show. */
  async function getJson(path) {
    let r;
    try {
      r = await api(path);
    } catch (e) {
      return { error: 'The server cannot be reached.', code: null, status: 0 };
    }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const e = body && typeof body === 'object' ? body.error : null;
      let message = e && e.message ? String(e.message) : 'The server answered ' + r.status + '.';
      if (r.status === 401) {
        message = sessionStorage.getItem(KEY)
          ? 'The API key was not accepted: ' + message
          : 'This server needs an API key: enter it above. (' + message + ')';
      }
      return { error: message, code: e && e.code ? String(e.code) : null, status: r.status };
    }
    if (body === null || typeof body !== 'object') {
      return { error: 'The server did not answer with JSON (' + path.split('?')[0] + ').', code: null, status: r.status };
    }
    return { body };
  }

  // ---------- errors and notices ----------
  function showErrors(list) {
    const box = $('error');
    box.replaceChildren();
    const seen = new Set();
    for (const e of list) {
      const k = (e.code || '') + '\u0000' + e.error;
      if (seen.has(k)) continue;
      seen.add(k);
      const p = el('p', 'error-message', e.error);
      if (e.code) p.appendChild(el('span', 'error-code', ' ' + e.code));
      box.appendChild(p);
    }
    if (seen.size) box.prepend(el('strong', 'error-title', 'Could not load the activity'));
    box.hidden = seen.size === 0;
  }
  function showRetention(notices) {
    const n = notices.find((x) => typeof x === 'string' && x);
    $('retention').textContent = n || '';
    $('retention').hidden = !n;
  }

  // ---------- the range ----------
  function readRange() {
    return {
      from: $('from').value.trim(),
      to: $('to').value.trim(),
      principal: $('principal').value.trim(),
    };
  }
  function query(range) {
    const p = new URLSearchParams();
    if (range.from) p.set('from', range.from);
    if (range.to) p.set('to', range.to);
    if (range.principal) p.set('principal', range.principal);
    return p.toString();
  }

  /** Marks a load as done: `data-loads` on <main> counts them (what tests wait for). */
  function loaded() {
    const main = document.querySelector('main.activity');
    main.setAttribute('aria-busy', 'false');
    main.dataset.loads = String(Number(main.dataset.loads || 0) + 1);
  }

  /** Loads the page for the form's range; `remember`: put the range in the address too. */
  async function load(remember) {
    const gen = ++generation;
    const range = readRange();
    if (range.from && range.to && range.from > range.to) {
      showErrors([{ error: 'The start date (' + range.from + ') is after the end date (' + range.to + ').' }]);
      say('Nothing loaded.');
      loaded();
      return;
    }
    const qs = query(range);
    // A reload keeps an applied range; the first load leaves the address alone (so a bookmark
    // of /activity keeps meaning "the last 7 days").
    if (remember) history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
    const amp = qs ? '&' + qs : '';
    say('Loading…');
    document.querySelector('main.activity').setAttribute('aria-busy', 'true');
    // The summary first: when it is refused (401: no key or a wrong one, each refusal counted
    // against the client's failed-authentication budget; 403: a principal the caller may not
    // read), the other five would be too, and are not sent.
    const summary = await getJson('/api/v1/analytics/summary?group_by=day' + amp);
    if (gen !== generation) return;
    const sum = summary.body && summary.body.total;
    if (sum && num(sum.bytes_billed) > 0 && num(sum.estimated_cost_usd) !== null) {
      usdPerTib = num(sum.estimated_cost_usd) / num(sum.bytes_billed) * TIB;
    }
    const skipped = { error: summary.error, code: summary.code, status: summary.status };
    const [ask, sql, slowest, expensive, errors] = summary.status === 401 || summary.status === 403 ? Array(5).fill(skipped) : await Promise.all([
      getJson('/api/v1/analytics/popular?kind=ask&limit=' + LIMIT + amp),
      getJson('/api/v1/analytics/popular?kind=sql&limit=' + LIMIT + amp),
      getJson('/api/v1/analytics/slowest?limit=' + LIMIT + amp),
      getJson('/api/v1/analytics/expensive?limit=' + LIMIT + amp),
      getJson('/api/v1/analytics/errors?' + qs),
    ]);
    if (gen !== generation) return;
    renderSummary(summary, range);
    renderList($('popular-ask'), ask, popularColumns('Question'));
    renderList($('popular-sql'), sql, popularColumns('Query shape'));
    renderList($('slowest'), slowest, entryColumns('Duration', (e) => fmtMs(e.duration_ms)));
    renderList($('expensive'), expensive, entryColumns('Billed', (e) => fmtBytes(e.bytes_billed), true));
    renderList($('errors'), errors, errorColumns());
    const all = [summary, ask, sql, slowest, expensive, errors];
    const failed = all.filter((r) => r.error);
    showErrors(failed);
    showRetention(all.map((r) => r.body && r.body.retention_notice));
    loaded();
    const who = range.principal ? ' for ' + range.principal : '';
    say(failed.length === all.length ? 'Nothing loaded.'
      : failed.length ? 'Loaded in part' + who + '.' : 'Activity' + who + ' loaded.');
  }

  // ---------- spend per day ----------
  function renderSummary(res, range) {
    const section = $('spend');
    const err = section.querySelector('.section-error');
    const box = $('spend-chart-box');
    box.replaceChildren();
    for (const id of ['total-spend', 'total-queries', 'total-failures', 'total-p95']) $(id).textContent = '—';
    $('spend-caption').textContent = '';
    if (res.error) {
      err.textContent = 'Could not load the summary: ' + res.error;
      err.hidden = false;
      return;
    }
    err.hidden = true;
    const body = res.body;
    const total = body.total || {};
    $('total-spend').textContent = fmtUsd(total.estimated_cost_usd);
    $('total-queries').textContent = fmtInt(total.queries);
    const failedN = num(total.failed) ?? 0;
    const rejectedN = num(total.rejected) ?? 0;
    $('total-failures').textContent = INT.format(failedN) + ' failed' + (rejectedN ? ' · ' + INT.format(rejectedN) + ' rejected' : '');
    const p95 = total.duration_ms ? total.duration_ms.p95 : null;
    $('total-p95').textContent = num(total.queries) ? fmtMs(p95) : '—';

    const buckets = new Map();
    for (const b of Array.isArray(body.buckets) ? body.buckets : []) {
      if (b && typeof b.key === 'string') buckets.set(b.key.slice(0, 10), b);
    }
    const from = range.from || dayOf(body.from, false);
    const to = range.to || dayOf(body.to, true);
    let days = from && to && DATE.test(from) && DATE.test(to) ? daysFrom(from, to) : [];
    let note = '';
    if (days.length > MAX_CHART_DAYS || days.length === 0) {
      days = [...buckets.keys()].sort();
      note = days.length ? ' Only the days with queries are shown.' : '';
    }
    const points = days.map((day) => {
      const b = buckets.get(day);
      return { day, cost: b ? num(b.estimated_cost_usd) ?? 0 : 0, queries: b ? num(b.queries) ?? 0 : 0 };
    });
    const withData = points.filter((p) => p.queries > 0).length;
    if (points.length) box.appendChild(drawSpend(points));
    const span = days.length ? days[0] + ' to ' + days[days.length - 1] : 'the range';
    $('spend-caption').textContent = 'Estimated cost in USD per UTC day, ' + span +
      (range.principal ? ', for ' + range.principal : '') + ': ' + fmtUsd(total.estimated_cost_usd) + ' over ' +
      fmtInt(total.queries) + ' queries; ' + withData + ' of ' + points.length + ' days had queries' +
      (points.length > withData ? ', the others show as zero.' : '.') + note;
  }

  function drawSpend(points) {
    const W = 760, H = 240, L = 64, R = 10, T = 14, B = 44;
    const max = Math.max(0, ...points.map((p) => p.cost));
    const top = max > 0 ? max : 1;
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart spend-chart', role: 'img', id: 'spend-chart' });
    const title = svg('title');
    title.textContent = 'Estimated spend per day, ' + points[0].day + ' to ' + points[points.length - 1].day;
    root.appendChild(title);
    root.setAttribute('aria-label', title.textContent);
    if (max > 0) {
      root.appendChild(svg('line', { x1: L, y1: y(max), x2: W - R, y2: y(max), class: 'grid' }));
    }
    root.appendChild(svg('line', { x1: L, y1: y(0), x2: W - R, y2: y(0), class: 'axis' }));
    for (const v of max > 0 ? [max, 0] : [0]) {
      const tx = svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' });
      tx.textContent = fmtUsd(v);
      root.appendChild(tx);
    }
    const step = (W - L - R) / points.length;
    const every = Math.ceil(points.length / 10);
    points.forEach((p, i) => {
      const cx = L + step * i + step / 2;
      const h = Math.max(0, y(0) - y(p.cost));
      const label = p.day + ': ' + fmtUsd(p.cost) + ' (' + INT.format(p.queries) + ' quer' + (p.queries === 1 ? 'y' : 'ies') + ')';
      const rect = svg('rect', {
        x: (cx - step * 0.35).toFixed(2), y: (y(0) - h).toFixed(2), width: (step * 0.7).toFixed(2), height: h.toFixed(2),
        class: 'bar spend-bar' + (p.cost > 0 ? '' : ' zero'),
        'data-day': p.day, 'data-cost': p.cost, 'data-queries': p.queries, 'aria-label': label,
      });
      const tip = svg('title');
      tip.textContent = label;
      rect.appendChild(tip);
      root.appendChild(rect);
      if (i % every === 0) {
        const tx = svg('text', { x: cx, y: H - B + 16, 'text-anchor': 'middle' });
        tx.textContent = p.day.slice(5);
        root.appendChild(tx);
      }
    });
    return root;
  }

  // ---------- lists ----------
  function popularColumns(what) {
    return {
      id: (r) => r.example_id,
      cols: [
        [what, (r) => oneLine(r.example), 'what'],
        ['Runs', (r) => fmtInt(r.count), 'num'],
        ['Principals', (r) => principalsText(r.principals), null],
        ['Avg duration', (r) => fmtMs(r.avg_duration_ms), 'num'],
        ['Scanned', (r) => fmtBytes(r.bytes_processed), 'num'],
        ['Succeeded', (r) => fmtRate(r.success_rate), 'num'],
        ['Last seen', (r) => fmtWhen(r.last_seen), null],
      ],
    };
  }
  function entryColumns(measure, value, withCost) {
    const cols = [
      ['Query', (e) => oneLine(e.question || e.sql), 'what'],
      [measure, value, 'num'],
    ];
    if (withCost) cols.push(['Cost', (e) => fmtUsd(costOf(e)), 'num']);
    cols.push(
      ['Status', (e) => String(e.status ?? '—'), null],
      ['Principal', (e) => (e.principal === null || e.principal === undefined ? '—' : String(e.principal)), null],
      ['When', (e) => fmtWhen(e.created_at), null],
    );
    return { id: (e) => e.id, cols };
  }
  function errorColumns() {
    return {
      id: (r) => r.example_id,
      cols: [
        ['Code', (r) => String(r.code ?? '—'), 'what code'],
        ['Count', (r) => fmtInt(r.count), 'num'],
        ['Failed', (r) => fmtInt(r.failed), 'num'],
        ['Rejected', (r) => fmtInt(r.rejected), 'num'],
        ['Last seen', (r) => fmtWhen(r.last_seen), null],
        ['Example', (r) => oneLine(r.example_message), 'message'],
      ],
    };
  }

  /** A section's table: one row per item; the first cell is a button that opens the entry. */
  function renderList(section, res, spec) {
    const box = section.querySelector('.list');
    box.replaceChildren();
    if (res.error) {
      box.appendChild(el('p', 'error section-error', 'Could not load: ' + res.error));
      return;
    }
    const rows = Array.isArray(res.body.data) ? res.body.data : [];
    if (!rows.length) {
      box.appendChild(el('p', 'empty', 'Nothing in this range.'));
      return;
    }
    // No price known yet (nothing billed): the cost column is left out rather than shown empty.
    const cols = spec.cols.filter(([name]) => name !== 'Cost' || rows.some((r) => r && costOf(r) !== null));
    const wrap = el('div', 'table-wrap');
    wrap.tabIndex = 0;
    wrap.setAttribute('role', 'region');
    wrap.setAttribute('aria-label', section.querySelector('h2').textContent);
    const table = el('table', 'activity-table');
    const hr = el('tr');
    for (const [name, , cls] of cols) {
      const th = el('th', cls && cls.includes('num') ? 'num' : null, name);
      th.scope = 'col';
      hr.appendChild(th);
    }
    const thead = el('thead');
    thead.appendChild(hr);
    const tbody = el('tbody');
    for (const r of rows) {
      if (!r || typeof r !== 'object') continue;
      const id = spec.id(r);
      const tr = el('tr', 'entry-row');
      cols.forEach(([, value, cls], i) => {
        const text = value(r);
        const td = el('td', cls);
        if (i === 0 && id) {
          const b = el('button', 'link entry-link', text || '(empty)');
          b.type = 'button';
          b.title = text;
          b.addEventListener('click', (ev) => { ev.stopPropagation(); openEntry(String(id), b, tr); });
          td.appendChild(b);
        } else {
          td.textContent = text;
          if (cls && (cls.includes('what') || cls.includes('message'))) td.title = text;
        }
        tr.appendChild(td);
      });
      if (id) {
        tr.dataset.id = String(id);
        tr.classList.add('clickable');
        tr.addEventListener('click', () => openEntry(String(id), tr.querySelector('button.entry-link'), tr));
      }
      tbody.appendChild(tr);
    }
    table.append(thead, tbody);
    wrap.appendChild(table);
    box.appendChild(wrap);
  }

  // ---------- one history entry ----------
  async function openEntry(id, trigger, row) {
    const gen = ++detailGeneration;
    detailTrigger = trigger || null;
    for (const r of document.querySelectorAll('tr.entry-row.selected')) r.classList.remove('selected');
    if (row) row.classList.add('selected');
    const panel = $('detail');
    panel.hidden = false;
    panel.dataset.id = id;
    panel.setAttribute('aria-busy', 'true');
    $('detail-title').textContent = 'History entry';
    $('detail-status').textContent = 'Loading entry ' + id + '…';
    $('detail-body').replaceChildren();
    const res = await getJson('/api/v1/history/' + encodeURIComponent(id));
    if (gen !== detailGeneration) return;
    panel.setAttribute('aria-busy', 'false');
    if (res.error) {
      $('detail-status').textContent = '';
      const bubble = el('div', 'error error-bubble');
      bubble.setAttribute('role', 'alert');
      bubble.appendChild(el('strong', 'error-title', 'Could not open entry ' + id));
      bubble.appendChild(el('p', 'error-message', res.error));
      if (res.code) bubble.appendChild(el('p', 'error-code', res.code));
      $('detail-body').appendChild(bubble);
    } else {
      showEntry(res.body);
    }
    panel.scrollIntoView({ block: 'start' });
    $('detail-title').focus({ preventScroll: true });
  }

  function showEntry(e) {
    $('detail-title').textContent = (e.kind === 'ask' ? 'Ask' : e.kind === 'system' ? 'System query' : 'Query') +
      ' of ' + fmtWhen(e.created_at);
    $('detail-status').textContent = 'Entry ' + String(e.id ?? '');
    const body = $('detail-body');
    if (e.question) body.appendChild(el('p', 'detail-question', e.question));
    if (e.status && e.status !== 'succeeded') {
      const bubble = el('div', 'error error-bubble detail-error');
      bubble.appendChild(el('strong', 'error-title', e.status === 'rejected' ? 'Rejected' : 'Failed'));
      if (e.error_message) bubble.appendChild(el('p', 'error-message', e.error_message));
      if (e.error_code) bubble.appendChild(el('p', 'error-code', e.error_code));
      body.appendChild(bubble);
    }
    const dl = el('dl', 'facts');
    const fact = (name, value, cls) => {
      const div = el('div', cls);
      div.append(el('dt', null, name), el('dd', null, value));
      dl.appendChild(div);
    };
    fact('Status', String(e.status ?? '—'), 'fact-status');
    fact('Kind', String(e.kind ?? '—'));
    fact('Principal', e.principal === null || e.principal === undefined ? '—' : String(e.principal));
    fact('Dataset', e.dataset_id ? String(e.dataset_id) : '—');
    fact('Duration', fmtMs(e.duration_ms), 'fact-duration');
    fact('Bytes processed', fmtBytes(e.bytes_processed), 'fact-processed');
    fact('Bytes billed', fmtBytes(e.bytes_billed), 'fact-billed');
    if (costOf(e) !== null) fact('Estimated cost', fmtUsd(costOf(e)), 'fact-cost');
    fact('Rows', fmtInt(e.row_count));
    fact('From cache', e.cache_hit ? 'yes' : 'no');
    fact('Dry run', e.dry_run ? 'yes' : 'no');
    if (e.error_code) fact('Error code', String(e.error_code), 'fact-error-code');
    const a = e.ask;
    if (a && typeof a === 'object') {
      fact('Generator', String(a.generator ?? '—') + (a.model ? ' (' + a.model + ')' : ''));
      fact('Attempts', fmtInt(a.attempts));
      fact('Tokens in / out', fmtInt(a.input_tokens) + ' / ' + fmtInt(a.output_tokens));
      if (a.cost_usd !== null && a.cost_usd !== undefined) fact('Model cost', fmtUsd(a.cost_usd));
    }
    if (Array.isArray(e.tables) && e.tables.length) {
      fact('Tables read', e.tables.map((t) => (typeof t === 'string' ? t : JSON.stringify(t))).join(', '));
    }
    if (e.rerun_of) fact('Rerun of', String(e.rerun_of));
    if (e.request_id) fact('Request id', String(e.request_id));
    body.appendChild(dl);
    const sqlBlock = (label, text, id) => {
      const box = el('div', 'sql-box');
      box.appendChild(el('div', 'sql-bar', label));
      const pre = el('pre', 'sql', text);
      pre.id = id;
      box.appendChild(pre);
      body.appendChild(box);
    };
    sqlBlock('SQL', String(e.sql ?? ''), 'detail-sql');
    if (e.sql_executed && e.sql_executed !== e.sql) sqlBlock('SQL as run', String(e.sql_executed), 'detail-sql-executed');
  }

  function closeEntry() {
    detailGeneration++;
    $('detail').hidden = true;
    for (const r of document.querySelectorAll('tr.entry-row.selected')) r.classList.remove('selected');
    if (detailTrigger && detailTrigger.isConnected) detailTrigger.focus();
    detailTrigger = null;
  }

  document.addEventListener('DOMContentLoaded', () => {
    const keyInput = $('api-key');
    keyInput.value = sessionStorage.getItem(KEY) || '';
    $('key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const k = keyInput.value.trim();
      if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY);
      load();
    });
    $('key-clear').addEventListener('click', () => {
      keyInput.value = '';
      sessionStorage.removeItem(KEY);
      load();
    });
    // The range: from the address (a reload keeps it), else the last 7 days (UTC).
    const params = new URLSearchParams(location.search);
    const given = (name) => {
      const v = params.get(name);
      return v && DATE.test(v) ? v : null;
    };
    const end = today();
    $('to').value = given('to') || end;
    $('from').value = given('from') || addDays(given('to') || end, -6);
    $('principal').value = params.get('principal') || '';
    $('range-form').addEventListener('submit', (e) => {
      e.preventDefault();
      load(true);
    });
    $('detail-close').addEventListener('click', closeEntry);
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !$('detail').hidden) closeEntry();
    });
    load();
  });
})();
