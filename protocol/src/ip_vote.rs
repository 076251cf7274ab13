//! Learning our external IP address by voting over the `ip` key of
//! responses (BEP 42), as libtorrent does: each responding IP gets one vote,
//! the last votes are kept, and an address wins once it has a clear majority.

use std::collections::VecDeque;
use std::net::IpAddr;

/// Votes kept; older ones are forgotten so that a changed address wins.
pub const VOTES_KEPT: usize = 32;
/// Votes an address needs before it is believed.
pub const MIN_VOTES: usize = 3;

/// The running vote.
#[derive(Debug, Default)]
pub struct ExternalIpVotes {
    /// (voter, what it saw), newest last.
    votes: VecDeque<(IpAddr, IpAddr)>,
    current: Option<IpAddr>,
}

impl ExternalIpVotes {
    /// An empty vote.
    pub fn new() -> Self {
        Self::default()
    }

    /// `voter` reported seeing us at `seen`. Returns the new external IP
    /// when this vote changed the result.
    pub fn vote(&mut self, voter: IpAddr, seen: IpAddr) -> Option<IpAddr> {
        // One vote per voter: its latest report replaces an older one.
        self.votes.retain(|(v, _)| *v != voter);
        self.votes.push_back((voter, seen));
        while self.votes.len() > VOTES_KEPT {
            self.votes.pop_front();
        }
        let winner = self.leader()?;
        if Some(winner) == self.current {
            return None;
        }
        self.current = Some(winner);
        Some(winner)
    }

    fn leader(&self) -> Option<IpAddr> {
        // Tallied in one pass: voters nearly always agree, so the tally
        // holds one or two addresses (this runs on every response).
        let mut tally: Vec<(IpAddr, usize)> = Vec::with_capacity(2);
        for (_, seen) in &self.votes {
            match tally.iter_mut().find(|(ip, _)| ip == seen) {
                Some((_, n)) => *n += 1,
                None => tally.push((*seen, 1)),
            }
        }
        // A majority of the votes cast, and at least MIN_VOTES of them.
        tally
            .into_iter()
            .find(|(_, n)| *n >= MIN_VOTES && *n * 2 > self.votes.len())
            .map(|(ip, _)| ip)
    }

    /// The address believed now.
    pub fn current(&self) -> Option<IpAddr> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        [203, 0, 113, last].into()
    }

    #[test]
    fn a_majority_of_distinct_voters_decides() {
        let mut v = ExternalIpVotes::new();
        let us = ip(1);
        assert_eq!(v.vote(ip(10), us), None);
        // The same voter twice is still one vote.
        assert_eq!(v.vote(ip(10), us), None);
        assert_eq!(v.vote(ip(11), us), None);
        assert_eq!(v.vote(ip(12), us), Some(us));
        assert_eq!(v.vote(ip(13), us), None, "no change, no news");
        assert_eq!(v.current(), Some(us));
    }

    #[test]
    fn a_lying_minority_does_not_win_and_a_move_is_followed() {
        let mut v = ExternalIpVotes::new();
        for i in 0..5 {
            v.vote(ip(20 + i), ip(1));
        }
        for i in 0..2 {
            assert_eq!(v.vote(ip(40 + i), ip(66)), None);
        }
        assert_eq!(v.current(), Some(ip(1)));
        // We moved: the new address wins once most recent voters say so.
        let mut changed = None;
        for i in 0..VOTES_KEPT as u8 {
            changed = changed.or(v.vote(ip(100 + i), ip(2)));
        }
        assert_eq!(changed, Some(ip(2)));
    }
}
