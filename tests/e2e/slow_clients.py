#!/usr/bin/env python3
"""Holds many idle and slow (slowloris) connections open against an HTTP
server, as an attacker without a token would, reconnecting each one the
server closes. Used by tests/e2e/starvation_test.sh and bench/starve.sh.

  idle: connects and sends nothing;
  slow: sends a request line, then one header byte per --interval seconds,
        never finishing the header section.

Runs for --duration seconds (or until SIGTERM/SIGINT), then prints one line:
  slow_clients opened=N closed_by_server=N open_at_end=N max_open=N
"""
import argparse
import heapq
import random
import selectors
import signal
import socket
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--idle", type=int, default=100, help="idle connections to hold")
    ap.add_argument("--slow", type=int, default=100, help="slow connections to hold")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between a slow client's bytes")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds to run")
    ap.add_argument("--reconnect-delay", type=float, default=0.05,
                    help="seconds before replacing a connection the server closed")
    ap.add_argument("--ready-file", help="written once every connection has been opened the first time")
    args = ap.parse_args()

    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))

    sel = selectors.DefaultSelector()
    timers = []  # (when, seq, action, payload)
    seq = [0]
    stats = {"opened": 0, "closed_by_server": 0, "max_open": 0}
    kinds = {}  # socket -> "idle" | "slow"
    sent = {}   # slow socket -> bytes of its header sent so far

    def later(delay, action, payload):
        seq[0] += 1
        heapq.heappush(timers, (time.monotonic() + delay, seq[0], action, payload))

    def open_one(kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect_ex((args.host, args.port))
        except OSError:
            s.close()
            later(args.reconnect_delay, "open", kind)
            return
        kinds[s] = kind
        sel.register(s, selectors.EVENT_READ)
        stats["opened"] += 1
        stats["max_open"] = max(stats["max_open"], len(kinds))
        if kind == "slow":
            sent[s] = 0
            later(random.uniform(0.05, args.interval), "trickle", s)

    def drop(s, by_server):
        if s not in kinds:
            return
        kind = kinds.pop(s)
        sent.pop(s, None)
        sel.unregister(s)
        s.close()
        if by_server:
            stats["closed_by_server"] += 1
            later(args.reconnect_delay, "open", kind)

    # A header that never ends: the request line, then an endless header value.
    prefix = b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: "
    request_line = prefix.index(b"\r\n") + 2

    def trickle(s):
        if s not in kinds:
            return
        n = sent[s]
        chunk = prefix[n:n + 1] if n < len(prefix) else b"a"
        if n == 0:
            chunk = prefix[:request_line]  # the request line at once, as a real client would
        try:
            s.send(chunk)
            sent[s] = n + len(chunk)
        except BlockingIOError:
            pass  # still connecting, or the buffer is full: try again next time
        except OSError:
            drop(s, True)
            return
        later(args.interval, "trickle", s)

    for i in range(args.idle + args.slow):
        open_one("idle" if i < args.idle else "slow")
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")

    end = time.monotonic() + args.duration
    while not stop[0] and time.monotonic() < end:
        timeout = 0.2
        if timers:
            timeout = max(0.0, min(timeout, timers[0][0] - time.monotonic()))
        for key, _ in sel.select(timeout):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                drop(s, True)
            # Anything the server answered (an error page) is ignored; the
            # connection is dropped when the server closes it.
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            _, _, action, payload = heapq.heappop(timers)
            if action == "open":
                open_one(payload)
            elif action == "trickle":
                trickle(payload)

    print("slow_clients opened=%d closed_by_server=%d open_at_end=%d max_open=%d" %
          (stats["opened"], stats["closed_by_server"], len(kinds), stats["max_open"]), flush=True)
    for s in list(kinds):
        drop(s, False)


if __name__ == "__main__":
    main()
