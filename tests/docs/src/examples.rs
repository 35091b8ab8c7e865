//! Examples of the broker's bodies and replies, built from the OpenAPI
//! schemas with a value for each field. The values are real where they
//! can be: the JWK and its thumbprint are RFC 8037's example key, and a
//! token's first part is the header that kind of token has.

use mandate_core::base64url;
use serde_json::{Map, Value, json};

/// RFC 8037, appendix A.2: the example Ed25519 public key.
pub const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
/// Its RFC 7638 thumbprint (RFC 8037, appendix A.3).
pub const JKT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
/// A token id: 43 base64url characters.
const ID: &str = "Xr3nJ0uRz0t6f2qgkq3yW9H8c5ZQ2m1V8d4bT7sYpLw";
/// A time, in Unix seconds.
const NOW: i64 = 1_796_320_000;

fn jwk() -> Value {
    json!({ "kty": "OKP", "crv": "Ed25519", "x": X })
}

/// A compact token of kind `typ`: its header is real, its payload and
/// signature are elided.
fn token(typ: &str) -> Value {
    let header = json!({ "alg": "EdDSA", "typ": typ, "kid": JKT }).to_string();
    Value::String(format!(
        "{}.PAYLOAD.SIGNATURE",
        base64url::encode(header.as_bytes())
    ))
}

/// The value for field `field` of schema `schema`, if the table has one.
pub fn value(schema: &str, field: &str) -> Option<Value> {
    let v = match (schema, field) {
        ("RevocationAccepted", "revoked") => json!([ID]),
        ("Decided", "status") => json!("approved"),
        ("RequestView", "status") => json!("approved"),
        ("Submitted", "status") => json!("pending"),
        ("GrantItem", "revoked") => json!(true),
        ("Removed", "keys") => json!([JKT]),
        ("Feed", "checkpoint") => token("mandate-checkpoint+jwt"),
        ("RemoveBody", "revocation") => token("mandate-key-revocation+jwt"),
        ("Metadata", "issuer") => json!("https://mandate.example.com"),
        ("FeedEntry", "key") => return None,
        ("DecisionBody", "denial" | "replaces") => return None,
        ("RequestView", "denial") => return None,
        ("SubmitBody", "endorsement") => token("mandate-pop+jwt"),
        ("WitnessBody", "key") => jwk(),
        ("WitnessBody", "report") => token("mandate-witness-report+jwt"),
        ("WitnessBody", "receipts") => json!(["PAYLOAD1", "PAYLOAD2"]),
        ("WitnessResult", "error") => return None,
        ("ToolsBody" | "ToolsStatement", "key") => jwk(),
        ("ToolsBody" | "ToolsStatement", "statement") => token("mandate-tools+jwt"),
        ("InboxItem", "tools") => json!([]),
        ("InboxItem", "denied_before") => json!(NOW - 120),
        ("BlockBody" | "BlockView", "policy") => token("mandate-policy+jwt"),
        ("BlockView", "agent") => json!(JKT),
        ("BlockView", "policy_id") => json!(ID),
        ("BlockView", "label") => json!("Never this one"),
        ("BlockView", "refusals") => json!(3),
        ("ConfirmBody", "proof") => token("mandate-pop+jwt"),
        ("ConfirmBody" | "ConfirmationItem", "method") => json!("POST"),
        ("ConfirmBody" | "ConfirmationItem", "uri") => {
            json!("https://erp.example.com/orders?dry_run=false")
        }
        ("ConfirmBody" | "ConfirmationItem", "body") => {
            json!(base64url::encode(br#"{"sku":"SSD-2TB","quantity":4}"#))
        }
        ("ConfirmBody" | "ConfirmationItem", "summary") => json!("Order 4 SSDs from Acme"),
        ("ConfirmBody" | "ConfirmationItem", "chain") => json!([token("mandate-grant+jwt")]),
        ("ConfirmationAsked" | "ConfirmationView", "id") => json!("Rk9PQkFSQkFaUVVYMTIzNA"),
        ("ConfirmationItem", "id") => json!("Rk9PQkFSQkFaUVVYMTIzNA"),
        ("ConfirmationAsked" | "ConfirmationView", "status") => json!("pending"),
        ("ConfirmationView", "confirmation") => token("mandate-confirmation+jwt"),
        ("ConfirmationView", "reason") => return None,
        ("ConfirmDecisionBody", "confirmation") => token("mandate-confirmation+jwt"),
        ("ConfirmDecisionBody", "reason") => return None,
        ("ConfirmDecided", "status") => json!("confirmed"),
        ("TokenForm", "grant_type") => json!("urn:ietf:params:oauth:grant-type:token-exchange"),
        ("TokenForm", "subject_token") => json!(format!(
            "{},{}",
            token("mandate-grant+jwt").as_str().unwrap_or_default(),
            token("mandate-grant+jwt").as_str().unwrap_or_default()
        )),
        ("TokenForm", "subject_token_type") => json!("urn:mandate:params:oauth:token-type:chain"),
        ("TokenForm", "resource") => json!("https://files.example/"),
        ("TokenForm", "mandate_keys") => json!(X),
        ("TokenForm", "scope") => json!("files:read"),
        ("TokenForm", "authorization_details" | "requested_token_type") => return None,
        ("IntrospectForm", "token") => token("at+jwt"),
        ("ClientMetadata" | "Registered", "redirect_uris") => {
            json!(["http://127.0.0.1:8765/callback"])
        }
        ("ClientMetadata" | "Registered", "client_name") => json!("Acme IDE"),
        ("ClientMetadata", "client_id" | "client_secret") => return None,
        ("Registered", "client_id") => json!("mandate-client.METADATA.SEAL"),
        ("Registered", "client_id_issued_at") => json!(NOW),
        ("Registered", "token_endpoint_auth_method") => json!("none"),
        ("Registered", "grant_types") => json!(["authorization_code", "refresh_token"]),
        ("Registered", "response_types") => json!(["code"]),
        ("ClientMetadata", "token_endpoint_auth_method") => json!("none"),
        ("ClientMetadata", "grant_types") => json!(["authorization_code", "refresh_token"]),
        ("ClientMetadata", "response_types") => json!(["code"]),
        ("IntrospectForm", "token_type_hint") => return None,
        ("TokenIssued", "access_token") => token("at+jwt"),
        ("TokenIssued", "issued_token_type") => {
            json!("urn:ietf:params:oauth:token-type:access_token")
        }
        ("TokenIssued", "token_type") => json!("DPoP"),
        ("TokenIssued", "expires_in") => json!(300),
        ("OAuthErrorBody", "error") => json!("invalid_grant"),
        ("OAuthErrorBody", "error_description") => {
            json!("chain.revoked: a grant of the chain is revoked")
        }
        (_, "id" | "parent" | "replaces") => json!(ID),
        (_, "jkt") => json!(JKT),
        (_, "seq" | "next") => json!(42),
        (_, "expires_at") => json!(NOW + 600),
        (_, "received_at" | "revoked_at" | "enrolled_at" | "last_used_at" | "created_at") => {
            json!(NOW)
        }
        (_, "code") => json!("request.no_principal"),
        (_, "message") => json!("the request names no principal_hint"),
        (_, "request") => token("mandate-request+jwt"),
        (_, "grant") => token("mandate-grant+jwt"),
        (_, "denial") => token("mandate-denial+jwt"),
        (_, "revocation") => token("mandate-revocation+jwt"),
        (_, "receipt") => token("mandate-receipt+jwt"),
        (_, "binding") => token("mandate-binding+jwt"),
        (_, "proof" | "session_proof") => token("mandate-pop+jwt"),
        (_, "jwk" | "session_jwk" | "user_key") => jwk(),
        (_, "keys") => json!([jwk()]),
        (_, "chain" | "parent_chain") => json!([token("mandate-grant+jwt")]),
        (_, "binding_code") => json!("7K3Q-M9XD"),
        (_, "device") => json!("Alice's laptop"),
        (_, "oidc_issuers") => json!(["https://idp.example.com"]),
        _ => return None,
    };
    Some(v)
}

/// An example of the schema named `name`, from the document's schemas.
/// Fields without a value in the table are left out when optional; a
/// required one without a value is an error naming it.
pub fn example(doc: &Value, name: &str) -> Result<Value, String> {
    let schema = &doc["components"]["schemas"][name];
    let Some(properties) = schema["properties"].as_object() else {
        return Err(format!("schema {name} has no properties"));
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    for (field, property) in properties {
        let referenced = reference(property)
            .or_else(|| reference(&property["items"]))
            .map(str::to_owned);
        let v = match (value(name, field), referenced) {
            (Some(v), _) => v,
            (None, Some(inner)) => {
                let inner = example(doc, &inner)?;
                if property["type"] == "array" {
                    json!([inner])
                } else {
                    inner
                }
            }
            (None, None) if required.contains(&field.as_str()) => {
                return Err(format!(
                    "{name}.{field} is required but has no example in tests/docs/src/examples.rs"
                ));
            }
            (None, None) => continue,
        };
        out.insert(field.clone(), v);
    }
    Ok(Value::Object(out))
}

/// The schema a property refers to, directly or through `oneOf`/`allOf`.
pub fn reference(property: &Value) -> Option<&str> {
    if let Some(r) = property["$ref"].as_str() {
        return r.strip_prefix("#/components/schemas/");
    }
    for key in ["oneOf", "allOf", "anyOf"] {
        if let Some(list) = property[key].as_array()
            && let Some(r) = list.iter().find_map(reference)
        {
            return Some(r);
        }
    }
    None
}
