//! The memory floor for the desktop app (docs/benchmarks.md, "The app's
//! memory against the floor"): one window showing one static page, on the
//! same Tauri, WebKitGTK and features as `mandate-app`, and nothing else.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Err(e) = tauri::Builder::default().run(tauri::generate_context!()) {
        eprintln!("mandate-floor-app: {e}");
        std::process::exit(1);
    }
}
