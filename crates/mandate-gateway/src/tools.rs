//! The upstream's tools: which names the gateway lets through at all,
//! what the upstream says of each (its MCP annotations), and `tools/list`
//! answers cut down to what the caller may call.
//!
//! A tool's name is its action in a scope, compared byte for byte. So that
//! a grant names exactly one tool, the gateway takes only names in MCP's
//! recommended grammar (1 to 128 of `A-Z a-z 0-9 _ - .`), which holds no
//! look-alike characters, and hides every tool whose name is another's in
//! a different case: such a tool is neither listed nor callable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use mandate_core::token::ToolHints;
use serde::Serialize;
use serde_json::Value;

pub use mandate_core::token::valid_tool_name as valid_name;

/// What the upstream says of a tool: its MCP annotations, unchecked. The
/// defaults are MCP's: a tool that says nothing may write, destroy and
/// reach the world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hints {
    /// `title`, as the upstream gives it.
    pub title: Option<String>,
    /// `readOnlyHint` (default false).
    pub read_only: bool,
    /// `destructiveHint` (default true; meaningful when not read-only).
    pub destructive: bool,
    /// `idempotentHint` (default false).
    pub idempotent: bool,
    /// `openWorldHint` (default true).
    pub open_world: bool,
}

impl Hints {
    /// The hints of a tool definition from `tools/list`.
    pub fn of(tool: &Value) -> Hints {
        let a = &tool["annotations"];
        let flag = |name: &str, default: bool| a[name].as_bool().unwrap_or(default);
        let title = tool["title"]
            .as_str()
            .or_else(|| a["title"].as_str())
            .filter(|t| !t.is_empty() && t.len() <= 256 && !t.chars().any(char::is_control))
            .map(str::to_owned);
        let read_only = flag("readOnlyHint", false);
        Hints {
            title,
            read_only,
            destructive: !read_only && flag("destructiveHint", true),
            idempotent: flag("idempotentHint", false),
            open_world: flag("openWorldHint", true),
        }
    }
}

/// The tools the gateway has seen the upstream list, by name, with what it
/// says of each. Bounded: a list longer than [`MAX_TOOLS`] keeps its
/// first ones.
#[derive(Debug, Default)]
pub struct Catalog {
    known: Mutex<Known>,
    /// Woken when a listing changes what the catalog knows.
    changed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Known {
    /// Each tool's hints, by name.
    hints: BTreeMap<String, Hints>,
    /// The names known, by their lowercase form: what [`callable`] asks on
    /// every call, kept as tools are learnt.
    by_folded: HashMap<String, BTreeSet<String>>,
}

/// The most tools the catalog remembers.
pub const MAX_TOOLS: usize = 4096;

impl Catalog {
    /// What the upstream said of `name` when it last listed it.
    pub fn hints(&self, name: &str) -> Option<Hints> {
        self.lock().hints.get(name).cloned()
    }

    fn learn(&self, tools: &[Value]) {
        let mut changed = false;
        let mut known = self.lock();
        for tool in tools {
            let Some(name) = tool["name"].as_str() else {
                continue;
            };
            if known.hints.len() < MAX_TOOLS || known.hints.contains_key(name) {
                let hints = Hints::of(tool);
                changed |= known.hints.get(name) != Some(&hints);
                known.hints.insert(name.to_owned(), hints);
                known
                    .by_folded
                    .entry(name.to_ascii_lowercase())
                    .or_default()
                    .insert(name.to_owned());
            }
        }
        drop(known);
        if changed {
            self.changed.notify_one();
        }
    }

    /// Waits until a listing changes what the catalog knows (at once if
    /// one did since the last wait).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// What the upstream says of the tools it may be called for (in the
    /// grammar, not ambiguous by case), by name, at most
    /// [`mandate_core::token::MAX_TOOLS`]: a tools statement's `tools`.
    pub fn statement(&self) -> Vec<ToolHints> {
        let known = self.lock();
        known
            .hints
            .iter()
            .filter(|(name, _)| {
                valid_name(name)
                    && known
                        .by_folded
                        .get(&name.to_ascii_lowercase())
                        .is_some_and(|names| names.len() == 1)
            })
            .take(mandate_core::token::MAX_TOOLS)
            .map(|(name, h)| ToolHints {
                name: name.clone(),
                title: h.title.clone(),
                read_only: h.read_only,
                destructive: h.destructive,
                idempotent: h.idempotent,
                open_world: h.open_world,
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The tools of a `tools/list` result that `may_call` lets through, and
/// that are in the grammar and not ambiguous by case. Learns every listed
/// tool's hints into `catalog` first.
pub fn filter(
    result: &mut Value,
    catalog: &Catalog,
    may_call: &dyn Fn(&str) -> bool,
) -> Option<()> {
    let tools = result.get_mut("tools")?.as_array_mut()?;
    catalog.learn(tools);
    let mut by_folded: HashMap<String, usize> = HashMap::new();
    for tool in tools.iter() {
        if let Some(name) = tool["name"].as_str() {
            *by_folded.entry(name.to_ascii_lowercase()).or_default() += 1;
        }
    }
    tools.retain(|tool| {
        tool["name"].as_str().is_some_and(|name| {
            valid_name(name)
                && by_folded.get(&name.to_ascii_lowercase()).copied() == Some(1)
                && may_call(name)
        })
    });
    Some(())
}

/// Whether `name` is a tool the gateway passes calls to: in the grammar,
/// and not known to differ from another listed tool only by case.
pub fn callable(name: &str, catalog: &Catalog) -> bool {
    if !valid_name(name) {
        return false;
    }
    catalog
        .lock()
        .by_folded
        .get(&name.to_ascii_lowercase())
        .is_none_or(|names| names.iter().all(|n| n == name))
}

/// Rewrites an upstream's answer to the request `id`, whole in `body`, as
/// JSON (`sse` false) or an SSE stream: each JSON-RPC response to `id`
/// with a result goes through `edit`. `None` when the body cannot be read
/// as what it says it is.
pub fn rewrite(
    body: &[u8],
    sse: bool,
    id: &Value,
    edit: &dyn Fn(&mut Value) -> Option<()>,
) -> Option<Vec<u8>> {
    let edit_message = |message: &mut Value| {
        if message.get("id") == Some(id)
            && let Some(result) = message.get_mut("result")
        {
            edit(result)?;
        }
        Some(())
    };
    if !sse {
        let mut message: Value = serde_json::from_slice(body).ok()?;
        edit_message(&mut message)?;
        return serde_json::to_vec(&message).ok();
    }
    let text = std::str::from_utf8(body).ok()?.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    for (other, data) in events(&text) {
        for line in other {
            out.push_str(line);
            out.push('\n');
        }
        if let Some(data) = data {
            let mut message = serde_json::from_str::<Value>(&data).ok()?;
            edit_message(&mut message)?;
            out.push_str("data: ");
            out.push_str(&serde_json::to_string(&message).ok()?);
            out.push('\n');
        }
        out.push('\n');
    }
    Some(out.into_bytes())
}

/// The events of an SSE stream (with `\n` line ends): each one's lines
/// other than `data:`, and its `data:` lines joined, if it has any.
pub fn events(text: &str) -> impl Iterator<Item = (Vec<&str>, Option<String>)> {
    text.split("\n\n").filter(|e| !e.is_empty()).map(|event| {
        let mut data = Vec::new();
        let mut other = Vec::new();
        for line in event.lines() {
            match line.strip_prefix("data:") {
                Some(d) => data.push(d.strip_prefix(' ').unwrap_or(d)),
                None => other.push(line),
            }
        }
        let data = (!data.is_empty()).then(|| data.join("\n"));
        (other, data)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_outside_the_grammar_are_refused() {
        for good in ["read_file", "admin.tools.list", "DATA_EXPORT_v2", "a"] {
            assert!(valid_name(good), "{good}");
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            "read file",
            "read_fіle", // a Cyrillic i
            "ｒｅａｄ",
            "read/file",
            "read\u{200b}file",
            long.as_str(),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_list_keeps_only_what_may_be_called() {
        let catalog = Catalog::default();
        let mut result = json!({ "tools": [
            { "name": "read_file", "annotations": { "readOnlyHint": true } },
            { "name": "run_command" },
            { "name": "delete", "annotations": { "destructiveHint": true } },
            { "name": "Delete" },
            { "name": "read_fіle" },
        ]});
        filter(&mut result, &catalog, &|n| n != "run_command").unwrap();
        let names: Vec<_> = result["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["read_file"]);
        assert!(catalog.hints("read_file").unwrap().read_only);
        let run = catalog.hints("run_command").unwrap();
        assert!(!run.read_only && run.destructive && run.open_world);
        assert!(!callable("delete", &catalog) && !callable("Delete", &catalog));
        assert!(callable("read_file", &catalog));
        // The statement the gateway signs names what may be called at all,
        // with the server's hints.
        let statement = catalog.statement();
        let names: Vec<_> = statement.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["read_file", "run_command"]);
        assert!(statement[0].read_only && !statement[0].destructive);
        assert!(statement[1].destructive);
        // The listing woke whoever relays the statement; the same listing
        // again does not.
        use futures_util::FutureExt as _;
        assert!(catalog.changed().now_or_never().is_some());
        filter(
            &mut json!({ "tools": [{ "name": "run_command" }] }),
            &catalog,
            &|_| true,
        );
        assert!(catalog.changed().now_or_never().is_none());
        filter(
            &mut json!({ "tools": [{ "name": "run_command", "annotations": { "readOnlyHint": true } }] }),
            &catalog,
            &|_| true,
        );
        assert!(catalog.changed().now_or_never().is_some());
    }

    #[test]
    fn an_sse_answer_is_rewritten_event_by_event() {
        let body = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\r\n\r\n";
        let out = rewrite(body, true, &json!(3), &|r| {
            filter(r, &Catalog::default(), &|n| n == "a")
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("event: message\ndata: "), "{text}");
        assert!(text.contains(r#""name":"a""#) && !text.contains(r#""name":"b""#));
        // Another id's response passes as it is.
        let out = rewrite(body, true, &json!(4), &|_| None).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(r#""name":"b""#));
        assert!(rewrite(b"data: {x\n\n", true, &json!(3), &|_| Some(())).is_none());
    }
}
