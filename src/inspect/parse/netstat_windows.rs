//! `netstat -ano` (Windows), and `netstat -an` (no PID column) and
//! `netstat -anob` (each row followed by its process).
//!
//! ```text
//!
//! Active Connections
//!
//!   Proto  Local Address          Foreign Address        State           PID
//!   TCP    0.0.0.0:135            0.0.0.0:0              LISTENING       1028
//!   TCP    10.0.0.5:50112         10.0.0.9:443           TIME_WAIT       0
//!   TCP    [fe80::1%4]:49664      [fe80::2%4]:445        ESTABLISHED     4
//!   UDP    0.0.0.0:5353           *:*                                    2364
//! ```
//!
//! TCP rows have a state, UDP rows none (a UDP socket is UNCONN, or
//! ESTABLISHED when it shows a peer). A listener's peer is `0.0.0.0:0` or
//! `[::]:0`, read as no peer. Process names are not in this output, only
//! PIDs; PID 0 (what Windows shows for TIME_WAIT sockets, which belong to
//! no process) is read as none. With `-b` the process name (`[svchost.exe]`)
//! follows its row, sometimes after a service name line (`RpcSs`) or
//! `Can not obtain ownership information`; the bracketed name becomes the
//! row's process. The header and states are read in English only: a
//! localized Windows prints other words, which fail with the state found.

use super::{colon_endpoint, lines, quote, tokens, ParseError};
use crate::inspect::{Proto, Socket, State};

/// The preamble `Active Connections`.
pub fn is_preamble(line: &str) -> bool {
    line.trim() == "Active Connections"
}

/// The header `Proto  Local Address  Foreign Address  State  PID` (BSD's
/// has the queues and `(state)`).
pub fn is_header(line: &str) -> bool {
    line.split_whitespace().next() == Some("Proto")
        && line.contains("Local Address")
        && line.contains("Foreign Address")
        && !line.contains("Recv-Q")
}

/// Read every row.
pub(super) fn parse(text: &str) -> Result<(Vec<Socket>, usize), ParseError> {
    let mut out: Vec<Socket> = Vec::new();
    // Whether the header promised a PID column; `None` before a header.
    let mut pid_column: Option<bool> = None;
    // Whether the line before was a row or its service name (`-b`).
    let mut after_row = false;
    let all: Vec<(usize, &str)> = lines(text).collect();
    for (i, &(n, line)) in all.iter().enumerate() {
        let t = line.trim();
        if t.is_empty() || is_preamble(line) {
            after_row = false;
            continue;
        }
        if is_header(line) {
            pid_column = Some(line.split_whitespace().any(|w| w == "PID"));
            after_row = false;
            continue;
        }
        let err = |message| ParseError { line: n, message };
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let last = out.last_mut().filter(|_| after_row).ok_or_else(|| {
                err(format!(
                    "process name {} does not follow a TCP or UDP row (netstat -b prints it under its row)",
                    quote(t)
                ))
            })?;
            last.process = Some(name.to_string());
            after_row = false;
            continue;
        }
        if t == "Can not obtain ownership information" {
            after_row = false;
            continue;
        }
        let first = t.split_whitespace().next().unwrap_or("");
        let is_row = first.eq_ignore_ascii_case("TCP") || first.eq_ignore_ascii_case("UDP");
        let named_next = all
            .get(i + 1)
            .is_some_and(|(_, l)| l.trim().starts_with('[') && l.trim().ends_with(']'));
        if !is_row && after_row && named_next && !t.contains(char::is_whitespace) {
            // `-b`: the service a row belongs to (`RpcSs`), between the row
            // and its process name.
            continue;
        }
        out.push(row(line, pid_column).map_err(err)?);
        after_row = true;
    }
    Ok((out, 0))
}

fn row(line: &str, pid_column: Option<bool>) -> Result<Socket, String> {
    let toks: Vec<&str> = tokens(line).into_iter().map(|(_, t)| t).collect();
    let proto = match toks[0].to_ascii_uppercase().as_str() {
        "TCP" => Proto::Tcp,
        "UDP" => Proto::Udp,
        _ => {
            return Err(format!(
                "{} is not a row of netstat -ano: expected TCP or UDP first",
                quote(toks[0])
            ))
        }
    };
    // Columns after Proto, Local, Foreign: TCP has State, then PID with -o.
    let fixed = if proto == Proto::Tcp { 4 } else { 3 };
    let want = match pid_column {
        Some(true) => fixed + 1,
        Some(false) => fixed,
        None if toks.len() == fixed => fixed,
        None => fixed + 1,
    };
    let columns = if proto == Proto::Tcp {
        "TCP LOCAL FOREIGN STATE"
    } else {
        "UDP LOCAL FOREIGN"
    };
    let columns = if want > fixed {
        format!("{columns} PID")
    } else {
        columns.to_string()
    };
    if toks.len() != want {
        return Err(format!(
            "{} has {} columns; expected {want}: {columns}",
            quote(line.trim()),
            toks.len()
        ));
    }
    let local = colon_endpoint(toks[1]).map_err(|e| {
        format!("local address {e}; expected ADDRESS:PORT (10.0.0.5:50112, [::]:135, [fe80::1%4]:49664)")
    })?;
    let peer = colon_endpoint(toks[2]).map_err(|e| {
        format!("foreign address {e}; expected ADDRESS:PORT (10.0.0.9:443, 0.0.0.0:0, *:*)")
    })?;
    let v6 = local.ip.is_some_and(|ip| ip.is_ipv6());
    let remote = peer.remote(v6);
    let state = if proto == Proto::Tcp {
        State::parse(toks[3]).ok_or_else(|| {
            format!(
                "state {} is not one netstat prints (ESTABLISHED, LISTENING, TIME_WAIT, SYN_SENT, SYN_RECEIVED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, CLOSED, BOUND)",
                quote(toks[3])
            )
        })?
    } else if remote.is_some() {
        State::Established
    } else {
        State::Unconn
    };
    let pid = if want > fixed {
        let text = toks[want - 1];
        let pid = text
            .parse::<u32>()
            .map_err(|_| format!("PID {} is not a number", quote(text)))?;
        (pid != 0).then_some(pid)
    } else {
        None
    };
    Ok(Socket {
        proto,
        state,
        local: local.local(v6),
        remote,
        pid,
        process: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "Active Connections\n\n  Proto  Local Address  Foreign Address  State  PID\n";

    #[test]
    fn a_cut_row_after_a_row_is_not_a_service_name() {
        let text = format!("{HEAD}  TCP 10.0.0.5:50112 10.0.0.9:443 TIME_WAIT 0\n  TC");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 5);
        assert_eq!(
            e.message,
            "\"TC\" is not a row of netstat -ano: expected TCP or UDP first"
        );
        let text =
            format!("{HEAD}  TCP 0.0.0.0:135 0.0.0.0:0 LISTENING 1028\n  RpcSs\n [svchost.exe]\n");
        let (sockets, _) = parse(&text).unwrap();
        assert_eq!(sockets[0].process.as_deref(), Some("svchost.exe"));
    }
}
