//! The demo `make run` acts out: three agents built on mandate-agent
//! ([`scenario`]), and the example resource servers they call
//! ([`resources`]). `docs/demo.md` tells the scenarios' stories.

#![forbid(unsafe_code)]

pub mod resources;
pub mod scenario;
