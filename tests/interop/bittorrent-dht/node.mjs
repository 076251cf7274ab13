// webtorrent's bittorrent-dht as a DHT node for dhtd's interop tests,
// driven over stdin/stdout: one command per line in, one JSON object per
// line out (the same commands as ../libtorrent_node.py).
//
//     node node.mjs LISTEN_IP BOOTSTRAP_IP:PORT [...]
//
// Commands: `info`, `nodes`, `get_peers HEX`, `announce HEX`, `quit`.
// Only the given numeric loopback bootstrap nodes are used: passing them
// replaces the built-in routers, and no name is resolved.

import DHT from 'bittorrent-dht'
import readline from 'node:readline'
import { readFileSync } from 'node:fs'

const { version } = JSON.parse(readFileSync(new URL('./node_modules/bittorrent-dht/package.json', import.meta.url)))

// The port announced for our peer (a BitTorrent client would listen there).
const PEER_PORT = 51413

const [ip, ...bootstrap] = process.argv.slice(2)
const dht = new DHT({ bootstrap })
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const listening = new Promise((resolve) => dht.listen(0, ip, resolve))
const commands = readline.createInterface({ input: process.stdin })

async function run (line) {
  const [cmd, arg] = line.trim().split(/\s+/)
  await listening
  if (cmd === 'info') {
    out({ id: dht.nodeId.toString('hex'), port: dht.address().port, version: `bittorrent-dht ${version}` })
  } else if (cmd === 'nodes') {
    const nodes = dht.toJSON().nodes.map((n) => [n.id ? Buffer.from(n.id).toString('hex') : null, `${n.host}:${n.port}`])
    out({ nodes })
  } else if (cmd === 'get_peers') {
    const peers = new Set()
    const onPeer = (peer, infoHash) => {
      if (infoHash.toString('hex') === arg) peers.add(`${peer.host}:${peer.port}`)
    }
    dht.on('peer', onPeer)
    await new Promise((resolve) => dht.lookup(arg, resolve))
    dht.removeListener('peer', onPeer)
    out({ peers: [...peers] })
  } else if (cmd === 'announce') {
    const error = await new Promise((resolve) => dht.announce(arg, PEER_PORT, resolve))
    out({ ok: !error, port: PEER_PORT, error: error ? String(error) : undefined })
  } else if (cmd === 'quit') {
    dht.destroy(() => process.exit(0))
  } else {
    out({ error: `unknown command ${cmd}` })
  }
}

// One command at a time, in order.
let queue = Promise.resolve()
commands.on('line', (line) => { queue = queue.then(() => run(line)) })
commands.on('close', () => { queue.then(() => dht.destroy(() => process.exit(0))) })
