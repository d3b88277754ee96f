//! The signed allowlist, signed here with a real Ed25519 key pair (ring) as makrcave signs it:
//! a good list is accepted; a tampered payload, a wrong key, another makerspace or an older
//! list are refused; expiries are honoured; the last good list is kept on disk.

mod bridge_support;

use bridge_support::Signer;
use chrono::{DateTime, Utc};
use makrcave_bridge::allowlist::{
    verify, AllowlistError, AllowlistHolder, AllowlistKey, AllowlistStore, SignedAllowlist, Verdict,
};

const MS: &str = "ms-1";
const LASER: &str = "eq-laser-001";
const ISSUED: &str = "2026-11-01T10:00:00Z";
const LIST_EXPIRES: &str = "2026-11-08T10:00:00Z";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn good_list(signer: &Signer) -> SignedAllowlist {
    signer.sign_bytes(&signer.payload(
        MS,
        ISSUED,
        LIST_EXPIRES,
        &[
            ("04:A1:B2:C3", LASER, "2026-11-05T10:00:00Z"),
            ("DEADBEEF", "eq-cnc-002", "2026-12-01T00:00:00Z"),
            ("11223344", LASER, "2026-11-02T00:00:00Z"),
        ],
    ))
}

fn key(signer: &Signer) -> AllowlistKey {
    AllowlistKey::parse(&signer.public_key_base64()).unwrap()
}

#[test]
fn a_good_list_is_accepted_and_answers_for_cards() {
    let signer = Signer::new();
    let list = verify(&good_list(&signer), &key(&signer), MS, None).unwrap();
    let now = at("2026-11-03T12:00:00Z");
    // The uid as a reader types it: separators and case do not matter.
    assert_eq!(list.check("04a1b2c3", LASER, now), Verdict::Allowlisted { until: at("2026-11-05T10:00:00Z") });
    assert_eq!(list.check("04-A1-B2-C3", LASER, now).reason(), "allowlisted");
    assert_eq!(list.check("CAFEBABE", LASER, now), Verdict::NotAllowlisted);
    // Allowed on another machine only.
    assert_eq!(list.check("DEADBEEF", LASER, now), Verdict::NotAllowlisted);
    assert_eq!(list.check("11223344", LASER, now), Verdict::CardExpired);
    // Past the list's own expiry nothing is allowed.
    assert_eq!(list.check("04A1B2C3", LASER, at("2026-11-08T10:00:00Z")), Verdict::AllowlistExpired);
}

#[test]
fn an_entry_never_outlives_its_list() {
    let signer = Signer::new();
    let signed =
        signer.sign_bytes(&signer.payload(MS, ISSUED, LIST_EXPIRES, &[("04A1B2C3", LASER, "2027-01-01T00:00:00Z")]));
    let list = verify(&signed, &key(&signer), MS, None).unwrap();
    assert_eq!(
        list.check("04A1B2C3", LASER, at("2026-11-03T00:00:00Z")),
        Verdict::Allowlisted { until: at(LIST_EXPIRES) }
    );
}

#[test]
fn a_tampered_payload_is_refused() {
    let signer = Signer::new();
    let good = good_list(&signer);
    let mut bytes = signer.payload(MS, ISSUED, LIST_EXPIRES, &[("04A1B2C3", LASER, "2026-11-05T10:00:00Z")]);
    let signature = signer.sign_bytes(&bytes).signature;
    // Someone extends the card's expiry after signing.
    let text = String::from_utf8(bytes.clone()).unwrap().replace("2026-11-05", "2030-11-05");
    bytes = text.into_bytes();
    let tampered = SignedAllowlist { payload: signer.sign_bytes(&bytes).payload, signature };
    assert_eq!(verify(&tampered, &key(&signer), MS, None), Err(AllowlistError::BadSignature));
    // A signature of another payload does not fit either.
    let swapped = SignedAllowlist { payload: good.payload, signature: tampered.signature };
    assert_eq!(verify(&swapped, &key(&signer), MS, None), Err(AllowlistError::BadSignature));
    let garbage = SignedAllowlist { payload: "%%%".into(), signature: "AAAA".into() };
    assert_eq!(verify(&garbage, &key(&signer), MS, None), Err(AllowlistError::BadEncoding));
}

#[test]
fn a_list_signed_with_another_key_is_refused() {
    let signer = Signer::new();
    let other = Signer::new();
    assert_eq!(verify(&good_list(&other), &key(&signer), MS, None), Err(AllowlistError::BadSignature));
}

#[test]
fn a_list_of_another_makerspace_is_refused() {
    let signer = Signer::new();
    let signed = signer.sign_bytes(&signer.payload("ms-other", ISSUED, LIST_EXPIRES, &[]));
    assert_eq!(verify(&signed, &key(&signer), MS, None), Err(AllowlistError::OtherMakerspace("ms-other".into())));
}

#[test]
fn an_older_list_is_refused_and_the_stored_one_kept() {
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let mut holder = AllowlistHolder::open(key(&signer), MS, AllowlistStore::new(dir.path()));
    assert!(holder.current().is_none());
    holder.accept(&good_list(&signer)).unwrap();
    let older = signer.sign_bytes(&signer.payload(MS, "2026-10-01T00:00:00Z", LIST_EXPIRES, &[]));
    assert!(holder.accept(&older).is_err());
    assert_eq!(holder.current().unwrap().issued_at, at(ISSUED));
    let newer = signer.sign_bytes(&signer.payload(MS, "2026-11-02T00:00:00Z", LIST_EXPIRES, &[]));
    holder.accept(&newer).unwrap();

    // A restart loads the last good list from disk and still refuses an older one.
    let mut reopened = AllowlistHolder::open(key(&signer), MS, AllowlistStore::new(dir.path()));
    assert_eq!(reopened.current().unwrap().issued_at, at("2026-11-02T00:00:00Z"));
    assert!(reopened.accept(&good_list(&signer)).is_err());
}

#[test]
fn a_stored_list_changed_on_disk_is_ignored() {
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    AllowlistStore::new(dir.path()).save(&good_list(&signer)).unwrap();
    let path = dir.path().join("allowlist.json");
    let mut stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    stored["signature"] = serde_json::Value::String(good_list(&Signer::new()).signature);
    std::fs::write(&path, serde_json::to_vec(&stored).unwrap()).unwrap();
    assert!(AllowlistHolder::open(key(&signer), MS, AllowlistStore::new(dir.path())).current().is_none());
    // Nor is a list for this makerspace signed with the right key but a wrong makerspace in config.
    AllowlistStore::new(dir.path()).save(&good_list(&signer)).unwrap();
    assert!(AllowlistHolder::open(key(&signer), "ms-2", AllowlistStore::new(dir.path())).current().is_none());
}
