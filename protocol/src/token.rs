//! Write tokens for `announce_peer` (BEP 5).
//!
//! A token is the SHA-1 of a secret and the querier's IP address, cut to
//! [`TOKEN_LEN`] bytes. The secret changes every [`TokenConfig::rotation`]
//! (5 minutes by default); tokens made with the current or the previous
//! secret are accepted, so a token is good for 5 to 10 minutes, as BEP 5
//! describes ("tokens up to ten minutes old are accepted").

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha1::{Digest, Sha1};

/// Length of the tokens we issue. libtorrent issues 4 bytes; 8 makes
/// guessing a valid token for someone else's address impractical.
pub const TOKEN_LEN: usize = 8;
/// The longest token from another node that we keep for announcing.
pub const MAX_REMOTE_TOKEN_LEN: usize = 64;

/// Token policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenConfig {
    /// How often the secret changes. Defaults to 5 minutes (BEP 5).
    pub rotation: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            rotation: Duration::from_secs(5 * 60),
        }
    }
}

/// A token we issued.
pub type IssuedToken = [u8; TOKEN_LEN];

/// The current and previous secrets. `Clone` so that an actor restart can
/// hand the same secrets to its successor: tokens issued before the restart
/// stay valid.
#[derive(Clone)]
pub struct TokenSecrets {
    current: [u8; 20],
    previous: [u8; 20],
    rotated_at: Instant,
    rng: StdRng,
    config: TokenConfig,
}

impl std::fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets.
        f.debug_struct("TokenSecrets")
            .field("rotated_at", &self.rotated_at)
            .finish_non_exhaustive()
    }
}

impl TokenSecrets {
    /// Fresh secrets, drawn from `rng`.
    pub fn new(now: Instant, rng: &mut impl RngCore, config: TokenConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(rng.next_u64());
        let mut current = [0u8; 20];
        let mut previous = [0u8; 20];
        rng.fill_bytes(&mut current);
        rng.fill_bytes(&mut previous);
        TokenSecrets {
            current,
            previous,
            rotated_at: now,
            rng,
            config,
        }
    }

    fn rotate(&mut self, now: Instant) {
        let since = now.saturating_duration_since(self.rotated_at);
        let steps = since.as_nanos() / self.config.rotation.as_nanos().max(1);
        if steps == 0 {
            return;
        }
        if steps == 1 {
            self.previous = self.current;
        } else {
            // Idle for two periods or more: both old secrets have expired.
            self.rng.fill_bytes(&mut self.previous);
        }
        self.rng.fill_bytes(&mut self.current);
        let steps = u32::try_from(steps).unwrap_or(u32::MAX);
        self.rotated_at += self.config.rotation.saturating_mul(steps);
    }

    /// When the secret next changes (an actor may rotate on a timer; the
    /// methods below also rotate whenever they are called late).
    pub fn poll_timeout(&self) -> Instant {
        self.rotated_at + self.config.rotation
    }

    /// Rotates the secret if its time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.rotate(now);
    }

    fn derive(secret: &[u8; 20], ip: IpAddr) -> IssuedToken {
        let mut h = Sha1::new();
        h.update(secret);
        match ip {
            IpAddr::V4(v4) => h.update(v4.octets()),
            IpAddr::V6(v6) => h.update(v6.octets()),
        }
        let digest = h.finalize();
        let mut token = [0u8; TOKEN_LEN];
        token.copy_from_slice(&digest[..TOKEN_LEN]);
        token
    }

    /// The token for a `get_peers` reply to `ip`.
    pub fn issue(&mut self, now: Instant, ip: IpAddr) -> IssuedToken {
        self.rotate(now);
        Self::derive(&self.current, ip)
    }

    /// Whether `token` was issued to `ip` within the last one or two periods.
    pub fn check(&mut self, now: Instant, ip: IpAddr, token: &[u8]) -> bool {
        self.rotate(now);
        token == Self::derive(&self.current, ip) || token == Self::derive(&self.previous, ip)
    }
}

/// A token received from another node, kept for a later `announce_peer`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token {
    len: u8,
    bytes: [u8; MAX_REMOTE_TOKEN_LEN],
}

impl Token {
    /// Copies a received token; `None` if it is longer than we keep.
    pub fn new(bytes: &[u8]) -> Option<Token> {
        let len = u8::try_from(bytes.len())
            .ok()
            .filter(|&l| usize::from(l) <= MAX_REMOTE_TOKEN_LEN)?;
        let mut buf = [0u8; MAX_REMOTE_TOKEN_LEN];
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(Token { len, bytes: buf })
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(now: Instant) -> TokenSecrets {
        TokenSecrets::new(now, &mut StdRng::seed_from_u64(3), TokenConfig::default())
    }

    /// BEP 5: "tokens up to ten minutes old are accepted"; with a 5-minute
    /// rotation a token lives through the current and the next period.
    #[test]
    fn tokens_are_accepted_for_the_current_and_previous_secret_only() {
        let t0 = crate::test_epoch();
        let mut s = secrets(t0);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let token = s.issue(t0, ip);
        assert!(s.check(t0 + Duration::from_secs(299), ip, &token));
        assert!(s.check(t0 + Duration::from_secs(301), ip, &token));
        assert!(s.check(t0 + Duration::from_secs(599), ip, &token));
        assert!(!s.check(t0 + Duration::from_secs(601), ip, &token));
    }

    #[test]
    fn tokens_are_bound_to_the_ip() {
        let t0 = crate::test_epoch();
        let mut s = secrets(t0);
        let token = s.issue(t0, "10.1.2.3".parse().unwrap());
        assert!(!s.check(t0, "10.1.2.4".parse().unwrap(), &token));
        assert!(!s.check(t0, "10.1.2.3".parse().unwrap(), &token[..4]));
        assert!(!s.check(t0, "10.1.2.3".parse().unwrap(), b""));
    }

    #[test]
    fn a_long_idle_period_invalidates_everything() {
        let t0 = crate::test_epoch();
        let mut s = secrets(t0);
        let ip: IpAddr = "::1".parse().unwrap();
        let token = s.issue(t0, ip);
        // Nothing called for an hour: both secrets must have changed.
        assert!(!s.check(t0 + Duration::from_secs(3600), ip, &token));
        let fresh = s.issue(t0 + Duration::from_secs(3600), ip);
        assert!(s.check(t0 + Duration::from_secs(3700), ip, &fresh));
    }

    #[test]
    fn cloned_secrets_validate_the_same_tokens() {
        let t0 = crate::test_epoch();
        let mut s = secrets(t0);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let token = s.issue(t0, ip);
        let mut restarted = s.clone();
        assert!(restarted.check(t0 + Duration::from_secs(10), ip, &token));
    }

    #[test]
    fn remote_tokens_are_kept_up_to_the_limit() {
        assert_eq!(Token::new(b"abcd").unwrap().as_bytes(), b"abcd");
        assert!(Token::new(&[0u8; MAX_REMOTE_TOKEN_LEN]).is_some());
        assert!(Token::new(&[0u8; MAX_REMOTE_TOKEN_LEN + 1]).is_none());
    }
}
