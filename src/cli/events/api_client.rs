//! `facegate events` against a running facegate: its HTTP API, through reqwest.

use super::*;

/// The client for the running facegate's API (plain, or HTTPS trusting only the certificate in
/// `api.tls_cert`): reqwest, the HTTP client the webhooks use, on a runtime of its own.
pub(super) struct ApiClient {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    token: String,
    pub(super) base: String,
}

#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
}

impl Response {
    /// The `detail` of an API error body, else the body as text.
    pub(super) fn detail(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }
}

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl ApiClient {
    pub(super) fn new(config: &Config, url: &str) -> Result<ApiClient> {
        let bad =
            || anyhow!("API address {url:?}: write it as http://HOST:PORT or https://HOST:PORT");
        let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad());
        };
        let hostport = rest.trim_end_matches('/');
        match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => {
                p.parse::<u16>().map_err(|_| bad())?;
            }
            _ if hostport.is_empty() || hostport.contains('/') => return Err(bad()),
            _ => {}
        }
        let token = std::env::var(TOKEN_ENV)
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        if token.is_empty() {
            bail!(
                "reading through the API needs a token: set {TOKEN_ENV} to the viewer or admin token"
            );
        }
        let mut http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if https {
            http = trust_only_the_api_certificate(http, config)?;
        }
        let http = http.build().context("HTTP client")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(ApiClient {
            rt,
            http,
            token,
            base: format!("{}://{hostport}", if https { "https" } else { "http" }),
        })
    }

    pub(super) fn get(&self, path: &str) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        self.rt
            .block_on(async {
                let r = self.http.get(&url).bearer_auth(&self.token).send().await?;
                let status = r.status().as_u16();
                let body = r.bytes().await?.to_vec();
                Ok::<_, reqwest::Error>(Response { status, body })
            })
            .map_err(|e| {
                if e.is_timeout() {
                    anyhow!(
                        "GET {url}: no answer within {} s",
                        REQUEST_TIMEOUT.as_secs()
                    )
                } else {
                    anyhow::Error::new(e).context(format!("GET {url}"))
                }
            })
    }

    pub(super) fn events(
        &self,
        filter: &EventFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page> {
        let mut q = vec![format!("limit={}", limit.clamp(1, MAX_PAGE))];
        if let Some(t) = filter.from_ms {
            q.push(format!("from_ms={t}"));
        }
        if let Some(t) = filter.until_ms {
            q.push(format!("until_ms={t}"));
        }
        if let Some(p) = &filter.person {
            q.push(format!("person={}", percent_encode(p)));
        }
        if let Some(o) = filter.outcome {
            q.push(format!("outcome={}", o.as_str()));
        }
        if let Some(s) = filter.source {
            q.push(format!("source={}", s.as_str()));
        }
        if let Some(c) = cursor {
            q.push(format!("cursor={}", percent_encode(c)));
        }
        let r = self.get(&format!("/v1/events?{}", q.join("&")))?;
        match r.status {
            200 => serde_json::from_slice(&r.body).context("the API's event page"),
            401 => bail!(
                "the API at {} refused the token in {TOKEN_ENV} (401: {})",
                self.base,
                r.detail()
            ),
            s => bail!("the API at {} answered {s}: {}", self.base, r.detail()),
        }
    }

    pub(super) fn person_name(&self, id: &str) -> Result<Option<String>> {
        let r = self.get(&format!("/v1/persons/{}", percent_encode(id)))?;
        match r.status {
            200 => {
                let v: serde_json::Value = serde_json::from_slice(&r.body)?;
                Ok(v["person"]["name"].as_str().map(str::to_owned))
            }
            404 => Ok(None),
            s => bail!("{s}: {}", r.detail()),
        }
    }

    pub(super) fn face_crop(&self, id: u64) -> Result<Option<Vec<u8>>> {
        let r = self.get(&format!("/v1/events/{id}/face"))?;
        match r.status {
            200 => Ok(Some(r.body)),
            404 => Ok(None),
            403 => bail!(
                "face crops are read with the admin token only; {TOKEN_ENV} holds the viewer token"
            ),
            s => bail!(
                "face crop of event {id}: the API answered {s}: {}",
                r.detail()
            ),
        }
    }
}

/// `http` trusting the certificates in `api.tls_cert` and nothing else.
fn trust_only_the_api_certificate(
    mut http: reqwest::ClientBuilder,
    config: &Config,
) -> Result<reqwest::ClientBuilder> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let Some((cert, _)) = config.api.tls() else {
        bail!(
            "an https:// API address needs api.tls_cert in the configuration: its certificate \
             is the one trusted"
        );
    };
    http = http.use_rustls_tls().tls_built_in_root_certs(false);
    for c in CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
    {
        let c = c.with_context(|| format!("reading {}", cert.display()))?;
        let c = reqwest::Certificate::from_der(&c)
            .with_context(|| format!("{}: not a usable certificate", cert.display()))?;
        http = http.add_root_certificate(c);
    }
    Ok(http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
