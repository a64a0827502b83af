"""Steady load through the service gateway for the e2e tests.

  gateway_load.py PORT PATH STOP_FILE OUT

Four clients, each GETting PATH on its own kept-alive connection as fast as
answers come, until STOP_FILE exists. OUT then gets one line:
  OK FAILED VERSIONS ERRORS
OK and FAILED count the answers that were and were not a 200; VERSIONS is
a JSON object (no spaces) counting the "version" field of the 200 answers
that have one (examples/serve-pytorch tells its MODEL_VERSION); ERRORS lists
the first five failures. With GATEWAY_CA set (a CA certificate file), it
speaks HTTPS, verifying the gateway's certificate against that CA.
"""
import http.client
import json
import os
import ssl
import sys
import threading

port, path, stop_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
counts = {"ok": 0, "failed": 0}
versions, errors = {}, []
lock = threading.Lock()


def connect():
    ca = os.environ.get("GATEWAY_CA")
    if ca:
        tls = ssl.create_default_context(cafile=ca)
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=tls)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def client():
    conn = connect()
    while not os.path.exists(stop_file):
        ok, version = False, None
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            ok = r.status == 200
            if ok:
                try:
                    version = json.loads(body).get("version")
                except ValueError:
                    pass
            else:
                errors.append(f"{r.status} {body[:200]!r}")
        except Exception as e:  # a dropped connection is a failed request too
            errors.append(repr(e))
            conn.close()
            conn = connect()
        with lock:
            counts["ok" if ok else "failed"] += 1
            if version is not None:
                versions[version] = versions.get(version, 0) + 1


threads = [threading.Thread(target=client) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seen = json.dumps(versions, sort_keys=True, separators=(",", ":"))
with open(out, "w") as f:
    f.write(f"{counts['ok']} {counts['failed']} {seen} {errors[:5]}\n")
