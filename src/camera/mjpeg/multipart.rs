//! The parts of a `multipart/x-mixed-replace` body (the HTTP response itself is reqwest's):
//! each part's head and body, bounded in size.

use std::io::{self, BufRead, Read};

use super::{MAX_HEAD, MAX_PART, MAX_SKIP};

/// One line (up to and including '\n'), at most `limit` bytes; empty at end of input.
fn read_line<R: BufRead>(r: &mut R, limit: u64) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.by_ref().take(limit).read_until(b'\n', &mut line)?;
    Ok(line)
}

fn trim(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

/// A part's header lines up to the blank line, as lowercased name and trimmed value.
fn read_headers<R: BufRead>(r: &mut R) -> Result<Vec<(String, String)>, ReadError> {
    let mut headers = Vec::new();
    let mut total = 0u64;
    loop {
        let line = read_line(r, MAX_HEAD)?;
        if line.is_empty() {
            return Err(ReadError::Closed);
        }
        total += line.len() as u64;
        if total > MAX_HEAD {
            return Err(ReadError::Protocol(format!(
                "part headers longer than {MAX_HEAD} bytes"
            )));
        }
        let line = trim(&line);
        if line.is_empty() {
            return Ok(headers);
        }
        let text = String::from_utf8_lossy(line);
        if let Some((name, value)) = text.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Why reading the stream stopped.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The server closed the connection.
    Closed,
    Io(io::Error),
    /// The stream is not what it should be (stream-fatal).
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Closed
        } else {
            ReadError::Io(e)
        }
    }
}

/// The `boundary` parameter of a multipart content type.
pub(crate) fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = value.trim().trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Reads the parts of a multipart body one after another.
pub(crate) struct Multipart<R> {
    reader: R,
    /// Delimiter lines: "--" + boundary, and the boundary itself when it already starts with
    /// "--" (cameras that put the dashes in the parameter).
    delimiters: Vec<Vec<u8>>,
    /// The last part was read up to and including the next delimiter line.
    at_part_head: bool,
}

impl<R: BufRead> Multipart<R> {
    pub fn new(reader: R, boundary: &str) -> Multipart<R> {
        let mut delimiters = vec![format!("--{boundary}").into_bytes()];
        if boundary.starts_with("--") {
            delimiters.push(boundary.as_bytes().to_vec());
        }
        Multipart {
            reader,
            delimiters,
            at_part_head: false,
        }
    }

    /// Whether a line is a delimiter; `Some(true)` for the closing one ("--boundary--").
    fn delimiter(&self, line: &[u8]) -> Option<bool> {
        let line = trim(line);
        self.delimiters.iter().find_map(|d| {
            let rest = line.strip_prefix(d.as_slice())?;
            match rest {
                b"" => Some(false),
                b"--" => Some(true),
                _ => None,
            }
        })
    }

    /// The next part's body.
    pub(super) fn next_part(&mut self) -> Result<Vec<u8>, ReadError> {
        if !self.at_part_head {
            let mut skipped = 0;
            loop {
                let line = read_line(&mut self.reader, MAX_SKIP as u64)?;
                if line.is_empty() {
                    return Err(ReadError::Closed);
                }
                match self.delimiter(&line) {
                    Some(false) => break,
                    Some(true) => return Err(ReadError::Closed),
                    None => {}
                }
                skipped += line.len();
                if skipped > MAX_SKIP {
                    return Err(ReadError::Protocol(format!(
                        "no part boundary in {MAX_SKIP} bytes (is the boundary {:?}?)",
                        String::from_utf8_lossy(&self.delimiters[0])
                    )));
                }
            }
        }
        self.at_part_head = false;
        let headers = read_headers(&mut self.reader)?;
        if let Some(len) = header(&headers, "content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| ReadError::Protocol(format!("bad part Content-Length {len:?}")))?;
            if len > MAX_PART {
                return Err(ReadError::Protocol(format!(
                    "part of {len} bytes, more than the limit of {MAX_PART}"
                )));
            }
            let mut body = vec![0u8; len];
            self.reader.read_exact(&mut body)?;
            return Ok(body);
        }
        // No length: the part runs up to the line break before the next delimiter.
        let mut body = Vec::new();
        loop {
            let line = read_line(&mut self.reader, (MAX_PART + 1 - body.len()) as u64)?;
            if line.is_empty() {
                return Err(ReadError::Closed);
            }
            if let Some(last) = self.delimiter(&line) {
                if body.ends_with(b"\r\n") {
                    body.truncate(body.len() - 2);
                } else if body.ends_with(b"\n") {
                    body.truncate(body.len() - 1);
                }
                if !last {
                    self.at_part_head = true;
                }
                return Ok(body);
            }
            body.extend_from_slice(&line);
            if body.len() > MAX_PART {
                return Err(ReadError::Protocol(format!(
                    "part longer than the limit of {MAX_PART} bytes and no boundary"
                )));
            }
        }
    }
}
