//! Lines out of chunks: a line may be split across any number of chunks, and only the
//! unfinished line is kept between them, capped so a file without newlines cannot grow it.

/// The longest line kept whole. G-code and ASCII STL lines are far shorter; a longer one is
/// either skipped (G-code) or an error (STL), but never buffered past this.
pub const MAX_LINE: usize = 64 * 1024;

/// One line as it was cut out: its bytes (at most `MAX_LINE` of them, without the newline)
/// and whether it was longer and cut.
pub struct Line<'a> {
    pub bytes: &'a [u8],
    pub too_long: bool,
    /// 1-based, for error messages.
    pub number: u64,
}

#[derive(Default)]
pub struct LineSplitter {
    /// The unfinished line so far.
    partial: Vec<u8>,
    /// The unfinished line passed `MAX_LINE`; the rest of it is dropped.
    too_long: bool,
    lines: u64,
}

impl LineSplitter {
    /// Calls `on_line` for every line the chunk completes, in order.
    pub fn feed<E>(&mut self, chunk: &[u8], mut on_line: impl FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (piece, after) = (&rest[..end], &rest[end + 1..]);
            rest = after;
            self.lines += 1;
            if self.partial.is_empty() && !self.too_long {
                // The common case: the whole line is in this chunk, no copy.
                let kept = &piece[..piece.len().min(MAX_LINE)];
                on_line(Line { bytes: kept, too_long: piece.len() > MAX_LINE, number: self.lines })?;
            } else {
                self.append(piece);
                let line = Line { bytes: &self.partial, too_long: self.too_long, number: self.lines };
                let result = on_line(line);
                self.partial.clear();
                self.too_long = false;
                result?;
            }
        }
        self.append(rest);
        Ok(())
    }

    /// The last line when the file does not end with a newline.
    pub fn finish<E>(mut self, mut on_line: impl FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        if self.partial.is_empty() && !self.too_long {
            return Ok(());
        }
        self.lines += 1;
        on_line(Line { bytes: &self.partial, too_long: self.too_long, number: self.lines })
    }

    fn append(&mut self, piece: &[u8]) {
        let room = MAX_LINE - self.partial.len();
        if piece.len() > room {
            self.too_long = true;
        }
        self.partial.extend_from_slice(&piece[..piece.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut seen = Vec::new();
        let mut splitter = LineSplitter::default();
        for chunk in chunks {
            splitter
                .feed::<()>(chunk, |line| {
                    seen.push((line.bytes.to_vec(), line.too_long));
                    Ok(())
                })
                .unwrap();
        }
        splitter
            .finish::<()>(|line| {
                seen.push((line.bytes.to_vec(), line.too_long));
                Ok(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn lines_across_chunks() {
        let expected = vec![(b"ab".to_vec(), false), (b"".to_vec(), false), (b"cd".to_vec(), false)];
        assert_eq!(split(&[b"ab\n\ncd"]), expected);
        assert_eq!(split(&[b"a", b"b\n", b"\nc", b"d"]), expected);
        assert_eq!(split(&[b"ab\n\ncd\n"]), expected);
    }

    #[test]
    fn long_lines_are_cut_not_buffered() {
        let long = vec![b'x'; MAX_LINE + 10];
        let seen = split(&[&long, b"\nok"]);
        assert_eq!(seen[0].0.len(), MAX_LINE);
        assert!(seen[0].1);
        assert_eq!(seen[1], (b"ok".to_vec(), false));
        let mut in_one = long.clone();
        in_one.extend_from_slice(b"\nok");
        let seen = split(&[&in_one]);
        assert!(seen[0].1);
        assert_eq!(seen[1], (b"ok".to_vec(), false));
    }
}
