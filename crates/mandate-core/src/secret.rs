//! Secret text: bearer tokens, ID tokens used as bearers, refresh tokens.
//! A [`Secret`] prints as `[redacted]` under both `Debug` and `Display`,
//! has no `Serialize`, and is wiped from memory when dropped, so a log
//! line, a panic message or an error chain that formats one carries no
//! secret. Reading it takes a deliberate [`Secret::expose`].

use std::fmt;

use zeroize::Zeroizing;

/// A secret string (see the module docs).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(text.into()))
    }

    /// The secret itself, for the one place that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret::new(text)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(s))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn formatting_never_shows_the_secret() {
        let s = Secret::new("eyJhbGciOiJFZERTQSJ9.the-bearer.sig");
        for shown in [
            format!("{s:?}"),
            format!("{s}"),
            format!("{s:#?}"),
            format!("{:?}", Some(&s)),
        ] {
            assert!(!shown.contains("the-bearer"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
        assert_eq!(s.expose(), "eyJhbGciOiJFZERTQSJ9.the-bearer.sig");
        assert_eq!("x".parse::<Secret>().unwrap().expose(), "x");
    }
}
