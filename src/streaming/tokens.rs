//! Single-use tokens for streaming URLs: random, unguessable, valid for one minute, at most
//! [`MAX_OUTSTANDING`] at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;

use super::{Session, StreamingError};

/// How long a URL stays valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// The most URLs handed out and not yet used or expired.
pub const MAX_OUTSTANDING: usize = 1000;

/// The sessions waiting for their client, by token.
#[derive(Default)]
pub struct Tokens {
    pending: Mutex<HashMap<String, (Session, Instant)>>,
}

impl Tokens {
    /// Stores `session` under a new token.
    pub fn insert(&self, session: Session) -> Result<String, StreamingError> {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut pending = self.pending.lock().expect("tokens lock");
        pending.retain(|_, (_, at)| now.duration_since(*at) < TOKEN_TTL);
        if pending.len() >= MAX_OUTSTANDING {
            return Err(StreamingError::TooManyRequests(MAX_OUTSTANDING));
        }
        pending.insert(token.clone(), (session, now));
        Ok(token)
    }

    /// Takes the session of `token` (once) if it has not expired.
    pub fn take(&self, token: &str) -> Option<Session> {
        let (session, at) = self.pending.lock().expect("tokens lock").remove(token)?;
        (at.elapsed() < TOKEN_TTL).then_some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::PortForward;

    fn session() -> Session {
        Session::PortForward(PortForward {
            pod_id: "p".into(),
            netns: None,
        })
    }

    #[test]
    fn a_token_is_used_once() {
        let tokens = Tokens::default();
        let t = tokens.insert(session()).unwrap();
        assert!(t.len() >= 16);
        assert!(tokens.take(&t).is_some());
        assert!(tokens.take(&t).is_none());
        assert!(tokens.take("made-up").is_none());
    }

    #[test]
    fn outstanding_tokens_are_bounded() {
        let tokens = Tokens::default();
        for _ in 0..MAX_OUTSTANDING {
            tokens.insert(session()).unwrap();
        }
        let err = tokens.insert(session()).unwrap_err();
        assert_eq!(
            crate::error::Classify::kind(&err),
            crate::error::Kind::ResourceExhausted
        );
    }
}
