//! Tauri's build step: the config and its (empty) capabilities.

fn main() {
    tauri_build::build();
}
