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
        // Only an address with a majority can win, and one pass finds the
        // one candidate for it (Boyer and Moore's vote), a second counts
        // it: no tally is kept (this runs on every response).
        let mut candidate = None;
        let mut lead = 0usize;
        for (_, seen) in &self.votes {
            if lead == 0 {
                candidate = Some(*seen);
                lead = 1;
            } else if candidate == Some(*seen) {
                lead += 1;
            } else {
                lead -= 1;
            }
        }
        let candidate = candidate?;
        let n = self.votes.iter().filter(|(_, s)| *s == candidate).count();
        // A majority of the votes cast, and at least MIN_VOTES of them.
        (n >= MIN_VOTES && n * 2 > self.votes.len()).then_some(candidate)
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
