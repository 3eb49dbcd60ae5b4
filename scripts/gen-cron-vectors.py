#!/usr/bin/env python3
"""Generates core-sm/vectors/cron.jsonl: next-tick test vectors from the `cronsim` oracle.

cronsim aims to match Debian's cron, DST quirks included. Each line is
{"expr", "tz", "from", "next"}: the 5 ticks strictly after `from` (Unix seconds).
Deterministic (seeded). Run: pip install cronsim==2.8 && python3 scripts/gen-cron-vectors.py
"""
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
         "America/Havana", "Asia/Kolkata", "Europe/London", "America/Sao_Paulo"]
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
FIXED = ["30 2 * * *", "0 2 * * *", "*/15 * * * *", "0 * * * *", "30 1 * * *", "15 0 * * *", "0 0 * * *",
         "45 23 * * *", "0 3 * * 0", "*/7 2 * * *", "0 */2 * * *", "30 2 1-7 * MON", "0 0 1 1 *", "0 12 * * MON-FRI",
         "5 4 * * sun", "0 0 31 * *", "0 0 29 2 *", "0 0 1,15 * 5", "*/5 9-17 * * 1-5", "0 9-17/2 * jan-mar *",
         "0 0 * * 7", "59 23 31 12 *", "0,30 0-3 * * *", "2-59/10 1-3 * * *", "30 0 * * *", "0 1 * * *",
         "45 1 * * *", "*/30 0-2 * * *", "0 0,12 * * *", "15 2 * 3,10 *", "0 2 * * 6,0", "1 0 1 * *"] + list(DESCRIPTORS)
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
END = datetime(2026, 12, 31, tzinfo=timezone.utc)


def transitions(zone):
    """UTC instants (hour precision, then refined to the minute) where the offset changes."""
    tz = ZoneInfo(zone)
    out, t = [], START
    prev = t.astimezone(tz).utcoffset()
    while t < END:
        t2 = t + timedelta(hours=1)
        off = t2.astimezone(tz).utcoffset()
        if off != prev:
            m = t
            while (m + timedelta(minutes=1)).astimezone(tz).utcoffset() == prev:
                m += timedelta(minutes=1)
            out.append(m + timedelta(minutes=1))
            prev = off
        t = t2
    return out


def field(rng, lo, hi, names=None):
    r = rng.random()
    val = lambda: names[rng.randint(lo, hi) - lo] if names and rng.random() < 0.3 else str(rng.randint(lo, hi))
    if r < 0.25:
        return "*"
    if r < 0.45:
        return val()
    if r < 0.6:
        a = rng.randint(lo, hi)
        b = rng.randint(a, hi)
        return f"{a}-{b}"
    if r < 0.72:
        return f"*/{rng.randint(1, max(1, (hi - lo) // 2))}"
    if r < 0.82:
        a = rng.randint(lo, hi)
        b = rng.randint(a, hi)
        return f"{a}-{b}/{rng.randint(1, 5)}"
    return ",".join(sorted({val() for _ in range(rng.randint(2, 3))}))


def random_expr(rng):
    months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    return " ".join([field(rng, 0, 59), field(rng, 0, 23), field(rng, 1, 31), field(rng, 1, 12, months),
                     field(rng, 0, 7, days)])


def ticks(expr, zone, frm, n=5):
    tz = ZoneInfo(zone)
    it = CronSim(DESCRIPTORS.get(expr, expr), datetime.fromtimestamp(frm, tz))
    out = []
    for _ in range(n):
        try:
            out.append(int(next(it).timestamp()))
        except StopIteration:
            break
    return out


def main():
    rng = random.Random(20261123)
    trans = {z: transitions(z) for z in ZONES}
    vectors = []
    exprs = FIXED * 6 + [random_expr(rng) for _ in range(4000)]
    for i, expr in enumerate(exprs):
        zone = ZONES[i % len(ZONES)] if i < len(FIXED) * 6 else rng.choice(ZONES)
        if trans[zone] and rng.random() < 0.7:
            t = rng.choice(trans[zone]) - timedelta(seconds=rng.randint(0, 2 * 86400))
        else:
            t = START + timedelta(seconds=rng.randint(0, int((END - START).total_seconds())))
        frm = int(t.timestamp())
        try:
            nxt = ticks(expr, zone, frm)
        except CronSimError:
            continue
        vectors.append({"expr": expr, "tz": zone, "from": frm, "next": nxt})
    out = Path(__file__).resolve().parent.parent / "core-sm" / "vectors" / "cron.jsonl"
    out.write_text("".join(json.dumps(v, separators=(",", ":")) + "\n" for v in vectors))
    print(f"{len(vectors)} vectors -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
