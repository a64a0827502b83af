"""A small PyTorch model served over HTTP: one replica of an icos service.

At start it trains a tiny network (y = 2x + 1 from noisy samples, seeded, a
second or two on a CPU), saves it as TorchScript beside it and serves it:

  GET /predict?x=1.5  -> {"x": 1.5, "y": 4.0..., "replica": "0", "pid": 123}
  GET /healthz        -> 200 once the model is loaded (503 before), which is
                         what the service's readiness probe asks
  GET /livez          -> 200 while the process answers at all (a liveness probe)

It listens on ICOS_PORT, the port icos booked for this replica on its node.
MODEL_VERSION (optional) is told in each answer: a rolling update
(`icos service update`) shows as answers moving from one version to the next.
READY_FILE (optional, for tests): /healthz also waits until that file exists.

On SIGTERM (a rollout or a scale down stopping it) it drains: /healthz turns
503 so no new request is routed here, what is in flight is answered, and it
exits two seconds later.
"""
import json
import os
import signal
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

PORT = int(os.environ.get("ICOS_PORT", "8080"))
REPLICA = os.environ.get("ICOS_REPLICA", "0")
VERSION = os.environ.get("MODEL_VERSION", "1")
READY_FILE = os.environ.get("READY_FILE", "")
model = None  # set once trained and reloaded from TorchScript
draining = threading.Event()


def train(path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x = torch.linspace(-3, 3, 256).unsqueeze(1)
    y = 2 * x + 1 + 0.01 * torch.randn_like(x)
    for _ in range(400):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
    torch.jit.script(net).save(path)
    return float(loss)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer, sent at once: http.server's defaults write the
    # headers and the body apart with Nagle's algorithm on, so a client that
    # delays its ACKs (a proxy on a kept-alive connection) waits 40 ms.
    wbufsize = -1
    disable_nagle_algorithm = True

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/healthz":
            ready = model is not None and not draining.is_set() and (not READY_FILE or os.path.exists(READY_FILE))
            return self.reply(200 if ready else 503, {"ready": ready})
        if url.path == "/livez":
            return self.reply(200, {"alive": True})
        if url.path == "/predict":
            if model is None:
                return self.reply(503, {"error": "the model is still loading"})
            try:
                x = float(urllib.parse.parse_qs(url.query).get("x", ["0"])[0])
            except ValueError:
                return self.reply(400, {"error": "x must be a number"})
            with torch.no_grad():
                y = float(model(torch.tensor([[x]]))[0, 0])
            return self.reply(200, {"x": x, "y": y, "replica": REPLICA, "version": VERSION, "pid": os.getpid()})
        return self.reply(404, {"error": "no such path; try /predict?x=1.5"})

    def log_message(self, fmt, *args):  # one line per request would drown the task's log
        pass


def drain(signum, frame):
    draining.set()
    threading.Timer(2.0, lambda: os._exit(0)).start()


def main():
    global model
    signal.signal(signal.SIGTERM, drain)
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"replica {REPLICA}: listening on {PORT}; training", flush=True)
    path = os.path.join(os.environ.get("ICOS_CHECKPOINT_DIR", "."), f"model-{REPLICA}.pt")
    loss = train(path)
    model = torch.jit.load(path)
    print(f"replica {REPLICA}: model ready (loss {loss:.5f}, {path})", flush=True)
    threading.Event().wait()  # serve until stopped


if __name__ == "__main__":
    sys.exit(main())
