//! The output of one RUN step as the client sees it, bounded: lines of at most [`MAX_LINE`]
//! bytes (longer ones are cut into pieces), at most `limit` bytes in all. Past the limit the
//! output is still read, so the step never blocks on a full pipe, but dropped; one marker line
//! says how much. Memory stays at one line whatever the step prints.

/// Longest line forwarded as one; a longer line is forwarded in pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;

/// The bounded line splitter of one step's output.
pub struct Clip {
    limit: u64,
    forwarded: u64,
    dropped: u64,
    partial: Vec<u8>,
}

impl Clip {
    /// At most `limit` bytes forwarded (line ends not counted).
    pub fn new(limit: u64) -> Clip {
        Clip {
            limit,
            forwarded: 0,
            dropped: 0,
            partial: Vec::new(),
        }
    }

    /// Takes the next bytes of output; calls `out` with each complete line that fits.
    pub fn feed(&mut self, bytes: &[u8], out: &mut dyn FnMut(String)) {
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            let (text, ends) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let mut text = text;
            while self.partial.len() + text.len() > MAX_LINE {
                let take = MAX_LINE - self.partial.len();
                self.partial.extend_from_slice(&text[..take]);
                text = &text[take..];
                self.line(out);
            }
            self.partial.extend_from_slice(text);
            if ends {
                self.line(out);
            }
        }
    }

    /// The end of the output: the last unterminated line, then the marker if anything was
    /// dropped.
    pub fn finish(mut self, out: &mut dyn FnMut(String)) {
        if !self.partial.is_empty() {
            self.line(out);
        }
        if self.dropped > 0 {
            out(format!(
                "[output clipped: {} more bytes not shown; build.max_output is {} bytes]",
                self.dropped, self.limit
            ));
        }
    }

    fn line(&mut self, out: &mut dyn FnMut(String)) {
        let len = self.partial.len() as u64;
        if self.dropped == 0 && self.forwarded + len <= self.limit {
            self.forwarded += len;
            out(String::from_utf8_lossy(&self.partial).into_owned());
        } else {
            self.dropped += len.max(1);
        }
        self.partial.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(limit: u64, chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut clip = Clip::new(limit);
        for chunk in chunks {
            clip.feed(chunk, &mut |l| lines.push(l));
        }
        clip.finish(&mut |l| lines.push(l));
        lines
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        assert_eq!(
            run(100, &[b"one\ntw", b"o\nthree"]),
            ["one", "two", "three"]
        );
    }

    #[test]
    fn a_huge_line_comes_in_bounded_pieces() {
        let big = vec![b'a'; MAX_LINE * 3 + 5];
        let lines = run(u64::MAX, &[&big]);
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE));
        assert_eq!(lines[3].len(), 5);
    }

    #[test]
    fn output_past_the_limit_is_dropped_with_one_marker() {
        let chunk = b"0123456789\n".repeat(1000);
        let lines = run(95, &[&chunk, &chunk]);
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert!(lines[..9].iter().all(|l| l == "0123456789"));
        assert_eq!(
            lines[9],
            "[output clipped: 19910 more bytes not shown; build.max_output is 95 bytes]"
        );
    }
}
