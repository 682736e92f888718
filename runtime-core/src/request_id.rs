//! The id of one unit of work (an HTTP request, a message): it ties together the guest's log
//! lines, the host's span and the response.

use std::fmt;
use std::sync::Arc;

/// Identifies one request or message. Shown with every line the guest logs while handling it,
/// recorded on its span, and sent back in `x-request-id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

/// The longest id taken from a client's `x-request-id`.
const MAX_LEN: usize = 64;

impl RequestId {
    /// A fresh random id: 16 lowercase hex digits.
    pub fn generate() -> Self {
        Self(format!("{:016x}", rand::random::<u64>()).into())
    }

    /// The id a client chose (e.g. in `x-request-id`), if it is 1 to 64 visible ASCII
    /// characters; anything else is ignored so that a client cannot forge log lines.
    pub fn from_client(value: &str) -> Option<Self> {
        let fits =
            (1..=MAX_LEN).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
        fits.then(|| Self(value.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_eq!(a.as_str().len(), 16);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn client_ids_must_be_short_visible_ascii() {
        assert_eq!(
            RequestId::from_client("abc-123").map(|id| id.to_string()),
            Some("abc-123".to_owned())
        );
        for bad in ["", "has space", "new\nline", "é", &"x".repeat(65)] {
            assert_eq!(RequestId::from_client(bad), None, "{bad:?}");
        }
    }
}
