//! Command-line mistakes in one line, for every executable: what the
//! argument parser printed (its reason, details, tip and usage), joined.

/// `text` is the parser's rendered error; the result has no line breaks.
pub fn one_line(text: &str) -> String {
    let mut line = String::new();
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("For more information")) {
        let (sep, l) = match (l.strip_prefix("tip: "), l.strip_prefix("Usage: ")) {
            (Some(tip), _) => ("; ", tip),
            (_, Some(usage)) => ("; usage: ", usage),
            _ => (" ", l.trim_start_matches("error: ")),
        };
        if !line.is_empty() {
            line.push_str(sep);
        }
        line.push_str(l);
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn joins_reason_tip_and_usage() {
        let text = "error: unexpected argument '--quot' found\n\n  tip: a similar argument exists: '--quota'\n\n\
                    Usage: tollgate plan add <NAME> --quota <QUOTA>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::one_line(text),
            "unexpected argument '--quot' found; a similar argument exists: '--quota'; usage: tollgate plan add <NAME> --quota <QUOTA>"
        );
    }
}
