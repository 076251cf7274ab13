//! How many of the nodes that query us cannot be reached: what a size
//! estimate made from routing tables does not see.
//!
//! A table holds only nodes that answer, so the density of our closest
//! nodes counts the reachable ones. Nodes behind NATs that let in only
//! answers, and read-only nodes (BEP 43), query like any other but are in
//! no table for long: in the simulated Internet a third of all nodes,
//! which put the estimate at 0.74–0.81 of the true size. Every node
//! queries, so the queriers are a sample of all nodes, and the share of
//! them we cannot reach is the share the tables miss.
//!
//! - **Which queriers.** One per [`SAMPLE_EVERY`] at most (of those that
//!   queried in it, the lowest id), and only one that queried for a
//!   search of its own (find_node, get_peers,
//!   announce_peer, get, put). Pings are left out: a node we queried pings
//!   us to add us, and only reachable nodes hear from us, so counting
//!   pingers favours the reachable (simulated, where a third of the nodes
//!   are unreachable: a share of 0.24 with pingers, 0.36 without). A ping
//!   still puts off the trial of a node on trial: it opened its NAT again.
//! - **When it is tried.** A querier behind a NAT answers whoever it just
//!   sent to: pinged at once, it looks reachable (the simulated NATs keep
//!   a mapping 60 s; RFC 4787 asks at least 2 minutes of real ones, 5
//!   recommended). So it is pinged [`TRIAL_DELAY`] after it last queried
//!   us, and again [`RETRY_AFTER`] later if that ping fails, so that a lost
//!   datagram does not count it unreachable. Pings go out on the upkeep's
//!   tick, and a query up to the tick's instant puts them off.
//! - **What counts.** An answer: reachable. Two failures, or `ro = 1`:
//!   unreachable. A node that left meanwhile counts as unreachable too.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::compact::NodeInfo;

/// A querier is sampled at most this often. Most of the pings it costs
/// would be sent anyway: a held node's answer keeps it good, and so
/// postpones the ping its upkeep owes it.
const SAMPLE_EVERY: Duration = Duration::from_secs(30);
/// How long after a querier last queried us it is pinged: past the NAT
/// mappings its query opened.
const TRIAL_DELAY: Duration = super::NAT_MAPPING_MAX;
/// A failed trial ping is tried once more after this long.
const RETRY_AFTER: Duration = Duration::from_secs(15);
/// Samples that make up the share: older ones fade, each new one weighs
/// `1 / WINDOW` of the total (at one per `SAMPLE_EVERY`, about two hours).
const WINDOW: f64 = 256.0;
/// Below this many (faded) samples the share is not trusted.
const MIN_SAMPLES: f64 = 8.0;
/// Queriers on trial at once, at most (`TRIAL_DELAY / SAMPLE_EVERY` and
/// the retries).
const TRIALS: usize = 16;
/// No more than this share is believed unreachable (a node that cannot
/// reach anyone would otherwise multiply its estimate without bound).
const MAX_SHARE: f64 = 0.9;

/// A querier waiting to be pinged, or waiting for its ping's answer.
#[derive(Debug, Clone, Copy)]
struct Trial {
    info: NodeInfo,
    /// When to ping it; `None` once pinged.
    due: Option<Instant>,
    /// Pings that failed.
    failures: u8,
}

/// The reachable and unreachable queriers counted so far, and those on
/// trial.
#[derive(Debug, Clone)]
pub struct QuerierReach {
    reachable: f64,
    unreachable: f64,
    trials: VecDeque<Trial>,
    /// The searcher chosen in the current sampling window so far, with
    /// `ro`: the one with the lowest id, so that the choice does not
    /// depend on the order of queries that arrive together (the two
    /// drivers order them differently).
    candidate: Option<(Trial, bool)>,
    window_end: Instant,
    /// Trial pings go out on this grid (the upkeep's tick, from our
    /// start): a query up to the instant the ping goes out puts it off.
    tick: Duration,
    ticks_from: Instant,
}

impl QuerierReach {
    /// Nothing counted yet; the first querier is sampled at `now`. Trial
    /// pings go out every `tick` from `now`, when due.
    pub fn new(now: Instant, tick: Duration) -> Self {
        QuerierReach {
            reachable: 0.0,
            unreachable: 0.0,
            trials: VecDeque::new(),
            candidate: None,
            window_end: now,
            tick,
            ticks_from: now,
        }
    }

    /// The first tick at or after `t`: when a ping due at `t` goes out.
    fn on_tick(&self, t: Instant) -> Instant {
        crate::deadline::tick_at_or_after(self.ticks_from, self.tick, t)
    }

    fn count(&mut self, reachable: bool) {
        let keep = 1.0 - 1.0 / WINDOW;
        self.reachable *= keep;
        self.unreachable *= keep;
        if reachable {
            self.reachable += 1.0;
        } else {
            self.unreachable += 1.0;
        }
    }

    /// A node queried us; `searching` when for a search of its own (see
    /// the module's notes for why only those start a trial).
    pub fn queried(&mut self, now: Instant, info: NodeInfo, read_only: bool, searching: bool) {
        self.close_window(now);
        // Counted from the window's start: the drivers deliver a datagram
        // sent at one instant at that instant, or a moment later.
        // On the tick it goes out on: a query between the due time and
        // the ping reopens the querier's NAT, and must put the ping off
        // (without it, active searchers behind NATs answered and looked
        // reachable: a share of 0.17 seen against 0.335).
        let due = self.on_tick(self.window_end - SAMPLE_EVERY + TRIAL_DELAY);
        // It just opened its NAT to us again: a trial waits anew.
        let waiting = self
            .trials
            .iter_mut()
            .chain(self.candidate.as_mut().map(|(t, _)| t))
            .find(|t| t.info == info);
        if let Some(t) = waiting {
            // One due already is pinged whatever came at the same instant:
            // the two drivers order a query and a timer of one instant
            // differently.
            if t.due.is_some_and(|d| now < d) {
                t.due = Some(due);
            }
            return;
        }
        if !searching {
            return;
        }
        let key = |i: &NodeInfo| (i.id, i.addr);
        if self
            .candidate
            .as_ref()
            .is_none_or(|(c, _)| key(&info) < key(&c.info))
        {
            let trial = Trial {
                info,
                due: Some(due),
                failures: 0,
            };
            self.candidate = Some((trial, read_only));
        }
    }

    /// Once the window is over, its candidate is tried (a read-only one
    /// counts at once), and the next window opens.
    fn close_window(&mut self, now: Instant) {
        if now < self.window_end {
            return;
        }
        if let Some((trial, read_only)) = self.candidate.take() {
            if read_only {
                self.count(false);
            } else if self.trials.len() < TRIALS {
                self.trials.push_back(trial);
            }
        }
        let behind = now.saturating_duration_since(self.window_end).as_nanos();
        let windows = behind / SAMPLE_EVERY.as_nanos() + 1;
        self.window_end += SAMPLE_EVERY * windows.min(u128::from(u32::MAX)) as u32;
    }

    /// When the next trial ping is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.trials
            .iter()
            .chain(self.candidate.as_ref().map(|(t, _)| t))
            .filter_map(|t| t.due)
            .min()
    }

    /// A querier whose trial ping is due at `now`, marked as pinged: the
    /// caller pings it, or calls [`QuerierReach::not_pinged`].
    pub fn due(&mut self, now: Instant) -> Option<NodeInfo> {
        self.close_window(now);
        let t = self
            .trials
            .iter_mut()
            .find(|t| t.due.is_some_and(|due| due <= now))?;
        t.due = None;
        Some(t.info)
    }

    /// The ping was not sent (another went to it a moment ago): the trial
    /// is dropped, uncounted.
    pub fn not_pinged(&mut self, info: &NodeInfo) {
        self.trials.retain(|t| t.info != *info);
    }

    fn pinged(&self, addr: &SocketAddr) -> Option<usize> {
        self.trials
            .iter()
            .position(|t| t.due.is_none() && t.info.addr == *addr)
    }

    /// A node answered a query of ours.
    pub fn answered(&mut self, addr: &SocketAddr) {
        if let Some(i) = self.pinged(addr) {
            self.trials.remove(i);
            self.count(true);
        }
    }

    /// A query of ours to a node failed.
    pub fn failed(&mut self, now: Instant, addr: &SocketAddr) {
        let Some(i) = self.pinged(addr) else {
            return;
        };
        let retry = self.on_tick(now + RETRY_AFTER);
        let t = &mut self.trials[i];
        t.failures += 1;
        if t.failures < 2 {
            t.due = Some(retry);
        } else {
            self.trials.remove(i);
            self.count(false);
        }
    }

    /// The share of queriers we cannot reach, once enough were counted.
    pub fn unreachable_share(&self) -> Option<f64> {
        let all = self.reachable + self.unreachable;
        (all >= MIN_SAMPLES).then(|| (self.unreachable / all).min(MAX_SHARE))
    }

    /// The size of the whole DHT from an estimate of its reachable nodes.
    pub fn all_nodes(&self, reachable_nodes: u64) -> u64 {
        match self.unreachable_share() {
            Some(share) => (reachable_nodes as f64 / (1.0 - share)) as u64,
            None => reachable_nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    /// A grid as fine as time itself: pings go out when due.
    const ANY_TIME: Duration = Duration::from_nanos(1);

    #[test]
    fn a_query_before_the_tick_that_pings_puts_the_trial_off() {
        let t0 = crate::test_epoch();
        let tick = Duration::from_secs(60);
        let mut reach = QuerierReach::new(t0, tick);
        // Asked in the second window (from 30 s): due at 5 min 30 s, sent
        // on the tick at 6 min.
        reach.queried(t0 + SAMPLE_EVERY, node(1), false, true);
        let sent = t0 + tick * 6;
        assert_eq!(reach.poll_timeout(), Some(sent));
        // It queries again between the due time and the tick: its NAT is
        // open to us again, so the ping waits anew.
        reach.queried(
            t0 + tick * 5 + Duration::from_secs(45),
            node(1),
            false,
            true,
        );
        assert_eq!(reach.due(sent), None);
        assert_eq!(reach.poll_timeout(), Some(sent + TRIAL_DELAY));
        // A query at the instant the ping goes out changes nothing,
        // whichever comes first.
        let at = sent + TRIAL_DELAY;
        reach.queried(at, node(1), false, true);
        assert_eq!(reach.due(at), Some(node(1)));
        // Its retry goes out on a tick too.
        reach.failed(at, &node(1).addr);
        assert_eq!(reach.poll_timeout(), Some(at + tick));
    }

    fn node(i: u8) -> NodeInfo {
        NodeInfo {
            id: NodeId([i; 20]),
            addr: SocketAddr::from(([127, 0, 0, i], 6881)),
        }
    }

    /// Queries from `n` nodes, one per sampling interval from `t`; each is
    /// tried, and answers when `answers(i)`. Returns the time after.
    fn sample(
        reach: &mut QuerierReach,
        mut t: Instant,
        n: u8,
        answers: impl Fn(u8) -> bool,
    ) -> Instant {
        for i in 0..n {
            reach.queried(t, node(i), false, true);
            t += TRIAL_DELAY;
            assert_eq!(reach.due(t), Some(node(i)));
            if answers(i) {
                reach.answered(&node(i).addr);
            } else {
                reach.failed(t, &node(i).addr);
                t += RETRY_AFTER;
                assert_eq!(reach.due(t), Some(node(i)));
                reach.failed(t, &node(i).addr);
            }
        }
        t
    }

    #[test]
    fn a_querier_is_pinged_only_after_its_nat_mapping_closed() {
        let t0 = crate::test_epoch();
        let mut reach = QuerierReach::new(t0, ANY_TIME);
        reach.queried(t0, node(1), false, true);
        assert_eq!(reach.poll_timeout(), Some(t0 + TRIAL_DELAY));
        // It queries again: its mapping is open anew, the trial waits.
        // Trials count from the start of the window they were asked in.
        let later = t0 + SAMPLE_EVERY * 3;
        reach.queried(later, node(1), false, true);
        assert_eq!(reach.due(t0 + TRIAL_DELAY), None);
        assert_eq!(reach.poll_timeout(), Some(later + TRIAL_DELAY));
        assert_eq!(reach.due(later + TRIAL_DELAY), Some(node(1)));
        assert_eq!(reach.poll_timeout(), None, "pinged: nothing more due");
    }

    #[test]
    fn a_ping_starts_no_trial_but_puts_one_off() {
        let t0 = crate::test_epoch();
        let mut reach = QuerierReach::new(t0, ANY_TIME);
        reach.queried(t0, node(1), false, false);
        assert_eq!(reach.poll_timeout(), None);
        reach.queried(t0, node(2), false, true);
        let later = t0 + Duration::from_secs(60);
        reach.queried(later, node(2), false, false);
        assert_eq!(reach.poll_timeout(), Some(later + TRIAL_DELAY));
    }

    #[test]
    fn the_searcher_tried_does_not_depend_on_the_order_of_arrival() {
        let t0 = crate::test_epoch();
        let end = t0 + SAMPLE_EVERY + TRIAL_DELAY;
        for order in [[2, 1], [1, 2]] {
            let mut reach = QuerierReach::new(t0, ANY_TIME);
            for i in order {
                reach.queried(t0, node(i), false, true);
            }
            assert_eq!(reach.due(end), Some(node(1)), "{order:?}");
            assert_eq!(reach.due(end), None);
        }
    }

    #[test]
    fn one_querier_per_interval_is_sampled() {
        let t0 = crate::test_epoch();
        let mut reach = QuerierReach::new(t0, ANY_TIME);
        reach.queried(t0, node(1), false, true);
        reach.queried(t0 + SAMPLE_EVERY / 2, node(2), false, true);
        reach.queried(t0 + SAMPLE_EVERY, node(3), false, true);
        let end = t0 + SAMPLE_EVERY + TRIAL_DELAY;
        assert_eq!(reach.due(end), Some(node(1)));
        assert_eq!(reach.due(end), Some(node(3)));
        assert_eq!(reach.due(end), None);
    }

    #[test]
    fn too_few_samples_leave_the_estimate_as_it_is() {
        let mut reach = QuerierReach::new(crate::test_epoch(), ANY_TIME);
        for _ in 0..MIN_SAMPLES as usize - 1 {
            reach.count(false);
        }
        assert_eq!(reach.unreachable_share(), None);
        assert_eq!(reach.all_nodes(1000), 1000);
    }

    #[test]
    fn a_third_unreachable_scales_the_reachable_by_one_and_a_half() {
        let t0 = crate::test_epoch();
        let mut reach = QuerierReach::new(t0, ANY_TIME);
        sample(&mut reach, t0, 90, |i| i % 3 != 0);
        let share = reach.unreachable_share().unwrap();
        assert!((share - 1.0 / 3.0).abs() < 0.01, "{share}");
        let all = reach.all_nodes(20_000);
        assert!((29_500..30_500).contains(&all), "{all}");
    }

    #[test]
    fn one_lost_ping_is_retried_not_counted() {
        let t0 = crate::test_epoch();
        let mut reach = QuerierReach::new(t0, ANY_TIME);
        let mut t = t0;
        for i in 0..20 {
            reach.queried(t, node(i), false, true);
            t += TRIAL_DELAY;
            assert_eq!(reach.due(t), Some(node(i)));
            reach.failed(t, &node(i).addr);
            assert_eq!(reach.due(t), None, "not before the retry");
            t += RETRY_AFTER;
            assert_eq!(reach.due(t), Some(node(i)));
            reach.answered(&node(i).addr);
        }
        assert_eq!(reach.unreachable_share(), Some(0.0));
    }

    #[test]
    fn read_only_queriers_are_unreachable_without_a_ping() {
        let t0 = crate::test_epoch();
        let mut reach = QuerierReach::new(t0, ANY_TIME);
        let mut t = sample(&mut reach, t0, 30, |_| true);
        for i in 0..10 {
            reach.queried(t, node(100 + i), true, true);
            t += SAMPLE_EVERY;
        }
        assert_eq!(reach.due(t), None, "no ping");
        assert_eq!(reach.poll_timeout(), None);
        let share = reach.unreachable_share().unwrap();
        assert!((0.25..0.35).contains(&share), "{share}");
    }

    #[test]
    fn answers_to_other_queries_and_unsent_pings_count_nothing() {
        let t0 = crate::test_epoch();
        let mut reach = QuerierReach::new(t0, ANY_TIME);
        reach.queried(t0, node(1), false, true);
        // Answers before its trial ping was sent are not its trial.
        reach.answered(&node(1).addr);
        reach.failed(t0, &node(1).addr);
        assert_eq!(reach.reachable + reach.unreachable, 0.0);
        let due = reach.due(t0 + TRIAL_DELAY).unwrap();
        reach.not_pinged(&due);
        assert_eq!(reach.poll_timeout(), None);
        reach.answered(&node(1).addr);
        assert_eq!(reach.reachable + reach.unreachable, 0.0);
    }

    #[test]
    fn the_share_is_capped_and_old_samples_fade() {
        let mut reach = QuerierReach::new(crate::test_epoch(), ANY_TIME);
        for _ in 0..100 {
            reach.count(false);
        }
        assert_eq!(reach.unreachable_share(), Some(MAX_SHARE));
        assert_eq!(reach.all_nodes(100), 1000);
        for _ in 0..1000 {
            reach.count(true);
        }
        // A window of 256: the 100 before weigh e^-4 of what they did.
        assert!(reach.unreachable_share().unwrap() < 0.01);
    }

    #[test]
    fn trials_are_bounded() {
        let t0 = crate::test_epoch();
        let mut reach = QuerierReach::new(t0, ANY_TIME);
        for i in 0..2 * TRIALS as u8 {
            reach.queried(t0 + SAMPLE_EVERY * u32::from(i), node(i), false, true);
        }
        assert_eq!(reach.trials.len(), TRIALS);
    }
}
