//! The output symbols of a CTC acoustic model, in DeepSpeech's `alphabet.txt` form.

use crate::{Error, Result};

/// Ordered output symbols; the CTC blank is the index after the last symbol.
///
/// File form (DeepSpeech's): one symbol per line, in output order; a line holding one space is
/// the word separator; lines starting with `#` are comments and `\#` is a literal `#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alphabet {
    symbols: Vec<String>,
    space: Option<u32>,
}

impl Alphabet {
    /// Parse `alphabet.txt`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut symbols = Vec::new();
        for (n, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with('#') || (line.is_empty() && n > 0) {
                continue;
            }
            let sym = if line == "\\#" { "#" } else { line };
            if sym.chars().count() != 1 {
                return Err(Error::Alphabet(format!(
                    "line {}: {sym:?} is not exactly one character",
                    n + 1
                )));
            }
            if symbols.iter().any(|s| s == sym) {
                return Err(Error::Alphabet(format!("line {}: {sym:?} appears twice", n + 1)));
            }
            symbols.push(sym.to_owned());
        }
        Self::from_symbols(symbols)
    }

    /// Build from symbols in output order.
    pub fn from_symbols(symbols: Vec<String>) -> Result<Self> {
        if symbols.is_empty() {
            return Err(Error::Alphabet("no symbols".into()));
        }
        if symbols.len() > 250 {
            return Err(Error::Alphabet(format!("{} symbols; at most 250", symbols.len())));
        }
        let space = symbols.iter().position(|s| s == " ").map(|i| i as u32);
        Ok(Alphabet { symbols, space })
    }

    /// English letters, apostrophe and space: the alphabet of Harken's own CTC heads.
    pub fn english() -> Self {
        let mut s: Vec<String> = vec![" ".into()];
        s.extend(('a'..='z').map(String::from));
        s.push("'".into());
        Alphabet { symbols: s, space: Some(0) }
    }

    /// The file form of this alphabet.
    pub fn to_file_text(&self) -> String {
        let mut out =
            String::from("# Harken CTC alphabet: one symbol per line; blank is implicit (last)\n");
        for s in &self.symbols {
            out.push_str(if s == "#" { "\\#" } else { s });
            out.push('\n');
        }
        out
    }

    /// Number of symbols (without the blank).
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether there are no symbols (never true for a parsed alphabet).
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The blank's index (= `len()`).
    pub fn blank(&self) -> u32 {
        self.symbols.len() as u32
    }

    /// Index of the word separator, when the alphabet has one.
    pub fn space(&self) -> Option<u32> {
        self.space
    }

    /// The symbol at `i` (`""` for the blank or out of range).
    pub fn symbol(&self, i: u32) -> &str {
        self.symbols.get(i as usize).map_or("", String::as_str)
    }

    /// Index of one character.
    pub fn index(&self, ch: char) -> Option<u32> {
        let mut buf = [0u8; 4];
        let s = ch.encode_utf8(&mut buf);
        self.symbols.iter().position(|x| x == s).map(|i| i as u32)
    }

    /// Encode text; every character must be a symbol.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars().map(|ch| self.index(ch).ok_or(Error::Unknown { ch })).collect()
    }

    /// Lowercase `text`, map characters outside the alphabet to spaces (hyphens too) and
    /// collapse spaces: the training-label normalisation.
    pub fn normalize(&self, text: &str) -> String {
        let lowered: String = text
            .to_lowercase()
            .chars()
            .map(|c| if self.index(c).is_some() && c != ' ' { c } else { ' ' })
            .collect();
        lowered
            .split(' ')
            .map(|w| w.trim_matches('\''))
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Decode indices (blanks skipped).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| self.symbol(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_deepspeech_form() {
        let a = Alphabet::parse("# comment\n \na\nb\n\\#\n'\n").unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a.space(), Some(0));
        assert_eq!(a.blank(), 5);
        assert_eq!(a.encode("ab #").unwrap(), vec![1, 2, 0, 3]);
        assert_eq!(Alphabet::parse(&a.to_file_text()).unwrap(), a);
    }

    #[test]
    fn rejects_bad_files() {
        assert!(Alphabet::parse("ab\n").is_err());
        assert!(Alphabet::parse("a\na\n").is_err());
        assert!(Alphabet::parse("# only comments\n").is_err());
        assert!(matches!(Alphabet::english().encode("é"), Err(Error::Unknown { ch: 'é' })));
    }

    #[test]
    fn english_round_trip_and_normalize() {
        let a = Alphabet::english();
        assert_eq!(a.len(), 28);
        assert_eq!(Alphabet::parse(&a.to_file_text()).unwrap(), a);
        assert_eq!(a.normalize("Don't  stop-the 'music'!"), "don't stop the music");
    }
}
