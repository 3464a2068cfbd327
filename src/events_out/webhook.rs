//! Webhooks: each event POSTed as JSON to every configured URL, signed, in order per URL,
//! retried with exponential backoff from the URL's on-disk queue.
//!
//! The signature, as Stripe and GitHub do it: header
//! `X-Facegate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. The
//! timestamp is the sending time (each retry is signed afresh), so a receiver can refuse old
//! or replayed requests; the README has the verification recipe.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::config::WebhooksConfig;
use super::queue::Queue;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Facegate-Signature";

/// `t=<unix_s>,v1=<hex>` for `body` sent at `unix_s`.
pub fn signature(secret: &[u8], unix_s: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(unix_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix_s},v1={hex}")
}

/// Check a signature header the way a receiver does: the HMAC in constant time, and the
/// timestamp within `tolerance_s` of `now_s`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_s: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now_s - t).abs() > tolerance_s {
        return false;
    }
    let expected = signature(secret, t, body);
    let Some((_, want)) = expected.split_once(",v1=") else {
        return false;
    };
    v1.iter().any(|got| {
        use subtle::ConstantTimeEq;
        got.len() == want.len() && bool::from(got.as_bytes().ct_eq(want.as_bytes()))
    })
}

/// One URL's delivery task.
pub struct Deliverer {
    pub url: String,
    pub client: reqwest::Client,
    pub secret: Arc<Zeroizing<String>>,
    pub queue: Arc<Queue>,
    pub notify: Arc<Notify>,
    pub config: WebhooksConfig,
    pub stop: CancellationToken,
}

enum Tried {
    Delivered,
    Failed(String),
}

impl Deliverer {
    async fn post(&self, body: Vec<u8>) -> Tried {
        let now = crate::gallery::now_ms() / 1000;
        let sig = signature(self.secret.as_bytes(), now, &body);
        let sent = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Tried::Delivered,
            Ok(r) => Tried::Failed(format!("answered {}", r.status())),
            Err(e) => Tried::Failed(e.to_string()),
        }
    }

    pub async fn run(self) {
        let mut backoff = Duration::from_millis(self.config.retry_initial_ms);
        let max = Duration::from_millis(self.config.retry_max_ms);
        let mut failing = 0u32;
        loop {
            // Registered before looking at the queue, so a push in between is not missed.
            let notified = self.notify.notified();
            let head = match self.queue.peek() {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(url = %self.url, error = %e, "webhook: event queue");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = self.stop.cancelled() => return,
                    }
                }
            };
            let Some((seq, body)) = head else {
                tokio::select! {
                    _ = notified => continue,
                    _ = self.stop.cancelled() => return,
                }
            };
            match self.post(body).await {
                Tried::Delivered => {
                    if failing > 0 {
                        tracing::info!(
                            url = %self.url,
                            attempts = failing + 1,
                            queued = self.queue.len(),
                            "webhook: receiver back; delivering the queued events"
                        );
                    }
                    failing = 0;
                    backoff = Duration::from_millis(self.config.retry_initial_ms);
                    if let Err(e) = self.queue.ack(seq) {
                        tracing::error!(url = %self.url, error = %e, "webhook: event queue");
                    }
                }
                Tried::Failed(why) => {
                    failing += 1;
                    if failing == 1 || failing.is_power_of_two() {
                        tracing::warn!(
                            url = %self.url,
                            error = %why,
                            attempts = failing,
                            retry_in_ms = backoff.as_millis() as u64,
                            queued = self.queue.len(),
                            "webhook: delivery failed; retrying with backoff"
                        );
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(max);
                }
            }
            if self.stop.is_cancelled() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse_tampering_and_age() {
        let key = b"a-shared-secret-of-some-length";
        let body = br#"{"seq":1,"kind":"door"}"#;
        let h = signature(key, 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.len(), "t=1700000000,v1=".len() + 64);
        assert!(verify(key, &h, body, 1_700_000_100, 300));
        assert!(!verify(key, &h, b"{\"seq\":2}", 1_700_000_100, 300));
        assert!(!verify(
            b"another-secret-entirely",
            &h,
            body,
            1_700_000_100,
            300
        ));
        assert!(!verify(key, &h, body, 1_700_001_000, 300));
        assert!(!verify(key, "v1=00", body, 1_700_000_000, 300));
        // Known answer: HMAC-SHA256("key", "1.{}"), computed independently with openssl:
        // printf '1.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature(b"key", 1, b"{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
