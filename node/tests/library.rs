//! The library as an embedder meets it: how a node ends, how settings and
//! failures are reported, how a lookup is read. Loopback only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::time::{Duration, Instant};

use dhtd::persist::{SavedTable, TABLE_FILE};
use dhtd::swarm::{node_ip, swarm_config, LocalSwarm};
use dhtd::{
    Config, Dht, Error, InfoHash, LookupEvent, PortChoice, RemoteError, Runtime, StartError,
};
use dhtd_protocol::bencode::Encoder;
use dhtd_protocol::krpc::Message;

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dhtd-lib-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

#[test]
fn dropping_the_last_handle_saves_the_table_and_frees_the_port() {
    let rt = tokio();
    let swarm = rt.block_on(LocalSwarm::start(4, 11, |_, _| {})).unwrap();
    rt.block_on(swarm.wait_bootstrapped(Duration::from_secs(20)));
    let dir = scratch("drop");
    let mut config = swarm_config(node_ip(1720), &[swarm.nodes[0].local_addr()]);
    config.state_dir = Some(dir.clone());
    config.save_interval = Duration::from_secs(3600);
    let dht = Dht::builder(config).start().unwrap();
    let addr = dht.local_addr();
    let table = dir.join(TABLE_FILE);
    rt.block_on(async {
        dht.wait_bootstrapped().await;
        // The save that follows bootstrap; then the file is taken away, so
        // that only the save at the end can bring it back.
        assert!(eventually(Duration::from_secs(10), || table.exists()).await);
    });
    std::fs::remove_file(&table).unwrap();
    let clone = dht.clone();
    drop(dht);
    assert!(
        UdpSocket::bind(addr).is_err(),
        "a clone still holds the node"
    );
    drop(clone);
    let saved = dhtd::persist::load_table(&dir)
        .unwrap()
        .expect("saved at drop");
    assert!(!saved.nodes.is_empty());
    UdpSocket::bind(addr).expect("the port is free once the node stopped");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_setting_is_refused_by_name_before_anything_is_bound() {
    let listen = SocketAddr::new(node_ip(1721), 0);
    let mut config = Config::local(listen, &[]);
    config.dht.lookup.k = 0;
    let Err(StartError::Config(e)) = Dht::builder(config).start() else {
        panic!("a node with k = 0 started");
    };
    assert_eq!(e.setting(), "dht.lookup.k");
    let mut config = Config::local(listen, &[]);
    config.dht.limits.queries_per_ip.per_second = -1.0;
    let e = Dht::builder(config).start().unwrap_err();
    assert!(e.to_string().contains("dht.limits.queries_per_ip"), "{e}");
}

#[test]
fn a_peer_stream_read_as_a_stream_keeps_its_summary() {
    let rt = tokio();
    let swarm = rt.block_on(LocalSwarm::start(6, 12, |_, _| {})).unwrap();
    rt.block_on(swarm.wait_bootstrapped(Duration::from_secs(20)));
    let info_hash = InfoHash([0x77; 20]);
    rt.block_on(async {
        swarm.nodes[2]
            .announce(info_hash, PortChoice::Port(4242))
            .await
            .unwrap();
        let mut stream = swarm.nodes[4].get_peers(info_hash);
        let mut events = Vec::new();
        while let Some(event) =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx))
                .await
        {
            events.push(event);
        }
        let wanted = SocketAddr::new(swarm.nodes[2].local_addr().ip(), 4242);
        assert!(events.contains(&LookupEvent::Peer(wanted)), "{events:?}");
        let last = events.last().unwrap();
        let summary = stream.summary().expect("kept while streaming");
        assert_eq!(last, &LookupEvent::Finished(summary.clone()));
        assert_eq!(summary.peers, 1);
    });
}

#[test]
fn a_remote_krpc_error_arrives_with_its_code_and_text() {
    let rt = tokio();
    let dht = Dht::builder(Config::local(SocketAddr::new(node_ip(1722), 0), &[]))
        .start()
        .unwrap();
    let peer = UdpSocket::bind(SocketAddr::new(node_ip(1723), 0)).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to = peer.local_addr().unwrap();
    let answer = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        let tid = Message::decode(&buf[..n]).unwrap().transaction_id.to_vec();
        let mut reply = Vec::new();
        Encoder::new(&mut reply)
            .begin_dict()
            .bytes(b"e")
            .begin_list()
            .int(201)
            .bytes(b"go away")
            .end()
            .bytes(b"t")
            .bytes(&tid)
            .bytes(b"y")
            .bytes(b"e")
            .end();
        peer.send_to(&reply, from).unwrap();
    });
    let result = rt.block_on(dht.ping(to));
    answer.join().unwrap();
    assert_eq!(
        result,
        Err(Error::Remote(RemoteError {
            code: 201,
            message: "go away".into()
        }))
    );
}

#[test]
fn nodes_are_added_by_address_or_by_name() {
    let rt = tokio();
    let runtime = Runtime::new().unwrap();
    let first = Dht::builder(Config::local(SocketAddr::new(node_ip(1724), 0), &[]))
        .runtime(&runtime)
        .start()
        .unwrap();
    let second = Dht::builder(swarm_config(node_ip(1725), &[]))
        .runtime(&runtime)
        .start()
        .unwrap();
    rt.block_on(async {
        second.add_node(first.local_addr()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), second.wait_bootstrapped())
            .await
            .expect("an added node bootstraps a node that had none");
        // `localhost` resolves from the hosts file, never off the machine.
        let by_name = format!("localhost:{}", first.local_addr().port());
        assert!(second.add_node_by_name(&by_name).await.unwrap() >= 1);
        assert_eq!(
            second.add_node_by_name("no port here").await,
            Err(Error::Resolve("no port here".into()))
        );
        second.shutdown().await;
        assert_eq!(
            second.add_node(first.local_addr()).await,
            Err(Error::Shutdown)
        );
    });
}

#[test]
fn an_announce_that_reaches_no_node_is_an_error() {
    let rt = tokio();
    let runtime = Runtime::new().unwrap();
    let only_contact = Dht::builder(swarm_config(node_ip(1726), &[]))
        .runtime(&runtime)
        .start()
        .unwrap();
    let mut config = swarm_config(node_ip(1727), &[only_contact.local_addr()]);
    config.dht.transactions.timeout = Duration::from_millis(300);
    let dht = Dht::builder(config).runtime(&runtime).start().unwrap();
    rt.block_on(async {
        dht.wait_bootstrapped().await;
        // Its one contact goes away: nothing can take the announce.
        only_contact.shutdown().await;
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            dht.announce(InfoHash([1; 20]), PortChoice::Implied),
        )
        .await
        .expect("the announce ends");
        assert_eq!(result, Err(Error::NoNodeReached));
    });
}

#[test]
fn a_saved_table_restarts_a_node_without_any_other_source() {
    let rt = tokio();
    let swarm = rt.block_on(LocalSwarm::start(5, 13, |_, _| {})).unwrap();
    rt.block_on(swarm.wait_bootstrapped(Duration::from_secs(20)));
    let saved = rt.block_on(swarm.nodes[4].export_table()).unwrap();
    assert!(saved.nodes.len() >= 2, "{saved:?}");
    let bytes = saved.to_bytes();
    let table = SavedTable::from_bytes(&bytes).unwrap();
    let dht = Dht::builder(swarm_config(node_ip(1728), &[]))
        .import_table(table)
        .start()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), dht.wait_bootstrapped())
            .await
            .expect("bootstrapped from the imported table alone");
        let summary = dht.find_node(dht.id()).await.unwrap();
        assert!(summary.responses >= 2);
    });
}
