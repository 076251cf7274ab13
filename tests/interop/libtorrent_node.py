#!/usr/bin/python3
"""A libtorrent-rasterbar DHT node for dhtd's interop tests, driven over
stdin/stdout: one command per line in, one JSON object per line out.

    libtorrent_node.py LISTEN_IP BOOTSTRAP_IP:PORT [...]

LISTEN_IP may be an IPv6 address (`::1`); an IPv6 bootstrap node is
written `[::1]:PORT`, and IPv6 endpoints come out the same way.

Commands: `info` (node id and port), `nodes` (its routing table),
`get_peers HEX` (a DHT lookup; the peers found), `announce HEX` (adds a
magnet for the info hash, which makes the torrent run get_peers and then
announce_peer with the session's port), `sample IP:PORT` (BEP 51
sample_infohashes to that node; its samples, num and interval), BEP 44's
`put_immutable TEXT`, `get_immutable HEX`, `put_mutable SEED PUBLIC SALT
TEXT` (hex seed and public key; salt `-` for none) and `get_mutable PUBLIC
SALT`, `quit`.

Everything stays on loopback: the built-in routers are replaced by the
given bootstrap nodes, and LSD, UPnP, NAT-PMP and the default plugins
(peer exchange among them) are off. The limits libtorrent applies per IP
are lifted, because on loopback every node of the test is "close".
"""

import hashlib
import json
import sys
import tempfile
import time
import warnings

import libtorrent as lt


# dht_state() is deprecated in 2.0 but still the way to read our node id.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def text_of(item):
    """An item's value as text: libtorrent gives a string entry as bytes or
    str depending on the binding's version."""
    if isinstance(item, bytes):
        return item.decode(errors="replace")
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and "value" in item:
        return text_of(item["value"])
    return repr(item)


def out(obj):
    print(json.dumps(obj), flush=True)


def endpoint(host, port):
    """HOST:PORT, with an IPv6 host in brackets (as Rust parses it)."""
    host = str(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main():
    listen_ip = sys.argv[1]
    bootstrap = sys.argv[2:]
    settings = {
        "listen_interfaces": endpoint(listen_ip, 0),
        "outgoing_interfaces": listen_ip,
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": ",".join(bootstrap),
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_block_ratelimit": 1_000_000,
        "dht_upload_rate_limit": 100_000_000,
        # Only what the commands read: with every category on (packet and
        # log alerts), a busy node overflows the alert queue and the alert
        # a command waits for can be dropped.
        "alert_mask": lt.alert.category_t.dht_notification
        | lt.alert.category_t.dht_operation_notification
        | lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification,
    }
    # flags=0: no default plugins (no ut_pex, ut_metadata, smart_ban).
    ses = lt.session(settings, 0)
    save_dir = tempfile.mkdtemp(prefix="dhtd-interop-lt-")

    def first(read, seconds):
        """The first non-None `read(alert)` within `seconds`, or None.

        An alert is valid only until the next pop_alerts() (libtorrent 2.0
        frees it then), so each one is read at once and never kept."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            ses.wait_for_alert(100)
            for a in ses.pop_alerts():
                found = read(a)
                if found is not None:
                    return found
        return None

    known_id = []

    def node_id():
        # The id exists once the DHT has started: wait for it (bounded), and
        # keep it, since dht_state() is a round trip to the network thread.
        if known_id:
            return known_id[0]
        for _ in range(100):
            ids = (ses.dht_state() or {}).get(b"node-id")
            if ids:
                known_id.append(ids[0][:20])
                return known_id[0]
            time.sleep(0.05)
        return bytes(20)

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        if cmd == "info":
            out({"id": node_id().hex(), "port": ses.listen_port(), "version": lt.__version__})
        elif cmd == "nodes":
            # Asked again each second: a request can go unanswered while the
            # DHT is still starting.
            def live_nodes(a):
                if isinstance(a, lt.dht_live_nodes_alert):
                    return [[str(n["nid"]), endpoint(*n["endpoint"])] for n in a.nodes]
                return None

            nodes = None
            for _ in range(5):
                ses.dht_live_nodes(lt.sha1_hash(node_id()))
                nodes = first(live_nodes, 1)
                if nodes is not None:
                    break
            out({"nodes": nodes or [], "timeout": nodes is None})
        elif cmd == "get_peers":
            target = lt.sha1_hash(bytes.fromhex(words[1]))
            ses.dht_get_peers(target)

            def peers_of_target(a):
                if isinstance(a, lt.dht_get_peers_reply_alert) and a.info_hash == target:
                    return [endpoint(*p) for p in a.peers()]
                return None

            peers = first(peers_of_target, 30)
            out({"peers": peers if peers is not None else [], "timeout": peers is None})
        elif cmd == "announce":
            atp = lt.add_torrent_params()
            atp.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(words[1])))
            atp.save_path = save_dir
            atp.flags &= ~lt.torrent_flags.auto_managed
            atp.flags &= ~lt.torrent_flags.paused
            ses.add_torrent(atp)
            out({"ok": True, "port": ses.listen_port()})
        elif cmd == "sample":
            host, port = words[1].rsplit(":", 1)
            host = host.strip("[]")
            ses.dht_sample_infohashes((host, int(port)), lt.sha1_hash(bytes(20)))

            def samples_from(a):
                if isinstance(a, lt.dht_sample_infohashes_alert) and a.endpoint[1] == int(port):
                    return {
                        "samples": [str(h) for h in a.samples],
                        "num": a.num_infohashes,
                        "interval": a.interval.total_seconds()
                        if hasattr(a.interval, "total_seconds")
                        else a.interval,
                    }
                return None

            answer = first(samples_from, 20)
            out(answer if answer is not None else {"timeout": True})
        elif cmd == "put_immutable":
            target = ses.dht_put_immutable_item(words[1].encode())

            def put_done(a):
                if isinstance(a, lt.dht_put_alert) and str(a.target) == str(target):
                    return {"target": str(target), "num_success": a.num_success}
                return None

            answer = first(put_done, 30)
            out(answer if answer is not None else {"timeout": True})
        elif cmd == "get_immutable":
            target = lt.sha1_hash(bytes.fromhex(words[1]))
            ses.dht_get_immutable_item(target)

            def item_of(a):
                if isinstance(a, lt.dht_immutable_item_alert) and a.target == target:
                    item = a.item
                    return {"value": text_of(item)}
                return None

            answer = first(item_of, 30)
            out(answer if answer is not None else {"timeout": True})
        elif cmd == "put_mutable":
            seed, public = bytes.fromhex(words[1]), bytes.fromhex(words[2])
            salt = "" if words[3] == "-" else words[3]
            # libtorrent's secret key is the expanded form of the seed
            # (RFC 8032: SHA-512, clamped), as BEP 44's vectors show it.
            secret = bytearray(hashlib.sha512(seed).digest())
            secret[0] &= 248
            secret[31] &= 63
            secret[31] |= 64
            ses.dht_put_mutable_item(bytes(secret), public, words[4], salt)

            def put_done(a):
                if isinstance(a, lt.dht_put_alert) and bytes(a.public_key) == public:
                    return {"num_success": a.num_success, "seq": a.seq}
                return None

            answer = first(put_done, 30)
            out(answer if answer is not None else {"timeout": True})
        elif cmd == "get_mutable":
            public = bytes.fromhex(words[1])
            salt = "" if words[2] == "-" else words[2]
            ses.dht_get_mutable_item(public, salt)

            def item_of(a):
                if isinstance(a, lt.dht_mutable_item_alert) and bytes(a.key) == public and a.authoritative:
                    item = a.item
                    return {"value": text_of(item), "seq": a.seq}
                return None

            answer = first(item_of, 30)
            out(answer if answer is not None else {"timeout": True})
        elif cmd == "quit":
            break
        else:
            out({"error": f"unknown command {cmd}"})


if __name__ == "__main__":
    main()
