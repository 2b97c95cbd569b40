//! Docker's variable substitution in instruction arguments: `$NAME`, `${NAME}`,
//! `${NAME:-default}`, `${NAME:+alternative}`, with `\$` for a literal dollar. Unset names
//! expand to nothing. RUN, CMD and ENTRYPOINT are not expanded here (their shell does it).

use std::collections::BTreeMap;

/// Expands `text` with `vars`.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => {
                out.push('$');
                chars.next();
            }
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                out.push_str(&braced(&inner, vars));
            }
            '$' if chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') =>
            {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(vars.get(&name).map_or("", String::as_str));
            }
            c => out.push(c),
        }
    }
    out
}

fn braced(inner: &str, vars: &BTreeMap<String, String>) -> String {
    let value = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
    if let Some((name, default)) = inner.split_once(":-") {
        return value(name).unwrap_or_else(|| expand(default, vars));
    }
    if let Some((name, alternative)) = inner.split_once(":+") {
        return value(name)
            .map(|_| expand(alternative, vars))
            .unwrap_or_default();
    }
    vars.get(inner).cloned().unwrap_or_default()
}

/// Splits `a=b c="d e"` (or the legacy `NAME value`) into pairs, for ENV, LABEL and ARG.
pub fn pairs(text: &str, legacy: bool) -> Vec<(String, Option<String>)> {
    let words = shlex::split(text).unwrap_or_else(|| vec![text.to_string()]);
    if legacy && !words.first().is_some_and(|w| w.contains('=')) {
        let (name, rest) = text
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((text.trim(), ""));
        return vec![(name.to_string(), Some(rest.trim().to_string()))];
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_of_substitution() {
        let vars = BTreeMap::from([
            ("A".to_string(), "1".to_string()),
            ("EMPTY".to_string(), String::new()),
        ]);
        assert_eq!(
            expand("$A-${A}-$B-${B:-d}-${A:+x}-${EMPTY:-e}-\\$A", &vars),
            "1-1--d-x-e-$A"
        );
        assert_eq!(expand("cost: $ 5", &vars), "cost: $ 5");
    }

    #[test]
    fn env_and_label_pairs() {
        assert_eq!(
            pairs(r#"A=1 B="two words""#, true),
            [
                ("A".into(), Some("1".into())),
                ("B".into(), Some("two words".into()))
            ]
        );
        assert_eq!(
            pairs("NAME some value", true),
            [("NAME".into(), Some("some value".into()))]
        );
        assert_eq!(pairs("V", false), [("V".into(), None)]);
    }
}
