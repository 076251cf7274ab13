#!/usr/bin/python3
"""libtorrent-rasterbar's DHT as a server node for tests/bench/bench.py:
`libtorrent_server.py IP PORT [BOOTSTRAP]`. Its only bootstrap node is
BOOTSTRAP (a numeric loopback IP:PORT), or none: nothing leaves the
machine. LSD/UPnP/NAT-PMP and the default plugins off, and its per-IP and
upload limits lifted (by default it answers 8,000 bytes/s and ignores an
address after 50 messages in 10 s). Runs until killed."""

import sys
import time

import libtorrent as lt

ip, port = sys.argv[1], int(sys.argv[2])
bootstrap = sys.argv[3] if len(sys.argv) > 3 else ""
ses = lt.session(
    {
        "listen_interfaces": f"{ip}:{port}",
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": bootstrap,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_block_ratelimit": 1_000_000_000,
        "dht_upload_rate_limit": 1_000_000_000,
        "dht_max_torrents": 2_000_000,
        "dht_max_peers": 500,
    },
    0,
)
print(f"libtorrent {lt.__version__} on {ip}:{ses.listen_port()}", flush=True)
while True:
    time.sleep(3600)
