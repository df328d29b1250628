#!/usr/bin/env python3
"""Synthetic query history for the analytics benchmark (scripts/bench-analytics.sh).

Generates ROWS history rows spread over DAYS days before now — weekday office hours busier
than nights and weekends, traffic growing by ~40% over the period — from 50 principals
(Zipf-like activity), 5 datasets and 2,000 SQL shapes (Zipf-like popularity, each with its
own typical duration, bytes and 1-3 tables out of ~40), asks from a few hundred question
shapes. Mix: kind sql ~70% / ask ~28% / system ~2%; status succeeded ~90% / failed ~4% /
rejected ~6%; dry runs ~5%; result-cache hits ~20%; durations log-normal around each shape's
median; ~2% of rows re-run an earlier query (rerun_of).

Writes into an already migrated schema (the server's migrations create it) and adapts to the
columns the table actually has: columns it knows are filled, unknown nullable columns are left
NULL, an unknown NOT NULL column is an error. The tables each query read (none for SQL the
guard refused) go into the column tables_read (a JSON array, as the store writes it) and/or the
table query_history_tables (query_id, table_name), whichever the schema has.

  gen-history.py --rows 1000000 --sqlite DATA/bqai.db
      one transaction of executemany inserts (the database must not be in use)
  gen-history.py --rows 1000000 --csv-dir DIR --columns id,kind,... --not-null id,kind,...
      writes DIR/query_history.csv and DIR/query_history_tables.csv (PostgreSQL CSV: booleans
      t/f, NULL as an empty field) for psql's \\copy, in the given column order

Deterministic for a given --seed and --now. Python 3 standard library only.
"""

import argparse
import bisect
import csv
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import random
import sqlite3
import sys
import time

N_PRINCIPALS = 50
DATASETS = ["shop", "finance", "marketing", "ops", "product"]
N_SHAPES = 2000
N_QUESTION_SHAPES = 400
N_SYSTEM_SHAPES = 20

TABLES = {
    "shop": ["orders", "order_items", "customers", "products", "returns", "carts", "reviews", "stores", "inventory"],
    "finance": ["invoices", "payments", "ledger", "refunds", "fx_rates", "budgets", "accounts", "payouts"],
    "marketing": ["campaigns", "sessions", "clicks", "impressions", "leads", "emails", "attribution", "spend"],
    "ops": ["shipments", "warehouses", "carriers", "incidents", "tickets", "sla"],
    "product": ["events", "users", "features", "experiments", "pageviews", "signups", "subscriptions", "releases"],
}
PROJECT = "acme-analytics"

FAILED_CODES = [("QUERY_TIMEOUT", 0.45, "the query ran longer than the timeout"),
                ("WAREHOUSE_ERROR", 0.45, "the warehouse failed the query: resources exceeded"),
                ("WAREHOUSE_UNAVAILABLE", 0.10, "the warehouse is unavailable")]
REJECTED_CODES = [("SQL_REJECTED", 0.60, "only a single SELECT statement is allowed"),
                  ("COST_LIMIT_EXCEEDED", 0.25, "the query would process more bytes than allowed"),
                  ("FORBIDDEN", 0.15, "the key may not read this dataset")]
METRICS = ["revenue", "amount", "quantity", "duration_s", "cost", "score", "price", "clicks"]
DIMS = ["country", "region", "channel", "status", "category", "plan", "device", "segment",
        "carrier", "campaign_id", "store_id", "currency"]
QUESTION_TEMPLATES = [
    "total {m} by {d} in {y}", "top 10 {d} by {m}", "how many {t} per {d} last month",
    "average {m} per {d} this quarter", "{m} trend by week for {d}", "which {d} had the most {t}",
    "show {t} with {m} above 1000", "monthly {m} by {d} since {y}", "share of {t} by {d}",
    "compare {m} between {d} this year and last year",
]
ERROR_FRACTION = {"succeeded": 0.90, "failed": 0.04, "rejected": 0.06}


def hex16(*parts):
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def zipf_cum(n, s):
    w = [1.0 / (k ** s) for k in range(1, n + 1)]
    return list(itertools.accumulate(w))


class Shape:
    __slots__ = ("fp", "dataset", "tables", "template", "median_ms", "bytes", "rows", "system")


def make_shapes(rng):
    shapes = []
    for i in range(N_SHAPES):
        s = Shape()
        s.system = i >= N_SHAPES - N_SYSTEM_SHAPES
        s.dataset = DATASETS[min(int(rng.paretovariate(1.2)) - 1, len(DATASETS) - 1)]
        names = TABLES[s.dataset]
        n_tables = 1 if s.system else rng.choices([1, 2, 3], [0.55, 0.30, 0.15])[0]
        picked = rng.sample(names, n_tables)
        s.tables = [f"{PROJECT}.{s.dataset}.{t}" for t in picked]
        if n_tables == 3 and rng.random() < 0.2:  # a join across datasets now and then
            d = rng.choice([x for x in DATASETS if x != s.dataset])
            picked[-1] = rng.choice(TABLES[d])
            s.tables[-1] = f"{PROJECT}.{d}.{picked[-1]}"
        m, d = rng.choice(METRICS), rng.choice(DIMS)
        if s.system:
            s.template = f"SELECT DISTINCT {d} FROM `{s.tables[0]}` LIMIT {{lit}}"
        else:
            frm = f"`{s.tables[0]}` AS t0" + "".join(
                f" JOIN `{t}` AS t{k} ON t{k}.id = t0.{picked[k].rstrip('s')}_id"
                for k, t in enumerate(s.tables[1:], 1))
            agg = rng.choice(["SUM", "AVG", "COUNT", "MAX"])
            s.template = (f"SELECT t0.{d}, {agg}(t0.{m}) AS {m}_{i} FROM {frm} "
                          f"WHERE t0.created_at >= '2026-{{month:02d}}-01' AND t0.{m} > {{lit}} "
                          f"GROUP BY t0.{d} ORDER BY 2 DESC")
        s.fp = hex16("sql-shape", i)
        s.median_ms = math.exp(rng.gauss(math.log(900), 1.1)) if not s.system else 150.0
        s.bytes = int(math.exp(rng.gauss(math.log(2e9), 1.8)))
        s.rows = max(1, int(math.exp(rng.gauss(math.log(40), 1.5))))
        shapes.append(s)
    return shapes


def make_questions(rng, shapes):
    # Each question shape asks for one SQL shape (one of the 300 most popular); a
    # question shape has a few spellings (the normalised form is what is fingerprinted).
    out = []
    for i in range(N_QUESTION_SHAPES):
        shape_idx = rng.randrange(300)  # asks land on the commoner shapes
        tpl = rng.choice(QUESTION_TEMPLATES)
        t = shapes[shape_idx].tables[0].rsplit(".", 1)[1]
        q = tpl.format(m=rng.choice(METRICS), d=rng.choice(DIMS), t=t, y=rng.choice([2024, 2025, 2026]))
        spellings = [q, q.capitalize(), q + "?", q.capitalize() + "?", "  " + q]
        out.append((hex16("question-shape", q.lower().strip().rstrip("?")), spellings, shape_idx))
    return out


def principals(rng):
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return ["".join(rng.choice(alphabet) for _ in range(12)) for _ in range(N_PRINCIPALS)]


def timestamps(rng, n, days, now):
    """n sorted datetimes over the `days` before `now`: hourly buckets weighted by time of day,
    weekday and a linear growth, uniform within the hour."""
    start = now - dt.timedelta(days=days)
    start_hour = start.replace(minute=0, second=0, microsecond=0)
    hours = int((now - start_hour).total_seconds() // 3600) + 1
    diurnal = [0.15, 0.1, 0.1, 0.1, 0.15, 0.25, 0.5, 0.9, 1.4, 1.8, 2.0, 1.9,
               1.5, 1.8, 2.0, 1.9, 1.6, 1.2, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
    weights = []
    for h in range(hours):
        t = start_hour + dt.timedelta(hours=h)
        w = diurnal[t.hour] * (0.3 if t.weekday() >= 5 else 1.0) * (0.7 + 0.3 * h / hours)
        weights.append(w)
    cum = list(itertools.accumulate(weights))
    picks = rng.choices(range(hours), cum_weights=cum, k=n)
    base = start_hour.timestamp()
    lo, hi = start.timestamp(), now.timestamp()
    ts = []
    for h in picks:
        x = base + h * 3600 + rng.random() * 3600
        if x < lo or x >= hi:
            x = lo + rng.random() * (hi - lo)
        ts.append(x)
    ts.sort()
    return ts


def uuid7(ts, rng, counter):
    ms = int(ts * 1000)
    a = (counter & 0xFFF)
    b = rng.getrandbits(62) | (0b10 << 62)
    h = f"{ms:012x}7{a:03x}{b:016x}"
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def fmt_ts(ts):
    d = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S.%f")


def generate(args, emit_row, emit_table):
    rng = random.Random(args.seed)
    shapes = make_shapes(rng)
    questions = make_questions(rng, shapes)
    who = principals(rng)
    n = args.rows
    now = args.now
    ts = timestamps(rng, n, args.days, now)

    user_shapes = N_SHAPES - N_SYSTEM_SHAPES
    shape_cum = zipf_cum(user_shapes, 1.0)
    q_cum = zipf_cum(N_QUESTION_SHAPES, 1.0)
    p_cum = zipf_cum(N_PRINCIPALS, 0.9)
    kinds = rng.choices(["sql", "ask", "system"], [0.70, 0.28, 0.02], k=n)
    statuses = rng.choices(["succeeded", "failed", "rejected"],
                           [ERROR_FRACTION[k] for k in ("succeeded", "failed", "rejected")], k=n)
    shape_pick = rng.choices(range(user_shapes), cum_weights=shape_cum, k=n)
    q_pick = rng.choices(range(N_QUESTION_SHAPES), cum_weights=q_cum, k=n)
    p_pick = rng.choices(range(N_PRINCIPALS), cum_weights=p_cum, k=n)
    f_codes = [c for c, _, _ in FAILED_CODES]
    r_codes = [c for c, _, _ in REJECTED_CODES]
    messages = {c: m for c, _, m in FAILED_CODES + REJECTED_CODES}
    f_cum = list(itertools.accumulate(w for _, w, _ in FAILED_CODES))
    r_cum = list(itertools.accumulate(w for _, w, _ in REJECTED_CODES))

    row_shape = [0] * n
    row_principal = [0] * n
    ids = [None] * n
    last_ms, counter = -1, 0
    gauss, rand = rng.gauss, rng.random
    for i in range(n):
        t = ts[i]
        ms = int(t * 1000)
        counter = counter + 1 if ms == last_ms else rng.getrandbits(8)
        last_ms = ms
        qid = uuid7(t, rng, counter)
        ids[i] = qid
        kind = kinds[i]
        status = statuses[i]
        question = question_shape = None
        rerun_of = None
        p = p_pick[i]
        if kind == "system":
            shape_idx = user_shapes + rng.randrange(N_SYSTEM_SHAPES)
            p = None
        elif kind == "ask":
            qfp, spellings, shape_idx = questions[q_pick[i]]
            question = rng.choice(spellings)
            question_shape = qfp
        else:
            shape_idx = shape_pick[i]
            if i > 500 and rand() < 0.02:  # a re-run of a recent query, same shape and principal
                j = i - 1 - rng.randrange(500)
                rerun_of, shape_idx, p = ids[j], row_shape[j], row_principal[j]
        row_shape[i], row_principal[i] = shape_idx, p
        s = shapes[shape_idx]
        sql = s.template.format(lit=rng.randrange(10, 5000), month=rng.randrange(1, 13))
        dry_run = kind != "system" and rand() < 0.05
        cache_hit = False
        error_code = error_message = None
        sql_executed = sql + " LIMIT 10000"
        sql_shape = s.fp
        tables = s.tables
        if status == "rejected":
            error_code = r_codes[bisect.bisect(r_cum, rand() * r_cum[-1])]
            error_message = messages[error_code]
            sql_executed = None
            if error_code == "SQL_REJECTED":
                tables = []  # refused by the guard: no table was resolved
            if error_code == "SQL_REJECTED" and rand() < 0.3:
                sql = "DELETE FROM `%s` WHERE id = %d" % (s.tables[0], rng.randrange(1000))
                sql_shape = hex16("rejected-shape", s.tables[0])
            duration = int(math.exp(gauss(math.log(12), 0.6)))
            bytes_processed = s.bytes if error_code == "COST_LIMIT_EXCEEDED" else 0
            bytes_billed = 0
            row_count = 0
        else:
            if status == "failed":
                error_code = f_codes[bisect.bisect(f_cum, rand() * f_cum[-1])]
                error_message = messages[error_code]
                duration = 30000 + int(rand() * 2000) if error_code == "QUERY_TIMEOUT" else \
                    int(s.median_ms * math.exp(gauss(0, 0.9)))
                row_count = 0
            else:
                cache_hit = not dry_run and rand() < 0.20
                duration = int(math.exp(gauss(math.log(15), 0.5))) if cache_hit else \
                    int(s.median_ms * math.exp(gauss(0, 0.7)))
                row_count = 0 if dry_run else max(0, int(s.rows * math.exp(gauss(0, 0.5))))
            if dry_run:
                duration = int(math.exp(gauss(math.log(120), 0.5)))
            bytes_processed = int(s.bytes * math.exp(gauss(0, 0.3)))
            billed_mb = max(10, -(-bytes_processed // 1048576))
            bytes_billed = 0 if (dry_run or cache_hit or status == "failed") else billed_mb * 1048576
        row = {
            "id": qid, "kind": kind, "question": question, "sql_submitted": sql,
            "sql_executed": sql_executed, "status": status, "error_code": error_code,
            "error_message": error_message,
            "principal": None if p is None else who[p],
            "dataset": None if rand() < 0.08 else s.dataset,
            "dry_run": dry_run, "bytes_processed": bytes_processed, "bytes_billed": bytes_billed,
            "duration_ms": max(1, duration), "row_count": row_count, "cache_hit": cache_hit,
            "created_at": fmt_ts(t), "request_id": uuid7(t, rng, 0),
            "sql_shape": None if rand() < 0.01 and status == "rejected" else sql_shape,
            "question_shape": question_shape, "rerun_of": rerun_of,
            "tables_read": json.dumps(tables, separators=(",", ":")) if tables else None,
        }
        if kind == "ask":
            from_cache = rand() < 0.3
            claude = rand() < 0.3
            attempts = 0 if from_cache else rng.choices([1, 2, 3], [0.85, 0.12, 0.03])[0]
            row.update({
                "ask_attempts": attempts,
                "generator": "claude-cli" if claude else "builtin",
                "llm_model": "claude-sonnet-4-5" if claude else None,
                "llm_latency_ms": int(attempts * math.exp(gauss(math.log(2500), 0.4))) if claude else 0,
                "llm_input_tokens": attempts * rng.randrange(3000, 9000) if claude else 0,
                "llm_output_tokens": attempts * rng.randrange(80, 400) if claude else 0,
                "llm_cost_usd": round(attempts * rng.uniform(0.01, 0.04), 6) if claude else None,
                "question_cache_hit": from_cache,
                "ask_follow_up": rand() < 0.1,
            })
        emit_row(row)
        for table in tables:
            emit_table(qid, table)
        if args.progress and i and i % 100000 == 0:
            print(f"  {i:,} rows", file=sys.stderr, flush=True)


def check_columns(columns, notnull, known):
    unknown = [c for c in columns if c not in known]
    bad = [c for c in unknown if c in notnull]
    if bad:
        sys.exit(f"gen-history: NOT NULL columns this generator does not know: {bad}")
    if unknown:
        print(f"gen-history: leaving unknown columns NULL: {unknown}", file=sys.stderr)
    missing = [c for c in KNOWN_NOT_NULL_IN_DATA if c not in columns]
    if missing:
        print(f"gen-history: the table lacks columns the generator fills: {missing}", file=sys.stderr)


KNOWN = {"id", "kind", "question", "sql_submitted", "sql_executed", "status", "error_code",
         "error_message", "principal", "dataset", "dry_run", "bytes_processed", "bytes_billed",
         "duration_ms", "row_count", "cache_hit", "created_at", "ask_attempts", "generator",
         "llm_model", "llm_latency_ms", "llm_input_tokens", "llm_output_tokens", "llm_cost_usd",
         "question_cache_hit", "request_id", "ask_follow_up", "sql_shape", "question_shape",
         "rerun_of", "tables_read"}
KNOWN_NOT_NULL_IN_DATA = ["sql_shape", "question_shape", "rerun_of"]


def to_sqlite(args):
    db = sqlite3.connect(args.sqlite)
    info = db.execute("PRAGMA table_info(query_history)").fetchall()
    if not info:
        sys.exit("gen-history: no query_history table (start bqai once to migrate)")
    columns = [r[1] for r in info]
    notnull = {r[1] for r in info if r[3]}
    check_columns(columns, notnull, KNOWN)
    tinfo = db.execute("PRAGMA table_info(query_history_tables)").fetchall()
    tcols = [r[1] for r in tinfo]
    if tinfo and tcols[:2] != ["query_id", "table_name"]:
        sys.exit(f"gen-history: query_history_tables has columns {tcols}; expected query_id, table_name")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    insert = f"INSERT INTO query_history ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    tinsert = "INSERT OR IGNORE INTO query_history_tables (query_id, table_name) VALUES (?, ?)"
    rows, trows = [], []
    counts = [0, 0]

    def flush():
        db.executemany(insert, rows)
        if trows and tinfo:
            db.executemany(tinsert, trows)
        counts[0] += len(rows)
        counts[1] += len(trows) if tinfo else 0
        rows.clear()
        trows.clear()

    def emit_row(r):
        rows.append(tuple(int(v) if isinstance(v, bool) else v for v in (r.get(c) for c in columns)))
        if len(rows) >= 20000:
            flush()

    def emit_table(qid, table):
        trows.append((qid, table))

    generate(args, emit_row, emit_table)
    flush()
    db.commit()
    db.close()
    return counts


def to_csv(args):
    columns = args.columns.split(",")
    check_columns(columns, set(args.not_null.split(",")) if args.not_null else set(), KNOWN)
    os.makedirs(args.csv_dir, exist_ok=True)
    f = open(os.path.join(args.csv_dir, "query_history.csv"), "w", newline="")
    tf = open(os.path.join(args.csv_dir, "query_history_tables.csv"), "w", newline="")
    w, tw = csv.writer(f), csv.writer(tf)
    counts = [0, 0]

    def cell(v):
        if v is None:
            return None
        if isinstance(v, bool):
            return "t" if v else "f"
        return v

    def emit_row(r):
        w.writerow([cell(r.get(c)) for c in columns])
        counts[0] += 1

    def emit_table(qid, table):  # a shape's tables are distinct: no duplicate keys
        tw.writerow([qid, table])
        counts[1] += 1

    generate(args, emit_row, emit_table)
    f.close()
    tf.close()
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=90)
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--now", help="end of the period, RFC 3339 UTC (default: now)")
    ap.add_argument("--sqlite", help="SQLite database file to insert into")
    ap.add_argument("--csv-dir", help="directory for PostgreSQL CSV files")
    ap.add_argument("--columns", help="query_history columns in table order (with --csv-dir)")
    ap.add_argument("--not-null", default="", help="the NOT NULL ones among them (with --csv-dir)")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args()
    args.now = (dt.datetime.fromisoformat(args.now.replace("Z", "+00:00")) if args.now
                else dt.datetime.now(dt.timezone.utc))
    if bool(args.sqlite) == bool(args.csv_dir):
        ap.error("exactly one of --sqlite and --csv-dir")
    if args.csv_dir and not args.columns:
        ap.error("--csv-dir needs --columns")
    t0 = time.monotonic()
    counts = to_sqlite(args) if args.sqlite else to_csv(args)
    print(f"gen-history: {counts[0]:,} history rows, {counts[1]:,} table rows in "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
