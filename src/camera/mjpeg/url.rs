//! The camera's stream URL: parsed by the `url` crate (through reqwest, which sends it), checked
//! for what facegate supports, and shown without its password.

/// A camera stream URL: `http://` or `https://`, with a host, and maybe `user:password@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    inner: reqwest::Url,
}

impl Url {
    /// Parse and check `text`. The message of a refusal never repeats the text (it may hold a
    /// password).
    pub fn parse(text: &str) -> Result<Url, String> {
        let inner = reqwest::Url::parse(text.trim()).map_err(|e| {
            format!("not a URL ({e}); expected http://host/path or https://host/path")
        })?;
        match inner.scheme() {
            "http" | "https" => {}
            other => {
                return Err(format!(
                    "{other}:// is not supported, only http:// and https://"
                ));
            }
        }
        if inner.host_str().is_none_or(str::is_empty) {
            return Err("no host in the URL".into());
        }
        Ok(Url { inner })
    }

    /// The URL without its password, for logs and messages.
    pub fn redacted(&self) -> String {
        let mut shown = self.inner.clone();
        if shown.password().is_some() {
            // Cannot fail: the URL has a host (checked by `parse`).
            let _ = shown.set_password(Some("***"));
        }
        shown.to_string()
    }

    /// Whether the URL carries a user (and password) for basic auth.
    pub fn has_credentials(&self) -> bool {
        !self.inner.username().is_empty() || self.inner.password().is_some()
    }

    /// The URL as reqwest takes it (with its credentials: reqwest moves them into the
    /// `Authorization` header and takes them out of the URL it keeps).
    pub(super) fn as_reqwest(&self) -> &reqwest::Url {
        &self.inner
    }
}
