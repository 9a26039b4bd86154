//! `ss -tanp` and `ss -tuanp` (Linux, iproute2), and the same without
//! `-p` (`ss -tan`) or without the header (`ss -H`, with `--format ss`).
//!
//! ```text
//! State     Recv-Q Send-Q  Local Address:Port   Peer Address:Port Process
//! ESTAB     0      0           10.0.0.5:41000       10.0.0.9:5432  users:(("api",pid=812,fd=9))
//! TIME-WAIT 0      0           10.0.0.5:41002       10.0.0.9:5432
//! LISTEN    0      4096               *:22                 *:*     users:(("sshd",pid=700,fd=3),("systemd",pid=1,fd=40))
//! ```
//!
//! Columns are found by position, not by the header's spacing: the header
//! of recent versions runs `Peer Address:PortProcess` together. With more
//! than one protocol (`-tu`) a leading `Netid` column (`tcp`, `udp`) comes
//! first; without it the rows are TCP, since `-t` is what selects them (so
//! `ss -uan` must be saved with `-tuan`, or its rows read as TCP). `ss`
//! prints the CLOSE state as `UNCONN` for every protocol: a TCP `UNCONN`
//! is [`State::Close`]. The process column may list several processes
//! sharing the socket; the first is taken. Hosts: `*` is the IPv6 any
//! address of a dual-stack socket (`[::]` is a v6-only one); a `%ifname`
//! scope is dropped. What `-o` and `-e` append (`timer:(…)`, `uid:0`,
//! `ino:…`, `sk:…`) is accepted and ignored; `-i` and `-m` print
//! continuation lines and are not read.

use super::{colon_endpoint, lines, queue, quote, tokens, ParseError};
use crate::inspect::{Proto, Socket, State};

/// The header line: `State Recv-Q Send-Q Local Address:Port …`, with or
/// without a leading `Netid`.
pub fn is_header(line: &str) -> bool {
    let first = line.split_whitespace().next();
    matches!(first, Some("State" | "Netid"))
        && line.contains("Recv-Q")
        && line.contains("Local Address:Port")
}

/// Read every row.
pub(super) fn parse(text: &str) -> Result<(Vec<Socket>, usize), ParseError> {
    let mut out = Vec::new();
    for (n, line) in lines(text) {
        if line.trim().is_empty() || is_header(line) {
            continue;
        }
        out.push(row(line).map_err(|message| ParseError { line: n, message })?);
    }
    Ok((out, 0))
}

fn row(line: &str) -> Result<Socket, String> {
    let toks = tokens(line);
    let first = toks[0].1;
    let (proto, skip) = match first {
        "tcp" => (Some(Proto::Tcp), 1),
        "udp" => (Some(Proto::Udp), 1),
        _ if State::parse(first).is_some() => (None, 0),
        _ => {
            return Err(format!(
                "state {} is not one ss prints (ESTAB, SYN-SENT, SYN-RECV, FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, CLOSE-WAIT, LAST-ACK, CLOSING, LISTEN, UNCONN), nor a Netid (tcp, udp)",
                quote(first)
            ))
        }
    };
    let cols = &toks[skip..];
    if cols.len() < 5 {
        return Err(format!(
            "{} has {} of the columns State Recv-Q Send-Q Local Address:Port Peer Address:Port",
            quote(line.trim()),
            cols.len()
        ));
    }
    let state_text = cols[0].1;
    let state = State::parse(state_text).ok_or_else(|| {
        format!(
            "state {} is not one ss prints (ESTAB, SYN-SENT, SYN-RECV, FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, CLOSE-WAIT, LAST-ACK, CLOSING, LISTEN, UNCONN)",
            quote(state_text)
        )
    })?;
    queue("Recv-Q", cols[1].1)?;
    queue("Send-Q", cols[2].1)?;
    let local = colon_endpoint(cols[3].1).map_err(|e| {
        format!("local address {e}; expected ADDRESS:PORT as ss -n prints it (10.0.0.1:5432, [::1]:443, *:22)")
    })?;
    // Recent versions may run the peer and the process column together.
    let (peer_text, glued) = match cols[4].1.find("users:(") {
        Some(i) if i > 0 => (&cols[4].1[..i], Some(cols[4].0 + i)),
        _ => (cols[4].1, None),
    };
    let peer = colon_endpoint(peer_text).map_err(|e| {
        format!("peer address {e}; expected ADDRESS:PORT as ss -n prints it (10.0.0.9:443, [::1]:443, 0.0.0.0:*)")
    })?;
    let rest = match (glued, cols.get(5)) {
        (Some(at), _) => &line[at..],
        (None, Some(&(at, _))) => &line[at..],
        (None, None) => "",
    };
    let (pid, process) = users(rest.trim())?;
    let v6 = local.ip.is_none_or(|ip| ip.is_ipv6());
    let remote = peer.remote(v6);
    let proto = proto.unwrap_or(Proto::Tcp);
    let state = match (proto, state) {
        (Proto::Tcp, State::Unconn) => State::Close,
        (_, s) => s,
    };
    Ok(Socket {
        proto,
        state,
        local: local.local(v6),
        remote,
        pid,
        process,
    })
}

/// The process column: `users:(("nginx",pid=1234,fd=6),…)` (older
/// versions: `users:(("nginx",1234,6))`), then what `-o`/`-e` add.
fn users(rest: &str) -> Result<(Option<u32>, Option<String>), String> {
    let mut found = (None, None);
    let mut tail = rest;
    if let Some(after) = rest.strip_prefix("users:((\"") {
        let bad = || {
            format!(
                "process column {} is not users:((\"NAME\",pid=PID,fd=FD),…)",
                quote(rest)
            )
        };
        let end = after.find("\",").ok_or_else(bad)?;
        let name = &after[..end];
        let after = &after[end + 2..];
        let after = after.strip_prefix("pid=").unwrap_or(after);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let pid = after[..digits].parse::<u32>().map_err(|_| bad())?;
        let close = after.find("))").ok_or_else(bad)?;
        found = (Some(pid), Some(name.to_string()));
        tail = &after[close + 2..];
    }
    for t in tail.split_whitespace() {
        if !(t.contains(':') || t == "<->" || t == "-->" || t == "<--") {
            return Err(format!(
                "{} after the peer address is not a process column (users:((\"NAME\",pid=PID,fd=FD))) nor an -o/-e field (timer:(…), uid:N, ino:N, sk:…)",
                quote(t)
            ));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_column() {
        assert_eq!(
            users("users:((\"nginx\",pid=1234,fd=6),(\"nginx\",pid=1235,fd=6))").unwrap(),
            (Some(1234), Some("nginx".to_string()))
        );
        assert_eq!(
            users("users:((\"Web Content\",pid=77,fd=3)) timer:(keepalive,1min,0) uid:1000")
                .unwrap(),
            (Some(77), Some("Web Content".to_string()))
        );
        assert_eq!(
            users("users:((\"sshd\",812,3))").unwrap(),
            (Some(812), Some("sshd".to_string()))
        );
        assert_eq!(users("").unwrap(), (None, None));
        assert_eq!(users("timer:(timewait,59sec,0)").unwrap(), (None, None));
        assert_eq!(
            users("users:((\"ngi").unwrap_err(),
            "process column \"users:((\"ngi\" is not users:((\"NAME\",pid=PID,fd=FD),…)"
        );
    }

    #[test]
    fn glued_process_column() {
        let s = row("ESTAB 0 0 10.0.0.5:41000 10.0.0.9:5432users:((\"api\",pid=9,fd=3))").unwrap();
        assert_eq!(s.pid, Some(9));
        assert_eq!(s.remote, Some("10.0.0.9:5432".parse().unwrap()));
    }
}
