//! The loopback listener (RFC 8252, 7.3) that the provider's redirect
//! comes back to: it waits for this sign-in's `state` alone.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::SignInError;

/// What the browser brought back to the loopback listener.
pub(super) struct Answer {
    pub(super) state: String,
    pub(super) code: Option<String>,
    pub(super) error: Option<String>,
}

pub(super) fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Serves the loopback listener until the browser arrives at `/callback`
/// with this sign-in's `state`. Any other request, and any answer with
/// another `state` (a stranger's, or a forgery), is turned away and the
/// listener keeps waiting: a stranger on this machine can neither end the
/// sign-in nor slip in a code of its own. Connections are read side by
/// side, so one that never sends its request holds up no other.
pub(super) async fn callback(listener: &TcpListener, state: &str) -> Result<Answer, SignInError> {
    let expected = digest(state);
    let mut reading = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) =
                    accepted.map_err(|e| SignInError::Listener(e.to_string()))?;
                if reading.len() >= MAX_CALLBACK_CONNECTIONS {
                    continue; // dropped: a flood, not a browser
                }
                let mut stream = stream;
                reading.spawn(async move {
                    let target = request_target(&mut stream).await;
                    (stream, target)
                });
            }
            Some(Ok((mut stream, target))) = reading.join_next() => {
                let Some(target) = target else { continue };
                let Some(query) = target.strip_prefix("/callback?") else {
                    respond(&mut stream, "404 Not Found", "Not found.").await;
                    continue;
                };
                let answer = parse_answer(query);
                if digest(&answer.state) != expected {
                    tracing::warn!("sign-in: an answer with another state was turned away");
                    respond(
                        &mut stream,
                        "400 Bad Request",
                        "This answer does not belong to the sign-in in progress. It was ignored.",
                    )
                    .await;
                    continue;
                }
                let page = if answer.error.is_some() {
                    "Sign-in was not completed. You can close this window and return to Mandate."
                } else {
                    "Signed in. You can close this window and return to Mandate."
                };
                respond(&mut stream, "200 OK", page).await;
                return Ok(answer);
            }
        }
    }
}

/// The most connections to the loopback listener read at once.
const MAX_CALLBACK_CONNECTIONS: usize = 64;

fn parse_answer(query: &str) -> Answer {
    let mut answer = Answer {
        state: String::new(),
        code: None,
        error: None,
    };
    for (key, value) in openidconnect::url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "state" => answer.state = value.into_owned(),
            "code" => answer.code = Some(value.into_owned()),
            // Only the code: a description is the provider's free text.
            "error" => {
                answer.error = Some(
                    value
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .take(64)
                        .collect(),
                );
            }
            _ => {}
        }
    }
    answer
}

/// Reads one HTTP request head (at most 16 KiB) and returns its target.
async fn request_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 || head.len() + n > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Some(target.to_owned()),
        _ => None,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!("<!doctype html><meta charset=utf-8><title>Mandate</title><p>{text}</p>");
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
