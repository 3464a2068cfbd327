//! Console sessions: a sign-in with the admin or viewer token opens a session; the browser
//! holds only its random id in a cookie (HttpOnly, SameSite=Strict, Path=/, Secure under TLS).
//!
//! - Ids and CSRF tokens are 256 bits from the operating system's CSPRNG (`getrandom`).
//! - The table keeps the SHA-256 of each id, never the id itself, and no token: a memory dump
//!   of the table does not give a usable cookie.
//! - Each session has a fixed lifetime from sign-in (`console.session_minutes`); expired
//!   sessions are dropped when met and on every sign-in. At most `console.max_sessions` are
//!   open: a sign-in beyond it ends the oldest.
//! - Every form carries the session's CSRF token; [`Session::csrf_ok`] compares it in constant
//!   time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::Access;

/// The session cookie's name.
pub const COOKIE: &str = "facegate_session";

#[derive(Debug, thiserror::Error)]
#[error("no randomness for a console session: {0}")]
pub struct RandomError(pub String);

/// What a request's session grants.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: Access,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.access == Access::Admin
    }

    /// Is `presented` this session's CSRF token? (Constant time.)
    pub fn csrf_ok(&self, presented: &str) -> bool {
        self.csrf.len() == presented.len()
            && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

struct Entry {
    session: Session,
    created: Instant,
    expires: Instant,
}

/// The server-side session table.
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Entry>>,
    lifetime: Duration,
    max: usize,
}

fn random_hex() -> Result<String, RandomError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| RandomError(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(lifetime: Duration, max: usize) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            lifetime,
            max: max.max(1),
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Open a session; returns its id (for the cookie only) and the session.
    pub fn open(&self, access: Access) -> Result<(String, Session), RandomError> {
        let id = random_hex()?;
        let session = Session {
            access,
            csrf: random_hex()?,
        };
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.retain(|_, e| e.expires > now);
        while table.len() >= self.max {
            let oldest = table.iter().min_by_key(|(_, e)| e.created).map(|(k, _)| *k);
            match oldest {
                Some(k) => table.remove(&k),
                None => break,
            };
        }
        table.insert(
            key(&id),
            Entry {
                session: session.clone(),
                created: now,
                expires: now + self.lifetime,
            },
        );
        Ok((id, session))
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let k = key(id);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get(&k) {
            Some(e) if e.expires > Instant::now() => Some(e.session.clone()),
            Some(_) => {
                table.remove(&k);
                None
            }
            None => None,
        }
    }

    /// End a session (sign-out).
    pub fn close(&self, id: &str) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(id));
    }

    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The session id in a request's `Cookie` headers.
pub fn id_from(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// The `Set-Cookie` value that gives the browser a session.
pub fn set_cookie(id: &str, lifetime: Duration, secure: bool) -> String {
    Cookie::build((COOKIE, id.to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
        ))
        .build()
        .to_string()
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    Cookie::build((COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_expire_and_close() {
        let s = Sessions::new(Duration::from_millis(200), 2);
        let (a, sa) = s.open(Access::Admin).unwrap();
        assert_eq!(a.len(), 64);
        assert!(s.get(&a).is_some_and(|x| x.is_admin()));
        assert!(sa.csrf_ok(&sa.csrf) && !sa.csrf_ok("x") && !sa.csrf_ok(&a));
        let (b, _) = s.open(Access::Viewer).unwrap();
        assert_ne!(a, b);
        // A third sign-in ends the oldest.
        let (c, _) = s.open(Access::Viewer).unwrap();
        assert!(s.get(&a).is_none() && s.get(&b).is_some() && s.get(&c).is_some());
        s.close(&b);
        assert!(s.get(&b).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(s.get(&c).is_none(), "expired");
        assert!(s.is_empty());
    }

    #[test]
    fn cookie_flags() {
        let c = set_cookie("abc", Duration::from_secs(60), true);
        for flag in [
            "facegate_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
        ] {
            assert!(c.contains(flag), "{c}");
        }
        assert!(!set_cookie("abc", Duration::from_secs(60), false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; facegate_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(id_from(&h).as_deref(), Some("xyz"));
    }
}
