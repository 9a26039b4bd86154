//! Saved socket tables: `ss -tanp`, `netstat -ano` (Windows), `netstat -an
//! -p tcp` (macOS, BSD) and `lsof -i -n -P`, read into [`Socket`]s.
//!
//! Each format is one file here. The format is detected from the text (its
//! header line) unless the caller names it. A line that cannot be read is
//! an error naming its number and what was found, never skipped silently.

use super::Socket;

/// The formats `inspect --from` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `ss -tanp` / `ss -tuanp` (Linux).
    Ss,
    /// `netstat -ano` (Windows).
    NetstatWindows,
    /// `netstat -an -p tcp` (macOS, FreeBSD).
    NetstatBsd,
    /// `lsof -i -n -P`.
    Lsof,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Ss,
        Format::NetstatWindows,
        Format::NetstatBsd,
        Format::Lsof,
    ];

    /// Its name on the command line (`--format`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Ss => "ss",
            Format::NetstatWindows => "netstat-windows",
            Format::NetstatBsd => "netstat-bsd",
            Format::Lsof => "lsof",
        }
    }
}

/// A saved table, read.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub format: Format,
    pub sockets: Vec<Socket>,
}

/// A line that could not be read: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Read `text` as `format`, or as the format its header shows.
pub fn parse(text: &str, format: Option<Format>) -> Result<Parsed, ParseError> {
    let format = match format {
        Some(f) => f,
        None => {
            return Err(ParseError {
                line: 1,
                message: format!(
                    "no reader for saved tables yet; formats planned: {}",
                    Format::ALL.map(Format::name).join(", ")
                ),
            })
        }
    };
    let _ = text;
    Err(ParseError {
        line: 1,
        message: format!("no reader for {} yet", format.name()),
    })
}
