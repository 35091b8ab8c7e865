//! The shortcuts for grant and receipt claims in their plain form against
//! the full parser: wherever a shortcut reads claims, the full parser
//! (strictness pass, then serde) reads the same claims. The shortcut may give up on anything;
//! it may never accept more, or read differently.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_core::Claims;
use mandate_core::token::{self, GrantClaims, ReceiptClaims};

fn same<C: Claims + PartialEq + std::fmt::Debug>(text: &str) {
    if let Some(plain) = C::read_plain(text) {
        assert_eq!(token::read_full::<C>(text), Ok(plain), "{text}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        same::<GrantClaims>(text);
        same::<ReceiptClaims>(text);
    }
});
