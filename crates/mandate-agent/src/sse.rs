//! A small `text/event-stream` reader, enough for the broker's streams.

/// One server-sent event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id` field, if the event had one.
    pub id: Option<String>,
    /// The `event` field; empty for the default.
    pub name: String,
    /// The `data` lines, joined by `\n`.
    pub data: String,
}

/// An incremental `text/event-stream` parser (the WHATWG rules this
/// broker uses: `id`, `event`, `data` and comments; LF line ends).
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut done = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line =
                String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(&line)).into_owned();
            if line.is_empty() {
                if self.has_data {
                    done.push(std::mem::take(&mut self.event));
                }
                self.event = SseEvent::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.event.id = Some(value.to_owned()),
                "event" => self.event.name = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.event.data.push('\n');
                    }
                    self.event.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut p = SseParser::default();
        assert!(p.feed(b": keep-alive\n\nid: 7\nevent: rev").is_empty());
        let events = p.feed(b"oked\ndata: {\"a\":1}\ndata: x\n\n");
        assert_eq!(
            events,
            vec![SseEvent {
                id: Some("7".into()),
                name: "revoked".into(),
                data: "{\"a\":1}\nx".into(),
            }]
        );
        assert!(p.feed(b"event: none\n\n").is_empty(), "no data, no event");
    }
}
