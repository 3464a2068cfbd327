//! Bearer tokens: an admin token for everything that changes state (and the door), an optional
//! viewer token for reading. Only SHA-256 hashes are configured; a presented token is hashed
//! and compared with both in constant time.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// No token needed (health, the API description).
    Public,
    /// The viewer or the admin token.
    Viewer,
    /// The admin token.
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Viewer => "viewer",
            Access::Admin => "admin",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "no admin token configured (api.admin_token_sha256 is empty): run `facegate init` to write a \
         configuration with one, or `facegate token` and paste its hash line into [api]"
    )]
    NoAdminToken,
    #[error("{0}: expected 64 hex digits (a SHA-256)")]
    BadHash(&'static str),
    #[error("no randomness for a token: {0}")]
    Random(String),
}

/// A request made from inside this process by a caller that authenticated by other means (the
/// web console's signed-in session), with the access it was granted. Only code in the process
/// can attach a request extension: a client cannot send one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InProcess(pub Access);

/// The configured token hashes.
#[derive(Clone)]
pub struct Tokens {
    admin: [u8; 32],
    viewer: Option<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

fn parse_hash(hex: &str, what: &'static str) -> Result<[u8; 32], TokenError> {
    let b = hex.as_bytes();
    if b.len() != 64 {
        return Err(TokenError::BadHash(what));
    }
    let nibble = |c: u8| (c as char).to_digit(16).ok_or(TokenError::BadHash(what));
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(b[2 * i])? << 4 | nibble(b[2 * i + 1])?) as u8;
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a token, as hex: what the configuration stores.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A new random token: "fgt_" and 64 hex digits (256 bits).
pub fn generate_token() -> Result<String, TokenError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(format!("fgt_{}", hex(&b)))
}

impl Tokens {
    /// From the configured hashes; the admin hash is required.
    pub fn new(admin_sha256: &str, viewer_sha256: &str) -> Result<Tokens, TokenError> {
        if admin_sha256.is_empty() {
            return Err(TokenError::NoAdminToken);
        }
        let admin = parse_hash(admin_sha256, "api.admin_token_sha256")?;
        let viewer = if viewer_sha256.is_empty() {
            None
        } else {
            Some(parse_hash(viewer_sha256, "api.viewer_token_sha256")?)
        };
        Ok(Tokens { admin, viewer })
    }

    /// The access level a request's `Authorization: Bearer` token grants.
    pub fn level(&self, headers: &HeaderMap) -> Result<Access, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Access::Public);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let is_admin = presented.ct_eq(&self.admin);
        // Always compare with a viewer hash too, so timing does not tell which one matched.
        let is_viewer = presented.ct_eq(&self.viewer.unwrap_or([0u8; 32]))
            & subtle::Choice::from(u8::from(self.viewer.is_some()));
        if bool::from(is_admin) {
            Ok(Access::Admin)
        } else if bool::from(is_viewer) {
            Ok(Access::Viewer)
        } else {
            Err(ApiError::unauthorized("the bearer token is not valid"))
        }
    }

    /// Allow the request if its token grants `need`.
    pub fn require(&self, need: Access, headers: &HeaderMap) -> Result<Access, ApiError> {
        if need == Access::Public {
            return Ok(Access::Public);
        }
        let have = self.level(headers)?;
        match have {
            Access::Public => Err(ApiError::unauthorized(format!(
                "this endpoint needs the {} token: send `Authorization: Bearer <token>`",
                need.as_str()
            ))),
            have if have >= need => Ok(have),
            _ => Err(ApiError::forbidden(format!(
                "this endpoint needs the {} token; the viewer token may only read",
                need.as_str()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn levels() {
        let admin = generate_token().unwrap();
        let viewer = generate_token().unwrap();
        assert_ne!(admin, viewer);
        assert_eq!(admin.len(), 68);
        let t = Tokens::new(&hash_token(&admin), &hash_token(&viewer)).unwrap();
        assert_eq!(
            t.require(Access::Admin, &with(&admin)).unwrap(),
            Access::Admin
        );
        assert_eq!(
            t.require(Access::Viewer, &with(&admin)).unwrap(),
            Access::Admin
        );
        assert_eq!(
            t.require(Access::Viewer, &with(&viewer)).unwrap(),
            Access::Viewer
        );
        assert_eq!(
            t.require(Access::Admin, &with(&viewer)).unwrap_err().status,
            403
        );
        assert_eq!(
            t.require(Access::Viewer, &with("nope")).unwrap_err().status,
            401
        );
        assert_eq!(
            t.require(Access::Viewer, &HeaderMap::new())
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            t.require(Access::Public, &HeaderMap::new()).unwrap(),
            Access::Public
        );

        let no_viewer = Tokens::new(&hash_token(&admin), "").unwrap();
        assert_eq!(
            no_viewer
                .require(Access::Viewer, &with(&viewer))
                .unwrap_err()
                .status,
            401
        );
        assert!(matches!(Tokens::new("", ""), Err(TokenError::NoAdminToken)));
        assert!(Tokens::new("abc", "").is_err());
    }
}
