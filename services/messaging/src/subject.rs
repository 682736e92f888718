//! NATS subjects: dot-separated tokens; in a subscription, `*` matches one token and a final `>`
//! matches one or more. Both backends check subjects here, so a guest gets the same answer from
//! the embedded broker as from NATS.
//!
//! A guest's subjects travel on tempo's own NATS connection, so they are checked before anything
//! is sent: no `$` subjects (JetStream's API, KV and object stores, the system account), nothing
//! the protocol cannot carry, and metadata that is valid as NATS headers. A bad one is the
//! guest's error and never reaches the server, which would close the shared connection.

/// The longest subject, in bytes: well inside NATS' 4096-byte control line, which also carries
/// the reply subject and the sizes.
pub(crate) const MAX_SUBJECT_BYTES: usize = 1024;

/// The prefix of the reply subjects requests carry (async-nats' and the embedded broker's).
pub(crate) const INBOX_PREFIX: &str = "_INBOX.";

/// Checks that `subject` is one a guest can send to: no wildcards, and not a `$` subject.
pub(crate) fn check_topic(subject: &str) -> Result<(), String> {
    check(subject)?;
    if subject.split('.').any(|token| token == "*" || token == ">") {
        return Err(format!(
            "`{subject}` has a wildcard: messages are sent to a plain subject"
        ));
    }
    if subject.starts_with('$') {
        return Err(format!(
            "`{subject}` is a NATS system subject (`$…`), which guests cannot send to"
        ));
    }
    Ok(())
}

/// Checks that `subject`, a received message's reply-to, is an inbox a guest may answer: a
/// hostile sender chooses it, and must not make the guest write to anything else.
pub(crate) fn check_reply_subject(subject: &str) -> Result<(), String> {
    check_topic(subject)?;
    if !subject.starts_with(INBOX_PREFIX) {
        return Err(format!(
            "the reply subject `{subject}` is not an inbox (`{INBOX_PREFIX}…`): tempo answers only inboxes"
        ));
    }
    Ok(())
}

/// Checks a message's metadata and content type: each key a header name (1 to 256 visible
/// ASCII characters but `:`), each value free of control characters (no CR or LF to split a
/// header), so that NATS carries them as headers.
pub(crate) fn check_headers<'a>(
    metadata: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    for (key, value) in metadata {
        if key.is_empty()
            || key.len() > 256
            || !key.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        {
            return Err(format!(
                "the metadata key `{}` is not a valid header name: use 1 to 256 visible ASCII characters but `:`",
                key.escape_debug()
            ));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!(
                "the metadata value of `{key}` has a control character (such as CR or LF) in it"
            ));
        }
    }
    Ok(())
}

/// Checks that `pattern` is one a subscription can be made to: `*` tokens anywhere, a `>`
/// token only at the end.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    check(pattern)?;
    let tokens: Vec<&str> = pattern.split('.').collect();
    if tokens[..tokens.len() - 1].contains(&">") {
        return Err(format!("`{pattern}`: `>` may only be the last token"));
    }
    Ok(())
}

fn check(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("the subject is empty".into());
    }
    if subject.len() > MAX_SUBJECT_BYTES {
        return Err(format!(
            "a subject of {} bytes is longer than the limit of {MAX_SUBJECT_BYTES}",
            subject.len()
        ));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{}` has whitespace or a control character in it",
            subject.escape_debug()
        ));
    }
    if subject.split('.').any(str::is_empty) {
        return Err(format!(
            "`{subject}` has an empty token: no leading, trailing or doubled `.`"
        ));
    }
    Ok(())
}

/// Whether the subscription `pattern` receives messages sent to `subject`.
pub(crate) fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (token, Some(word)) if token == word => {}
            _ => return false,
        }
    }
    subject.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_subjects_match_only_themselves() {
        assert!(matches("orders.new", "orders.new"));
        assert!(!matches("orders.new", "orders.new.eu"));
        assert!(!matches("orders.new", "orders"));
        assert!(!matches("orders.new", "orders.old"));
    }

    #[test]
    fn a_star_matches_exactly_one_token() {
        assert!(matches("orders.*", "orders.new"));
        assert!(matches("*.new", "orders.new"));
        assert!(matches("orders.*.eu", "orders.new.eu"));
        assert!(!matches("orders.*", "orders"));
        assert!(!matches("orders.*", "orders.new.eu"));
    }

    #[test]
    fn a_final_greater_than_matches_one_or_more_tokens() {
        assert!(matches("orders.>", "orders.new"));
        assert!(matches("orders.>", "orders.new.eu.berlin"));
        assert!(!matches("orders.>", "orders"));
        assert!(matches(">", "anything.at.all"));
        assert!(!matches("orders.>", "invoices.new"));
    }

    #[test]
    fn wildcards_are_whole_tokens_only() {
        assert!(!matches("ord*.new", "orders.new"));
        assert!(matches("ord*.new", "ord*.new"));
    }

    #[test]
    fn guests_reach_no_system_subject_and_answer_only_inboxes() {
        for system in [
            "$JS.API.STREAM.LIST",
            "$KV.default.visits",
            "$O.photos.C.x",
            "$SYS.REQ",
        ] {
            assert!(check_topic(system).unwrap_err().contains("system subject"));
            assert!(check_reply_subject(system).is_err());
        }
        assert!(check_reply_subject("_INBOX.abc.1").is_ok());
        assert!(
            check_reply_subject("orders.new")
                .unwrap_err()
                .contains("not an inbox")
        );
        assert!(check_reply_subject("_INBOX.*").is_err());
    }

    #[test]
    fn metadata_must_be_valid_headers() {
        assert!(check_headers([("trace-id", "abc"), ("X-Tab", "a\tb")]).is_ok());
        for (key, value) in [("a:b", "v"), ("", "v"), ("sp ace", "v"), ("é", "v")] {
            assert!(
                check_headers([(key, value)])
                    .unwrap_err()
                    .contains("header name")
            );
        }
        for value in ["a\r\nInjected: yes", "bell\u{7}"] {
            assert!(
                check_headers([("k", value)])
                    .unwrap_err()
                    .contains("control")
            );
        }
    }

    #[test]
    fn bad_subjects_are_refused_with_the_reason() {
        assert!(check_topic("orders.new").is_ok());
        assert!(check_topic("orders.*").unwrap_err().contains("wildcard"));
        assert!(check_topic("orders.>").unwrap_err().contains("wildcard"));
        assert!(check_topic("").unwrap_err().contains("empty"));
        assert!(
            check_topic("orders..new")
                .unwrap_err()
                .contains("empty token")
        );
        assert!(check_topic(".orders").unwrap_err().contains("empty token"));
        assert!(
            check_topic("orders new")
                .unwrap_err()
                .contains("whitespace")
        );
        assert!(check_topic("orders\0new").unwrap_err().contains("control"));
        let long = format!("a.{}", "b".repeat(MAX_SUBJECT_BYTES));
        assert!(
            check_topic(&long)
                .unwrap_err()
                .contains("longer than the limit")
        );
        assert!(check_pattern(&long).is_err());
        assert!(check_pattern("orders.*.eu").is_ok());
        assert!(check_pattern("orders.>").is_ok());
        assert!(
            check_pattern("orders.>.eu")
                .unwrap_err()
                .contains("last token")
        );
    }
}
