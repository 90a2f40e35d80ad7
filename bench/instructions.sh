#!/usr/bin/env bash
# Instructions per request: a repeatable measure of a component's cost on
# host-runner, for a noisy or shared machine where requests/s and CPU time
# move from run to run.
#
#   bench/instructions.sh COMPONENT.wasm [SERVE FLAGS...]
#   bench/instructions.sh target/wasm32-wasip2/release/hello_p2.wasm --max-instance-reuse-count=128
#
# Serves the component with `host-runner serve --threads 1` under
# valgrind's callgrind, sends WARMUP requests (compiling, the first
# instances), zeroes the counters, sends REQUESTS requests one after another
# on one keep-alive connection from 127.0.0.1, and prints the whole
# process's instructions (Ir) per request: host and guest (the guest's
# compiled code counts as JIT frames). Prints one line:
# `NAME  IR_PER_REQUEST  (REQUESTS requests)`.
#
# Environment: REQUESTS (default 2000), WARMUP (default 300),
# HOST_RUNNER (default target/release/host-runner), OUT (default
# target/bench/callgrind, where the callgrind files and server logs go).
# It builds nothing and asserts nothing; it needs valgrind and python3.
set -euo pipefail

if [ $# -lt 1 ]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
wasm=$1
shift
requests=${REQUESTS:-2000}
warmup=${WARMUP:-300}
host_runner=${HOST_RUNNER:-target/release/host-runner}
out=${OUT:-target/bench/callgrind}
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is missing (apt-get install -y valgrind)" >&2; exit 1; }
[ -f "$wasm" ] || { echo "instructions.sh: $wasm is missing; build it (just build)" >&2; exit 1; }
[ -x "$host_runner" ] || { echo "instructions.sh: $host_runner is missing; build it (just build)" >&2; exit 1; }

name=$(basename "$wasm" .wasm)
mkdir -p "$out"
log="$out/$name.log"
# As in production: RUST_BACKTRACE makes wasmtime capture a backtrace
# whenever an instance is dropped.
env -u RUST_BACKTRACE -u WASMTIME_BACKTRACE_DETAILS \
  valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$out/$name.%p" \
  "$host_runner" serve --threads 1 --addr 127.0.0.1:0 "$@" "$wasm" 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT

# The port, from the `Serving HTTP on http://IP:PORT/` line (compiling the
# component under valgrind takes a while).
url=""
for _ in $(seq 600); do
  url=$(grep -o 'Serving HTTP on http://[0-9.:]*/' "$log" | head -1 | sed 's/Serving HTTP on //') || true
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { echo "instructions.sh: host-runner stopped; see $log" >&2; exit 1; }
  sleep 1
done
[ -n "$url" ] || { echo "instructions.sh: host-runner did not start in 10 minutes; see $log" >&2; exit 1; }

send() {
  python3 - "$url" "$1" <<'EOF'
import http.client, sys, urllib.parse
url, count = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2])
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
for _ in range(count):
    connection.request("GET", "/")
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"instructions.sh: status {response.status}")
EOF
}

send "$warmup"
callgrind_control --zero "$server" >/dev/null
send "$requests"
callgrind_control --dump="measured" "$server" >/dev/null
# The dump is written asynchronously, at the process's next scheduling point.
dump=""
for _ in $(seq 120); do
  dump=$(grep -l '^desc: Trigger: dump measured' "$out/$name.$server".* 2>/dev/null | head -1) || true
  [ -n "$dump" ] && break
  sleep 1
done
[ -n "$dump" ] || { echo "instructions.sh: no callgrind dump appeared in $out" >&2; exit 1; }
kill "$server"
wait "$server" 2>/dev/null || true
trap - EXIT
total=$(grep '^summary:' "$dump" | awk '{print $2}')
printf '%s\t%d\t(%d requests, %s)\n' "$name" $((total / requests)) "$requests" "$dump"
