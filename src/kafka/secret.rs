//! A secret that never shows in `Debug` output, logs or errors: SASL
//! passwords and OAuth client secrets. Its own file, below both
//! [`security`](super::security) and [`token`](super::token), which use it.

use std::fmt;

/// A password that never shows in `Debug` output, logs or errors.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}
