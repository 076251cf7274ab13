//! `dhtd lookup` and `dhtd announce`: a node of our own for one job.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use dhtd::{Dht, Family, LookupEvent, LookupSummary, PortChoice};
use serde_json::json;

use crate::settings::{self, Defaults, NodeArgs};
use crate::{parse_info_hash, run, Failure};

/// How long a one-off job may wait for bootstrap and the lookup.
const JOB_TIMEOUT: Duration = Duration::from_secs(90);

fn start(args: &NodeArgs) -> Result<Dht, Failure> {
    let settings = settings::resolve(args, Defaults::TOOL)?;
    Ok(Dht::builder(settings.config).start()?)
}

/// `N IPv4 and M IPv6` (a family with none left out).
fn by_family(counts: [usize; 2]) -> String {
    let parts: Vec<String> = Family::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| format!("{n} {f}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" and ")
    }
}

fn summary_line(s: &LookupSummary, peers: [usize; 2]) -> String {
    let mut closest = [0; 2];
    for n in &s.closest {
        closest[n.family().index()] += 1;
    }
    format!(
        "{} peers ({}); {} nodes queried, {} answered, {} failed; closest responders: {}; {:?}",
        peers[0] + peers[1],
        by_family(peers),
        s.queries,
        s.responses,
        s.failures,
        by_family(closest),
        s.duration
    )
}

pub(crate) async fn lookup(
    target: &str,
    json: bool,
    scrape: bool,
    args: &NodeArgs,
) -> Result<(), Failure> {
    let info_hash = parse_info_hash(target)?;
    let dht = start(args)?;
    let started = Instant::now();
    let progress = std::io::stderr().is_terminal() && !json;
    let mut stream = if scrape {
        dht.scrape(info_hash)
    } else {
        dht.get_peers(info_hash)
    };
    let mut by_family = [0usize; 2];
    let mut summary = None;
    let job = async {
        while let Some(event) = stream.next_event().await {
            match event {
                LookupEvent::Peer(p) => {
                    let family = Family::of(&p);
                    by_family[family.index()] += 1;
                    if progress {
                        eprint!("\r\x1b[K");
                    }
                    if json {
                        println!(
                            "{}",
                            json!({ "peer": p.to_string(), "family": family.as_str() })
                        );
                    } else {
                        println!("{p}");
                    }
                }
                LookupEvent::Progress {
                    queries,
                    common_bits,
                    ..
                } if progress => {
                    eprint!(
                        "\r\x1b[K{queries} nodes queried, closest shares {common_bits} bits, {} peers, {:.1}s",
                        by_family[0] + by_family[1],
                        started.elapsed().as_secs_f64()
                    );
                }
                LookupEvent::Finished(s) => summary = Some(s),
                _ => {}
            }
        }
    };
    let finished = tokio::time::timeout(JOB_TIMEOUT, job).await.is_ok();
    if progress {
        eprint!("\r\x1b[K");
    }
    dht.shutdown().await;
    let Some(summary) = summary.filter(|_| finished) else {
        return Err(Failure::Failed(format!(
            "no DHT nodes available: bootstrap did not complete within {JOB_TIMEOUT:?}"
        )));
    };
    if json {
        println!(
            "{}",
            json!({ "summary": {
                "peers": by_family[0] + by_family[1],
                "peers_by_family": { "ipv4": by_family[0], "ipv6": by_family[1] },
                "queries": summary.queries, "responses": summary.responses,
                "failures": summary.failures, "duration_ms": summary.duration.as_millis() as u64,
                "closest": summary.closest.iter().map(|n| json!({"id": n.id.to_string(), "addr": n.addr.to_string(), "family": n.family().as_str()})).collect::<Vec<_>>(),
                "scrape": summary.scrape.map(|s| json!({"seeds": s.seeds, "peers": s.peers})),
            }})
        );
    } else {
        eprintln!("{}", summary_line(&summary, by_family));
        if let Some(s) = summary.scrape {
            println!("scrape: about {} seeds and {} peers", s.seeds, s.peers);
        }
    }
    if summary.responses == 0 {
        return Err(Failure::Failed(
            "search unsuccessful: no node answered".into(),
        ));
    }
    Ok(())
}

pub(crate) async fn announce(
    target: &str,
    port: Option<u16>,
    seed: bool,
    every: Option<Duration>,
    args: &NodeArgs,
) -> Result<(), Failure> {
    let signals = run::Signals::install();
    let info_hash = parse_info_hash(target)?;
    let how = port.map_or(PortChoice::Implied, PortChoice::Port);
    let dht = start(args)?;
    let announcing = async {
        if seed {
            dht.announce_seeding(info_hash, how).await
        } else {
            dht.announce(info_hash, how).await
        }
    };
    let report = match tokio::time::timeout(JOB_TIMEOUT, announcing).await {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => return Err(Failure::Failed(e.to_string())),
        Err(_) => {
            return Err(Failure::Failed(format!(
                "no DHT nodes available: bootstrap did not complete within {JOB_TIMEOUT:?}"
            )))
        }
    };
    println!(
        "announced {info_hash}: {} of {} nodes accepted, on {} networks; confidence that they are the closest: {}",
        report.accepted,
        report.tried,
        report.networks,
        report.confidence.as_str()
    );
    if report.accepted == 0 {
        dht.shutdown().await;
        return Err(Failure::Failed(
            "announce failed: no node accepted it".into(),
        ));
    }
    if let Some(every) = every {
        dht.announce_every(info_hash, how, every)
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?;
        eprintln!("re-announcing every {every:?}; Ctrl-C to stop");
        signals.wait().await;
    }
    dht.shutdown().await;
    Ok(())
}
