//! A socket as every source describes it: the live kernel tables
//! (`/proc/net/*`), or saved output of `ss`, `netstat` and `lsof`.
//!
//! One shape for all of them, so the figures `inspect` computes (ports of
//! the range in use, states, pools, processes) never depend on where the
//! table came from. State names are the kernel's (`ss` prints the same
//! ones with dashes: `TIME-WAIT`); each parser maps its own spelling.

use std::net::SocketAddr;

use serde::Serialize;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// A TCP state, by the kernel's name (`include/net/tcp_states.h`); UDP
/// sockets are [`State::Unconn`] (unconnected) or [`State::Established`]
/// (connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum State {
    #[serde(rename = "ESTABLISHED")]
    Established,
    #[serde(rename = "SYN_SENT")]
    SynSent,
    #[serde(rename = "SYN_RECV")]
    SynRecv,
    #[serde(rename = "FIN_WAIT1")]
    FinWait1,
    #[serde(rename = "FIN_WAIT2")]
    FinWait2,
    #[serde(rename = "TIME_WAIT")]
    TimeWait,
    #[serde(rename = "CLOSE")]
    Close,
    #[serde(rename = "CLOSE_WAIT")]
    CloseWait,
    #[serde(rename = "LAST_ACK")]
    LastAck,
    #[serde(rename = "LISTEN")]
    Listen,
    #[serde(rename = "CLOSING")]
    Closing,
    /// A UDP socket with no peer.
    #[serde(rename = "UNCONN")]
    Unconn,
}

impl State {
    /// Every state, in the kernel's numbering order (UNCONN last).
    pub const ALL: [State; 12] = [
        State::Established,
        State::SynSent,
        State::SynRecv,
        State::FinWait1,
        State::FinWait2,
        State::TimeWait,
        State::Close,
        State::CloseWait,
        State::LastAck,
        State::Listen,
        State::Closing,
        State::Unconn,
    ];

    /// The kernel's name (`ESTABLISHED`, `TIME_WAIT`, …), as the report
    /// writes it.
    pub fn name(self) -> &'static str {
        match self {
            State::Established => "ESTABLISHED",
            State::SynSent => "SYN_SENT",
            State::SynRecv => "SYN_RECV",
            State::FinWait1 => "FIN_WAIT1",
            State::FinWait2 => "FIN_WAIT2",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::Listen => "LISTEN",
            State::Closing => "CLOSING",
            State::Unconn => "UNCONN",
        }
    }

    /// A state by any common spelling: the kernel's (`TIME_WAIT`), `ss`'s
    /// (`TIME-WAIT`, `ESTAB`, `SYN-SENT`, `UNCONN`), `netstat`'s
    /// (`TIME_WAIT`, `LISTENING` on Windows, `FIN_WAIT_1` on macOS),
    /// `lsof`'s (`(ESTABLISHED)`), any case. `None` for anything else.
    pub fn parse(text: &str) -> Option<State> {
        let t = text
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .to_ascii_uppercase()
            .replace('-', "_");
        Some(match t.as_str() {
            "ESTABLISHED" | "ESTAB" => State::Established,
            "SYN_SENT" => State::SynSent,
            "SYN_RECV" | "SYN_RECEIVED" | "SYN_RCVD" => State::SynRecv,
            "FIN_WAIT1" | "FIN_WAIT_1" => State::FinWait1,
            "FIN_WAIT2" | "FIN_WAIT_2" => State::FinWait2,
            "TIME_WAIT" => State::TimeWait,
            "CLOSE" | "CLOSED" => State::Close,
            "CLOSE_WAIT" => State::CloseWait,
            "LAST_ACK" => State::LastAck,
            "LISTEN" | "LISTENING" => State::Listen,
            "CLOSING" => State::Closing,
            "UNCONN" | "IDLE" | "BOUND" => State::Unconn,
            _ => return None,
        })
    }
}

/// One socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Socket {
    pub proto: Proto,
    pub state: State,
    /// The local address and port (`0.0.0.0` / `::` for a wildcard).
    pub local: SocketAddr,
    /// The peer; `None` for a listener or an unconnected UDP socket
    /// (`0.0.0.0:0`, `*:*`).
    pub remote: Option<SocketAddr>,
    /// The owning process, when the source says (`/proc/PID/fd` with
    /// permission, `ss -p`, `netstat -o`, `lsof`); a TIME_WAIT socket has
    /// none.
    pub pid: Option<u32>,
    /// Its command name, when known.
    pub process: Option<String>,
}
