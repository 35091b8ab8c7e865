//! Exporting the activity timeline: JSON Lines or CSV. Each record carries
//! the signed receipt, and (in JSON Lines) the chain, the keys and the
//! user key's binding it was made under, so that anyone can verify it
//! again (`mandate verify --receipts FILE`).

use std::path::Path;

use mandate_core::PublicKey;
use serde::{Deserialize, Serialize};

use crate::ClientError;
use crate::activity::{ActivityFilter, ActivityRow};
use crate::history::History;

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One JSON object per line, with everything needed to verify it.
    Jsonl,
    /// A spreadsheet's view, with the signed receipt in a column.
    Csv,
}

/// One exported receipt, as a JSON Lines record.
#[derive(Debug, Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    row: &'a ActivityRow,
    /// The compact receipt.
    receipt: &'a str,
    /// The grants it was made under, root first.
    chain: &'a [String],
    /// The user's and the agents' public keys, and for a witness receipt
    /// its witness's.
    keys: &'a [mandate_core::Jwk],
    /// The broker's binding of the user key.
    binding: &'a str,
}

const CSV_HEADER: &str = "id,at,agent,agent_name,kind,target,summary,rationale,outcome,status,error,reported_at,grant_id,receipt";

/// A failure to write the export.
fn io(e: std::io::Error) -> ClientError {
    ClientError::Invalid(format!("writing the export: {e}"))
}

/// Writes what `filter` selects to `path`, whole or not at all: the
/// principal's receipts, with the broker's `binding` of the `user` key.
pub async fn write(
    history: &History,
    principal: &str,
    binding: &str,
    user: &PublicKey,
    filter: &ActivityFilter,
    format: ExportFormat,
    path: &Path,
) -> Result<usize, ClientError> {
    let name = path
        .file_name()
        .ok_or_else(|| ClientError::Invalid("the export needs a file name".into()))?;
    let part = path.with_file_name(format!(".{}.part", name.to_string_lossy()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&part).map_err(io)?);
    let written = fill(history, principal, binding, user, filter, format, &mut out).await;
    let finished = written.and_then(|n| {
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&part, path).map_err(io)?;
        Ok(n)
    });
    if finished.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    finished
}

async fn fill(
    history: &History,
    principal: &str,
    binding: &str,
    user: &PublicKey,
    filter: &ActivityFilter,
    format: ExportFormat,
    out: &mut impl std::io::Write,
) -> Result<usize, ClientError> {
    if format == ExportFormat::Csv {
        writeln!(out, "{CSV_HEADER}").map_err(io)?;
    }
    let mut page = ActivityFilter {
        limit: Some(1000),
        after: None,
        ..filter.clone()
    };
    let mut count = 0;
    loop {
        let rows = history.activity(principal, &page).await?;
        for row in &rows {
            let Some((_, receipt)) = history.receipt_row(principal, &row.id).await? else {
                continue;
            };
            match format {
                ExportFormat::Jsonl => {
                    let chain = history.chain_to(principal, &row.grant_id).await?;
                    let mut keys = vec![user.to_jwk()];
                    keys.extend(history.keys_of(&chain).await?);
                    // A witness receipt verifies under its witness's key.
                    if let Some(witness) = &row.witness
                        && let Some(key) = history.key_of(witness).await?
                    {
                        keys.push(key);
                    }
                    let record = Record {
                        row,
                        receipt: &receipt,
                        chain: &chain,
                        keys: &keys,
                        binding,
                    };
                    serde_json::to_writer(&mut *out, &record).map_err(|e| io(e.into()))?;
                    writeln!(out).map_err(io)?;
                }
                ExportFormat::Csv => {
                    let at = row.at.to_string();
                    let reported = row.reported_at.map(|t| t.to_string()).unwrap_or_default();
                    let status = match row.status {
                        crate::activity::ReceiptStatus::Verified => "verified",
                        crate::activity::ReceiptStatus::Failed => "failed",
                    };
                    // Ids and tokens are base64url, which may begin with
                    // `-`: only the agents' own words are defused.
                    let line = [
                        csv_field(&row.id),
                        csv_field(&at),
                        csv_field(&row.agent),
                        csv_text(row.agent_name.as_deref().unwrap_or("")),
                        csv_text(&row.kind),
                        csv_text(&row.target),
                        csv_text(&row.summary),
                        csv_text(row.rationale.as_deref().unwrap_or("")),
                        csv_field(&row.outcome),
                        csv_field(status),
                        csv_field(row.error.as_deref().unwrap_or("")),
                        csv_field(&reported),
                        csv_field(&row.grant_id),
                        csv_field(&receipt),
                    ];
                    writeln!(out, "{}", line.join(",")).map_err(io)?;
                }
            }
            count += 1;
        }
        match rows.last() {
            Some(last) if rows.len() == 1000 => page.after = Some(last.seq),
            _ => break,
        }
    }
    Ok(count)
}

/// One CSV field (RFC 4180), quoted.
fn csv_field(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Text an agent wrote, as a CSV field. Text a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@`, tab or carriage return first) is prefixed
/// with `'`, so opening the file runs nothing.
fn csv_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_field(&format!("'{text}"))
    } else {
        csv_field(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_text("plain"), "\"plain\"");
        assert_eq!(csv_text("say \"hi\", then"), "\"say \"\"hi\"\", then\"");
        assert_eq!(csv_text("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_text("-1+2"), "\"'-1+2\"");
        assert_eq!(csv_text("a\nb"), "\"a\nb\"");
        assert_eq!(csv_field("-abc"), "\"-abc\"", "ids are left as they are");
    }
}
