//! An OpenVPN config file (server.conf) read as OpenVPN reads it, for
//! `tollgate doctor`: one directive per line, its arguments split on blanks
//! with "double" and 'single' quotes and backslash escapes, `#` and `;`
//! comments, an optional leading `--`, and inline `<ca>…</ca>` blocks
//! skipped. `config` includes are not followed.

/// One directive and its arguments, with its line number (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub line: usize,
    pub name: String,
    pub args: Vec<String>,
}

/// Every directive of the file, in order (a repeated one appears twice;
/// for single-valued options OpenVPN takes the last).
pub fn parse(text: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut inline: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(tag) = &inline {
            if trimmed == format!("</{tag}>") {
                inline = None;
            }
            continue;
        }
        if let Some(tag) = trimmed.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
            if !tag.starts_with('/') && !tag.is_empty() {
                inline = Some(tag.to_string());
                continue;
            }
        }
        let mut words = split(line);
        if words.is_empty() {
            continue;
        }
        let name = words.remove(0);
        let name = name.strip_prefix("--").unwrap_or(&name).to_string();
        out.push(Directive { line: i + 1, name, args: words });
    }
    out
}

/// The last directive of this name, as OpenVPN keeps the last of a
/// single-valued option.
pub fn last<'a>(conf: &'a [Directive], name: &str) -> Option<&'a Directive> {
    conf.iter().rev().find(|d| d.name == name)
}

/// Split one line into words as OpenVPN does: blanks separate, quotes group
/// (no escapes inside single quotes), a backslash escapes the next
/// character elsewhere, and `#` or `;` at the start of a word ends the line.
/// Hook commands (`client-connect "/path --flag"`) are split the same way.
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '#' | ';') if !in_word => break,
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quotes_escapes_and_comments() {
        assert_eq!(split("  port 1194 # the port"), ["port", "1194"]);
        assert_eq!(split("; all comment"), Vec::<String>::new());
        assert_eq!(
            split(r#"auth-user-pass-verify "/usr/libexec/x --config /etc/a b.toml" via-file"#),
            ["auth-user-pass-verify", "/usr/libexec/x --config /etc/a b.toml", "via-file"]
        );
        assert_eq!(split(r"push 'route 10.0.0.0 255.0.0.0'"), ["push", "route 10.0.0.0 255.0.0.0"]);
        assert_eq!(split(r"a b\ c d#e"), ["a", "b c", "d#e"]);
        assert_eq!(split(r#"x "" y"#), ["x", "", "y"]);
    }

    #[test]
    fn reads_directives_and_skips_inline_blocks() {
        let conf = parse("--port 1194\n<ca>\nscript-security 3\n</ca>\nscript-security 2\n\n# x\nscript-security 1\n");
        let names: Vec<_> = conf.iter().map(|d| (d.line, d.name.as_str())).collect();
        assert_eq!(names, [(1, "port"), (5, "script-security"), (8, "script-security")]);
        assert_eq!(last(&conf, "script-security").unwrap().args, ["1"]);
        assert!(last(&conf, "tmp-dir").is_none());
    }
}
