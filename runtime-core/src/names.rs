//! Names of what guests store things in and under: the one rule for bucket and container names,
//! and the one reversible escaping of any other name (a key, an object) into the bytes a backend
//! allows.

use std::fmt::Write as _;

/// The longest bucket or container name: far below a file name's 255 bytes and NATS' limits.
pub const MAX_STORE_NAME: usize = 128;

/// Checks the name of a bucket, a container or the like (`kind` says which): 1 to
/// [`MAX_STORE_NAME`] letters, digits, `-` and `_`, which every backend takes as it is (a plain
/// file name, a NATS bucket or object store). Nothing else reaches a backend.
pub fn check_store_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_STORE_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "`{}` cannot be a {kind} name: use 1 to {MAX_STORE_NAME} letters, digits, `-` and `_`",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// A reversible escaping: the bytes a backend allows stay as they are, any other is written as
/// `marker` and two upper-case hex digits. Names that need no escaping are stored as they are.
#[derive(Clone, Copy, Debug)]
pub struct Escaping {
    /// The byte that starts an escape; `keep` must never keep it.
    pub marker: u8,
    /// Whether the byte at `index` of `bytes` may stay as it is.
    pub keep: fn(bytes: &[u8], index: usize) -> bool,
}

impl Escaping {
    /// `name` with every byte `keep` refuses escaped.
    pub fn escape(&self, name: &str) -> String {
        let bytes = name.as_bytes();
        let mut escaped = String::with_capacity(bytes.len());
        for (index, &byte) in bytes.iter().enumerate() {
            if byte != self.marker && (self.keep)(bytes, index) {
                escaped.push(char::from(byte));
            } else {
                let _ = write!(escaped, "{}{byte:02X}", char::from(self.marker));
            }
        }
        escaped
    }

    /// The bytes [`Escaping::escape`] made `stored` from. A marker not followed by two hex
    /// digits (a name some other client wrote) is taken as it is.
    pub fn unescape(&self, stored: &str) -> Vec<u8> {
        let bytes = stored.as_bytes();
        let mut name = Vec::with_capacity(bytes.len());
        let mut index = 0;
        while index < bytes.len() {
            let escaped = (bytes[index] == self.marker)
                .then(|| stored.get(index + 1..index + 3))
                .flatten()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            match escaped {
                Some(byte) => {
                    name.push(byte);
                    index += 3;
                }
                None => {
                    name.push(bytes[index]);
                    index += 1;
                }
            }
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LETTERS: Escaping = Escaping {
        marker: b'%',
        keep: |bytes, index| bytes[index].is_ascii_alphanumeric(),
    };

    #[test]
    fn store_names_are_letters_digits_dash_and_underscore() {
        for good in ["default", "a-b_c", "X9", &"n".repeat(MAX_STORE_NAME)] {
            assert_eq!(check_store_name("bucket", good), Ok(()));
        }
        for bad in [
            "",
            "has space",
            "../up",
            "a/b",
            "é",
            &"n".repeat(MAX_STORE_NAME + 1),
        ] {
            assert!(check_store_name("bucket", bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_store_name("container", "a b"),
            Err(
                "`a b` cannot be a container name: use 1 to 128 letters, digits, `-` and `_`"
                    .into()
            )
        );
    }

    #[test]
    fn escaping_round_trips_and_escapes_the_marker() {
        for (name, stored) in [
            ("ab", "ab"),
            ("a b", "a%20b"),
            ("%", "%25"),
            ("é", "%C3%A9"),
        ] {
            assert_eq!(LETTERS.escape(name), stored);
            assert_eq!(LETTERS.unescape(stored), name.as_bytes());
        }
        assert_eq!(LETTERS.unescape("50%"), b"50%");
        assert_eq!(LETTERS.unescape("%zz"), b"%zz");
    }
}
