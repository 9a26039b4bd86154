//! `lsof -i -n -P` (Linux, macOS, BSD): one row per open file descriptor of
//! an Internet socket.
//!
//! ```text
//! COMMAND     PID  USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME
//! sshd        700  root    3u  IPv4              21532      0t0  TCP *:22 (LISTEN)
//! api         812   app    9u  IPv4              40177      0t0  TCP 10.0.0.5:41000->10.0.0.9:5432 (ESTABLISHED)
//! postgres    900   pg     7u  IPv6              40190      0t0  TCP [::1]:5432->[::1]:50312 (ESTABLISHED)
//! mDNSRespo   310  _mdns   8u  IPv4 0x5d0c3c9a38f1c2d1      0t0  UDP *:5353
//! ```
//!
//! lsof lists what processes hold open, so it shows **no TIME_WAIT
//! sockets**: those belong to no process any more. A table from lsof
//! therefore undercounts the ports in use by exactly the TIME_WAIT ones,
//! which are often most of them on an exhausted client; `ss -tan` or
//! `netstat -an` shows them.
//!
//! Columns are found from the right of COMMAND and PID, not by the header's
//! spacing: TYPE is the first `IPv4`/`IPv6`, NODE the first `TCP`/`UDP`
//! after it, NAME the rest (`LOCAL[->PEER] [(STATE)]`); a USER, TID or
//! SIZE/OFF cell may be empty. lsof escapes spaces and other bytes in
//! command names as `\xHH` (`Web\x20Content`), which are unescaped; names
//! are cut to 9 characters unless lsof runs with `+c 0`. A socket that
//! several descriptors or processes share (a forked listener, nginx's
//! workers) shows once per descriptor, with the same DEVICE: it is read
//! once, with the first row's process. A `*` host has the family of TYPE.
//! UDP rows have no state: UNCONN, or ESTABLISHED with a peer.

use std::collections::HashSet;

use super::{colon_endpoint, lines, netstat_bsd::bsd_state, quote, tokens, ParseError};
use crate::inspect::{Proto, Socket, State};

/// The header `COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME`.
pub fn is_header(line: &str) -> bool {
    let mut w = line.split_whitespace();
    w.next() == Some("COMMAND") && w.next() == Some("PID") && line.contains("NAME")
}

/// lsof's warnings, when saved with `2>&1`, before the header.
pub fn is_preamble(line: &str) -> bool {
    line.starts_with("lsof: WARNING")
        || line
            .trim_start()
            .starts_with("Output information may be incomplete")
}

/// Read every row.
pub(super) fn parse(text: &str) -> Result<(Vec<Socket>, usize), ParseError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in lines(text) {
        if line.trim().is_empty() || is_header(line) || is_preamble(line) {
            continue;
        }
        let (socket, device) = row(line).map_err(|message| ParseError { line: n, message })?;
        if seen.insert((device, socket.local, socket.remote, socket.proto)) {
            out.push(socket);
        }
    }
    Ok((out, 0))
}

fn row(line: &str) -> Result<(Socket, String), String> {
    let toks: Vec<&str> = tokens(line).into_iter().map(|(_, t)| t).collect();
    let columns = "COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME";
    if toks.len() < 2 {
        return Err(format!(
            "{} is not a row of lsof -i; expected {columns}",
            quote(line.trim())
        ));
    }
    let process = unescape(toks[0]);
    let pid = toks[1]
        .parse::<u32>()
        .map_err(|_| format!("PID {} is not a number; expected {columns}", quote(toks[1])))?;
    let ty = (2..toks.len())
        .find(|&i| toks[i] == "IPv4" || toks[i] == "IPv6")
        .ok_or_else(|| {
            format!(
                "{} has no TYPE IPv4 or IPv6; expected {columns} (lsof -i lists only Internet sockets)",
                quote(line.trim())
            )
        })?;
    let v6 = toks[ty] == "IPv6";
    let node = (ty + 1..toks.len())
        .find(|&i| toks[i] == "TCP" || toks[i] == "UDP")
        .ok_or_else(|| {
            format!(
                "{} has no NODE TCP or UDP after its TYPE; expected {columns}",
                quote(line.trim())
            )
        })?;
    let device = toks.get(ty + 1).copied().unwrap_or("").to_string();
    let proto = if toks[node] == "TCP" {
        Proto::Tcp
    } else {
        Proto::Udp
    };
    let name = &toks[node + 1..];
    let (addrs, state_text) = match name {
        [a] => (*a, None),
        [a, s] => (*a, Some(*s)),
        [] => {
            return Err(format!(
                "{} has no NAME after {}",
                quote(line.trim()),
                toks[node]
            ))
        }
        _ => {
            return Err(format!(
                "NAME {} is not LOCAL[->PEER] [(STATE)]",
                quote(&name.join(" "))
            ))
        }
    };
    let (local_text, peer_text) = match addrs.split_once("->") {
        Some((l, p)) => (l, Some(p)),
        None => (addrs, None),
    };
    let example = "(10.0.0.5:41000, [::1]:5432, *:8080)";
    let local = colon_endpoint(local_text).map_err(|e| {
        format!("local address {e}; expected ADDRESS:PORT as lsof -n -P prints it {example}")
    })?;
    let remote = match peer_text {
        Some(p) => colon_endpoint(p)
            .map_err(|e| {
                format!("peer address {e}; expected ADDRESS:PORT as lsof -n -P prints it {example}")
            })?
            .remote(v6),
        None => None,
    };
    let state = match (proto, state_text) {
        (_, Some(s)) => {
            let inner = s.strip_prefix('(').and_then(|s| s.strip_suffix(')'));
            let parsed = inner.and_then(bsd_state);
            match (proto, parsed) {
                (Proto::Tcp, Some(st)) => st,
                (Proto::Udp, Some(_)) => udp_state(remote.is_some()),
                _ => {
                    return Err(format!(
                        "state {} is not one lsof prints: expected (ESTABLISHED), (LISTEN), (SYN_SENT), (CLOSE_WAIT), (FIN_WAIT_2)…",
                        quote(s)
                    ))
                }
            }
        }
        (Proto::Tcp, None) => {
            return Err(format!(
                "TCP row {} has no (STATE) after its NAME",
                quote(addrs)
            ))
        }
        (Proto::Udp, None) => udp_state(remote.is_some()),
    };
    Ok((
        Socket {
            proto,
            state,
            local: local.local(v6),
            remote,
            pid: Some(pid),
            process: Some(process),
        },
        device,
    ))
}

fn udp_state(connected: bool) -> State {
    if connected {
        State::Established
    } else {
        State::Unconn
    }
}

/// A command name with lsof's `\xHH` escapes undone.
fn unescape(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = b
                .get(i + 2..i + 4)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_command_names() {
        assert_eq!(unescape("Web\\x20Content"), "Web Content");
        assert_eq!(unescape("a\\x2"), "a\\x2");
        assert_eq!(unescape("a\\xzz"), "a\\xzz");
        assert_eq!(unescape("\\xe2\\x82\\xac"), "€");
    }
}
