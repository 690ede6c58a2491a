//! Bounded human-readable text: names and free-text descriptions.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Longest accepted text, in characters (Unicode scalar values).
            pub const MAX_CHARS: usize = $max;

            pub fn parse(text: impl Into<String>) -> Result<Self, String> {
                let text = text.into();
                let chars = text.chars().count();
                if chars == 0 {
                    return Err(format!("{} must not be empty", $what));
                }
                if chars > Self::MAX_CHARS {
                    return Err(format!(
                        "{} is {chars} characters long; at most {} are allowed",
                        $what,
                        Self::MAX_CHARS
                    ));
                }
                Ok(Self(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": $max,
                })
            }
        }
    };
}

bounded_text!(
    /// A name or short label: 1 to 200 characters.
    Name,
    200,
    "a name"
);

bounded_text!(
    /// A free-text description or reason: 1 to 4000 characters.
    Text,
    4000,
    "a text"
);
