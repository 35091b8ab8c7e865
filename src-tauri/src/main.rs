//! The Mandate desktop app. See `lib.rs`.

// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    mandate_app::run();
}
