#!/usr/bin/env python3
"""webhook-receiver.py: a fast webhook receiver for scripts/bench-webhooks.sh.

Usage: webhook-receiver.py PORT DUMP_FILE

Standard library only (raw asyncio streams, HTTP/1.1 keep-alive, no framework), on
127.0.0.1:PORT. Every POST to any other path is a delivery: it is answered 204 (or
503 while "down") and, when answered 204, recorded as
(webhook-id header, arrival time.time(), the body's "timestamp" string). The body's
`timestamp` is the event's time (when the change was decided, docs/api.md 11a), in
whole seconds (RFC 3339 without fractions). Signatures are not verified (the cost
would be the receiver's, not sluice's).

Admin paths (any method):
  /__down   answer 503 to deliveries from now on (an outage); records down_at
  /__up     answer 204 again; records up_at
  /__stats  JSON {"n", "unique", "refused", "first", "last", "up_at", "down_at"}
  /__dump   writes DUMP_FILE (JSON: the stats and "records": [[id, arrival, ts]])
SIGTERM/SIGINT also write DUMP_FILE, then exit.
"""
import asyncio
import json
import signal
import sys
import time

port, dump_path = int(sys.argv[1]), sys.argv[2]
records = []  # (webhook-id, arrival, timestamp string)
ids = set()
state = {"down": False, "refused": 0, "up_at": None, "down_at": None}
TS_KEY = b'"timestamp":"'


def stats():
    return {
        "n": len(records),
        "unique": len(ids),
        "refused": state["refused"],
        "first": records[0][1] if records else None,
        "last": records[-1][1] if records else None,
        "up_at": state["up_at"],
        "down_at": state["down_at"],
    }


def dump():
    with open(dump_path, "w") as f:
        json.dump(dict(stats(), records=records), f)


def reply(status, body=b""):
    reason = {200: b"OK", 204: b"No Content", 503: b"Service Unavailable"}[status]
    return b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nContent-Type: application/json\r\n\r\n%s" % (
        status, reason, len(body), body)


NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
UNAVAILABLE = reply(503)


async def handle(reader, writer):
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            arrival = time.time()
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ", 2)[1]
            length, wid = 0, None
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"webhook-id":
                    wid = v.strip().decode()
            body = await reader.readexactly(length) if length else b""
            if path.startswith(b"/__"):
                if path == b"/__down":
                    state["down"], state["down_at"] = True, time.time()
                elif path == b"/__up":
                    state["down"], state["up_at"] = False, time.time()
                elif path == b"/__dump":
                    dump()
                writer.write(reply(200, json.dumps(stats()).encode()))
            elif state["down"]:
                state["refused"] += 1
                writer.write(UNAVAILABLE)
            else:
                i = body.find(TS_KEY)
                ts = body[i + len(TS_KEY):body.index(b'"', i + len(TS_KEY))].decode() if i >= 0 else None
                records.append((wid, arrival, ts))
                ids.add(wid)
                writer.write(NO_CONTENT)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass  # (CancelledError: shutting down; not re-raised, so asyncio logs no traceback)
    finally:
        writer.close()


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=128)
    async with server:
        await stop
    dump()


asyncio.run(main())
