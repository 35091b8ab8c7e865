//! The CLI's inputs and outputs: scopes as typed, mandate files, JSON on
//! standard output.

use std::path::Path;

use mandate_agent::{AgentError, Mandate};
use mandate_core::scope::AuthorizationDetail;
use serde_json::json;

pub fn identity(key: &mandate_core::PublicKey) -> serde_json::Value {
    json!({ "agent_id": key.agent_id(), "jwk": key.to_jwk() })
}

/// Parses `TYPE:ACTION[,ACTION]:LOCATION` or a JSON detail.
pub fn parse_scopes(specs: &[String]) -> Result<Vec<AuthorizationDetail>, AgentError> {
    specs
        .iter()
        .map(|spec| {
            if spec.trim_start().starts_with('{') {
                return serde_json::from_str(spec)
                    .map_err(|e| AgentError::Invalid(format!("scope {spec:?}: {e}")));
            }
            let mut parts = spec.splitn(3, ':');
            let (Some(kind), Some(actions), Some(location)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(AgentError::Invalid(format!(
                    "scope {spec:?} is not TYPE:ACTION[,ACTION...]:LOCATION"
                )));
            };
            AuthorizationDetail::new(kind, actions.split(','), [location])
                .map_err(|e| AgentError::Invalid(format!("scope {spec:?}: {e}")))
        })
        .collect()
}

/// A file's text, or standard input's for `-`.
pub fn read_input(path: &Path) -> Result<String, AgentError> {
    if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| AgentError::Invalid(format!("cannot read {}: {e}", path.display())))
}

pub fn read_mandate(path: &Path) -> Result<Mandate, AgentError> {
    let text = read_input(path)?;
    serde_json::from_str(&text)
        .map_err(|e| AgentError::Invalid(format!("{} is not a mandate: {e}", path.display())))
}

pub fn write_mandate(mandate: &Mandate, out: Option<&Path>) -> Result<(), AgentError> {
    let text =
        serde_json::to_string_pretty(mandate).map_err(|e| AgentError::Invalid(e.to_string()))?;
    match out {
        Some(path) => std::fs::write(path, text + "\n")
            .map_err(|e| AgentError::Invalid(format!("cannot write {}: {e}", path.display()))),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

pub fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("cannot print: {e}"),
    }
}
