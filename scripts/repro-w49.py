#!/usr/bin/env python3
"""Reproduces the upstream response bodies `wasmtime serve` 49 cuts short:
`scripts/repro-w49.py`, after `just build`.

One outgoing call per request, to a backend on 127.0.0.1 that answers a fixed
body with its `content-length` (portability.py's backend, HTTP/1.1
keep-alive), made by `raw-fetch-p3` (raw `wasip3` bindings, no reprise) in
each order its `transmit=` parameter names, and by two reprise components:
`read-upstream-p3` (buffers the answer with the SDK's client) and the
`proxy-p3` sample (streams it back, and a POST's answer too). Each case runs REQUESTS times, one
request at a time, on host-runner, `wasmtime serve` 48.0.2 and 49.0.3
(installed under target/portability/ as `just portability` does, once).
Prints one Markdown table of how many bodies arrived whole, cut with an
error the app saw, and cut silently. The cause and the numbers are in
docs/src/running-elsewhere.md ("Bodies cut short on wasmtime 49").

Exits 1 if a reprise component lost a body anywhere (its workaround holds
if not); raw-fetch-p3's losses are the reproduction, not a failure. Talks to
127.0.0.1 only once the hosts are installed; builds nothing. About a
minute with the default 20 requests per case.
"""

import argparse
import http.server
import re
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parent))
import portability  # noqa: E402  (the hosts, the backend and the HTTP client: one definition)
from portability import GUESTS, ROOT  # noqa: E402

REQUESTS = 20
BIG = portability.BIG


def log(message):
    print(f"repro-w49: {message}", file=sys.stderr, flush=True)


def hosts():
    found = [portability.Host("host-runner", portability.host_runner(ROOT / "target/release/host-runner"), {"p3"})]
    for wheel, carries in portability.WHEELS:
        binary, why = portability.install_wheel(wheel, carries)
        command = portability.wasmtime_serve(binary) if binary else None
        found.append(portability.Host(f"wasmtime serve {carries}", command, {"p3"}, why))
    return found


class Backend(portability.Backend):
    """portability.py's backend, and two timings of the same bodies:
    /late/N sends the head, then the body 50 ms later; /close/N answers
    `connection: close` and closes after the body."""

    def do_GET(self):
        found = re.fullmatch(r"/(late|close)/(\d{1,7})", self.path)
        if not found:
            return super().do_GET()
        n = int(found.group(2))
        self.send_response(200)
        self.send_header("content-length", str(n))
        if found.group(1) == "close":
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.flush()
        if found.group(1) == "late":
            time.sleep(0.05)
        self.wfile.write(b"x" * n)


class QuietServer(http.server.ThreadingHTTPServer):
    # wasmtime 49 resets connections it cut: expected here, not news.
    def handle_error(self, request, client_address):
        pass


def start_backend():
    server = QuietServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def cases(backend):
    """(component, label, method, path, request body, the body size it asks for)."""
    upstream = f"http://127.0.0.1:{backend}"
    raw = [
        (57, "bytes", "drop", ""),
        (57, "bytes", "after", ""),
        (57, "bytes", "after", "&wait_ms=100"),
        (57, "late", "after", ""),
        (57, "close", "after", ""),
        (57, "late", "hold", ""),
        (BIG, "bytes", "drop", ""),
        (BIG, "bytes", "after", ""),
        (BIG, "bytes", "hold", ""),
    ]
    out = []
    for size, route, transmit, extra in raw:
        label = f"/{route}/{size}, transmit={transmit}{extra.replace('&', ', ')}"
        path = f"/?from={upstream}/{route}/{size}&transmit={transmit}{extra}"
        out.append(("raw-fetch-p3", label, "GET", path, None, size))
    for size, route in [(57, "bytes"), (57, "late"), (BIG, "bytes")]:
        path = f"/?from={upstream}/{route}/{size}"
        out.append(("read-upstream-p3", f"/{route}/{size}", "GET", path, None, size))
        out.append(("proxy-p3", f"/{route}/{size}", "GET", f"/{route}/{size}", None, size))
    out.append(("proxy-p3", "POST /echo, 4096 B", "POST", "/echo", b"x" * 4096, 4096))
    return out


def judge(component, size, answer):
    """One answer as "whole", "error" (cut, and the app or the client saw
    it) or "silent" (cut, and nothing said so)."""
    if answer.error or answer.expected is not None or answer.status != 200:
        return "error"
    if component == "proxy-p3":
        return "whole" if len(answer.body) == size else "silent"
    if component == "read-upstream-p3":
        return "whole" if answer.body == f"read {size} bytes\n".encode() else "silent"
    found = re.match(rb"read (\d+) of", answer.body)
    if not found:
        return "error"
    return "whole" if int(found.group(1)) == size else "silent"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help=f"requests per case (default {REQUESTS})")
    args = parser.parse_args()
    if not 1 <= args.requests <= 200:
        sys.exit("repro-w49: --requests takes 1 to 200")

    backend = start_backend()
    port = backend.server_address[1]
    sample_env = {"BACKEND": f"http://127.0.0.1:{port}"}
    rows, sdk_lost = [], False
    for host in hosts():
        if host.command is None:
            rows.append(f"| {host.name} | (all) | not run: {host.why_not} | | | |")
            continue
        for component in ["raw-fetch-p3", "read-upstream-p3", "proxy-p3"]:
            wasm = GUESTS / "examples" / f"{component.replace('-', '_')}.wasm"
            if not wasm.exists():
                wasm = GUESTS / f"{component.replace('-', '_')}.wasm"
            if not wasm.exists():
                sys.exit(f"repro-w49: {component} is not built; run `just build` first")
            sample = portability.Sample(component, "p3", [], env=sample_env if component == "proxy-p3" else None)
            try:
                process, server_port, _ = portability.serve(host, wasm, sample, None)
            except RuntimeError as e:
                rows.append(f"| {host.name} | {component} | fails to start: {e} | | | |")
                continue
            try:
                for name, label, method, path, body, size in cases(port):
                    if name != component:
                        continue
                    counts = {"whole": 0, "error": 0, "silent": 0}
                    for _ in range(args.requests):
                        answer = portability.send(server_port, method, path, body)
                        counts[judge(component, size, answer)] += 1
                    rows.append(f"| {host.name} | {component} | {label} | {counts['whole']} | {counts['error']} | {counts['silent']} |")
                    sdk_lost |= component != "raw-fetch-p3" and counts["whole"] < args.requests
                    log(f"{host.name}: {component} {label}: {counts}")
            finally:
                portability.stop(process)
    backend.shutdown()

    print("| host | component | case | whole | cut, with an error | cut, silently |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    if sdk_lost:
        log("a reprise component lost a body (see the table)")
        sys.exit(1)


if __name__ == "__main__":
    main()
