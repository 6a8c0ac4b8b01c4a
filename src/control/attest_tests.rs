//! Reviews signed here and checked by OpenSSH's own `ssh-keygen -Y verify`,
//! and the other way round, with a key made by `ssh-keygen` for the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

struct Keys {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    key: PathBuf,
}

fn keygen(passphrase: &str) -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "reviewer@example.com",
            "-f",
        ])
        .arg(&key)
        .output()
        .expect("ssh-keygen (OpenSSH) must be installed for these tests");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Keys {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        key,
    }
}

fn record() -> RecordRef {
    RecordRef {
        stream: "okta/acme.okta.com".into(),
        seq: 91,
        sha256: "5e".repeat(32),
    }
}

fn at() -> DateTime<Utc> {
    "2025-04-03T09:30:00Z".parse().unwrap()
}

/// `ssh-keygen -Y verify` of `a` with an allowed-signers file listing the
/// signer as `reviewer@example.com`; its success and its output.
fn ssh_verify(dir: &Path, a: &Attestation, message: &[u8]) -> (bool, String) {
    let allowed = dir.join("allowed_signers");
    std::fs::write(
        &allowed,
        allowed_signers_line("reviewer@example.com", &a.signer.public_key) + "\n",
    )
    .unwrap();
    let sig = dir.join("review.sig");
    std::fs::write(&sig, &a.signature).unwrap();
    let msg = dir.join("review.msg");
    std::fs::write(&msg, message).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(&allowed)
        .args(["-I", "reviewer@example.com", "-n", NAMESPACE, "-s"])
        .arg(&sig)
        .stdin(std::fs::File::open(&msg).unwrap())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn a_review_signed_here_verifies_with_ssh_keygen() {
    let k = keygen("");
    let key = load_key(&k.key, None).unwrap();
    let a = sign(
        &key,
        "access-review",
        &record(),
        "Q1 access reviewed; leavers removed",
        at(),
    )
    .unwrap();
    assert!(
        a.signature.starts_with("-----BEGIN SSH SIGNATURE-----"),
        "{}",
        a.signature
    );
    assert!(a.signer.fingerprint.starts_with("SHA256:"));
    a.verify().unwrap();
    let (ok, text) = ssh_verify(&k.dir, &a, a.message.as_bytes());
    assert!(ok, "ssh-keygen refused the review: {text}");
    assert!(
        text.contains("Good \"exhibit-attest\" signature for reviewer@example.com"),
        "{text}"
    );
    // The message names the record and the statement, canonically.
    assert_eq!(
        a.message,
        format!(
            r#"{{"control":"access-review","record":{{"seq":91,"sha256":"{}","stream":"okta/acme.okta.com"}},"signed_at":"2025-04-03T09:30:00Z","statement":"Q1 access reviewed; leavers removed","type":"{MESSAGE_TYPE}"}}"#,
            "5e".repeat(32)
        )
    );
    // The fingerprint is the one ssh-keygen -l shows.
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&k.key)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&a.signer.fingerprint));
    // Round trip through the payload.
    assert_eq!(Attestation::from_payload(&a.payload()).unwrap(), a);
}

#[test]
fn a_changed_review_fails_here_and_in_ssh_keygen() {
    let k = keygen("");
    let key = load_key(&k.key, None).unwrap();
    let a = sign(&key, "access-review", &record(), "reviewed", at()).unwrap();

    // Another statement: the fields no longer match the message.
    let mut changed = a.clone();
    changed.statement = "not reviewed".into();
    assert!(changed.verify().is_err());
    // Another message: the signature no longer matches.
    let mut forged = changed.clone();
    forged.message = String::from_utf8(message(
        &forged.control,
        &forged.record,
        &forged.statement,
        forged.signed_at,
    ))
    .unwrap();
    let e = forged.verify().unwrap_err().to_string();
    assert!(e.contains("signature"), "{e}");
    let (ok, text) = ssh_verify(&k.dir, &forged, forged.message.as_bytes());
    assert!(!ok, "ssh-keygen accepted a forged review: {text}");

    // Another signer's key, claimed for the same signature.
    let other = keygen("");
    let other_key = load_key(&other.key, None).unwrap();
    let mut swapped = a.clone();
    swapped.signer.public_key = other_key.public_key().to_openssh().unwrap();
    assert!(swapped.verify().is_err());
    assert!(
        allowed_principals(
            &allowed_signers_line("reviewer@example.com", &a.signer.public_key),
            &swapped.signer.public_key
        )
        .is_empty()
    );
}

#[test]
fn a_review_signed_by_ssh_keygen_verifies_here() {
    let k = keygen("");
    let msg = message("access-review", &record(), "reviewed", at());
    let msg_file = k.dir.join("m");
    std::fs::write(&msg_file, &msg).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(&k.key)
        .arg(&msg_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(k.key.with_extension("pub")).unwrap();
    let public = PublicKey::from_openssh(public.trim()).unwrap();
    let a = Attestation {
        control: "access-review".into(),
        record: record(),
        statement: "reviewed".into(),
        signed_at: at(),
        signer: SignerInfo {
            public_key: public.to_openssh().unwrap(),
            fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        },
        message: String::from_utf8(msg).unwrap(),
        signature: std::fs::read_to_string(k.dir.join("m.sig")).unwrap(),
    };
    a.verify().unwrap();
    assert_eq!(
        allowed_principals(
            &format!(
                "# reviewers\n{}\n",
                allowed_signers_line("a@x,b@x", &a.signer.public_key)
            ),
            &a.signer.public_key
        ),
        ["a@x", "b@x"]
    );
}

#[test]
fn protected_keys_need_their_passphrase() {
    let k = keygen("correct horse");
    let e = load_key(&k.key, None).unwrap_err().to_string();
    assert!(e.contains("passphrase"), "{e}");
    assert!(load_key(&k.key, Some("wrong")).is_err());
    let key = load_key(&k.key, Some("correct horse")).unwrap();
    let a = sign(&key, "c", &record(), "s", at()).unwrap();
    a.verify().unwrap();
    let (ok, text) = ssh_verify(&k.dir, &a, a.message.as_bytes());
    assert!(ok, "{text}");
}
