//! Writes the chain-verification test vectors, one JSON file per case.
//!
//!     cargo run -p mandate-core --example gen_vectors -- tests/vectors
//!
//! The output is a pure function of this program: regenerating gives the
//! same bytes, and the `vectors_are_stable` test checks the committed files.

#![allow(clippy::expect_used, clippy::print_stdout)]

mod fixture;
mod invalid;
mod tiers;
mod valid;
mod witness;

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "tests/vectors".into()),
    );
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(path)?;
        }
    }
    let cast = fixture::Cast::new();
    let cases: Vec<_> = valid::cases(&cast)
        .into_iter()
        .chain(invalid::cases(&cast))
        .chain(tiers::cases(&cast))
        .chain(witness::cases(&cast))
        .collect();
    for (name, vector) in &cases {
        let mut text = serde_json::to_string_pretty(vector).expect("vector serializes");
        text.push('\n');
        std::fs::write(dir.join(format!("{name}.json")), text)?;
    }
    println!("wrote {} vectors to {}", cases.len(), dir.display());
    Ok(())
}
