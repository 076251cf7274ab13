#!/usr/bin/env python3
"""What a flood from one address costs an ordinary source, with the kernel's
default socket receive buffer and with dhtd's (recv_buffer = 2M).

For each receive-buffer setting and each flood rate, a fresh `dhtd run`
(alone, no table) is loaded by two `dhtd load` processes at once:

- the flood, `dhtd load --flood` from 127.0.201.11, ping queries as fast as
  its threads can (`max`; one per socket, `--flood-sockets`) or at a fixed
  rate in all; the node's per-IP limit
  (queries_per_ip, 20/s) drops nearly all of it after reading it;
- the ordinary source, from 127.0.201.12, 15 pings/s (under the per-IP
  limit), started 2 s after the flood and stopped 2 s before it ends.

Reported per run: the flood's send rate; datagrams the node read per second
and the kernel dropped per second, its buffer full
(`dht_packets_received_total`, `dht_socket_receive_overflow_total`); the
node's CPU (utime + stime from /proc, 100% = one core); and the share of
the ordinary source's queries answered within 1 s.

    python3 tests/bench/flood.py [--seconds 20] [--rates 0,20000,...,max]
                                 [--buffers default,2M] [--flood-sockets 1]
                                 [--skip-build]

Everything runs on loopback; every process started is stopped by its PID.
Prints a Markdown table (for the README) and a JSON line.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DHTD = os.path.join(ROOT, "target/release/dhtd")
TICKS = os.sysconf("SC_CLK_TCK")
NODE_IP = "127.0.201.10"
FLOOD_IP = "127.0.201.11"
ORDINARY_IP = "127.0.201.12"
ORDINARY_RATE = 15


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port(kind, ip):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def stop(proc):
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def scrape(metrics):
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        m = re.match(r"^(dht_[a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


def one_run(buffer, rate, seconds, state_dir, flood_sockets):
    port = free_port(socket.SOCK_DGRAM, NODE_IP)
    metrics = f"127.0.0.1:{free_port(socket.SOCK_STREAM, '127.0.0.1')}"
    target = f"{NODE_IP}:{port}"
    node = subprocess.Popen(
        [DHTD, "run", "--listen", target, "--bootstrap", "none", "--metrics-listen", metrics,
         "--state-dir", state_dir, "--recv-buffer", buffer],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                before = scrape(metrics)
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("the node did not start")
        cpu0, t0 = cpu_seconds(node.pid), time.time()
        flood = None if rate == "0" else subprocess.Popen(
            [DHTD, "load", "--flood", "--sockets", str(flood_sockets), "--mix", "ping=1", "--bind", FLOOD_IP,
             "--target", target, "--duration", f"{seconds}s", "--json"]
            + (["--rate", str(rate)] if rate != "max" else []),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(2)
        ordinary = subprocess.run(
            [DHTD, "load", "--rate", str(ORDINARY_RATE), "--sockets", "1", "--mix", "ping=1",
             "--bind", ORDINARY_IP, "--target", target, "--duration", f"{seconds - 4}s",
             "--json"],
            capture_output=True, text=True)
        flood_out = flood.communicate(timeout=seconds + 30)[0] if flood else None
        cpu1, t1 = cpu_seconds(node.pid), time.time()
        after = scrape(metrics)
    finally:
        stop(node)
    f = json.loads(flood_out.strip().splitlines()[-1]) if flood_out else {"sent_per_s": 0}
    o = json.loads(ordinary.stdout.strip().splitlines()[-1])
    wall = t1 - t0
    delta = lambda name: (after.get(name, 0) - before.get(name, 0)) / wall
    return {
        "buffer": buffer,
        "flood_rate": rate,
        "buffer_bytes": after.get("dht_socket_recv_buffer_bytes", 0),
        "flood_sent_per_s": f["sent_per_s"],
        "node_received_per_s": delta('dht_packets_received_total{family="ipv4"}'),
        "kernel_dropped_per_s": delta("dht_socket_receive_overflow_total"),
        "node_cpu_percent": 100 * (cpu1 - cpu0) / wall,
        "ordinary_sent": o["sent"],
        "ordinary_answered": o["replies"],
        "ordinary_share": o["replies"] / o["sent"] if o["sent"] else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rates", default="0,20000,50000,100000,150000,200000,max",
                    help="flood rates in queries/s; 0 for none, max for as fast as it goes")
    ap.add_argument("--buffers", default="default,2M")
    ap.add_argument("--flood-sockets", type=int, default=1,
                    help="sockets (threads) of the flood, all on its one address")
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "dhtd"], cwd=ROOT, check=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dhtd-flood-") as state:
        for rate in args.rates.split(","):
            for buffer in args.buffers.split(","):
                r = one_run(buffer, rate, args.seconds, state, args.flood_sockets)
                rows.append(r)
                print(json.dumps(r), file=sys.stderr)
    print("| receive buffer (reported) | flood asked /s | flood sent /s | node read /s "
          "| kernel dropped /s | node CPU | ordinary answered |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        share = r["ordinary_share"]
        print(f"| {r['buffer']} ({int(r['buffer_bytes']):,} B) | {r['flood_rate']} "
              f"| {r['flood_sent_per_s']:,.0f} | {r['node_received_per_s']:,.0f} "
              f"| {r['kernel_dropped_per_s']:,.0f} | {r['node_cpu_percent']:.0f}% "
              f"| {r['ordinary_answered']}/{r['ordinary_sent']}"
              f" ({100 * share if share is not None else 0:.1f}%) |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
