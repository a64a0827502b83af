#!/usr/bin/python3
"""Delay and drop packets in user space: a stand-in for `tc qdisc ... netem`
on kernels built without sch_netem (tests/e2e/netns.sh uses it only then).

Run inside a network namespace whose iptables rules send packets to NFQUEUE
QUEUE (tests/e2e/netns.sh does both). Every packet the kernel queues is held
for DELAY_MS and then accepted, or dropped with probability LOSS_PCT/100,
as netem's `delay DELAY_MS loss LOSS_PCT%` would do on that hook. Packets leave
in the order they came (one fixed delay keeps them FIFO), so TCP sees latency
and loss, not reordering.

Pure standard library: it speaks nfnetlink_queue directly (linux/netfilter/
nfnetlink_queue.h) and asks for metadata only, never packet contents.
Usage: nfq_delay.py QUEUE DELAY_MS LOSS_PCT [SEED]
"""
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(msg_type, queue, attrs, flags=NLM_F_REQUEST):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, 0, 0) + body


def check_ack(sock):
    data = sock.recv(65536)
    length, kind = struct.unpack_from("=IH", data)
    if kind == NLMSG_ERROR:
        (err,) = struct.unpack_from("=i", data, 16)
        if err != 0:
            raise OSError(-err, os.strerror(-err))


def main():
    # Started in the background, where SIGINT is ignored: stop on either.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    queue, delay_ms, loss_pct = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else None)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, 0))
    ack = NLM_F_REQUEST | NLM_F_ACK
    sock.send(message(NFQNL_MSG_CONFIG, queue, [attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_BIND, 0))], ack))
    check_ack(sock)
    sock.send(message(NFQNL_MSG_CONFIG, queue, [attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))], ack))
    check_ack(sock)
    sock.send(message(NFQNL_MSG_CONFIG, queue, [attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536))], ack))
    check_ack(sock)
    # If this process dies, packets pass undelayed rather than vanish.
    sock.send(message(NFQNL_MSG_CONFIG, queue, [attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
                                                attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))], ack))
    check_ack(sock)
    print(f"nfq_delay: queue {queue}, delay {delay_ms} ms, loss {loss_pct}%", flush=True)

    due = []  # (release time, sequence, packet id)
    seq = 0
    delay = delay_ms / 1000.0
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            try:
                data = sock.recv(1 << 20)
            except OSError:  # ENOBUFS: the kernel dropped some notifications; carry on
                data = b""
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16:
                    break
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    pos = offset + 20  # nlmsghdr + nfgenmsg
                    while pos + 4 <= offset + length:
                        alen, atype = struct.unpack_from("=HH", data, pos)
                        if alen < 4:
                            break
                        if (atype & 0x7FFF) == NFQA_PACKET_HDR:
                            (packet_id,) = struct.unpack_from("!I", data, pos + 4)
                            heapq.heappush(due, (time.monotonic() + delay, seq, packet_id))
                            seq += 1
                            break
                        pos += (alen + 3) & ~3
                offset += (length + 3) & ~3
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, packet_id = heapq.heappop(due)
            verdict = NF_DROP if rng.random() * 100.0 < loss_pct else NF_ACCEPT
            sock.send(message(NFQNL_MSG_VERDICT, queue, [attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))]))


if __name__ == "__main__":
    main()
