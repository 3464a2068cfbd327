//! `facegate events` against a running facegate: its HTTP API, through a small HTTP/1.1 client.

use super::*;

/// A small HTTP/1.1 client for the running facegate's API (plain, or HTTPS trusting the
/// certificate in `api.tls_cert`).
pub(super) struct ApiClient {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) https: bool,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) token: String,
    pub(super) tls: Option<tokio_rustls::TlsConnector>,
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
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => {
                (h.to_owned(), p.parse::<u16>().map_err(|_| bad())?)
            }
            _ if hostport.is_empty() || hostport.contains('/') => return Err(bad()),
            _ => (hostport.to_owned(), if https { 443 } else { 80 }),
        };
        let token = std::env::var(TOKEN_ENV)
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        if token.is_empty() {
            bail!(
                "reading through the API needs a token: set {TOKEN_ENV} to the viewer or admin token"
            );
        }
        let tls = if https {
            Some(tls_connector(config)?)
        } else {
            None
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(ApiClient {
            rt,
            https,
            host,
            port,
            token,
            tls,
            base: format!("{}://{hostport}", if https { "https" } else { "http" }),
        })
    }

    pub(super) fn get(&self, path: &str) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        self.rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(15), self.request(path)).await
            })
            .map_err(|_| anyhow!("GET {url}: no answer within 15 s"))?
            .with_context(|| format!("GET {url}"))
    }

    async fn request(&self, path: &str) -> Result<Response> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((host, self.port)).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nAuthorization: Bearer {}\r\nAccept: */*\r\n\
             Connection: close\r\n\r\n",
            self.host, self.port, self.token
        );
        let mut raw = Vec::new();
        match (&self.tls, self.https) {
            (Some(tls), true) => {
                let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| anyhow!("{host}: {e}"))?;
                let mut s = tls.connect(name, tcp).await?;
                s.write_all(req.as_bytes()).await?;
                // A server may close without close_notify after Connection: close.
                match s.read_to_end(&mut raw).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            _ => {
                let mut s = tcp;
                s.write_all(req.as_bytes()).await?;
                s.read_to_end(&mut raw).await?;
            }
        }
        parse_response(&raw)
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

pub(super) fn tls_connector(config: &Config) -> Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let Some((cert, _)) = config.api.tls() else {
        bail!(
            "an https:// API address needs api.tls_cert in the configuration: its certificate \
             is the one trusted"
        );
    };
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
    {
        let c = c.with_context(|| format!("reading {}", cert.display()))?;
        roots
            .add(c)
            .with_context(|| format!("{}: not a usable certificate", cert.display()))?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS client configuration")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Status and body of a raw HTTP/1.1 response (Content-Length, chunked, or until close).
pub(super) fn parse_response(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("incomplete HTTP response ({} bytes)", raw.len()))?;
    let head = std::str::from_utf8(&raw[..end]).context("HTTP response head")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response"))?;
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse().ok();
            }
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = rest[pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| anyhow!("truncated chunked body"))?;
            let size_text = std::str::from_utf8(&rest[pos..pos + line_end])?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| anyhow!("bad chunk size {size_text:?}"))?;
            pos += line_end + 2;
            if size == 0 {
                break;
            }
            let chunk = rest
                .get(pos..pos + size)
                .ok_or_else(|| anyhow!("truncated chunked body"))?;
            body.extend_from_slice(chunk);
            pos += size + 2;
        }
        body
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or_else(|| anyhow!("truncated body ({} of {n} bytes)", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_with_length_chunked_and_close() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abcde"[..]));
        let r = parse_response(b"HTTP/1.1 200 OK\r\n\r\nuntil close").unwrap();
        assert_eq!(r.body, b"until close");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
