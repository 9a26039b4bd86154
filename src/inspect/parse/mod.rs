//! Saved socket tables: `ss -tanp`, `netstat -ano` (Windows), `netstat -an
//! -p tcp` (macOS, BSD) and `lsof -i -n -P`, read into [`Socket`]s.
//!
//! Each format is one file here ([`ss`], [`netstat_windows`],
//! [`netstat_bsd`], [`lsof`]), each knowing its own header, its columns and
//! its spelling of addresses and states; this file detects the format and
//! holds what they share (addresses, ports, quoting, line numbers). The
//! format is detected from the header line and the preambles before it
//! (leading blank lines allowed) unless the caller names it. A line that
//! cannot be read is an error naming its number, the token found and what
//! was expected, never skipped silently: a table with holes would give
//! wrong counts that look right. The one kind of row that is read and left
//! out is a row of a protocol without ports (`icm6`, `raw` in BSD's
//! `netstat -an`); [`Parsed::skipped`] counts them.
//!
//! A file cut in the middle of its last row fails on that row when what is
//! left cannot be read, and the message then says the file ends without a
//! newline. Parsing is one pass over the lines, in memory proportional to
//! the text, and any input, however large or strange, ends in a list or an
//! error, never a panic (a test feeds it mutated tables).

pub mod lsof;
pub mod netstat_bsd;
pub mod netstat_windows;
pub mod ss;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

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

    /// The format a `--format` value names, by [`Format::name`].
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The command whose saved output this format is.
    pub fn command(self) -> &'static str {
        match self {
            Format::Ss => "ss -tanp",
            Format::NetstatWindows => "netstat -ano (Windows)",
            Format::NetstatBsd => "netstat -an -p tcp (macOS, BSD)",
            Format::Lsof => "lsof -i -n -P",
        }
    }
}

/// A saved table, read.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub format: Format,
    /// The sockets, in the order of the file.
    pub sockets: Vec<Socket>,
    /// Rows read but left out because their protocol has no ports
    /// (`icm6`, `raw`, … in BSD's `netstat -an` without `-p tcp`).
    pub skipped: usize,
}

/// A line that could not be read: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Read `text` as `format`, or as the format its header shows.
///
/// A named format is still checked against the header: `--format lsof` on
/// a file whose header is `ss`'s is refused at that header rather than
/// failing on its first row.
pub fn parse(text: &str, format: Option<Format>) -> Result<Parsed, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_text(text)?;
    let format = match format {
        Some(f) => {
            if let Ok((line, found)) = header(text) {
                if found != f {
                    return Err(ParseError {
                        line,
                        message: format!(
                            "{} shows {} output (format {}), not {} (--format {})",
                            quote(lines(text).nth(line - 1).map_or("", |(_, l)| l.trim())),
                            found.command(),
                            found.name(),
                            f.command(),
                            f.name()
                        ),
                    });
                }
            }
            f
        }
        None => detect(text)?,
    };
    let read = match format {
        Format::Ss => ss::parse(text),
        Format::NetstatWindows => netstat_windows::parse(text),
        Format::NetstatBsd => netstat_bsd::parse(text),
        Format::Lsof => lsof::parse(text),
    };
    match read {
        Ok((sockets, skipped)) => Ok(Parsed {
            format,
            sockets,
            skipped,
        }),
        Err(e) => Err(cut_off(text, e)),
    }
}

/// The format of `text`, from its header line (and the preambles before
/// it: `Active Connections`, `Active Internet connections`, lsof's
/// warnings). An error at the first line that is none of these names the
/// formats known.
pub fn detect(text: &str) -> Result<Format, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_text(text)?;
    let (line, first) = match header(text) {
        Ok((_, f)) => return Ok(f),
        Err(at) => at,
    };
    let message = if netstat_bsd::is_linux_netstat_header(first) {
        format!(
            "{} is the header of Linux's netstat (net-tools), which portsim does not read; save `ss -tanp` instead",
            quote(first)
        )
    } else {
        format!(
            "{} is not the header of a table portsim reads",
            quote(first)
        )
    };
    Err(ParseError {
        line,
        message: format!(
            "{message}; expected the saved output of {} (--format names one: {})",
            known_commands(),
            known_names()
        ),
    })
}

/// The header that shows the format: its line and the format, looking past
/// leading blank lines and preambles only; or the first other line.
fn header(text: &str) -> Result<(usize, Format), (usize, &str)> {
    let mut last = (1, "");
    for (n, line) in lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        if ss::is_header(line) {
            return Ok((n, Format::Ss));
        }
        if netstat_windows::is_header(line) || netstat_windows::is_preamble(line) {
            return Ok((n, Format::NetstatWindows));
        }
        if netstat_bsd::is_header(line) {
            return Ok((n, Format::NetstatBsd));
        }
        if lsof::is_header(line) {
            return Ok((n, Format::Lsof));
        }
        if netstat_bsd::is_preamble(line) || lsof::is_preamble(line) {
            last = (n, line);
            continue;
        }
        return Err((n, line));
    }
    Err(last)
}

/// Refuse text that is empty or is not text at all (UTF-16, as
/// PowerShell's `>` writes, read as UTF-8).
fn check_text(text: &str) -> Result<(), ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError {
            line: 1,
            message: format!(
                "the file is empty; expected the saved output of {}",
                known_commands()
            ),
        });
    }
    if let Some((n, _)) = lines(text).find(|(_, l)| l.contains('\0')) {
        return Err(ParseError {
            line: n,
            message: "the file holds NUL bytes, so it is not plain text: UTF-16 (what PowerShell's `>` writes) or binary; save it as ASCII or UTF-8 (`netstat -ano | Out-File -Encoding ascii FILE`, or `>` in cmd.exe)".to_string(),
        });
    }
    Ok(())
}

/// Bytes of a saved file as text: UTF-8 (a BOM dropped, invalid bytes
/// replaced by U+FFFD) or UTF-16 with a BOM (PowerShell's `>` on Windows).
pub fn decode(bytes: &[u8]) -> String {
    let utf16 = |le: bool| {
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| match (c, le) {
                ([a, b], true) => u16::from_le_bytes([*a, *b]),
                ([a, b], false) => u16::from_be_bytes([*a, *b]),
                _ => 0xfffd,
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    match bytes {
        [0xff, 0xfe, ..] => utf16(true),
        [0xfe, 0xff, ..] => utf16(false),
        [0xef, 0xbb, 0xbf, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// When the error is on the last line and the file does not end with a
/// newline, say so: the file was most likely cut in the middle of that row.
fn cut_off(text: &str, mut e: ParseError) -> ParseError {
    let last = lines(text).last().map_or(1, |(n, _)| n);
    if e.line == last && !text.ends_with('\n') {
        e.message.push_str(
            " (the file ends in the middle of this line without a newline: was it cut off?)",
        );
    }
    e
}

fn known_commands() -> String {
    let all = Format::ALL.map(Format::command);
    format!(
        "{} or {}",
        all[..all.len() - 1].join(", "),
        all[all.len() - 1]
    )
}

fn known_names() -> String {
    Format::ALL.map(Format::name).join(", ")
}

/// The lines of `text` with their 1-based numbers, `\r` dropped.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
}

/// `s` quoted for a message: control characters escaped, cut to 60
/// characters, so a message stays one readable line whatever the input.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == 60 {
            out.push('…');
            break;
        }
        if c == '"' {
            out.push('"');
        } else {
            out.extend(c.escape_debug());
        }
    }
    out.push('"');
    out
}

/// One endpoint as a table prints it: `*` for any address or port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `None` for `*`.
    pub ip: Option<IpAddr>,
    /// `None` for `*`.
    pub port: Option<u16>,
    /// The numeric IPv6 scope (`%4`); 0 for none or a named one (`%eth0`).
    pub scope: u32,
}

impl Endpoint {
    /// As a local address: `*` is the wildcard of the family `v6` says,
    /// a `*` port is 0.
    pub fn local(self, v6: bool) -> SocketAddr {
        let ip = self.ip.unwrap_or(if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        });
        addr(ip, self.port.unwrap_or(0), self.scope)
    }

    /// As a peer: `None` for any peer (`*:*`, `0.0.0.0:*`, `[::]:0`,
    /// `*.*`): a port of `*`, or of 0 at an unspecified address.
    pub fn remote(self, v6: bool) -> Option<SocketAddr> {
        let port = self.port?;
        let ip = match self.ip {
            Some(ip) if !(port == 0 && ip.is_unspecified()) => ip,
            _ if port == 0 => return None,
            _ => {
                if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                }
            }
        };
        Some(addr(ip, port, self.scope))
    }
}

fn addr(ip: IpAddr, port: u16, scope: u32) -> SocketAddr {
    match ip {
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope)),
        v4 => SocketAddr::new(v4, port),
    }
}

/// A host as tables print it: `*`, an IPv4 or IPv6 address (in brackets
/// or not), with or without a `%scope`.
pub(crate) fn host(text: &str) -> Result<(Option<IpAddr>, u32), String> {
    if text == "*" {
        return Ok((None, 0));
    }
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let (bare, scope) = match inner.split_once('%') {
        Some((b, s)) if !s.is_empty() => (b, s.parse::<u32>().unwrap_or(0)),
        Some(_) => return Err(format!("{} has an empty %scope", quote(text))),
        None => (inner, 0),
    };
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Ok((Some(IpAddr::V4(v4)), 0)),
        Ok(ip) => Ok((Some(ip), scope)),
        Err(_) => Err(format!("{} is not a numeric IP address", quote(bare))),
    }
}

/// A port: digits up to 65535, or `*`.
pub(crate) fn port(text: &str) -> Result<Option<u16>, String> {
    if text == "*" {
        return Ok(None);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {} is not a number", quote(text)));
    }
    match text.parse::<u16>() {
        Ok(p) => Ok(Some(p)),
        Err(_) => Err(format!("port {} is not in 0-65535", quote(text))),
    }
}

/// `HOST:PORT` as `ss`, Windows `netstat` and `lsof` print it:
/// `10.0.0.1:5432`, `[::1]:443`, `[fe80::1%4]:49664`, `[fe80::1]%eth0:123`,
/// `127.0.0.53%lo:53`, `*:22`, `*:*`, and older `ss`'s unbracketed
/// `:::22` and `::ffff:10.0.0.1:80`.
pub(crate) fn colon_endpoint(text: &str) -> Result<Endpoint, String> {
    let (h, p) = if let Some(rest) = text.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| format!("{} has no closing ]", quote(text)))?;
        let inside = &rest[..close];
        let after = &rest[close + 1..];
        let (scope, p) = after
            .rsplit_once(':')
            .ok_or_else(|| format!("{} has no :PORT after the address", quote(text)))?;
        let h = if scope.is_empty() {
            inside.to_string()
        } else if scope.starts_with('%') {
            format!("{inside}{scope}")
        } else {
            return Err(format!("{} has {} after the ]", quote(text), quote(scope)));
        };
        (h, p)
    } else {
        let (h, p) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{} has no :PORT", quote(text)))?;
        (h.to_string(), p)
    };
    let (ip, scope) = host(&h)?;
    Ok(Endpoint {
        ip,
        port: port(p)?,
        scope,
    })
}

/// `HOST.PORT` as BSD `netstat` prints it: `192.168.1.5.52814`, `*.22`,
/// `*.*`, `::1.8021`, `fe80::1%lo0.631`.
pub(crate) fn dot_endpoint(text: &str) -> Result<Endpoint, String> {
    let (h, p) = text
        .rsplit_once('.')
        .ok_or_else(|| format!("{} has no .PORT", quote(text)))?;
    let (ip, scope) = host(h)?;
    Ok(Endpoint {
        ip,
        port: port(p)?,
        scope,
    })
}

/// The whitespace-separated tokens of a line with their byte offsets.
pub(crate) fn tokens(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, &line[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// A queue column (`Recv-Q`, `Send-Q`): a whole number.
pub(crate) fn queue(name: &str, text: &str) -> Result<(), String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("{name} {} is not a number", quote(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn colon_endpoints() {
        let e = colon_endpoint("10.0.0.1:5432").unwrap();
        assert_eq!(e.local(false), sa("10.0.0.1:5432"));
        assert_eq!(
            colon_endpoint("[::1]:443").unwrap().local(true),
            sa("[::1]:443")
        );
        assert_eq!(
            colon_endpoint("[fe80::1%4]:49664").unwrap().local(true),
            sa("[fe80::1%4]:49664")
        );
        assert_eq!(
            colon_endpoint("[fe80::1]%eth0:123").unwrap().local(true),
            sa("[fe80::1]:123")
        );
        assert_eq!(
            colon_endpoint("127.0.0.53%lo:53").unwrap().local(false),
            sa("127.0.0.53:53")
        );
        assert_eq!(colon_endpoint("*:22").unwrap().local(true), sa("[::]:22"));
        assert_eq!(colon_endpoint(":::22").unwrap().local(true), sa("[::]:22"));
        assert_eq!(
            colon_endpoint("::ffff:10.0.0.1:80").unwrap().local(true),
            sa("[::ffff:10.0.0.1]:80")
        );
        for any in ["*:*", "0.0.0.0:*", "[::]:*", "0.0.0.0:0", "[::]:0"] {
            assert_eq!(colon_endpoint(any).unwrap().remote(false), None, "{any}");
        }
        assert_eq!(
            colon_endpoint("10.0.0.1:99999").unwrap_err(),
            "port \"99999\" is not in 0-65535"
        );
        assert_eq!(
            colon_endpoint("host.example:443").unwrap_err(),
            "\"host.example\" is not a numeric IP address"
        );
        assert_eq!(
            colon_endpoint("[::1:443").unwrap_err(),
            "\"[::1:443\" has no closing ]"
        );
    }

    #[test]
    fn dot_endpoints() {
        assert_eq!(
            dot_endpoint("192.168.1.5.52814").unwrap().local(false),
            sa("192.168.1.5:52814")
        );
        assert_eq!(dot_endpoint("*.22").unwrap().local(false), sa("0.0.0.0:22"));
        assert_eq!(
            dot_endpoint("fe80::1%lo0.631").unwrap().local(true),
            sa("[fe80::1]:631")
        );
        assert_eq!(dot_endpoint("*.*").unwrap().remote(true), None);
        assert_eq!(
            dot_endpoint("::1.8021").unwrap().remote(true),
            Some(sa("[::1]:8021"))
        );
    }

    #[test]
    fn quote_escapes_and_bounds() {
        assert_eq!(quote("a\u{1b}[31m"), "\"a\\u{1b}[31m\"");
        assert_eq!(quote(&"x".repeat(100)).chars().count(), 63);
    }

    #[test]
    fn decode_utf16_and_bom() {
        let mut b = vec![0xff, 0xfe];
        for u in "TCP".encode_utf16() {
            b.extend(u.to_le_bytes());
        }
        assert_eq!(decode(&b), "TCP");
        assert_eq!(decode(b"\xef\xbb\xbfss"), "ss");
        assert_eq!(decode(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn empty_and_unknown() {
        for text in ["", "\n\n  \n"] {
            let e = parse(text, None).unwrap_err();
            assert_eq!(e.line, 1);
            assert!(e.message.starts_with("the file is empty"), "{}", e.message);
        }
        let e = detect("\n\nhello world\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(
            e.message,
            "\"hello world\" is not the header of a table portsim reads; expected the saved output of ss -tanp, netstat -ano (Windows), netstat -an -p tcp (macOS, BSD) or lsof -i -n -P (--format names one: ss, netstat-windows, netstat-bsd, lsof)"
        );
    }
}
