//! NATS subjects: dot-separated tokens; in a subscription, `*` matches one token and a final `>`
//! matches one or more. Both backends check subjects here, so a guest gets the same answer from
//! the embedded broker as from NATS.

/// Checks that `subject` is one a message can be sent to: no wildcards.
pub(crate) fn check_topic(subject: &str) -> Result<(), String> {
    check(subject)?;
    if subject.split('.').any(|token| token == "*" || token == ">") {
        return Err(format!(
            "`{subject}` has a wildcard: messages are sent to a plain subject"
        ));
    }
    Ok(())
}

/// Checks that `pattern` is one a subscription can be made to: `*` tokens anywhere, a `>`
/// token only at the end.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), String> {
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
    if subject.chars().any(char::is_whitespace) {
        return Err(format!("`{subject}` has whitespace in it"));
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
        assert!(check_pattern("orders.*.eu").is_ok());
        assert!(check_pattern("orders.>").is_ok());
        assert!(
            check_pattern("orders.>.eu")
                .unwrap_err()
                .contains("last token")
        );
    }
}
