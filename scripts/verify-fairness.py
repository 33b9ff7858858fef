#!/usr/bin/env python3
"""Checks a sluice activity's line was fair, with the published seed and log alone.

Usage:
    verify-fairness.py SERVER_URL ACTIVITY_ID
    verify-fairness.py --fairness FAIRNESS.json --log LOG.ndjson

The first form downloads GET /api/activities/{id}/fairness and .../fairness/log;
the second reads copies saved earlier (so anyone can check them later, offline).

Checks, from the seed and the log only (see docs/fairness.md):
  1. the seed matches the commitment published before opening (SHA-256); an
     activity open from creation has none, and then may have no pre-queue;
  2. every receipt appears once;
  3. the pre-queue comes first, then later joiners in join order: their
     joined_at never decreases down the line (lines without one, written by
     an older server, are not checked);
  4. the pre-queue is in order of HMAC-SHA256(key = seed, message = receipt);
  5. admitted_at never decreases down the line, and no place still waits ahead
     of one already admitted.

Prints one verdict line; exits 0 if every check holds, 1 if one fails, 2 if the
input cannot be read. Python standard library only.
"""

import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime


def fetch(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read().decode("utf-8")


def load(argv):
    if len(argv) == 5 and argv[1] == "--fairness" and argv[3] == "--log":
        with open(argv[2], encoding="utf-8") as f:
            fairness = f.read()
        with open(argv[4], encoding="utf-8") as f:
            log = f.read()
        return fairness, log
    if len(argv) == 3:
        base = argv[1].rstrip("/")
        activity = urllib.parse.quote(argv[2], safe="")
        fairness = fetch(f"{base}/api/activities/{activity}/fairness")
        log = fetch(f"{base}/api/activities/{activity}/fairness/log")
        return fairness, log
    raise ValueError("usage: verify-fairness.py SERVER_URL ACTIVITY_ID"
                     " | --fairness FAIRNESS.json --log LOG.ndjson")


def when(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def verify(fairness_text, log_text):
    """Returns (ok, message)."""
    fairness = json.loads(fairness_text)
    commitment, seed_hex = fairness.get("commitment"), fairness.get("seed")
    lines = [json.loads(l) for l in log_text.splitlines() if l.strip()]
    # An activity open from creation had no pre-queue, so nothing to commit to: only
    # its line order can be checked (and a pre-queue line there is a failure).
    seed = None
    if commitment:
        if not seed_hex:
            return False, "the seed is not revealed yet (the activity has not opened)"
        seed = bytes.fromhex(seed_hex)
        if len(seed) != 32:
            return False, "the seed is not 32 bytes"
        if hashlib.sha256(seed).hexdigest() != commitment.lower():
            return False, "the seed does not match the commitment"
    elif any(l["prequeue"] for l in lines):
        return False, "a pre-queue without a commitment"

    seen = set()
    for i, line in enumerate(lines, 1):
        if line["receipt"] in seen:
            return False, f"line {i}: receipt {line['receipt']} appears twice"
        seen.add(line["receipt"])

    pre = 0
    while pre < len(lines) and lines[pre]["prequeue"]:
        pre += 1
    for i in range(pre, len(lines)):
        if lines[i]["prequeue"]:
            return False, f"line {i + 1}: a pre-queue place after a later joiner"
    last_join = None
    for i in range(pre, len(lines)):
        at = lines[i].get("joined_at")
        if at is None:
            continue
        t = when(at)
        if last_join is not None and t < last_join:
            return False, f"line {i + 1}: joined_at goes back in time (not in join order)"
        last_join = t

    ranks = [hmac.new(seed, l["receipt"].encode("utf-8"), hashlib.sha256).digest()
             for l in lines[:pre]]
    for i in range(1, len(ranks)):
        if ranks[i - 1] >= ranks[i]:
            return False, f"line {i + 1}: the pre-queue is not in HMAC order"

    last, waiting_above = None, None
    for i, line in enumerate(lines, 1):
        if line["outcome"] == "waiting" and waiting_above is None:
            waiting_above = i
        at = line.get("admitted_at")
        if at is None:
            continue
        if waiting_above is not None:
            return False, (f"line {i}: admitted while line {waiting_above} "
                           "ahead of it was still waiting")
        t = when(at)
        if last is not None and t < last:
            return False, f"line {i}: admitted_at goes back in time"
        last = t

    admitted = sum(1 for l in lines if l.get("admitted_at"))
    checked = ("seed matches commitment, pre-queue in HMAC order, " if seed is not None
               else "no commitment and no pre-queue (open from creation), ")
    return True, (f"{len(lines)} places ({pre} pre-queued, {admitted} admitted): "
                  f"{checked}later joiners in join order, admissions in line order")


def main(argv):
    try:
        fairness, log = load(argv)
        ok, message = verify(fairness, log)
    except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
        print(f"ERROR: cannot verify: {e}")
        return 2
    print(("PASS: " if ok else "FAIL: ") + message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
