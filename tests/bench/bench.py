#!/usr/bin/env python3
"""One benchmark run, side by side, on this machine, with `dhtd load` and the
same settings for every target:

- the physical limit: `dhtd echo`, one fixed pre-encoded reply per query;
- `dhtd run`;
- the `mainline` crate 8.0.1 as a server (tests/bench/mainline_server.rs);
- libtorrent-rasterbar (Debian python3-libtorrent) with its per-IP limits and
  upload quota lifted (tests/bench/libtorrent_server.py);
- the same echo and a dual-stack `dhtd run` loaded over IPv6 (`::1`): the
  `echo6` and `dhtd6` rows, and the ratios dhtd6/dhtd and echo6/echo (BEP 32:
  the IPv6 mix is to stay within 10% of the IPv4 mix). The local network is
  IPv4 (IPv6 loopback has one address, where a network would be one host),
  so the IPv6 load asks `want n4` and its replies carry the same 8 nodes as
  the IPv4 rows; what differs is the IPv6 path itself: sockets, /64 keys,
  tokens of 16-byte addresses, the 18-byte `ip` key and IPv6 peers.

Every target but the echo first joins a local network, a `dhtd swarm` of
500 nodes on loopback (--network-nodes), and answers from the routing table
it built there, with 8 nodes per find_node and get_peers reply as on the
real network (an empty table answers with none, which is cheaper and not
what a real node does). The echo always answers with 8 fixed nodes.

For each: replies/s for ping, find_node, get_peers, announce and a mix; p50
and p99 latency; CPU µs per reply (the target's utime + stime from /proc);
RSS; nodes per find_node/get_peers reply; and the ratios dhtd/limit and
dhtd/peer. Then, on a fresh process of each, the RSS per stored peer after
100,000 announces of distinct info hashes.

    python3 tests/bench/bench.py [--seconds 10] [--skip-build] [--network-nodes 500]

Everything runs on loopback (the network on 127.0.0.3 and up, targets and
generator on 127.0.200.x); every process started is stopped by its PID.
Prints a Markdown table (for the README) and a JSON line.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DHTD = os.path.join(ROOT, "target/release/dhtd")
MAINLINE = os.path.join(ROOT, "target/release/mainline-server")
LIBTORRENT = os.path.join(ROOT, "tests/bench/libtorrent_server.py")
TICKS = os.sysconf("SC_CLK_TCK")
LOADER_IP = "127.0.200.90"
PROBE_IP = "127.0.200.89"
MIXES = {
    "ping": "ping=1",
    "find_node": "find_node=1",
    "get_peers": "get_peers=1",
    "announce": "announce=1",
    "mix": "ping=1,find_node=1,get_peers=1,announce=1",
}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if proc.poll() is not None:
        sys.exit(f"{cmd[0]} did not start")
    return proc


def start_network(nodes):
    """A `dhtd swarm` of `nodes` nodes that keeps serving; returns the process
    and the address of its first node, once its own round is done."""
    proc = subprocess.Popen(
        [DHTD, "swarm", "--nodes", str(nodes), "--duration", "24h", "--metrics-listen", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = None
    for line in proc.stdout:
        m = re.match(r"started \d+ dhtd nodes on (\S+)", line)
        if m:
            first = m.group(1)
        if line.startswith("serving for"):
            break
    if first is None or proc.poll() is not None:
        stop(proc)
        sys.exit("the local network (dhtd swarm) did not start")
    # Keep its pipe drained so that it never blocks on output.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, first


def nodes_in_find_node(target):
    """How many nodes `target` puts in a find_node reply (0 on no reply)."""
    ip, port = target.rsplit(":", 1)
    query = (b"d1:ad2:id20:" + os.urandom(20) + b"6:target20:" + os.urandom(20)
             + b"e1:q9:find_node1:t4:prob1:y1:qe")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((PROBE_IP, 0))
        s.settimeout(1.0)
        s.sendto(query, (ip, int(port)))
        try:
            reply = s.recv(65536)
        except OSError:
            return 0
    m = re.search(rb"5:nodes(\d+):", reply)
    return int(m.group(1)) // 26 if m else 0


def probe_of(name, target):
    """Where a target's table is probed: dhtd6's IPv4 side (the network is
    IPv4)."""
    return "127.0.200.95:7005" if name == "dhtd6" else target


def wait_for_table(name, target, want=8, timeout=60):
    """Waits until `target` answers find_node with `want` nodes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if nodes_in_find_node(target) >= want:
            return True
        time.sleep(0.5)
    print(f"  {name}: fewer than {want} nodes in its find_node replies after {timeout} s",
          file=sys.stderr)
    return False


def stop(proc):
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def load(target, mix, seconds, rate=None):
    """One `dhtd load` run: its JSON report, with the generator's own CPU
    per reply added (`loader_cpu_us_per_reply`), or None. An IPv6 target
    is loaded from ::1, asking `want n4` (see the module's text)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    v6 = target.startswith("[")
    out = subprocess.run(
        [DHTD, "load", "--target", target, "--duration", f"{seconds}s", "--sockets", "2",
         "--concurrency", "32", "--mix", mix, "--bind", "::1" if v6 else LOADER_IP, "--json"]
        + (["--want", "n4"] if v6 else [])
        + (["--rate", str(rate)] if rate else []),
        capture_output=True, text=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not out.stdout.strip():
        return None
    report = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report["loader_cpu_us_per_reply"] = cpu * 1e6 / report["replies"] if report["replies"] else None
    return report


def measure(name, proc, target, seconds, same_load):
    """The rows of one target; then the mix again in open loop at
    `same_load` queries/s (None: a quarter of this target's own mixed ceiling), so
    that latencies compare at the same load, where closed-loop latencies
    compare each target at its own ceiling."""
    rows = {}
    for kind, mix in MIXES.items():
        before = cpu_seconds(proc.pid)
        r = load(target, mix, seconds)
        cpu = cpu_seconds(proc.pid) - before
        replies = r["replies"] if r else 0
        rows[kind] = {
            "replies_per_s": r["replies_per_s"] if r else 0.0,
            "p50_us": r["latency_us"]["p50"] if r else None,
            "p99_us": r["latency_us"]["p99"] if r else None,
            "cpu_us_per_reply": (cpu * 1e6 / replies) if replies else None,
            "errors": r["errors"] if r else None,
            "timeouts": r["timeouts"] if r else None,
            "nodes_per_reply": r.get("nodes_per_reply") if r else None,
            "loader_cpu_us_per_reply": r.get("loader_cpu_us_per_reply") if r else None,
        }
        print(f"  {name:<11} {kind:<10} {rows[kind]['replies_per_s']:>9.0f}/s", file=sys.stderr)
    rows["rss_kb"] = rss_kb(proc.pid)
    # A quarter of the echo's mixed ceiling (the echo runs first): well
    # below the limit, so that latency is the target's own and not that of
    # a saturated machine's scheduler. A target that cannot carry it shows
    # timeouts.
    if same_load is None:
        same_load = round(rows["mix"]["replies_per_s"] / 4000) * 1000
    r = load(target, MIXES["mix"], seconds, rate=same_load)
    rows["same_load"] = {
        "rate": same_load,
        "replies_per_s": r["replies_per_s"] if r else 0.0,
        "p50_us": r["latency_us"]["p50"] if r else None,
        "p99_us": r["latency_us"]["p99"] if r else None,
        "timeouts": r["timeouts"] if r else None,
    }
    return rows


def store_cost(proc, target, announces=100_000):
    """RSS growth per stored peer over `announces` distinct info hashes
    (each announce is a get_peers for the token, then announce_peer)."""
    before = rss_kb(proc.pid)
    done = 0
    while done < announces:
        r = load(target, "announce=1", 2)
        done += (r["replies"] // 2) if r else 0
        if not r or r["replies"] == 0:
            break
    after = rss_kb(proc.pid)
    return {"announces": done, "rss_growth_kb": after - before,
            "bytes_per_peer": (after - before) * 1024 / done if done else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--no-store", action="store_true", help="skip the 100,000-announce store run")
    ap.add_argument("--network-nodes", type=int, default=500,
                    help="nodes of the local network the targets join (0: none, empty tables)")
    ap.add_argument("--only", help="comma-separated targets to run "
                    "(echo,dhtd,echo6,dhtd6,mainline,libtorrent)")
    args = ap.parse_args()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "dhtd", "--bin", "dhtd",
                        "-p", "dhtd-tests", "--bin", "mainline-server"], cwd=ROOT, check=True)
    network, boot = (None, None)
    if args.network_nodes:
        network, boot = start_network(args.network_nodes)
        print(f"  network: {args.network_nodes} dhtd nodes, joined through {boot}", file=sys.stderr)
    state = tempfile.mkdtemp(prefix="dhtd-bench-")
    # Every store is given room for all the announces of the run (about
    # 100,000 per 10 s row), from the load generator's one address: a full
    # store or a spent quota would answer errors, not replies.
    dhtd = [DHTD, "run", "--listen", "127.0.200.92:7002", "--bootstrap", "none",
            "--metrics-listen", "off", "--state-dir", state, "--queries-per-ip", "1000000000",
            "--queries-per-prefix", "1000000000", "--max-info-hashes", "2000000",
            "--max-announces-per-ip", "2000000", "--max-announces-per-prefix", "2000000"] + (["--node", boot] if boot else [])
    # Dual stack: it joins the IPv4 network and is loaded over ::1.
    dhtd6 = dhtd[:3] + ["127.0.200.95:7005", "--listen", "[::1]:7005"] + dhtd[4:]
    targets = [
        ("echo", [DHTD, "echo", "--listen", "127.0.200.91:7001"], "127.0.200.91:7001"),
        ("dhtd", dhtd, "127.0.200.92:7002"),
        ("echo6", [DHTD, "echo", "--listen", "[::1]:7011"], "[::1]:7011"),
        ("dhtd6", dhtd6, "[::1]:7005"),
        ("mainline", [MAINLINE, "127.0.200.93", "7003"] + ([boot] if boot else []),
         "127.0.200.93:7003"),
        ("libtorrent", ["/usr/bin/python3", LIBTORRENT, "127.0.200.94", "7004"]
         + ([boot] if boot else []), "127.0.200.94:7004"),
    ]
    if args.only:
        targets = [t for t in targets if t[0] in args.only.split(",")]
    results = {}
    try:
        for name, cmd, target in targets:
            if name == "libtorrent" and subprocess.run(
                    ["/usr/bin/python3", "-c", "import libtorrent"], capture_output=True).returncode != 0:
                print("  libtorrent: python3-libtorrent not installed, skipped", file=sys.stderr)
                continue
            proc = start(cmd)
            try:
                if boot and not name.startswith("echo"):
                    wait_for_table(name, probe_of(name, target))
                same_load = results["echo"]["same_load"]["rate"] if "echo" in results else None
                results[name] = measure(name, proc, target, args.seconds, same_load)
            finally:
                stop(proc)
                shutil.rmtree(state, ignore_errors=True)
            if not name.startswith("echo") and not args.no_store:
                # A fresh process, so that the figure is the cost of these
                # announces alone, not of where the earlier rows left the store.
                proc = start(cmd)
                try:
                    if boot:
                        wait_for_table(name, probe_of(name, target))
                    results[name]["store"] = store_cost(proc, target)
                finally:
                    stop(proc)
                    shutil.rmtree(state, ignore_errors=True)
    finally:
        if network:
            stop(network)

    def ratio(a, b, kind):
        x, y = results.get(a, {}).get(kind, {}), results.get(b, {}).get(kind, {})
        return x.get("replies_per_s", 0) / y["replies_per_s"] if y.get("replies_per_s") else None

    network_text = (f"targets joined a {args.network_nodes}-node local network"
                    if args.network_nodes else "empty routing tables")
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {args.seconds} s per row, "
          f"2 sockets x 32 in flight, {network_text}\n")
    print("| target | query | replies/s | p50 µs | p99 µs | CPU µs/reply | nodes/reply | RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in results.items():
        for kind in MIXES:
            r = rows[kind]
            cpu = f"{r['cpu_us_per_reply']:.1f}" if r["cpu_us_per_reply"] else "-"
            nodes = f"{r['nodes_per_reply']:.1f}" if kind != "ping" and r["nodes_per_reply"] is not None else "-"
            print(f"| {name} | {kind} | {r['replies_per_s']:.0f} | {r['p50_us']} | {r['p99_us']} | {cpu} | "
                  f"{nodes} | {rows['rss_kb'] / 1024:.0f} |")
    print("\n| ratio | " + " | ".join(MIXES) + " |")
    print("| --- |" + " --- |" * len(MIXES))
    for a, b in [("dhtd", "echo"), ("dhtd", "libtorrent"), ("dhtd", "mainline"),
                 ("dhtd6", "dhtd"), ("echo6", "echo")]:
        if a in results and b in results:
            cells = [f"{ratio(a, b, k):.2f}x" if ratio(a, b, k) else "-" for k in MIXES]
            print(f"| {a}/{b} | " + " | ".join(cells) + " |")
    echo_mix = results.get("echo", {}).get("mix", {})
    if echo_mix.get("loader_cpu_us_per_reply"):
        gen = echo_mix["loader_cpu_us_per_reply"]
        ceiling = 2e6 / gen
        print(f"\nThe generator itself: {gen:.1f} µs CPU per reply against the echo, so with both "
              f"cores to itself it would carry about {ceiling:,.0f} replies/s, "
              f"{ceiling / echo_mix['replies_per_s']:.1f}x what the echo answered: it is not the bottleneck.")
    loaded = [(n, r["same_load"]) for n, r in results.items() if "same_load" in r]
    if loaded:
        print(f"\nMixed queries in open loop at {loaded[0][1]['rate']}/s, the same load for every target:\n")
        print("| target | replies/s | p50 µs | p99 µs | timeouts |")
        print("| --- | --- | --- | --- | --- |")
        for name, r in loaded:
            print(f"| {name} | {r['replies_per_s']:.0f} | {r['p50_us']} | {r['p99_us']} | {r['timeouts']} |")
    print("\n| target | announces | RSS growth | bytes per stored peer |")
    print("| --- | --- | --- | --- |")
    for name, rows in results.items():
        s = rows.get("store")
        if s:
            per = f"{s['bytes_per_peer']:.0f}" if s["bytes_per_peer"] is not None else "-"
            print(f"| {name} | {s['announces']} | {s['rss_growth_kb'] / 1024:.1f} MB | {per} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
