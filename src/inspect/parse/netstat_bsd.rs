//! `netstat -an -p tcp` (macOS) and `netstat -an` (macOS, FreeBSD): the
//! BSD table, whose addresses put a dot before the port.
//!
//! ```text
//! Active Internet connections (including servers)
//! Proto Recv-Q Send-Q  Local Address          Foreign Address        (state)
//! tcp4       0      0  192.168.1.5.52814      17.57.146.20.5223      ESTABLISHED
//! tcp6       0      0  fe80::1%lo0.631        *.*                    LISTEN
//! tcp46      0      0  *.22                   *.*                    LISTEN
//! udp4       0      0  *.5353                 *.*
//! ```
//!
//! The protocol's suffix gives the family of a `*` host (`tcp4`: IPv4;
//! `tcp6`, `tcp46`: IPv6, `tcp46` being dual-stack). UDP rows have no state
//! (UNCONN, or ESTABLISHED with a peer). This output names no process and
//! no PID. Rows of protocols without ports (`icm6`, `raw`…, which `netstat
//! -an` without `-p` lists) are counted in `skipped`, and the table ends at
//! the next section (`Active LOCAL (UNIX) domain sockets`, `Registered
//! kernel control modules`…). macOS cuts long IPv6 addresses to fit the
//! column unless run with `-W`; such an address fails with a hint. The
//! wider `-v` layout (with `rhiwat`, `pid`…) is refused by its header.
//! Linux's own `netstat` (net-tools) prints `State` without parentheses and
//! colons before ports; it is not this format, and detection says so.

use super::{dot_endpoint, lines, queue, quote, tokens, ParseError};
use crate::inspect::{Proto, Socket, State};

/// The preamble `Active Internet connections` (with `(including
/// servers)` under `-a`).
pub fn is_preamble(line: &str) -> bool {
    line.trim_start().starts_with("Active Internet connections")
        || line
            .trim_start()
            .starts_with("Active Internet6 connections")
}

/// The header `Proto Recv-Q Send-Q Local Address Foreign Address (state)`.
pub fn is_header(line: &str) -> bool {
    line.split_whitespace().next() == Some("Proto")
        && line.contains("Recv-Q")
        && line.contains("(state)")
}

/// Linux net-tools' header: `State` without parentheses.
pub fn is_linux_netstat_header(line: &str) -> bool {
    line.split_whitespace().next() == Some("Proto")
        && line.contains("Recv-Q")
        && line.contains("Foreign Address")
        && !line.contains("(state)")
}

/// The start of another section of `netstat -a`'s output.
fn is_other_section(line: &str) -> bool {
    let t = line.trim_start();
    (t.starts_with("Active ") || t.starts_with("Registered ")) && !is_preamble(line)
}

/// Protocols of rows that have no ports.
const PORTLESS: [&str; 10] = [
    "icm4", "icm6", "icmp", "icmp4", "icmp6", "raw", "raw4", "raw6", "ip", "divert",
];

/// Read every row.
pub(super) fn parse(text: &str) -> Result<(Vec<Socket>, usize), ParseError> {
    let mut out = Vec::new();
    let mut skipped = 0;
    for (n, line) in lines(text) {
        if line.trim().is_empty() || is_preamble(line) {
            continue;
        }
        if is_other_section(line) {
            break;
        }
        if is_header(line) {
            if line.split_whitespace().any(|w| w == "rhiwat" || w == "pid") {
                return Err(ParseError {
                    line: n,
                    message: "this is the header of netstat -v, whose extra columns portsim does not read; save netstat -an -p tcp without -v".to_string(),
                });
            }
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if PORTLESS.contains(&first) {
            skipped += 1;
            continue;
        }
        out.push(row(line).map_err(|message| ParseError { line: n, message })?);
    }
    Ok((out, skipped))
}

fn row(line: &str) -> Result<Socket, String> {
    let toks: Vec<&str> = tokens(line).into_iter().map(|(_, t)| t).collect();
    let (proto, v6) = match toks[0] {
        "tcp4" => (Proto::Tcp, false),
        "tcp6" | "tcp46" | "tcp" => (Proto::Tcp, toks[0] != "tcp4" && toks[0] != "tcp"),
        "udp4" => (Proto::Udp, false),
        "udp6" | "udp46" | "udp" => (Proto::Udp, toks[0] != "udp"),
        other => {
            return Err(format!(
                "protocol {} is not one netstat -an prints for TCP or UDP (tcp4, tcp6, tcp46, udp4, udp6, udp46)",
                quote(other)
            ))
        }
    };
    let want = if proto == Proto::Tcp { 6 } else { 5 };
    let columns = "Proto Recv-Q Send-Q LOCAL FOREIGN (state)";
    if toks.len() < want || toks.len() > 6 {
        return Err(format!(
            "{} has {} columns; expected {want}: {}",
            quote(line.trim()),
            toks.len(),
            if proto == Proto::Tcp {
                columns
            } else {
                "Proto Recv-Q Send-Q LOCAL FOREIGN"
            }
        ));
    }
    queue("Recv-Q", toks[1])?;
    queue("Send-Q", toks[2])?;
    let hint = |e: String, text: &str| {
        let cut = if text.contains(':') {
            " (macOS cuts long IPv6 addresses unless netstat runs with -W)"
        } else {
            ""
        };
        format!("{e}; expected ADDRESS.PORT (192.168.1.5.52814, *.22, ::1.8021, *.*){cut}")
    };
    let local = dot_endpoint(toks[3]).map_err(|e| hint(format!("local address {e}"), toks[3]))?;
    let peer = dot_endpoint(toks[4]).map_err(|e| hint(format!("foreign address {e}"), toks[4]))?;
    // `tcp`/`udp` without a suffix (older BSDs): the family is the address's.
    let v6 = v6 || local.ip.is_some_and(|ip| ip.is_ipv6());
    let remote = peer.remote(v6);
    let state = match toks.get(5) {
        Some(s) => bsd_state(s).ok_or_else(|| {
            format!(
                "state {} is not one netstat prints (ESTABLISHED, LISTEN, TIME_WAIT, SYN_SENT, SYN_RCVD, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, CLOSED)",
                quote(s)
            )
        })?,
        None if remote.is_some() => State::Established,
        None => State::Unconn,
    };
    let state = match (proto, state) {
        (Proto::Udp, State::Close) => State::Unconn,
        (_, s) => s,
    };
    Ok(Socket {
        proto,
        state,
        local: local.local(v6),
        remote,
        pid: None,
        process: None,
    })
}

/// A state as BSD spells it (`SYN_RCVD` beside the common spellings).
pub(super) fn bsd_state(text: &str) -> Option<State> {
    match text {
        "SYN_RCVD" => Some(State::SynRecv),
        _ => State::parse(text),
    }
}
