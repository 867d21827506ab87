#!/usr/bin/env python3
"""Fuzz `payments enqueue --input` with malformed JSON Lines: it must refuse the file
with a per-line error for every bad line, exit non-zero, never crash, and insert
nothing. Usage: fuzz_jsonl.py PAYMENTS_BINARY ROUNDS"""
import json
import os
import random
import subprocess
import sys
import tempfile
import uuid

binary, rounds = sys.argv[1], int(sys.argv[2])
rng = random.Random(1234)
good = {"amount_minor": 100, "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2"}


def bad_line(i, prefix):
    choice = rng.randrange(12)
    key = f"{prefix}-{i}"
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"\n", b"x")
    if choice == 1:
        return json.dumps({**good, "idempotency_key": key})[: rng.randrange(1, 40)].encode()
    mutations = [
        {"amount_minor": rng.choice([0, -1, 1.5, "10", None, True, 10**20, [], {}])},
        {"currency": rng.choice(["eur", "XXX", "", 5, None, "EURO"])},
        {"debtor": rng.choice(["", "a b", "x" * 65, 7, None, "ü"])},
        {"creditor": "acct_1"},
        {"priority": rng.choice([-1, 1001, "high", 2.5])},
        {"max_attempts": rng.choice([0, 51, "3"])},
        {"surprise": 1},
        {"idempotency_key": rng.choice(["", "has space", 42, "x" * 300])},
    ]
    if choice == 2:
        return b"[1, 2, 3]"
    if choice == 3:
        return b'"just a string"'
    body = {**good, "idempotency_key": key, **rng.choice(mutations)}
    body = {k: v for k, v in body.items() if not (k == "idempotency_key" and v is None)}
    return json.dumps(body).encode()


failures = 0
for r in range(rounds):
    prefix = f"fuzz-{uuid.uuid4().hex[:12]}"
    lines, bad = [], set()
    for i in range(1, rng.randrange(5, 60)):
        if rng.random() < 0.5:
            lines.append(json.dumps({**good, "idempotency_key": f"{prefix}-{i}"}).encode())
        else:
            lines.append(bad_line(i, prefix))
            bad.add(i)
    if not bad:
        lines.append(b"{not json")
        bad.add(len(lines))
    with tempfile.NamedTemporaryFile(delete=False, suffix=".jsonl") as f:
        f.write(b"\n".join(lines))
        path = f.name
    p = subprocess.run([binary, "enqueue", "--input", path], capture_output=True, timeout=60)
    os.unlink(path)
    err = p.stderr.decode(errors="replace")
    reported = {int(x.split(":")[0]) for x in err.split("line ")[1:] if x.split(":")[0].isdigit()}
    # Invalid input is a run-time refusal: exit 1 exactly. A death by signal is a negative
    # returncode in Python, which "!= 0 and < 128" used to accept.
    ok = p.returncode == 1 and "Fatal error" not in err
    ok = ok and (bad <= reported or len(bad) > 20)
    # nothing inserted: the good lines of a refused file must not exist
    q = subprocess.run(["scripts/topology", "--port-offset", os.environ.get("PORT_OFFSET", "0"), "psql", "pgbouncer-write", "-tAc",
                        f"SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE '{prefix}-%'"], capture_output=True)
    inserted = q.stdout.decode().strip()
    ok = ok and inserted == "0"
    if not ok:
        failures += 1
        print(f"FAIL round {r}: exit {p.returncode}, bad lines {sorted(bad)}, reported {sorted(reported)}, inserted {inserted}\n{err[:500]}")
print(f"jsonl fuzz: {rounds - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
