//! Who may do what on the MQTT broker: the topics each device may publish and subscribe to,
//! and the password hashes of device credentials.
//!
//! A device is one machine's connection to the broker (a bridge, a smart plug, firmware that
//! speaks the generic topics). It may publish only its machine's reports and subscribe only
//! to the commands meant for it. makrcave's own client is the broker's one service account.
//!
//! Passwords are stored in Mosquitto's own format (`$7$`: PBKDF2-SHA512), so the same hash
//! serves the embedded broker and an external Mosquitto's `password_file`. The passwords are
//! 32 random bytes, so the iteration count is not what protects them (nobody can guess 256
//! bits); Mosquitto's default of 101 keeps every connect cheap.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::Hmac;
use sha2::Sha512;

use super::equipment::Connection;

/// The broker's account for makrcave itself (publishes commands, reads every report).
pub const SERVICE_USERNAME: &str = "makrcave";
/// Mosquitto's default PBKDF2 iterations (`mosquitto_passwd`).
const PBKDF2_ITERATIONS: u32 = 101;
pub const SALT_BYTES: usize = 12;
const HASH_BYTES: usize = 64;

/// The username of a machine's device: stable across re-issued passwords.
pub fn username_of(equipment_id: &str) -> String {
    format!("eq-{equipment_id}")
}

/// What a connected client may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerGrant {
    /// makrcave itself: every topic.
    Service,
    /// A machine's device: only its own topics.
    Device(TopicRules),
}

impl BrokerGrant {
    pub fn may_publish(&self, topic: &str) -> bool {
        match self {
            BrokerGrant::Service => true,
            BrokerGrant::Device(rules) => rules.may_publish(topic),
        }
    }

    pub fn may_subscribe(&self, filter: &str) -> bool {
        match self {
            BrokerGrant::Service => true,
            BrokerGrant::Device(rules) => rules.may_subscribe(filter),
        }
    }
}

/// Topic patterns (MQTT filters, `+` and `#` allowed) a device may publish to and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TopicRules {
    /// Topics the device may publish to.
    pub publish: Vec<String>,
    /// Filters the device may subscribe to (and every narrower filter).
    pub subscribe: Vec<String>,
}

impl TopicRules {
    /// A topic (no wildcards) the device may publish to.
    pub fn may_publish(&self, topic: &str) -> bool {
        is_valid_topic(topic) && self.publish.iter().any(|pattern| filter_within(topic, pattern))
    }

    /// A filter the device may subscribe to: every topic it can match must be allowed.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        is_valid_filter(filter) && self.subscribe.iter().any(|pattern| filter_within(filter, pattern))
    }

    /// The rules of a machine's device, from how the machine talks. `None` for machines that
    /// do not use makrcave's broker (a Bambu printer runs its own, OctoPrint speaks HTTP).
    pub fn for_machine(makerspace_id: &str, equipment_id: &str, connection: &Connection) -> Option<TopicRules> {
        let rules = |publish: Vec<String>, subscribe: Vec<String>| Some(TopicRules { publish, subscribe });
        match connection {
            Connection::Mqtt => {
                let base = format!("makrcave/{makerspace_id}/{equipment_id}");
                rules(
                    ["telemetry", "status", "event"].iter().map(|leaf| format!("{base}/{leaf}")).collect(),
                    vec![format!("{base}/cmd")],
                )
            }
            // Tasmota reports under tele/ and stat/, and takes commands under cmnd/.
            Connection::Tasmota { topic, .. } => {
                rules(vec![format!("tele/{topic}/#"), format!("stat/{topic}/#")], vec![format!("cmnd/{topic}/#")])
            }
            // A Gen1 Shelly reports under its own prefix; commands are `.../command` topics,
            // and `shellies/command` is the broadcast that asks every Shelly to announce itself.
            Connection::ShellyGen1 { device_id, .. } => rules(
                vec![format!("shellies/{device_id}/#")],
                vec![
                    format!("shellies/{device_id}/command"),
                    format!("shellies/{device_id}/relay/+/command"),
                    "shellies/command".to_string(),
                ],
            ),
            // A Gen2 Shelly publishes under `{id}/` and takes RPC requests on `{id}/rpc`.
            Connection::ShellyGen2 { device_id, .. } => {
                rules(vec![format!("{device_id}/#")], vec![format!("{device_id}/rpc"), format!("{device_id}/command")])
            }
            Connection::Bambu { .. } | Connection::Octoprint { .. } => None,
        }
    }
}

/// A topic a client may publish to: not empty, no wildcards, no NUL, not a `$` system topic.
fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0']) && !topic.starts_with('$')
}

/// A well-formed filter: `#` only as the whole last level, `+` only as a whole level.
fn is_valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') || filter.starts_with('$') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| match *level {
        "#" => i == levels.len() - 1,
        "+" => true,
        other => !other.contains(['+', '#']),
    })
}

/// Whether every topic that `filter` matches is also matched by `pattern`. A plain topic is a
/// filter that matches itself, so this also answers "may publish to this topic".
pub fn filter_within(filter: &str, pattern: &str) -> bool {
    let mut filter_levels = filter.split('/');
    let mut pattern_levels = pattern.split('/');
    loop {
        match (filter_levels.next(), pattern_levels.next()) {
            // `#` in the pattern covers whatever is left, including nothing.
            (_, Some("#")) => return true,
            (None, None) => return true,
            // `#` in the filter reaches levels the pattern does not cover.
            (Some("#"), _) => return false,
            (Some(_), None) | (None, Some(_)) => return false,
            (Some(f), Some("+")) => {
                if f == "#" {
                    return false;
                }
            }
            (Some(f), Some(p)) => {
                if f != p {
                    return false;
                }
            }
        }
    }
}

/// A new device password: 32 random bytes, URL-safe so it can sit in an `mqtt://` URL.
pub fn new_password(bytes: &[u8; 32]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a password, as `mosquitto_passwd` writes it:
/// `$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>`.
pub fn hash_password(password: &str, salt: &[u8; SALT_BYTES]) -> String {
    let hash = pbkdf2_sha512(password, salt, PBKDF2_ITERATIONS);
    format!("$7${PBKDF2_ITERATIONS}${}${}", BASE64.encode(salt), BASE64.encode(hash))
}

/// Whether `password` matches a stored `$7$` hash (compared in constant time).
pub fn verify_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some(""), Some("7"), Some(iterations), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(expected)) =
        (iterations.parse::<u32>(), BASE64.decode(salt), BASE64.decode(hash))
    else {
        return false;
    };
    if iterations == 0 || iterations > 1_000_000 || expected.len() != HASH_BYTES {
        return false;
    }
    let actual = pbkdf2_sha512(password, &salt, iterations);
    // Constant time: every byte is compared whatever the first difference.
    actual.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn pbkdf2_sha512(password: &str, salt: &[u8], iterations: u32) -> [u8; HASH_BYTES] {
    let mut out = [0u8; HASH_BYTES];
    // Only fails for an output length HMAC cannot give, and 64 bytes is SHA-512's own.
    if pbkdf2::pbkdf2::<Hmac<Sha512>>(password.as_bytes(), salt, iterations, &mut out).is_err() {
        out = [0u8; HASH_BYTES];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_is_within_a_pattern_only_when_every_match_is() {
        assert!(filter_within("cmnd/laser1/POWER", "cmnd/laser1/#"));
        assert!(filter_within("cmnd/laser1/#", "cmnd/laser1/#"));
        assert!(filter_within("cmnd/laser1", "cmnd/laser1/#"));
        assert!(filter_within("cmnd/laser1/+", "cmnd/laser1/#"));
        assert!(!filter_within("cmnd/+/POWER", "cmnd/laser1/#"));
        assert!(!filter_within("cmnd/#", "cmnd/laser1/#"));
        assert!(!filter_within("#", "cmnd/laser1/#"));
        assert!(!filter_within("cmnd/laser2/POWER", "cmnd/laser1/#"));
        assert!(filter_within("shellies/s1/relay/0/command", "shellies/s1/relay/+/command"));
        assert!(filter_within("shellies/s1/relay/+/command", "shellies/s1/relay/+/command"));
        assert!(!filter_within("shellies/s1/relay/#", "shellies/s1/relay/+/command"));
        assert!(!filter_within("shellies/s1/relay/0", "shellies/s1/relay/+/command"));
        assert!(!filter_within("shellies/s1/relay/0/command/x", "shellies/s1/relay/+/command"));
        assert!(filter_within("a/b", "a/b"));
        assert!(!filter_within("a/b/c", "a/b"));
        assert!(!filter_within("a", "a/b"));
    }

    #[test]
    fn a_generic_device_publishes_its_reports_and_reads_its_commands() {
        let rules = TopicRules::for_machine("s1", "eq1", &Connection::Mqtt).expect("mqtt device");
        for leaf in ["telemetry", "status", "event"] {
            assert!(rules.may_publish(&format!("makrcave/s1/eq1/{leaf}")), "{leaf}");
            assert!(!rules.may_publish(&format!("makrcave/s1/eq2/{leaf}")), "{leaf} of another machine");
            assert!(!rules.may_publish(&format!("makrcave/s2/eq1/{leaf}")), "{leaf} of another space");
        }
        assert!(!rules.may_publish("makrcave/s1/eq1/cmd"), "its own commands come from makrcave only");
        assert!(!rules.may_publish("makrcave/s1/eq1/+"));
        assert!(rules.may_subscribe("makrcave/s1/eq1/cmd"));
        assert!(!rules.may_subscribe("makrcave/s1/eq2/cmd"));
        assert!(!rules.may_subscribe("makrcave/s1/+/cmd"));
        assert!(!rules.may_subscribe("makrcave/#"));
        assert!(!rules.may_subscribe("#"));
        assert!(!rules.may_subscribe("$SYS/#"));
    }

    #[test]
    fn plugs_keep_to_their_own_prefix() {
        let tasmota = Connection::Tasmota { topic: "laser1".into(), running_above_w: None, running_after_s: None };
        let rules = TopicRules::for_machine("s", "e", &tasmota).expect("tasmota");
        assert!(rules.may_publish("tele/laser1/SENSOR"));
        assert!(rules.may_publish("stat/laser1/POWER"));
        assert!(!rules.may_publish("tele/laser2/SENSOR"));
        assert!(!rules.may_publish("cmnd/laser1/POWER"));
        assert!(rules.may_subscribe("cmnd/laser1/#"));
        assert!(!rules.may_subscribe("cmnd/tasmotas/#"));

        let gen1 =
            Connection::ShellyGen1 { device_id: "shellyplug-s-1".into(), running_above_w: None, running_after_s: None };
        let rules = TopicRules::for_machine("s", "e", &gen1).expect("shelly gen1");
        assert!(rules.may_publish("shellies/shellyplug-s-1/relay/0/power"));
        assert!(!rules.may_publish("shellies/shellyplug-s-2/relay/0/power"));
        assert!(rules.may_subscribe("shellies/shellyplug-s-1/relay/0/command"));
        assert!(!rules.may_subscribe("shellies/shellyplug-s-1/#"));

        let gen2 = Connection::ShellyGen2 { device_id: "plus-1".into(), running_above_w: None, running_after_s: None };
        let rules = TopicRules::for_machine("s", "e", &gen2).expect("shelly gen2");
        assert!(rules.may_publish("plus-1/status/switch:0"));
        assert!(!rules.may_publish("plus-2/status/switch:0"));
        assert!(rules.may_subscribe("plus-1/rpc"));
        assert!(!rules.may_subscribe("plus-1/#"));

        assert!(TopicRules::for_machine("s", "e", &Connection::bambu_example()).is_none());
    }

    #[test]
    fn malformed_filters_are_refused() {
        let rules = TopicRules { publish: vec!["#".into()], subscribe: vec!["#".into()] };
        for bad in ["", "a/#/b", "a/b#", "a+/b", "$SYS/x", "a\0b"] {
            assert!(!rules.may_subscribe(bad), "{bad:?}");
        }
        for bad in ["", "a/+", "a/#", "$SYS/x"] {
            assert!(!rules.may_publish(bad), "{bad:?}");
        }
    }

    #[test]
    fn passwords_verify_against_their_mosquitto_hash_only() {
        let password = new_password(&[9; 32]);
        let stored = hash_password(&password, &[1; SALT_BYTES]);
        assert!(stored.starts_with("$7$101$"), "{stored}");
        assert!(verify_password(&password, &stored));
        assert!(!verify_password("wrong", &stored));
        assert!(!verify_password(&password, "$6$abc$def"));
        assert!(!verify_password(&password, "garbage"));
        assert_ne!(stored, hash_password(&password, &[2; SALT_BYTES]), "the salt changes the hash");
    }

    #[test]
    fn the_hash_is_pbkdf2_sha512_as_mosquitto_computes_it() {
        // hashlib.pbkdf2_hmac("sha512", b"password", b"salt", 1) — RFC 6070's vector with SHA-512.
        let out = pbkdf2_sha512("password", b"salt", 1);
        let hex: String = out.iter().take(8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "867f70cf1ade02cf");
    }
}
