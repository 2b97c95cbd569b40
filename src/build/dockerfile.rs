//! Reading a Dockerfile as Docker does: parser directives (`# syntax`, `# escape`) before the
//! first instruction, comments, line continuations with the escape character (comment lines
//! inside a continuation dropped), instruction keywords in any case, `--flag=value` options, and
//! the JSON (exec) form. Heredocs are refused with a clear error. Variable expansion is
//! `expand.rs`'s job; what each instruction means is the build loop's.

use super::BuildError;

/// One instruction, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub line: usize,
    /// Upper case: `RUN`, `COPY`, ...
    pub keyword: String,
    /// `--name=value` options, in order.
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// The instruction as written after joining continuations (for history and the cache).
    pub text: String,
}

/// An instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// The JSON form: `["a", "b"]`.
    Exec(Vec<String>),
    /// Everything after the keyword and flags, as written.
    Shell(String),
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The arguments as one string (the shell form; the exec form joined by spaces).
    pub fn raw(&self) -> String {
        match &self.args {
            Args::Shell(s) => s.clone(),
            Args::Exec(v) => v.join(" "),
        }
    }
}

/// Instructions that take `--flags`.
const FLAGGED: [&str; 5] = ["FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"];

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Vec<Instruction>, BuildError> {
    let lines: Vec<&str> = text.lines().collect();
    let (escape, first) = directives(&lines)?;
    let mut out = Vec::new();
    let mut i = first;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut joined = String::new();
        loop {
            let line = lines[i].trim_end();
            match line.strip_suffix(escape) {
                Some(head) => {
                    joined.push_str(head);
                    i += 1;
                    // Comment and empty lines inside a continuation are skipped.
                    while i < lines.len() {
                        let next = lines[i].trim_start();
                        if next.is_empty() || next.starts_with('#') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    if i == lines.len() {
                        break;
                    }
                }
                None => {
                    joined.push_str(line);
                    i += 1;
                    break;
                }
            }
        }
        out.push(instruction(start + 1, joined.trim())?);
    }
    Ok(out)
}

/// The escape character and the index of the first line after the parser directives.
fn directives(lines: &[&str]) -> Result<(char, usize), BuildError> {
    let mut escape = '\\';
    let mut seen = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(comment) = line.trim().strip_prefix('#') else {
            return Ok((escape, i));
        };
        let Some((name, value)) = comment.split_once('=') else {
            return Ok((escape, i));
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Ok((escape, i));
        }
        if seen.contains(&name) {
            return Err(BuildError::parse(
                i + 1,
                format!("directive {name} given twice"),
            ));
        }
        match name.as_str() {
            "escape" => {
                escape = match value.trim() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        let why = format!("escape must be \\ or `, not {other:?}");
                        return Err(BuildError::parse(i + 1, why));
                    }
                }
            }
            "syntax" | "check" => {} // a frontend image: berth has its own parser
            _ => return Ok((escape, i)),
        }
        seen.push(name);
    }
    Ok((escape, lines.len()))
}

fn instruction(line: usize, text: &str) -> Result<Instruction, BuildError> {
    let (keyword, mut rest) = match text.split_once(char::is_whitespace) {
        Some((k, r)) => (k.to_ascii_uppercase(), r.trim_start()),
        None => (text.to_ascii_uppercase(), ""),
    };
    let mut flags = Vec::new();
    if FLAGGED.contains(&keyword.as_str()) {
        while let Some(flag) = rest.strip_prefix("--") {
            let (word, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
            let (name, value) = word.split_once('=').unwrap_or((word, "true"));
            flags.push((name.to_string(), value.to_string()));
            rest = tail.trim_start();
        }
    }
    if rest.contains("<<") && matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        let heredoc = rest.split("<<").skip(1).any(|s| {
            s.trim_start_matches('-')
                .starts_with(|c: char| c.is_ascii_alphabetic() || c == '"' || c == '\'')
        });
        if heredoc {
            return Err(BuildError::parse(
                line,
                "heredocs (<<EOF) are not supported".into(),
            ));
        }
    }
    let args = match rest.starts_with('[') {
        true => match serde_json::from_str::<Vec<String>>(rest) {
            Ok(list) => Args::Exec(list),
            Err(_) => Args::Shell(rest.to_string()),
        },
        false => Args::Shell(rest.to_string()),
    };
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installer_dockerfile_parses() {
        let text = include_str!("../../manifests/installer/Dockerfile");
        let keywords: Vec<String> = parse(text)
            .unwrap()
            .into_iter()
            .map(|i| i.keyword)
            .collect();
        assert_eq!(
            keywords,
            ["ARG", "FROM", "ARG", "COPY", "COPY", "COPY", "ENTRYPOINT"],
            "no RUN: the image builds offline from its base"
        );
    }

    #[test]
    fn continuations_comments_and_case() {
        let text = "# syntax=docker/dockerfile:1\nfrom busybox AS base\n\n# a comment\nRUN echo a \\\n  # inside\n  && echo b\ncopy --from=base --chown=1:2 /a /b\nCMD [\"sh\", \"-c\", \"x\"]\n";
        let got = parse(text).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!((got[0].line, got[0].keyword.as_str()), (2, "FROM"));
        assert_eq!(got[0].raw(), "busybox AS base");
        assert_eq!(got[1].line, 5);
        assert_eq!(got[1].raw(), "echo a   && echo b");
        assert_eq!(got[2].flag("from"), Some("base"));
        assert_eq!(got[2].flag("chown"), Some("1:2"));
        assert_eq!(got[2].raw(), "/a /b");
        assert_eq!(
            got[3].args,
            Args::Exec(vec!["sh".into(), "-c".into(), "x".into()])
        );
    }

    #[test]
    fn escape_directive_changes_the_continuation_character() {
        let text = "# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n";
        let got = parse(text).unwrap();
        assert_eq!(got[1].raw(), "dir c:\\   && echo");
        // After the first instruction, a directive is just a comment.
        let late = parse("FROM x\n# escape=`\nRUN a `\n").unwrap();
        assert_eq!(late[1].raw(), "a `");
    }

    #[test]
    fn heredocs_are_refused_with_the_line() {
        let err = parse("FROM x\nRUN <<EOF\necho\nEOF\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains("heredoc"), "{err}");
        // A shell here-string is not a heredoc.
        assert!(parse("FROM x\nRUN cat <<< hi\n").is_ok());
    }

    #[test]
    fn a_bad_escape_is_an_error() {
        assert!(parse("# escape=x\nFROM y\n").is_err());
    }
}
