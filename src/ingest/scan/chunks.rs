//! Cutting a CSV byte stream into chunks of whole records, so that one large extract
//! can be parsed on several cores ([`super::scan`]).
//!
//! A cut is made only after a record terminator that the CSV reader itself would see as
//! one: a line break inside a quoted field (free text) is never a cut, and `\r\n` is
//! never split. The state machine follows the `csv` crate's reader: a quote opens a
//! quoted field only at the start of a field; inside one, a doubled quote (or the
//! escape byte) is a literal quote; `\r`, `\n` and `\r\n` end a record. Parsing each
//! chunk on its own therefore gives exactly the records of parsing the whole stream
//! (a property test below checks this against the `csv` crate).

use std::io::Read;

/// Where the reader is within a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field (or of a record).
    FieldStart,
    /// Inside a field that did not open with a quote (or after a quoted part).
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// A quote inside a quoted field: the field's end, or the first of a doubled quote.
    QuotedQuote,
    /// The byte after the escape byte inside a quoted field.
    Escaped,
    /// After a `\r` outside quotes: a terminator, perhaps the first half of `\r\n`.
    AfterCr,
    /// Just past a record terminator: the next byte starts a record.
    Boundary,
}

/// The CSV dialect the cutter follows (the source's `csv:` settings).
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
    pub escape: Option<u8>,
}

impl Dialect {
    /// A doubled quote is a literal quote unless the source declares an escape byte
    /// (as the scan configures its reader).
    fn double_quote(&self) -> bool {
        self.escape.is_none()
    }
}

/// Finds record boundaries in a byte stream fed to it piece by piece.
#[derive(Debug, Clone)]
pub struct Cutter {
    dialect: Dialect,
    state: State,
}

impl Cutter {
    pub fn new(dialect: Dialect) -> Cutter {
        Cutter {
            dialect,
            state: State::FieldStart,
        }
    }

    /// Feed the next bytes of the stream, stopping at the first record boundary at or
    /// after `min` bytes into them: returns that boundary's offset (the bytes from it on
    /// are not consumed), or `None` when there is none (all bytes consumed).
    pub fn first_cut(&mut self, bytes: &[u8], min: usize) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            // Runs of bytes that cannot change the state are skipped (most of the text).
            match self.skip(&bytes[i..]) {
                Some(n) => i += n,
                None => return None,
            }
            let b = bytes[i];
            if self.state == State::AfterCr && b != b'\n' && i >= min {
                // A lone `\r` ended the record: cut before this byte.
                self.state = State::Boundary;
                return Some(i);
            }
            self.state = self.step(b);
            if self.state == State::Boundary && i + 1 >= min {
                return Some(i + 1);
            }
            i += 1;
        }
        None
    }

    /// How many leading bytes of `bytes` leave the state as it is after them (set
    /// here); `None` when that is all of them.
    fn skip(&mut self, bytes: &[u8]) -> Option<usize> {
        let d = self.dialect;
        match self.state {
            State::Unquoted => {
                // Outside quotes only a line break, or a quote right after a delimiter
                // (the start of a quoted field), matters.
                let Some(j) = memchr::memchr3(d.quote, b'\n', b'\r', bytes) else {
                    if bytes.last() == Some(&d.delimiter) {
                        self.state = State::FieldStart;
                    }
                    return None;
                };
                if j > 0 && bytes[j - 1] == d.delimiter {
                    self.state = State::FieldStart;
                }
                Some(j)
            }
            State::Quoted => match d.escape {
                Some(e) => memchr::memchr2(d.quote, e, bytes),
                None => memchr::memchr(d.quote, bytes),
            },
            _ => Some(0),
        }
    }

    /// The state after byte `b`.
    fn step(&self, b: u8) -> State {
        let d = self.dialect;
        match self.state {
            State::Quoted if b == d.quote => State::QuotedQuote,
            State::Quoted if Some(b) == d.escape => State::Escaped,
            State::Quoted => State::Quoted,
            State::Escaped => State::Quoted,
            State::AfterCr if b == b'\n' => State::Boundary,
            State::AfterCr | State::FieldStart | State::Boundary if b == d.quote => State::Quoted,
            State::QuotedQuote if d.double_quote() && b == d.quote => State::Quoted,
            State::AfterCr
            | State::FieldStart
            | State::Boundary
            | State::Unquoted
            | State::QuotedQuote => self.unquoted(b),
        }
    }

    /// The state after `b` outside quotes.
    fn unquoted(&self, b: u8) -> State {
        match b {
            b'\n' => State::Boundary,
            b'\r' => State::AfterCr,
            _ if b == self.dialect.delimiter => State::FieldStart,
            _ => State::Unquoted,
        }
    }
}

/// Reads a stream as chunks of whole records: each chunk ends at the first record
/// boundary at or after `target` bytes (a record longer than that makes a longer
/// chunk), so where the chunks fall depends only on the bytes, not on how reads return.
pub struct Chunks<R> {
    input: R,
    cutter: Cutter,
    target: usize,
    /// Bytes read and not yet handed out; `pending[..scanned]` went through the cutter.
    pending: Vec<u8>,
    scanned: usize,
    eof: bool,
}

impl<R: Read> Chunks<R> {
    pub fn new(input: R, dialect: Dialect, target: usize) -> Chunks<R> {
        Chunks {
            input,
            cutter: Cutter::new(dialect),
            target: target.max(1),
            pending: Vec::new(),
            scanned: 0,
            eof: false,
        }
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            let min = self.target.saturating_sub(self.scanned);
            if let Some(c) = self.cutter.first_cut(&self.pending[self.scanned..], min) {
                let rest = self.pending.split_off(self.scanned + c);
                self.scanned = 0;
                return Ok(Some(std::mem::replace(&mut self.pending, rest)));
            }
            self.scanned = self.pending.len();
            if self.eof {
                // What is left is the last record, terminated or not.
                self.scanned = 0;
                return Ok((!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending)));
            }
            self.fill()?;
        }
    }

    /// Read more of the stream, into the chunk's own buffer: reserved once for a whole
    /// chunk, and not zeroed first.
    fn fill(&mut self) -> std::io::Result<()> {
        let want = (self.target / 4).clamp(1, 1 << 20);
        let start = self.pending.len();
        self.pending
            .reserve((self.target + want).saturating_sub(start).max(want));
        match (&mut self.input)
            .take(want as u64)
            .read_to_end(&mut self.pending)
        {
            Ok(n) => {
                self.eof = n == 0;
                Ok(())
            }
            Err(e) => {
                self.pending.truncate(start);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Trickle;
    use super::*;
    use proptest::prelude::*;

    fn records(bytes: &[u8], d: Dialect) -> Vec<Vec<Vec<u8>>> {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(d.delimiter)
            .quote(d.quote)
            .escape(d.escape)
            .double_quote(d.double_quote())
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        rdr.byte_records()
            .map(|r| {
                r.map(|r| r.iter().map(<[u8]>::to_vec).collect())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn chunked(bytes: &[u8], d: Dialect, target: usize, read: usize) -> Vec<Vec<u8>> {
        let mut chunks = Chunks::new(Trickle(bytes, read), d, target);
        let mut out = Vec::new();
        while let Some(c) = chunks.next_chunk().unwrap() {
            out.push(c);
        }
        out
    }

    const PLAIN: Dialect = Dialect {
        delimiter: b',',
        quote: b'"',
        escape: None,
    };

    #[test]
    fn line_breaks_inside_quotes_are_never_cuts() {
        let text = b"a,\"x\ny\",b\n\"q\"\"\n\",c\r\nlast";
        for target in 1..text.len() + 2 {
            let chunks = chunked(text, PLAIN, target, 3);
            assert_eq!(chunks.concat(), text.to_vec());
            for c in &chunks[..chunks.len() - 1] {
                assert!(c.ends_with(b"\n"), "{:?}", String::from_utf8_lossy(c));
            }
            let starts: Vec<&[u8]> = chunks.iter().map(|c| &c[..1]).collect();
            assert!(
                starts
                    .iter()
                    .all(|s| *s == b"a" || *s == b"\"" || *s == b"l")
            );
        }
    }

    #[test]
    fn a_lone_carriage_return_ends_a_record() {
        let chunks = chunked(b"a\rb\rc", PLAIN, 1, 1);
        assert_eq!(
            chunks,
            vec![b"a\r".to_vec(), b"b\r".to_vec(), b"c".to_vec()]
        );
    }

    fn dialect() -> impl Strategy<Value = Dialect> {
        prop_oneof![
            Just(PLAIN),
            Just(Dialect {
                delimiter: b'|',
                quote: b'"',
                escape: Some(b'\\'),
            }),
            Just(Dialect {
                delimiter: b';',
                quote: b'\'',
                escape: None,
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Parsing the chunks one by one gives the records of parsing the whole stream.
        #[test]
        fn chunks_parse_to_the_same_records(
            bytes in proptest::collection::vec(
                prop::sample::select(b"ab,|;\"'\\\r\n ".to_vec()), 0..200),
            d in dialect(),
            target in 1usize..40,
            read in 1usize..17,
        ) {
            let whole = records(&bytes, d);
            let chunks = chunked(&bytes, d, target, read);
            prop_assert_eq!(chunks.concat(), bytes.clone());
            let pieces: Vec<Vec<Vec<u8>>> =
                chunks.iter().flat_map(|c| records(c, d)).collect();
            prop_assert_eq!(pieces, whole);
        }
    }
}
