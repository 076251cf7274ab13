//! The service manager's protocol (`sd_notify`), for a node run as a
//! systemd service with `Type=notify` and `WatchdogSec=`: readiness once
//! the sockets are bound and the state loaded, and a watchdog fed only
//! while every actor answers a heartbeat ([`crate::Dht::heartbeat`]), so
//! that a stuck actor, not only a dead process, gets the service restarted.
//!
//! Without `NOTIFY_SOCKET` in the environment (not started by systemd)
//! there is nothing to tell, and [`Notifier::from_env`] is `None`.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Dht;

/// How often the actors are asked for a heartbeat when no watchdog sets
/// the pace, and how long each may take to answer.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// See [`HEARTBEAT_EVERY`].
pub const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(5);

/// Where the service manager listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Path(PathBuf),
    /// Linux's abstract namespace (`@name`).
    Abstract(Vec<u8>),
}

/// Tells the service manager how the node is.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    to: Address,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, if the process was started by a service
    /// manager that listens.
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = value.as_encoded_bytes();
        let to = match bytes.strip_prefix(b"@") {
            Some(name) => Address::Abstract(name.to_vec()),
            None => Address::Path(PathBuf::from(value)),
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, to })
    }

    /// A notifier for the manager listening at `path` (what `NOTIFY_SOCKET`
    /// names), for a caller that has it from elsewhere.
    pub fn for_socket(path: &std::path::Path) -> io::Result<Notifier> {
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            to: Address::Path(path.to_owned()),
        })
    }

    /// Sends one notification (`READY=1`, `WATCHDOG=1`, `STATUS=…`).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.to {
            Address::Path(path) => self.socket.send_to(state.as_bytes(), path).map(|_| ()),
            Address::Abstract(name) => {
                #[cfg(target_os = "linux")]
                {
                    use std::os::linux::net::SocketAddrExt;
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                    self.socket
                        .send_to_addr(state.as_bytes(), &addr)
                        .map(|_| ())
                }
                #[cfg(not(target_os = "linux"))]
                {
                    let _ = name;
                    Err(io::Error::other("abstract sockets are Linux's"))
                }
            }
        }
    }

    /// The node serves: its sockets are bound and its state loaded.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.notify(&format!("READY=1\nSTATUS={status}"))
    }

    /// Every actor answered: the watchdog may wait another interval.
    pub fn watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }

    /// A line for `systemctl status`.
    pub fn status(&self, status: &str) -> io::Result<()> {
        self.notify(&format!("STATUS={status}"))
    }

    /// The node is shutting down.
    pub fn stopping(&self) -> io::Result<()> {
        self.notify("STOPPING=1")
    }
}

/// How often the watchdog must be fed (`WATCHDOG_USEC`), if one watches
/// this process (`WATCHDOG_PID`, when set, is ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Asks every actor of `dht` for a heartbeat, twice per `watchdog`
/// interval (every [`HEARTBEAT_EVERY`] without one), until the node stops:
/// while all answer, the watchdog is fed (`WATCHDOG=1`); a stuck actor is
/// logged, counted (`dht_actor_heartbeats_missed_total`), shown in
/// `systemctl status`, and the watchdog is left to expire, so that systemd
/// restarts the service.
pub async fn watch(dht: Dht, notifier: Option<Arc<Notifier>>, watchdog: Option<Duration>) {
    let every = watchdog.map_or(HEARTBEAT_EVERY, |w| w / 2);
    let deadline = watchdog.map_or(HEARTBEAT_DEADLINE, |w| w / 4);
    let mut was_stuck = false;
    loop {
        match dht.heartbeat(deadline).await {
            Ok(()) => {
                if let (Some(n), Some(_)) = (&notifier, watchdog) {
                    let _ = n.watchdog();
                }
                if was_stuck {
                    was_stuck = false;
                    tracing::info!(target: "dht::node", "every actor answers its heartbeat again");
                    if let Some(n) = &notifier {
                        let _ = n.status("serving");
                    }
                }
            }
            Err(stuck) if stuck.is_empty() => return,
            Err(stuck) => {
                was_stuck = true;
                let names: Vec<&str> = stuck.iter().map(|c| c.label()).collect();
                let names = names.join(", ");
                tracing::error!(target: "dht::node", "stuck actors: {names} did not answer a heartbeat within {deadline:?}; the watchdog is not fed");
                if let Some(n) = &notifier {
                    let _ = n.status(&format!("stuck: {names}"));
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}
