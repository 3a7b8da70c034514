//! Key logs: the NSS key log format (`SSLKEYLOGFILE`, RFC 9850) that curl, `openssl s_client
//! -keylogfile`, Go and Wireshark write and read.
//!
//! Each line is `LABEL <client_random hex> <secret hex>`; `#` comments and blank lines are
//! skipped, CRLF is accepted. The secrets that decrypt a handshake are kept per client random
//! in [`Secrets`] (the TLS 1.2 master secret and the four TLS 1.3 handshake and application
//! traffic secrets) and handed to [`super::decrypt`]. Other known labels are accepted and not
//! kept; unknown labels and malformed lines are counted, with the number of the first, and
//! never echoed. Nothing here prints a secret: `Debug` says only which secrets are present.

use std::collections::HashMap;
use std::fmt;

/// At most this many client randoms are kept; later new ones are counted as [`Loaded::dropped`].
pub const MAX_RANDOMS: usize = 1_000_000;

/// A line longer than this (without its line ending) is malformed.
pub const MAX_LINE: usize = 1024;

/// The secrets logged for one client random.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// `CLIENT_RANDOM`: the TLS 1.2 (and earlier) master secret.
    pub master: Option<[u8; 48]>,
    /// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`.
    pub client_handshake: Option<Vec<u8>>,
    /// `SERVER_HANDSHAKE_TRAFFIC_SECRET`.
    pub server_handshake: Option<Vec<u8>>,
    /// `CLIENT_TRAFFIC_SECRET_0`.
    pub client_app: Option<Vec<u8>>,
    /// `SERVER_TRAFFIC_SECRET_0`.
    pub server_app: Option<Vec<u8>>,
}

/// What one [`KeyLog::add_text`] read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Lines whose secret was kept.
    pub entries: usize,
    /// Lines with a known label that is not needed here (exporter, early traffic, ECH).
    pub ignored: usize,
    /// Lines that are not key log lines: unknown label, bad hex, wrong length or field count,
    /// longer than [`MAX_LINE`].
    pub malformed: usize,
    /// The 1-based number of the first malformed line.
    pub first_malformed_line: Option<usize>,
    /// Well-formed lines for a new client random once [`MAX_RANDOMS`] were held.
    pub dropped: usize,
}

/// Secrets by client random, from one or more key logs.
#[derive(Clone)]
pub struct KeyLog {
    by_random: HashMap<[u8; 32], Secrets>,
    /// [`MAX_RANDOMS`], smaller in tests.
    cap: usize,
}

impl Default for KeyLog {
    fn default() -> Self {
        KeyLog {
            by_random: HashMap::new(),
            cap: MAX_RANDOMS,
        }
    }
}

/// Which field of [`Secrets`] a label fills.
#[derive(Clone, Copy)]
enum Slot {
    Master,
    ClientHandshake,
    ServerHandshake,
    ClientApp,
    ServerApp,
}

/// What a line turned out to be.
enum Line {
    Skip,
    Ignored,
    Keep([u8; 32], Slot, Vec<u8>),
    Malformed,
}

/// Labels of RFC 9850 that are valid but carry nothing the diagnosis decrypts.
const IGNORED_LABELS: [&[u8]; 5] = [
    b"EXPORTER_SECRET",
    b"CLIENT_EARLY_TRAFFIC_SECRET",
    b"EARLY_EXPORTER_SECRET",
    b"ECH_SECRET",
    b"ECH_CONFIG",
];

impl KeyLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a whole key log in one pass; later lines for the same random and label win.
    pub fn add_text(&mut self, text: &[u8]) -> Loaded {
        let mut loaded = Loaded::default();
        for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
            match parse_line(raw) {
                Line::Skip => {}
                Line::Ignored => loaded.ignored += 1,
                Line::Malformed => {
                    loaded.malformed += 1;
                    loaded.first_malformed_line.get_or_insert(index + 1);
                }
                Line::Keep(random, slot, secret) => {
                    if self.store(random, slot, secret) {
                        loaded.entries += 1;
                    } else {
                        loaded.dropped += 1;
                    }
                }
            }
        }
        loaded
    }

    /// The secrets logged for this client random (32 bytes), if any.
    pub fn get(&self, client_random: &[u8]) -> Option<&Secrets> {
        let key: [u8; 32] = client_random.try_into().ok()?;
        self.by_random.get(&key)
    }

    /// How many client randoms have secrets.
    pub fn len(&self) -> usize {
        self.by_random.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_random.is_empty()
    }

    /// Files one secret; false when the random is new and the map is full.
    fn store(&mut self, random: [u8; 32], slot: Slot, secret: Vec<u8>) -> bool {
        let full = self.by_random.len() >= self.cap;
        let secrets = match self.by_random.get_mut(&random) {
            Some(secrets) => secrets,
            None if full => return false,
            None => self.by_random.entry(random).or_default(),
        };
        match slot {
            Slot::Master => secrets.master = secret.as_slice().try_into().ok(),
            Slot::ClientHandshake => secrets.client_handshake = Some(secret),
            Slot::ServerHandshake => secrets.server_handshake = Some(secret),
            Slot::ClientApp => secrets.client_app = Some(secret),
            Slot::ServerApp => secrets.server_app = Some(secret),
        }
        true
    }
}

/// Classifies one line (without its `\n`).
fn parse_line(raw: &[u8]) -> Line {
    if raw.len() > MAX_LINE + 1 {
        return Line::Malformed;
    }
    let line = raw.strip_suffix(b"\r").unwrap_or(raw);
    if line.len() > MAX_LINE {
        return Line::Malformed;
    }
    let line = line.trim_ascii();
    if line.is_empty() || line.starts_with(b"#") {
        return Line::Skip;
    }
    let mut fields = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let (Some(label), Some(random), Some(secret), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Line::Malformed;
    };
    let (Some(random), Some(secret)) = (decode_hex(random), decode_hex(secret)) else {
        return Line::Malformed;
    };
    let Ok(random) = <[u8; 32]>::try_from(random.as_slice()) else {
        return Line::Malformed;
    };
    classify(label, random, secret)
}

/// The label's slot, checking the secret's length for it.
fn classify(label: &[u8], random: [u8; 32], secret: Vec<u8>) -> Line {
    let slot = match label {
        b"CLIENT_RANDOM" => Slot::Master,
        b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Slot::ClientHandshake,
        b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => Slot::ServerHandshake,
        b"CLIENT_TRAFFIC_SECRET_0" => Slot::ClientApp,
        b"SERVER_TRAFFIC_SECRET_0" => Slot::ServerApp,
        _ if IGNORED_LABELS.contains(&label) && !secret.is_empty() => return Line::Ignored,
        _ => return Line::Malformed,
    };
    let length_ok = match slot {
        Slot::Master => secret.len() == 48,
        _ => secret.len() == 32 || secret.len() == 48,
    };
    if length_ok {
        Line::Keep(random, slot, secret)
    } else {
        Line::Malformed
    }
}

/// Hex (either case, even length) to bytes; None on anything else.
fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// "present" or "absent": the only thing ever said about a secret.
fn presence<T>(secret: &Option<T>) -> &'static str {
    if secret.is_some() {
        "present"
    } else {
        "absent"
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand, so that no secret byte can reach a log or an error message.
        f.debug_struct("Secrets")
            .field("master", &format_args!("{}", presence(&self.master)))
            .field(
                "client_handshake",
                &format_args!("{}", presence(&self.client_handshake)),
            )
            .field(
                "server_handshake",
                &format_args!("{}", presence(&self.server_handshake)),
            )
            .field(
                "client_app",
                &format_args!("{}", presence(&self.client_app)),
            )
            .field(
                "server_app",
                &format_args!("{}", presence(&self.server_app)),
            )
            .finish()
    }
}

impl fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLog")
            .field("randoms", &self.by_random.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: &str = "a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e26928";
    const MASTER: &str = "4c5f6e0e1b4d7a8c9d2e3f405162738495a6b7c8d9eaf00112233445566778899aabbccddeeff0011223344556677aab";
    const TRAFFIC: &str = "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38";

    fn random() -> [u8; 32] {
        let bytes = decode_hex(RANDOM.as_bytes()).unwrap();
        bytes.as_slice().try_into().unwrap()
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_read() {
        let text = format!(
            "# written by a test\r\n\r\nCLIENT_RANDOM {RANDOM} {MASTER}\r\n  \n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {RANDOM} {TRAFFIC}\r\n"
        );
        let mut log = KeyLog::new();
        let loaded = log.add_text(text.as_bytes());
        assert_eq!(
            loaded,
            Loaded {
                entries: 2,
                ..Loaded::default()
            }
        );
        assert_eq!(log.len(), 1);
        let secrets = log.get(&random()).unwrap();
        assert_eq!(
            secrets.master.unwrap().to_vec(),
            decode_hex(MASTER.as_bytes()).unwrap()
        );
        assert_eq!(secrets.server_handshake, decode_hex(TRAFFIC.as_bytes()));
        assert!(secrets.client_handshake.is_none() && secrets.client_app.is_none());
        assert!(log.get(&[0; 32]).is_none());
        assert!(log.get(&[0; 31]).is_none());
    }

    #[test]
    fn all_four_traffic_secrets_and_48_byte_ones_are_kept() {
        let long = "ab".repeat(48);
        let text = format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {RANDOM} {TRAFFIC}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {RANDOM} {long}\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM} {TRAFFIC}\n\
             SERVER_TRAFFIC_SECRET_0 {RANDOM} {}",
            TRAFFIC.to_uppercase()
        );
        let mut log = KeyLog::new();
        assert_eq!(log.add_text(text.as_bytes()).entries, 4);
        let secrets = log.get(&random()).unwrap();
        assert_eq!(secrets.server_handshake.as_ref().unwrap().len(), 48);
        assert_eq!(secrets.server_app, secrets.client_app);
        assert!(secrets.client_handshake.is_some() && secrets.master.is_none());
    }

    #[test]
    fn malformed_lines_are_counted_with_the_first_line_number() {
        let text = format!(
            "# ok\n\
             CLIENT_RANDOM {RANDOM} {MASTER}\n\
             CLIENT_RANDOM {RANDOM} {}\n\
             CLIENT_RANDOM {RANDOM} {TRAFFIC}\n\
             CLIENT_RANDOM {} {MASTER}\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM} {}\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM} {TRAFFIC}0\n\
             CLIENT_RANDOM {RANDOM}\n\
             CLIENT_RANDOM {RANDOM} {MASTER} extra\n\
             SOMETHING_NEW {RANDOM} {TRAFFIC}\n\
             EXPORTER_SECRET {RANDOM} {TRAFFIC}\n\
             CLIENT_EARLY_TRAFFIC_SECRET {RANDOM} {TRAFFIC}\n",
            MASTER.replace('4', "g"),
            &RANDOM[2..],
            "ab".repeat(40),
        );
        let mut log = KeyLog::new();
        let loaded = log.add_text(text.as_bytes());
        assert_eq!(loaded.entries, 1);
        assert_eq!(loaded.ignored, 2);
        assert_eq!(loaded.malformed, 8);
        assert_eq!(loaded.first_malformed_line, Some(3));
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn a_line_longer_than_a_kibibyte_is_malformed() {
        let long = format!("CLIENT_RANDOM {RANDOM} {MASTER}{}", " ".repeat(MAX_LINE));
        let text = format!("CLIENT_RANDOM {RANDOM} {MASTER}\n{long}\n");
        let loaded = KeyLog::new().add_text(text.as_bytes());
        assert_eq!((loaded.entries, loaded.malformed), (1, 1));
        assert_eq!(loaded.first_malformed_line, Some(2));
    }

    #[test]
    fn debug_says_which_secrets_are_present_and_never_their_bytes() {
        let text = format!(
            "CLIENT_RANDOM {RANDOM} {MASTER}\nCLIENT_TRAFFIC_SECRET_0 {RANDOM} {TRAFFIC}\n"
        );
        let mut log = KeyLog::new();
        log.add_text(text.as_bytes());
        let secrets = log.get(&random()).unwrap();
        for shown in [
            format!("{secrets:?}"),
            format!("{secrets:#?}"),
            format!("{log:?}"),
        ] {
            let lower = shown.to_lowercase();
            for secret in [MASTER, TRAFFIC, RANDOM] {
                assert!(!lower.contains(&secret[..8]), "{shown}");
            }
            // Nor as decimal bytes, as a derived Debug of an array would print them.
            assert!(!shown.contains("76, 95"), "{shown}");
        }
        let shown = format!("{secrets:?}");
        assert!(shown.contains("master: present"), "{shown}");
        assert!(shown.contains("client_handshake: absent"), "{shown}");
        assert!(shown.contains("client_app: present"), "{shown}");
    }

    #[test]
    fn randoms_beyond_the_cap_are_dropped_but_known_ones_still_fill() {
        let other = RANDOM.replace("a6", "b7");
        let text = format!(
            "CLIENT_RANDOM {RANDOM} {MASTER}\n\
             CLIENT_RANDOM {other} {MASTER}\n\
             CLIENT_RANDOM {} {MASTER}\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM} {TRAFFIC}\n",
            RANDOM.replace("a6", "c8")
        );
        let mut log = KeyLog {
            cap: 2,
            ..KeyLog::default()
        };
        let loaded = log.add_text(text.as_bytes());
        assert_eq!(
            (loaded.entries, loaded.dropped, loaded.malformed),
            (3, 1, 0)
        );
        assert_eq!(log.len(), 2);
        assert!(log.get(&random()).unwrap().client_app.is_some());
        assert_eq!(KeyLog::new().cap, MAX_RANDOMS);
    }

    #[test]
    fn an_empty_or_binary_text_holds_nothing() {
        let mut log = KeyLog::new();
        assert_eq!(log.add_text(b""), Loaded::default());
        let loaded = log.add_text(&[0xff, 0x00, b'\n', 0x80]);
        assert_eq!(loaded.malformed, 2);
        assert!(log.is_empty());
    }
}
