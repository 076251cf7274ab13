//! rTorrent's warnings, from a node's counters and state.

use super::{TelemetrySnapshot, Warning};

/// The warnings that are true of a node, from its counters and state.
/// `searches` is the fate of the latest search and announce a caller asked
/// for (`None` before the first).
pub fn derive_warnings(
    t: &TelemetrySnapshot,
    nodes: usize,
    bootstrap_complete: bool,
    uptime: std::time::Duration,
    read_only: bool,
) -> Vec<Warning> {
    let mut w = Vec::new();
    if bootstrap_complete && nodes == 0 {
        w.push(Warning::NoNodes);
    }
    for warning in [
        Warning::SearchUnsuccessful,
        Warning::AnnounceFailed,
        Warning::StateNotSaved,
    ] {
        // The lookup pool keeps the first two up to date, the driver that
        // writes the state dir the third.
        if t.warnings.get(warning) > 0 {
            w.push(warning);
        }
    }
    let (queries_in, queries_out, responses) = (
        t.queries_received(),
        t.queries_sent(),
        t.responses_in.value(),
    );
    if responses > 0 && queries_in == 0 && uptime >= UNREACHABLE_AFTER && !read_only {
        w.push(Warning::PortUnreachable);
    }
    if queries_out > 0 && responses == 0 && queries_in == 0 && uptime >= FIREWALLED_AFTER {
        w.push(Warning::PortFirewalled);
    }
    w
}

/// How long a node may hear replies but no queries before its port is
/// called unreachable (rTorrent's wording and interval).
pub const UNREACHABLE_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// How long a node may send queries with no reply at all before its port
/// is called firewalled.
pub const FIREWALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
