use super::*;
use std::io::Cursor;

#[test]
fn urls_parse_with_port_auth_and_ipv6() {
    let u = Url::parse("http://admin:p%40ss@192.0.2.7:8080/video.cgi?res=hi").unwrap();
    assert!(u.has_credentials());
    assert_eq!(
        u.redacted(),
        "http://admin:***@192.0.2.7:8080/video.cgi?res=hi"
    );
    let r = u.as_reqwest();
    assert_eq!(
        (r.host_str(), r.port(), r.path(), r.query()),
        (Some("192.0.2.7"), Some(8080), "/video.cgi", Some("res=hi"))
    );
    let u = Url::parse("HTTP://cam.local").unwrap();
    assert!(!u.has_credentials());
    assert_eq!(u.redacted(), "http://cam.local/");
    let u = Url::parse("http://[::1]:81/s").unwrap();
    assert_eq!(u.redacted(), "http://[::1]:81/s");
    assert!(Url::parse("https://cam/video").is_ok());
    assert!(Url::parse("rtsp://cam/").unwrap_err().contains("rtsp"));
    assert!(Url::parse("cam/video").is_err());
    let e = Url::parse("http://door:s3cret@cam:99999/").unwrap_err();
    assert!(e.contains("port"), "{e}");
    assert!(!e.contains("s3cret"), "the password must not be shown: {e}");
    assert!(Url::parse("http://").is_err());
}

#[test]
fn boundary_parameter_is_found_quoted_or_not() {
    assert_eq!(
        boundary_of("multipart/x-mixed-replace; boundary=frame").as_deref(),
        Some("frame")
    );
    assert_eq!(
        boundary_of("multipart/x-mixed-replace;Boundary=\"--my b\"").as_deref(),
        Some("--my b")
    );
    assert_eq!(boundary_of("multipart/x-mixed-replace"), None);
}

fn parts_of(body: &[u8], boundary: &str) -> Vec<Result<Vec<u8>, String>> {
    let mut m = Multipart::new(Cursor::new(body.to_vec()), boundary);
    let mut out = Vec::new();
    loop {
        match m.next_part() {
            Ok(p) => out.push(Ok(p)),
            Err(ReadError::Closed) => return out,
            Err(e) => {
                out.push(Err(read_reason(e, Duration::ZERO)));
                return out;
            }
        }
    }
}

#[test]
fn parts_are_read_by_length_or_up_to_the_boundary() {
    // Part 1 has a Content-Length and contains a fake boundary line; part 2 has none and
    // contains bare line breaks; junk before the first boundary is skipped.
    let body = b"preamble\r\n--fb\r\nContent-Type: image/jpeg\r\nContent-Length: 12\r\n\r\n\
                 a\r\n--fb\r\nbcd\r\n\r\n--fb\r\nContent-Type: image/jpeg\r\n\r\nx\ny\r\nz\r\n\
                 --fb--\r\n";
    let parts = parts_of(body, "fb");
    assert_eq!(
        parts,
        vec![Ok(b"a\r\n--fb\r\nbcd".to_vec()), Ok(b"x\ny\r\nz".to_vec())]
    );
    // A boundary parameter that already carries the dashes.
    let body = b"--xx\r\nContent-Length: 3\r\n\r\nabc\r\n--xx\r\n\r\nde\r\n--xx\r\n";
    assert_eq!(
        parts_of(body, "--xx"),
        vec![Ok(b"abc".to_vec()), Ok(b"de".to_vec())]
    );
}

#[test]
fn hostile_parts_are_refused() {
    let parts = parts_of(b"--b\r\nContent-Length: 999999999999\r\n\r\nabc", "b");
    assert!(
        matches!(&parts[..], [Err(m)] if m.contains("limit")),
        "{parts:?}"
    );
    let parts = parts_of(b"--b\r\nContent-Length: ten\r\n\r\nabc", "b");
    assert!(
        matches!(&parts[..], [Err(m)] if m.contains("ten")),
        "{parts:?}"
    );
    let junk = vec![b'x'; MAX_SKIP + 10];
    let parts = parts_of(&junk, "b");
    assert!(
        matches!(&parts[..], [Err(m)] if m.contains("no part boundary")),
        "{parts:?}"
    );
    // Truncated part: the stream closed mid-frame.
    assert!(parts_of(b"--b\r\nContent-Length: 10\r\n\r\nabc", "b").is_empty());
}

#[test]
fn opening_inside_an_async_task_is_an_error_not_a_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(async { MjpegSource::connect("http://127.0.0.1:9/", Duration::from_secs(1)) })
        .err()
        .unwrap();
    assert!(!e.is_permanent(), "{e:?}");
    assert!(e.to_string().contains("inside an async task"), "{e}");
}
