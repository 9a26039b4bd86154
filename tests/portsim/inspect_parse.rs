//! The saved-table readers of `inspect --from`: fixtures of each format
//! (`ss`, Windows and BSD `netstat`, `lsof`) read to exact socket lists,
//! detection of each, `--format` against a header it contradicts, broken
//! files failing at the exact line with the exact message, and mutated
//! tables that must end in a list or a one-line error, never a panic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use portsim::inspect::parse::{decode, detect, parse, Format, ParseError};
use portsim::inspect::Socket;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/portsim/fixtures/inspect")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap()
}

/// One socket as one line: proto, state, local, remote, pid, process.
fn render(s: &Socket) -> String {
    let remote = s.remote.map_or("-".to_string(), |r| r.to_string());
    let pid = s.pid.map_or("-".to_string(), |p| p.to_string());
    let process = s.process.as_deref().unwrap_or("-");
    format!(
        "{:?} {} {} {remote} {pid} {process}",
        s.proto,
        s.state.name(),
        s.local
    )
    .to_lowercase()
}

/// The fixture read with detection: its format, and its sockets rendered.
fn read(name: &str) -> (Format, Vec<String>, usize) {
    let p = parse(&fixture(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
    (p.format, p.sockets.iter().map(render).collect(), p.skipped)
}

fn by_state(name: &str) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for s in parse(&fixture(name), None).unwrap().sockets {
        *m.entry(s.state.name()).or_default() += 1;
    }
    m
}

fn err(name: &str, format: Option<Format>) -> ParseError {
    match parse(&fixture(name), format) {
        Ok(p) => panic!("{name} read as {} sockets", p.sockets.len()),
        Err(e) => e,
    }
}

#[test]
fn ss_tanp() {
    let (format, sockets, skipped) = read("ss-tanp.txt");
    assert_eq!(format, Format::Ss);
    assert_eq!(skipped, 0);
    assert_eq!(
        sockets,
        [
            "tcp listen 127.0.0.53:53 - 612 systemd-resolve",
            "tcp listen 0.0.0.0:22 - 901 sshd",
            "tcp listen 0.0.0.0:80 - 1234 nginx",
            "tcp established 10.0.0.5:22 10.0.0.99:51515 3001 sshd",
            "tcp established 10.0.0.5:41000 10.0.0.9:5432 812 api",
            "tcp established 10.0.0.5:41002 10.0.0.9:5432 812 api",
            "tcp established 10.0.0.5:52814 10.0.0.10:6379 812 api",
            "tcp syn_sent 10.0.0.5:52816 10.0.0.10:6379 812 api",
            "tcp time_wait 10.0.0.5:41004 10.0.0.9:5432 - -",
            "tcp time_wait 10.0.0.5:41006 10.0.0.9:5432 - -",
            "tcp time_wait 10.0.0.5:41008 10.0.0.9:5432 - -",
            "tcp close_wait 10.0.0.5:43210 93.184.216.34:443 4444 curl",
            "tcp fin_wait2 10.0.0.5:43212 93.184.216.34:443 - -",
            "tcp established 10.0.0.5:44444 151.101.1.69:443 5100 web content",
            "tcp listen [::]:9100 - 700 node_exporter",
            "tcp listen [::]:22 - 901 sshd",
            "tcp established [::ffff:10.0.0.5]:8080 [::ffff:10.0.0.77]:60001 2222 java",
        ]
    );
    assert_eq!(
        by_state("ss-tanp.txt"),
        BTreeMap::from([
            ("CLOSE_WAIT", 1),
            ("ESTABLISHED", 6),
            ("FIN_WAIT2", 1),
            ("LISTEN", 5),
            ("SYN_SENT", 1),
            ("TIME_WAIT", 3),
        ])
    );
}

#[test]
fn ss_tuanp_ipv6_with_netid() {
    let (format, sockets, _) = read("ss-tuanp-ipv6.txt");
    assert_eq!(format, Format::Ss);
    assert_eq!(
        sockets,
        [
            "udp unconn 127.0.0.53:53 - 612 systemd-resolve",
            "udp established 10.0.0.5:38211 10.0.0.2:53 812 api",
            "udp unconn [fe80::5054:ff:fe12:3456]:546 - 590 systemd-network",
            "udp unconn [::]:5353 - 640 avahi-daemon",
            "tcp listen [::]:443 - 1500 envoy",
            "tcp established [2001:db8::5]:443 [2001:db8:1::77]:60123 1500 envoy",
            "tcp established [2001:db8::5]:50000 [2001:db8:2::9]:5432 1500 envoy",
            "tcp time_wait [2001:db8::5]:50002 [2001:db8:2::9]:5432 - -",
            "tcp time_wait [2001:db8::5]:50004 [2001:db8:2::9]:5432 - -",
            "tcp established [::1]:5432 [::1]:50312 900 postgres",
            "tcp established [::1]:50312 [::1]:5432 3100 psql",
            "tcp syn_recv [::ffff:10.0.0.5]:8080 [::ffff:10.0.0.77]:60001 - -",
            "tcp last_ack [2001:db8::5]:443 [2001:db8:1::78]:60124 - -",
            // ss prints a TCP socket in CLOSE as UNCONN.
            "tcp close 10.0.0.5:50010 - 812 api",
        ]
    );
}

#[test]
fn ss_tan_without_process_column_or_final_newline() {
    let (format, sockets, _) = read("ss-tan.txt");
    assert_eq!(format, Format::Ss);
    assert_eq!(
        sockets,
        [
            "tcp listen 0.0.0.0:22 - - -",
            "tcp established 10.0.0.5:41000 10.0.0.9:5432 - -",
            "tcp time_wait 10.0.0.5:41004 10.0.0.9:5432 - -",
            "tcp listen [::]:22 - - -",
        ]
    );
    // `ss -H` prints no header: readable when named.
    let text = fixture("ss-tan.txt");
    let rows = text.split_once('\n').unwrap().1;
    assert_eq!(detect(rows).unwrap_err().line, 1);
    let p = parse(rows, Some(Format::Ss)).unwrap();
    assert_eq!(p.sockets.len(), 4);
}

#[test]
fn netstat_ano_windows() {
    let (format, sockets, _) = read("netstat-ano-windows.txt");
    assert_eq!(format, Format::NetstatWindows);
    assert_eq!(
        sockets,
        [
            "tcp listen 0.0.0.0:135 - 1028 -",
            "tcp listen 0.0.0.0:445 - 4 -",
            "tcp listen 0.0.0.0:49664 - 700 -",
            "tcp listen 10.0.0.5:139 - 4 -",
            "tcp time_wait 10.0.0.5:50112 10.0.0.9:443 - -",
            "tcp time_wait 10.0.0.5:50113 10.0.0.9:443 - -",
            "tcp time_wait 10.0.0.5:50114 10.0.0.9:443 - -",
            "tcp established 10.0.0.5:50115 10.0.0.9:443 5120 -",
            "tcp established 10.0.0.5:50116 10.0.0.9:443 5120 -",
            "tcp syn_sent 10.0.0.5:50117 52.96.1.2:443 5120 -",
            "tcp close_wait 10.0.0.5:50118 52.96.1.2:443 7340 -",
            "tcp fin_wait2 10.0.0.5:50119 52.96.1.2:443 7340 -",
            "tcp established 127.0.0.1:50120 127.0.0.1:50121 6000 -",
            "tcp established 127.0.0.1:50121 127.0.0.1:50120 6000 -",
            "tcp listen [::]:135 - 1028 -",
            "tcp listen [::]:445 - 4 -",
            "tcp time_wait [::1]:50200 [::1]:8080 - -",
            "tcp established [fe80::1c2d:3e4f:5a6b:7c8d%4]:49670 [fe80::aa:bbff:fecc:ddee%4]:445 4 -",
            "udp unconn 0.0.0.0:5353 - 2364 -",
            "udp unconn 10.0.0.5:137 - 4 -",
            "udp unconn [::]:5353 - 2364 -",
            "udp unconn [fe80::1c2d:3e4f:5a6b:7c8d%4]:1900 - 3880 -",
        ]
    );
    assert_eq!(by_state("netstat-ano-windows.txt")["TIME_WAIT"], 4);
    // The same table as PowerShell's `>` writes it: UTF-16 with a BOM.
    let text = fixture("netstat-ano-windows.txt");
    let mut bytes = vec![0xff, 0xfe];
    for u in text.encode_utf16() {
        bytes.extend(u.to_le_bytes());
    }
    let p = parse(&decode(&bytes), None).unwrap();
    assert_eq!(p.sockets, parse(&text, None).unwrap().sockets);
    // Read as UTF-8 instead, it is refused by name.
    let e = parse(&String::from_utf8_lossy(&bytes), None).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("UTF-16"), "{}", e.message);
}

#[test]
fn netstat_anob_windows_names_processes() {
    let (format, sockets, _) = read("netstat-anob-windows.txt");
    assert_eq!(format, Format::NetstatWindows);
    assert_eq!(
        sockets,
        [
            "tcp listen 0.0.0.0:135 - 1028 svchost.exe",
            "tcp listen 0.0.0.0:445 - 4 -",
            "tcp established 10.0.0.5:50115 10.0.0.9:443 5120 chrome.exe",
            "tcp time_wait 10.0.0.5:50112 10.0.0.9:443 - -",
            "udp unconn 0.0.0.0:5353 - 2364 chrome.exe",
        ]
    );
}

#[test]
fn netstat_an_macos() {
    let (format, sockets, skipped) = read("netstat-an-macos.txt");
    assert_eq!(format, Format::NetstatBsd);
    assert_eq!(skipped, 1, "the icm6 row");
    assert_eq!(
        sockets,
        [
            "tcp established 192.168.1.5:52814 17.57.146.20:5223 - -",
            "tcp established 192.168.1.5:52812 140.82.112.26:443 - -",
            "tcp time_wait 192.168.1.5:52810 140.82.112.26:443 - -",
            "tcp time_wait 192.168.1.5:52808 140.82.112.26:443 - -",
            "tcp fin_wait2 192.168.1.5:52806 151.101.1.69:443 - -",
            "tcp syn_sent 192.168.1.5:52820 151.101.1.69:443 - -",
            "tcp established [::1]:8021 [::1]:52000 - -",
            "tcp established [::1]:52000 [::1]:8021 - -",
            "tcp listen [fe80::1]:631 - - -",
            "tcp listen [::]:22 - - -",
            "tcp listen 127.0.0.1:8021 - - -",
            "tcp listen 0.0.0.0:5000 - - -",
            "tcp close_wait 192.168.1.5:52790 17.253.1.2:80 - -",
            "udp unconn 0.0.0.0:5353 - - -",
            "udp unconn [::]:5353 - - -",
            "udp established 192.168.1.5:61000 192.168.1.1:53 - -",
        ]
    );
}

#[test]
fn netstat_an_freebsd() {
    let (format, sockets, skipped) = read("netstat-an-freebsd.txt");
    assert_eq!(format, Format::NetstatBsd);
    assert_eq!(skipped, 0);
    assert_eq!(
        sockets,
        [
            "tcp established 10.0.0.1:22 10.0.0.2:51515 - -",
            "tcp established 10.0.0.1:22 10.0.0.3:60001 - -",
            "tcp time_wait 10.0.0.1:40001 10.0.0.9:5432 - -",
            "tcp time_wait 10.0.0.1:40003 10.0.0.9:5432 - -",
            "tcp syn_recv 10.0.0.1:80 10.0.0.4:55000 - -",
            "tcp close 10.0.0.1:40007 10.0.0.9:5432 - -",
            "tcp established [2001:db8::1]:22 [2001:db8::2]:50123 - -",
            "tcp listen 127.0.0.1:25 - - -",
            "tcp listen 0.0.0.0:22 - - -",
            "tcp listen [::]:22 - - -",
            "udp unconn 0.0.0.0:514 - - -",
            "udp unconn [::]:514 - - -",
        ]
    );
}

#[test]
fn lsof_macos() {
    let (format, sockets, _) = read("lsof-i-n-P.txt");
    assert_eq!(format, Format::Lsof);
    assert_eq!(
        sockets,
        [
            "tcp listen [::]:22 - 1 launchd",
            "tcp listen 0.0.0.0:22 - 1 launchd",
            "udp unconn 0.0.0.0:5353 - 310 mdnsrespo",
            "udp unconn [::]:5353 - 310 mdnsrespo",
            "tcp listen 0.0.0.0:49152 - 512 rapportd",
            "tcp established 192.168.1.5:52814 142.250.72.14:443 789 google ch",
            "tcp established 192.168.1.5:52816 142.250.72.14:443 789 google ch",
            "tcp close_wait 192.168.1.5:52818 142.250.72.14:443 789 google ch",
            "tcp established [::1]:5432 [::1]:50312 900 postgres",
            "tcp established [::1]:50312 [::1]:5432 3100 psql",
            "tcp listen 127.0.0.1:8080 - 4100 node",
            "tcp established 127.0.0.1:8080 127.0.0.1:60001 4100 node",
            "tcp syn_sent 192.168.1.5:60010 93.184.216.34:443 4200 curl",
        ]
    );
    let p = parse(&fixture("lsof-i-n-P.txt"), None).unwrap();
    assert_eq!(p.sockets[5].process.as_deref(), Some("Google Ch"));
}

#[test]
fn lsof_linux_reads_a_shared_socket_once() {
    let (format, sockets, _) = read("lsof-i-n-P-linux.txt");
    assert_eq!(format, Format::Lsof);
    assert_eq!(
        sockets,
        [
            "udp unconn 127.0.0.53:53 - 612 systemd-r",
            "tcp listen 127.0.0.53:53 - 612 systemd-r",
            "tcp listen 0.0.0.0:22 - 901 sshd",
            "tcp listen [::]:22 - 901 sshd",
            // nginx's master and two workers hold one listening socket.
            "tcp listen 0.0.0.0:80 - 1234 nginx",
            "tcp established 10.0.0.5:41000 10.0.0.9:5432 812 api",
            "tcp established 10.0.0.5:41002 10.0.0.9:5432 812 api",
            "tcp syn_sent 10.0.0.5:41010 10.0.0.9:5432 812 api",
            "udp established 10.0.0.5:38211 10.0.0.2:53 812 api",
            "udp unconn [::1]:323 - 650 chronyd",
            "tcp established [::ffff:10.0.0.5]:8080 [::ffff:10.0.0.77]:60001 2222 java",
        ]
    );
}

#[test]
fn detection_picks_each_format() {
    for (name, want) in [
        ("ss-tanp.txt", Format::Ss),
        ("ss-tuanp-ipv6.txt", Format::Ss),
        ("ss-tan.txt", Format::Ss),
        ("netstat-ano-windows.txt", Format::NetstatWindows),
        ("netstat-anob-windows.txt", Format::NetstatWindows),
        ("netstat-an-macos.txt", Format::NetstatBsd),
        ("netstat-an-freebsd.txt", Format::NetstatBsd),
        ("lsof-i-n-P.txt", Format::Lsof),
        ("lsof-i-n-P-linux.txt", Format::Lsof),
    ] {
        assert_eq!(detect(&fixture(name)), Ok(want), "{name}");
        // Naming the right format gives the same table.
        let named = parse(&fixture(name), Some(want)).unwrap();
        assert_eq!(named.sockets, parse(&fixture(name), None).unwrap().sockets);
    }
    for f in Format::ALL {
        assert_eq!(Format::from_name(f.name()), Some(f));
    }
    assert_eq!(Format::from_name("netstat"), None);
}

#[test]
fn a_named_format_that_contradicts_the_header() {
    let e = err("ss-tanp.txt", Some(Format::Lsof));
    assert_eq!(e.line, 1);
    assert_eq!(
        e.message,
        "\"State      Recv-Q Send-Q      Local Address:Port         Pee…\" shows ss -tanp output (format ss), not lsof -i -n -P (--format lsof)"
    );
    let e = err("netstat-ano-windows.txt", Some(Format::NetstatBsd));
    assert_eq!(e.line, 2, "the preamble after the leading blank line");
}

#[test]
fn broken_files_name_the_line() {
    let cases: [(&str, usize, &str); 7] = [
        (
            "broken-ss-truncated.txt",
            4,
            "process column \"users:((\"api\",pi\" is not users:((\"NAME\",pid=PID,fd=FD),…) (the file ends in the middle of this line without a newline: was it cut off?)",
        ),
        (
            "broken-ss-unknown-state.txt",
            3,
            "state \"UNKNOWN\" is not one ss prints (ESTAB, SYN-SENT, SYN-RECV, FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, CLOSE-WAIT, LAST-ACK, CLOSING, LISTEN, UNCONN), nor a Netid (tcp, udp)",
        ),
        (
            "broken-windows-truncated.txt",
            7,
            "\"TCP    10.0.0.5:50113         10.0.0.9:443           TIME_WA\" has 4 columns; expected 5: TCP LOCAL FOREIGN STATE PID (the file ends in the middle of this line without a newline: was it cut off?)",
        ),
        (
            "broken-windows-unknown-state.txt",
            6,
            "state \"WAITING\" is not one netstat prints (ESTABLISHED, LISTENING, TIME_WAIT, SYN_SENT, SYN_RECEIVED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, CLOSED, BOUND)",
        ),
        (
            "broken-macos-short-ipv6.txt",
            4,
            "local address \"2001:db8:1234:5678:\" is not a numeric IP address; expected ADDRESS.PORT (192.168.1.5.52814, *.22, ::1.8021, *.*) (macOS cuts long IPv6 addresses unless netstat runs with -W)",
        ),
        (
            "broken-lsof-names.txt",
            2,
            "local address \"localhost\" is not a numeric IP address; expected ADDRESS:PORT as lsof -n -P prints it (10.0.0.5:41000, [::1]:5432, *:8080)",
        ),
        (
            "broken-linux-netstat.txt",
            2,
            "\"Proto Recv-Q Send-Q Local Address           Foreign Address …\" is the header of Linux's netstat (net-tools), which portsim does not read; save `ss -tanp` instead; expected the saved output of ss -tanp, netstat -ano (Windows), netstat -an -p tcp (macOS, BSD) or lsof -i -n -P (--format names one: ss, netstat-windows, netstat-bsd, lsof)",
        ),
    ];
    for (name, line, message) in cases {
        let e = err(name, None);
        assert_eq!((e.line, e.message.as_str()), (line, message), "{name}");
    }
}

#[test]
fn rows_cut_or_bent_fail_at_their_line() {
    let head = "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n";
    let cases: [(&str, &str); 5] = [
        (
            "ESTAB 0 0 10.0.0.5:41000\n",
            "\"ESTAB 0 0 10.0.0.5:41000\" has 4 of the columns State Recv-Q Send-Q Local Address:Port Peer Address:Port",
        ),
        (
            "ESTAB 0 0 10.0.0.5:70000 10.0.0.9:5432\n",
            "local address port \"70000\" is not in 0-65535; expected ADDRESS:PORT as ss -n prints it (10.0.0.1:5432, [::1]:443, *:22)",
        ),
        (
            "ESTAB x 0 10.0.0.5:41000 10.0.0.9:5432\n",
            "Recv-Q \"x\" is not a number",
        ),
        (
            "ESTAB 0 0 10.0.0.5:41000 10.0.0.9:postgresql\n",
            "peer address port \"postgresql\" is not a number; expected ADDRESS:PORT as ss -n prints it (10.0.0.9:443, [::1]:443, 0.0.0.0:*)",
        ),
        (
            "ESTAB 0 0 10.0.0.5:41000 10.0.0.9:5432 \u{1b}[31mred\n",
            "\"\\u{1b}[31mred\" after the peer address is not a process column (users:((\"NAME\",pid=PID,fd=FD))) nor an -o/-e field (timer:(…), uid:N, ino:N, sk:…)",
        ),
    ];
    for (row, message) in cases {
        let text = format!("{head}\n{row}");
        let e = parse(&text, None).unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (3, message), "{row}");
    }
    // Header only: a table with no sockets.
    assert!(parse(head, None).unwrap().sockets.is_empty());
}

/// A small deterministic generator (xorshift64*), so every run mutates the
/// same way.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_tables_end_in_a_list_or_a_one_line_error() {
    let names = [
        "ss-tanp.txt",
        "ss-tuanp-ipv6.txt",
        "netstat-ano-windows.txt",
        "netstat-anob-windows.txt",
        "netstat-an-macos.txt",
        "netstat-an-freebsd.txt",
        "lsof-i-n-P.txt",
        "lsof-i-n-P-linux.txt",
    ];
    let texts: Vec<String> = names.iter().map(|n| fixture(n)).collect();
    let pieces = [
        ":",
        "[",
        "]",
        "%",
        "*",
        ".",
        "(",
        ")",
        "\"",
        "->",
        " ",
        "\t",
        "\n",
        "\r",
        "0",
        "9",
        "65536",
        "users:((",
        "pid=",
        "é",
        "\u{0}",
        "\u{1b}",
        "ESTAB",
        "TIME_WAIT",
        "[::",
        "*.*",
        "\\x2",
        "\\xzz",
        "tcp46",
        "UDP",
        "IPv6",
        "TCP",
    ];
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let mut errors = 0;
    for case in 0..3000 {
        let mut text: Vec<char> = texts[g.below(texts.len())].chars().collect();
        for _ in 0..1 + g.below(6) {
            let at = g.below(text.len() + 1);
            match g.below(4) {
                0 => text
                    .splice(at..at, pieces[g.below(pieces.len())].chars())
                    .for_each(drop),
                1 if at < text.len() => {
                    text.remove(at);
                }
                2 => text.truncate(at),
                _ => {
                    // A line of another table spliced in.
                    let other = &texts[g.below(texts.len())];
                    let line = other
                        .lines()
                        .nth(g.below(other.lines().count()))
                        .unwrap_or("");
                    text.splice(at..at, format!("\n{line}\n").chars())
                        .for_each(drop);
                }
            }
        }
        let text: String = text.into_iter().collect();
        let lines = text.lines().count().max(1);
        for format in [
            None,
            Some(Format::Ss),
            Some(Format::NetstatWindows),
            Some(Format::NetstatBsd),
            Some(Format::Lsof),
        ] {
            match parse(&text, format) {
                Ok(p) => assert!(p.sockets.len() <= lines, "case {case}"),
                Err(e) => {
                    errors += 1;
                    assert!(
                        e.line >= 1 && e.line <= lines,
                        "case {case}: line {} of {lines}",
                        e.line
                    );
                    assert!(
                        !e.message.is_empty()
                            && !e.message.contains(['\n', '\r', '\u{0}', '\u{1b}']),
                        "case {case}: {:?}",
                        e.message
                    );
                    assert!(
                        e.message.chars().count() < 600,
                        "case {case}: {}",
                        e.message
                    );
                }
            }
        }
    }
    // Most mutations break a row: the test reaches the error paths.
    assert!(errors > 3000, "{errors} errors");
}
