//! Go `filepath.Match` patterns with `**`, for COPY sources and `.dockerignore`: `*`, `?`,
//! `[..]` classes and `\` escapes in a component, `**` for any number of components. Both come
//! from the build's inputs, so matching takes time linear in pattern times name.

/// Whether `path` components match `pattern` components (`*`, `?`, `[..]` in a component;
/// `**` for any number of components).
pub(super) fn matches(pattern: &[String], path: &[&str]) -> bool {
    wildcard(
        pattern,
        path,
        |p| p == "**",
        |p, name| component_matches(p, name),
    )
}

/// Whether something under the path `path` (components) could match `pattern`.
pub(super) fn could_match_below(pattern: &[String], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (_, None) => !pattern.is_empty(),
        (None, Some(_)) => false,
        (Some((first, _)), Some(_)) if first == "**" => true,
        (Some((first, rest)), Some((name, tail))) => {
            component_matches(first, name) && could_match_below(rest, tail)
        }
    }
}

fn component_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    wildcard(
        &tokens(&p),
        &n,
        |t| matches!(t, Token::Star),
        Token::matches,
    )
}

/// Whether `items` match `tokens`, where a star token matches any run of items and every other
/// token exactly one (`one` says whether it does). Greedy, going back only to the last star:
/// time is at most `tokens.len() * items.len()`, whatever either holds (naive recursion is
/// exponential in the number of stars).
fn wildcard<T, I>(
    tokens: &[T],
    items: &[I],
    is_star: impl Fn(&T) -> bool,
    one: impl Fn(&T, &I) -> bool,
) -> bool {
    let (mut t, mut i) = (0, 0);
    // The token after the last star seen, and the item it was tried at.
    let mut back: Option<(usize, usize)> = None;
    while i < items.len() {
        match tokens.get(t) {
            Some(token) if is_star(token) => {
                back = Some((t + 1, i));
                t += 1;
            }
            Some(token) if one(token, &items[i]) => {
                t += 1;
                i += 1;
            }
            _ => match back {
                Some((after, at)) => {
                    back = Some((after, at + 1));
                    (t, i) = (after, at + 1);
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(is_star)
}

/// One element of a component pattern (Go's `filepath.Match` syntax).
enum Token {
    Star,
    Any,
    Char(char),
    /// `[...]`: single characters and `a-z` ranges, `^` or `!` first to negate.
    Class {
        negate: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: &char) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Char(want) => want == c,
            Token::Class { negate, ranges } => {
                ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negate
            }
        }
    }
}

fn tokens(p: &[char]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => out.push(Token::Star),
            '?' => out.push(Token::Any),
            '[' => match p[i + 1..].iter().position(|c| *c == ']') {
                // No closing bracket: a literal `[`.
                None => out.push(Token::Char('[')),
                Some(end) => {
                    let class = &p[i + 1..i + 1 + end];
                    let (negate, class) = match class.split_first() {
                        Some(('^' | '!', tail)) => (true, tail),
                        _ => (false, class),
                    };
                    let mut ranges = Vec::new();
                    let mut k = 0;
                    while k < class.len() {
                        if k + 2 < class.len() && class[k + 1] == '-' {
                            ranges.push((class[k], class[k + 2]));
                            k += 3;
                        } else {
                            ranges.push((class[k], class[k]));
                            k += 1;
                        }
                    }
                    out.push(Token::Class { negate, ranges });
                    i += end + 1;
                }
            },
            '\\' if i + 1 < p.len() => {
                out.push(Token::Char(p[i + 1]));
                i += 1;
            }
            c => out.push(Token::Char(c)),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns come from the Dockerfile and `.dockerignore`, names from the context: a
    /// pattern with many `*` (or `**`) against a long name (or deep path) that almost matches
    /// must not take exponential time (it would hold one of berthd's threads forever).
    #[test]
    fn patterns_that_almost_match_take_linear_time() {
        let started = std::time::Instant::now();
        let name = "a".repeat(200);
        assert!(component_matches(&"*[a]".repeat(12), &name));
        assert!(!component_matches(&format!("{}b", "*a".repeat(12)), &name));
        assert!(component_matches(&format!("{}*", "*a".repeat(12)), &name));
        let deep: Vec<&str> = std::iter::repeat_n("a", 300).collect();
        let pattern: Vec<String> = std::iter::repeat_n(["**", "a"], 12)
            .flatten()
            .chain(["b"])
            .map(str::to_string)
            .collect();
        assert!(!matches(&pattern, &deep));
        assert!(matches(&pat("**/a/**"), &deep));
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    }

    fn pat(p: &str) -> Vec<String> {
        p.split('/').map(str::to_string).collect()
    }

    #[test]
    fn glob_classes() {
        assert!(component_matches("f[a-c]?.txt", "fb1.txt"));
        assert!(!component_matches("f[!a-c].txt", "fb.txt"));
        assert!(component_matches("\\*", "*"));
    }
}
