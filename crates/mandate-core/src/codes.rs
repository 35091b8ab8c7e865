//! Stable error codes as data. Each code comes with the HTTP status it is
//! answered with (where one is), what it means, and what the caller should
//! do. `docs/errors.md` is generated from these tables (`make docs`), and a
//! test fails while it is stale.

/// One stable error code, documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeDoc {
    /// The code, such as `chain.revoked`.
    pub code: &'static str,
    /// The HTTP status it is answered with, where it is answered over HTTP
    /// with one status only.
    pub status: Option<u16>,
    /// What went wrong, in a sentence.
    pub meaning: &'static str,
    /// What the caller should do about it.
    pub remedy: &'static str,
}

/// Declares an enum of error codes whose every variant carries its
/// [`CodeDoc`], with `ALL` (every variant, in order), `doc()` and
/// `as_str()`:
///
/// ```
/// mandate_core::error_codes! {
///     /// Why a thing failed.
///     pub enum Code {
///         /// Too slow.
///         Slow = ("thing.slow", Some(503), "It was slow.", "Try again."),
///     }
/// }
/// assert_eq!(Code::Slow.as_str(), "thing.slow");
/// assert_eq!(Code::ALL.len(), 1);
/// ```
#[macro_export]
macro_rules! error_codes {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = ($code:literal, $status:expr, $meaning:literal, $remedy:literal $(,)?),
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )*
        }

        impl $name {
            /// Every code, in the order they are documented.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The code, its status, its meaning and its remedy.
            pub const fn doc(self) -> $crate::codes::CodeDoc {
                match self {
                    $(
                        $name::$variant => $crate::codes::CodeDoc {
                            code: $code,
                            status: $status,
                            meaning: $meaning,
                            remedy: $remedy,
                        },
                    )*
                }
            }

            /// The stable code.
            pub const fn as_str(self) -> &'static str {
                self.doc().code
            }

            /// The HTTP status it is answered with: its own, or 400 for a
            /// code that names none.
            pub const fn http_status(self) -> u16 {
                match self.doc().status {
                    Some(status) => status,
                    None => 400,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
