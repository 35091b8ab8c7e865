//! Reading one JSON-RPC message from an MCP client, strictly, before
//! anything of it reaches the upstream.
//!
//! The gateway authorizes a call by what its body says, and the upstream
//! acts on what its own parser reads from the same bytes. The two must not
//! be able to disagree, so the reading here is narrower than JSON's:
//! - one message, an object: a batch (a JSON array) is refused, as MCP
//!   since 2025-06-18 has none, so no second call can ride behind a first;
//! - no member twice in any object (parsers differ on which one wins);
//! - at most [`MAX_DEPTH`] levels of nesting, checked before parsing;
//! - `jsonrpc` is `"2.0"`; `method` a string on the allow-list
//!   ([`Method`]); `id` a string or an integer; `params`, when present,
//!   an object; for a call of a tool, prompt or resource its `name` or
//!   `uri` a string and its `arguments` an object.
//!
//! Whatever fails gets a JSON-RPC error ([`RpcError`]) with a 4xx status,
//! and never reaches the upstream.

use serde_json::{Map, Value};

use crate::strict::{check_depth, parse_strict};

pub use crate::strict::MAX_DEPTH;

/// JSON-RPC's and MCP's error codes, as the gateway answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcCode {
    /// The body is not JSON.
    Parse,
    /// JSON, but not a message the gateway takes.
    InvalidRequest,
    /// A method the gateway does not pass on.
    MethodNotFound,
    /// The parameters of a known method are not what it takes.
    InvalidParams,
    /// MCP's `HeaderMismatch`: a header disagrees with the body.
    HeaderMismatch,
    /// MCP's `UnsupportedProtocolVersion`.
    UnsupportedVersion,
}

impl RpcCode {
    /// The JSON-RPC error code.
    pub fn code(self) -> i64 {
        match self {
            RpcCode::Parse => -32700,
            RpcCode::InvalidRequest => -32600,
            RpcCode::MethodNotFound => -32601,
            RpcCode::InvalidParams => -32602,
            RpcCode::HeaderMismatch => -32020,
            RpcCode::UnsupportedVersion => -32022,
        }
    }

    /// The HTTP status the gateway answers it with.
    pub fn status(self) -> u16 {
        match self {
            RpcCode::MethodNotFound => 404,
            _ => 400,
        }
    }
}

/// Why a message was refused. The message never repeats the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The code.
    pub code: RpcCode,
    /// What was wrong, for the caller.
    pub message: &'static str,
}

impl RpcError {
    pub(crate) fn new(code: RpcCode, message: &'static str) -> RpcError {
        RpcError { code, message }
    }
}

/// The methods the gateway passes on (MCP's client-to-server requests and
/// notifications, 2024-11-05 to 2026-07-28). Anything else is refused
/// with `-32601`: a method the gateway does not know, it cannot authorize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `initialize` (before 2026-07-28).
    Initialize,
    /// `server/discover` (2026-07-28).
    Discover,
    /// `ping` (before 2026-07-28).
    Ping,
    /// `tools/list`.
    ToolsList,
    /// `tools/call`: needs the tool.
    ToolsCall,
    /// `resources/list`.
    ResourcesList,
    /// `resources/templates/list`.
    ResourceTemplatesList,
    /// `resources/read`: needs the resource.
    ResourcesRead,
    /// `resources/subscribe`: needs the resource.
    ResourcesSubscribe,
    /// `resources/unsubscribe`.
    ResourcesUnsubscribe,
    /// `prompts/list`.
    PromptsList,
    /// `prompts/get`: needs the prompt.
    PromptsGet,
    /// `completion/complete`.
    Complete,
    /// `logging/setLevel` (before 2026-07-28).
    SetLevel,
    /// `subscriptions/listen` (2026-07-28).
    Listen,
    /// A notification from the client: `notifications/initialized`,
    /// `notifications/cancelled`, `notifications/progress`,
    /// `notifications/roots/list_changed`.
    Notification,
}

impl Method {
    /// The method named `name`, if the gateway passes it on.
    pub fn named(name: &str) -> Option<Method> {
        Some(match name {
            "initialize" => Method::Initialize,
            "server/discover" => Method::Discover,
            "ping" => Method::Ping,
            "tools/list" => Method::ToolsList,
            "tools/call" => Method::ToolsCall,
            "resources/list" => Method::ResourcesList,
            "resources/templates/list" => Method::ResourceTemplatesList,
            "resources/read" => Method::ResourcesRead,
            "resources/subscribe" => Method::ResourcesSubscribe,
            "resources/unsubscribe" => Method::ResourcesUnsubscribe,
            "prompts/list" => Method::PromptsList,
            "prompts/get" => Method::PromptsGet,
            "completion/complete" => Method::Complete,
            "logging/setLevel" => Method::SetLevel,
            "subscriptions/listen" => Method::Listen,
            "notifications/initialized"
            | "notifications/cancelled"
            | "notifications/progress"
            | "notifications/roots/list_changed" => Method::Notification,
            _ => return None,
        })
    }

    /// Whether the method names a tool, prompt or resource in `params`
    /// (`name` or `uri`), which `Mcp-Name` mirrors.
    pub fn names_target(self) -> Option<&'static str> {
        match self {
            Method::ToolsCall | Method::PromptsGet => Some("name"),
            Method::ResourcesRead | Method::ResourcesSubscribe | Method::ResourcesUnsubscribe => {
                Some("uri")
            }
            _ => None,
        }
    }
}

/// A message read from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request or a notification.
    Call(Call),
    /// A response to a request of the server's (the protocol before
    /// 2026-07-28 lets a server ask the client, on a stream).
    Response {
        /// Its id.
        id: Value,
    },
}

/// A request (with an `id`) or a notification (without).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The `id`, a string or an integer; `None` for a notification.
    pub id: Option<Value>,
    /// The method, as named.
    pub method_name: String,
    /// The method.
    pub method: Method,
    /// The tool's or prompt's `name`, or the resource's `uri`, for a
    /// method that names one.
    pub target: Option<String>,
    /// `params._meta`, if any.
    pub meta: Option<Map<String, Value>>,
    /// `params.arguments`, for a tool or prompt call that has them.
    pub arguments: Option<Value>,
}

impl Call {
    /// The protocol version the body's `_meta` names (2026-07-28 and
    /// later carry it in every request).
    pub fn meta_version(&self) -> Option<&str> {
        self.meta
            .as_ref()?
            .get("io.modelcontextprotocol/protocolVersion")?
            .as_str()
    }
}

/// Reads one message from `body`.
pub fn read(body: &[u8]) -> Result<Message, RpcError> {
    check_depth(body)?;
    let value = parse_strict(body)?;
    let Value::Object(mut message) = value else {
        return Err(match value {
            Value::Array(_) => RpcError::new(
                RpcCode::InvalidRequest,
                "batches are not accepted: send one message per request",
            ),
            _ => RpcError::new(RpcCode::InvalidRequest, "the message is not a JSON object"),
        });
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::new(
            RpcCode::InvalidRequest,
            "jsonrpc must be \"2.0\"",
        ));
    }
    let id = match message.remove("id") {
        None => None,
        Some(id @ Value::String(_)) => Some(id),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
        Some(_) => {
            return Err(RpcError::new(
                RpcCode::InvalidRequest,
                "id must be a string or an integer",
            ));
        }
    };
    let Some(method) = message.remove("method") else {
        return read_response(message, id);
    };
    let Value::String(method_name) = method else {
        return Err(RpcError::new(
            RpcCode::InvalidRequest,
            "method must be a string",
        ));
    };
    let allowed = ["jsonrpc", "method", "params"];
    if message.keys().any(|k| !allowed.contains(&k.as_str())) {
        return Err(RpcError::new(
            RpcCode::InvalidRequest,
            "a request has only jsonrpc, id, method and params",
        ));
    }
    let Some(kind) = Method::named(&method_name) else {
        return Err(RpcError::new(
            RpcCode::MethodNotFound,
            "the gateway does not pass this method on",
        ));
    };
    if (kind == Method::Notification) != id.is_none() {
        return Err(RpcError::new(
            RpcCode::InvalidRequest,
            "a notification has no id, and every other method needs one",
        ));
    }
    let mut params = match message.remove("params") {
        None => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err(RpcError::new(
                RpcCode::InvalidParams,
                "params must be an object",
            ));
        }
    };
    let meta = match params.remove("_meta") {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => {
            return Err(RpcError::new(
                RpcCode::InvalidParams,
                "params._meta must be an object",
            ));
        }
    };
    let target = match kind.names_target() {
        None => None,
        Some(member) => match params.remove(member) {
            Some(Value::String(t)) => Some(t),
            _ => {
                return Err(RpcError::new(
                    RpcCode::InvalidParams,
                    "this method needs params.name (a tool or prompt) or params.uri (a resource) \
                     as a string",
                ));
            }
        },
    };
    let arguments = match params.remove("arguments") {
        None => None,
        Some(a @ Value::Object(_)) => Some(a),
        Some(_) if matches!(kind, Method::ToolsCall | Method::PromptsGet) => {
            return Err(RpcError::new(
                RpcCode::InvalidParams,
                "params.arguments must be an object",
            ));
        }
        Some(other) => Some(other),
    };
    Ok(Message::Call(Call {
        id,
        method_name,
        method: kind,
        target,
        meta,
        arguments,
    }))
}

fn read_response(message: Map<String, Value>, id: Option<Value>) -> Result<Message, RpcError> {
    let id = id.ok_or(RpcError::new(
        RpcCode::InvalidRequest,
        "a message without a method is a response, and needs an id",
    ))?;
    let mut keys: Vec<&str> = message.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let outcome_ok = match keys.as_slice() {
        ["error", "jsonrpc"] => message["error"].is_object(),
        ["jsonrpc", "result"] => message["result"].is_object(),
        _ => false,
    };
    if !outcome_ok {
        return Err(RpcError::new(
            RpcCode::InvalidRequest,
            "a response has jsonrpc, id, and either result or error (an object)",
        ));
    }
    Ok(Message::Response { id })
}

/// A JSON-RPC error response to the request `id` (`null` when it has
/// none, or could not be read).
pub fn error_body(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(data) = data {
        error["data"] = data;
    }
    serde_json::json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> RpcCode {
        read(body.as_bytes()).unwrap_err().code
    }

    #[test]
    fn a_tool_call_names_its_tool() {
        let m = read(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"a"},"_meta":{"traceparent":"00-x"}}}"#,
        )
        .unwrap();
        let Message::Call(call) = m else { panic!() };
        assert_eq!(call.method, Method::ToolsCall);
        assert_eq!(call.target.as_deref(), Some("read_file"));
        assert_eq!(call.id, Some(serde_json::json!(7)));
        assert!(call.meta.unwrap().contains_key("traceparent"));
    }

    #[test]
    fn hostile_messages_get_their_errors() {
        assert_eq!(code("{"), RpcCode::Parse);
        assert_eq!(code(""), RpcCode::Parse);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#),
            RpcCode::Parse
        );
        assert_eq!(code("\"\\ud800\""), RpcCode::Parse);
        assert_eq!(
            code(
                r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}]"#
            ),
            RpcCode::InvalidRequest
        );
        assert_eq!(
            code(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#
            ),
            RpcCode::InvalidRequest
        );
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{{"x":{}{}}}}}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        );
        assert_eq!(code(&deep), RpcCode::InvalidRequest);
        // Brackets inside strings are not nesting.
        let shallow = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{{"x":"{}"}}}}}}"#,
            "[".repeat(40)
        );
        assert!(read(shallow.as_bytes()).is_ok());
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            RpcCode::InvalidRequest
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            RpcCode::InvalidRequest
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            RpcCode::InvalidRequest
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            RpcCode::InvalidRequest
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
            RpcCode::InvalidRequest
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":1}"#),
            RpcCode::InvalidRequest
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"admin/shutdown"}"#),
            RpcCode::MethodNotFound
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"a"}}"#),
            RpcCode::MethodNotFound
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a"}}"#),
            RpcCode::InvalidRequest
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"notifications/initialized"}"#),
            RpcCode::InvalidRequest
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}"#),
            RpcCode::InvalidParams
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#),
            RpcCode::InvalidParams
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#),
            RpcCode::InvalidParams
        );
        assert_eq!(
            code(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":[1]}}"#
            ),
            RpcCode::InvalidParams
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":null}}"#),
            RpcCode::InvalidParams
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":3}}"#),
            RpcCode::InvalidParams
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), RpcCode::InvalidRequest);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#),
            RpcCode::InvalidRequest
        );
        assert_eq!(code("3"), RpcCode::InvalidRequest);
    }

    #[test]
    fn responses_and_notifications_are_read() {
        assert_eq!(
            read(br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#).unwrap(),
            Message::Response {
                id: serde_json::json!("s1")
            }
        );
        let Message::Call(n) =
            read(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((n.method, n.id), (Method::Notification, None));
    }
}
