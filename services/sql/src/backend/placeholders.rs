//! SQLite's `?` placeholders in PostgreSQL's spelling, so that one statement text means the same
//! on both backends.
//!
//! The wasi:sql draft writes parameters as `?`, SQLite takes `?`, `?N` and `$N`, and PostgreSQL
//! takes only `$N`. A statement for PostgreSQL that has no `$N` gets each `?` outside string
//! literals, quoted identifiers, comments and dollar-quoted bodies renumbered the way SQLite
//! numbers it: `?N` is `$N`, and a bare `?` is one more than the largest number before it. A
//! statement with a `$N` is left as written, so `?` keeps its meaning as PostgreSQL's jsonb
//! operator there.
//!
//! The scan is one pass over the text, with no recursion and no allocation unless a `?` is found.

use std::borrow::Cow;

/// `sql` with its `?` placeholders written as PostgreSQL's `$N`; unchanged when it has none, or
/// when it already uses `$N`.
pub(crate) fn for_postgres(sql: &str) -> Cow<'_, str> {
    let mut marks = Vec::new();
    for token in Scan::new(sql) {
        match token {
            Token::Numbered => return Cow::Borrowed(sql),
            Token::Question { at, digits } => marks.push((at, digits)),
        }
    }
    if marks.is_empty() {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + marks.len() * 2);
    let (mut copied, mut largest) = (0, 0u64);
    for (at, digits) in marks {
        out.push_str(&sql[copied..at]);
        out.push('$');
        let number = &sql[at + 1..at + 1 + digits];
        if number.is_empty() {
            largest = largest.saturating_add(1);
            out.push_str(&largest.to_string());
        } else {
            // Copied as written: PostgreSQL refuses a number out of its range in its own words.
            out.push_str(number);
            largest = largest.max(number.parse().unwrap_or(u64::MAX));
        }
        copied = at + 1 + digits;
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// What the scan reports outside literals and comments.
enum Token {
    /// A `?` at byte `at`, followed by `digits` ASCII digits.
    Question { at: usize, digits: usize },
    /// A `$N` parameter.
    Numbered,
}

/// A lexer for PostgreSQL's quoting rules, just enough to find parameters.
struct Scan<'a> {
    text: &'a str,
    sql: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            text: sql,
            sql: sql.as_bytes(),
            at: 0,
        }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.sql.get(at).copied()
    }

    /// Whether the byte before `at` continues an identifier (or a number), so that a `$` or a
    /// quote at `at` belongs to it.
    fn after_word(&self, at: usize) -> bool {
        at > 0 && is_word(self.sql[at - 1])
    }

    fn digits_from(&self, at: usize) -> usize {
        self.sql[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    }

    /// Moves past the end of `'…'` (`''` inside is a quote), or of `E'…'`, where a backslash
    /// also escapes, or of `"…"` (`""` inside is a quote). `self.at` is on the opening quote.
    fn skip_quoted(&mut self, quote: u8, backslash_escapes: bool) {
        self.at += 1;
        while let Some(byte) = self.byte(self.at) {
            self.at += 1;
            if backslash_escapes && byte == b'\\' {
                self.at += 1;
            } else if byte == quote {
                if self.byte(self.at) == Some(quote) {
                    self.at += 1;
                } else {
                    return;
                }
            }
        }
    }

    /// Moves past a `/* … */` comment, which nests. `self.at` is on its `/`.
    fn skip_block_comment(&mut self) {
        let mut depth = 0usize;
        while self.at < self.sql.len() {
            if self.sql[self.at..].starts_with(b"/*") {
                depth += 1;
                self.at += 2;
            } else if self.sql[self.at..].starts_with(b"*/") {
                depth -= 1;
                self.at += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.at += 1;
            }
        }
    }

    /// The length of the dollar-quote tag (`$$` or `$tag$`) at `self.at`, if one starts there.
    fn dollar_tag(&self) -> Option<usize> {
        // Never a digit first: `$1` is a parameter, seen before this is asked.
        let rest = &self.sql[self.at + 1..];
        let name = rest
            .iter()
            .take_while(|b| **b != b'$' && is_word(**b))
            .count();
        (rest.get(name) == Some(&b'$')).then_some(name + 2)
    }
}

impl Iterator for Scan<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        while let Some(byte) = self.byte(self.at) {
            match byte {
                b'\'' => {
                    let escapes = self.at > 0
                        && matches!(self.sql[self.at - 1], b'E' | b'e')
                        && !self.after_word(self.at - 1);
                    self.skip_quoted(b'\'', escapes);
                }
                b'"' => self.skip_quoted(b'"', false),
                b'-' if self.byte(self.at + 1) == Some(b'-') => {
                    self.at = self.sql[self.at..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(self.sql.len(), |end| self.at + end);
                }
                b'/' if self.byte(self.at + 1) == Some(b'*') => self.skip_block_comment(),
                b'$' if !self.after_word(self.at) => {
                    let digits = self.digits_from(self.at + 1);
                    if digits > 0 {
                        return Some(Token::Numbered);
                    }
                    match self.dollar_tag() {
                        Some(tag_len) => {
                            // `str::find` is linear in the text, however long the tag.
                            let tag = &self.text[self.at..self.at + tag_len];
                            let body = self.at + tag_len;
                            self.at = self.text[body..]
                                .find(tag)
                                .map_or(self.sql.len(), |end| body + end + tag_len);
                        }
                        None => self.at += 1,
                    }
                }
                b'?' => {
                    let at = self.at;
                    let digits = self.digits_from(at + 1);
                    self.at += 1 + digits;
                    return Some(Token::Question { at, digits });
                }
                _ => self.at += 1,
            }
        }
        None
    }
}

/// Whether `byte` may continue a PostgreSQL identifier (non-ASCII letters included).
fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || !byte.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::for_postgres;

    #[test]
    fn question_marks_are_numbered_as_sqlite_numbers_them() {
        assert_eq!(
            for_postgres("INSERT INTO people (id, name) VALUES (1, ?)"),
            "INSERT INTO people (id, name) VALUES (1, $1)"
        );
        assert_eq!(for_postgres("SELECT ?, ?, ?"), "SELECT $1, $2, $3");
        // `?N` is the N-th; a bare `?` after it is one more than the largest so far.
        assert_eq!(for_postgres("SELECT ?2, ?, ?1, ?"), "SELECT $2, $3, $1, $4");
        assert_eq!(
            for_postgres("SELECT a FROM t WHERE b=?"),
            "SELECT a FROM t WHERE b=$1"
        );
    }

    #[test]
    fn quoted_text_and_comments_keep_their_question_marks() {
        let kept = [
            "SELECT 'why?', \"who?\" FROM t",
            "SELECT 'it''s ?' -- what?\n",
            "SELECT E'\\' ?' /* a ? /* nested ? */ still ? */",
            "SELECT $$ ? $$, $body$ it's ? $$ ? $body$",
            "SELECT 1 -- ? to the end",
        ];
        for sql in kept {
            assert_eq!(for_postgres(sql), sql);
        }
        assert_eq!(
            for_postgres("SELECT '?', ? -- ?\n, ? /* ? */, $$?$$, \"?\", ?"),
            "SELECT '?', $1 -- ?\n, $2 /* ? */, $$?$$, \"?\", $3"
        );
        // A quote after a word is not `E'…'`: `name'` ends nothing, `'\'` is a whole string.
        assert_eq!(for_postgres("SELECT '\\', ?"), "SELECT '\\', $1");
        assert_eq!(for_postgres("SELECT name'x', ?"), "SELECT name'x', $1");
    }

    #[test]
    fn a_statement_with_numbered_parameters_is_left_as_written() {
        // There `?` is PostgreSQL's jsonb operator.
        let sql = "SELECT data ? 'key' FROM t WHERE id = $1";
        assert_eq!(for_postgres(sql), sql);
        // `$` inside a word is part of it, not a parameter or a dollar quote.
        assert_eq!(for_postgres("SELECT a$1, ?"), "SELECT a$1, $1");
    }

    #[test]
    fn hostile_text_ends_the_scan_without_panicking() {
        let odd = [
            "'",
            "\"",
            "E'\\",
            "/*",
            "/* /* */",
            "$",
            "$$",
            "$a",
            "$a$ never closed ?",
            "--",
            "?",
            "?99999999999999999999999999, ?",
            "é?ü",
            "$é$ ? $é$ ?",
        ];
        for sql in odd {
            let _ = for_postgres(sql);
        }
        assert_eq!(for_postgres("é?ü"), "é$1ü");
        assert_eq!(
            for_postgres("?99999999999999999999999999, ?"),
            "$99999999999999999999999999, $18446744073709551615"
        );
        let deep = "/*".repeat(100_000) + "?";
        assert_eq!(for_postgres(&deep), deep);
        // A tag as long as the text: the search for its end stays linear.
        let tag = format!("${}$", "t".repeat(500_000));
        let long = format!("{tag} ? {} ?", "t".repeat(500_000));
        assert_eq!(for_postgres(&long), long);
    }
}
