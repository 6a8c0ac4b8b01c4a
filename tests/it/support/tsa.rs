//! A real RFC 3161 Time-Stamp Authority for the tests: a test CA, a TSA
//! certificate whose extendedKeyUsage is critical timeStamping, and
//! `openssl ts -reply` behind a small HTTP wrapper
//! (`tests/support/tsa_server.py`), on a free loopback port. Each test
//! makes its own (its own CA, and some stop and resume it). A missing
//! openssl or python3 is a failed test, never a skipped one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::net::free_port;
use super::peer::{Peer, Ready};
use super::root;

/// The key type of a TSA's signing certificate.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    /// ECDSA over P-256.
    P256,
    /// RSA 2048.
    Rsa,
}

/// A TSA with its own CA.
pub struct Tsa {
    // Before `dir`: the server stops before its files go.
    server: Option<Peer>,
    dir: tempfile::TempDir,
    port: u16,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("openssl is needed for the timestamp tests (apt-get install openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback URL where nothing listens: a TSA that is down.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}/", free_port())
}

impl Tsa {
    /// Makes a CA and a TSA certificate named after `name`, and starts the
    /// server.
    pub fn start(name: &str, key: KeyKind) -> Tsa {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("ca.cnf"),
            format!(
                "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n\
                 [dn]\nCN = Exhibit Test TSA CA {name}\n\
                 [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
            ),
        )
        .unwrap();
        openssl(
            d,
            &[
                "req", "-x509", "-config", "ca.cnf", "-newkey", "rsa:2048", "-nodes", "-keyout",
                "ca.key", "-out", "ca.pem", "-days", "30",
            ],
        );
        let newkey: &[&str] = match key {
            KeyKind::P256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::Rsa => &["-newkey", "rsa:2048"],
        };
        let subj = format!("/CN=Exhibit Test TSA {name}");
        let mut args = vec![
            "req", "-new", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", &subj,
        ];
        args.extend_from_slice(newkey);
        openssl(d, &args);
        std::fs::write(
            d.join("tsa.ext"),
            "extendedKeyUsage = critical,timeStamping\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,nonRepudiation\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "tsa.pem",
                "-days",
                "30",
                "-extfile",
                "tsa.ext",
            ],
        );
        std::fs::write(d.join("serial"), "01\n").unwrap();
        // Fractional seconds in genTime (clock_precision_digits), as many
        // real TSAs send them; ESSCertIDv2 with SHA-256.
        std::fs::write(
            d.join("tsa.cnf"),
            format!(
                "[tsa]\ndefault_tsa = tsa_config\n\
                 [tsa_config]\ndir = {}\nserial = $dir/serial\ncrypto_device = builtin\n\
                 signer_cert = $dir/tsa.pem\nsigner_key = $dir/tsa.key\nsigner_digest = sha256\n\
                 default_policy = 1.3.6.1.4.1.55555.1.1\nother_policies = 1.3.6.1.4.1.55555.1.2\n\
                 digests = sha256, sha384, sha512\naccuracy = secs:1\nclock_precision_digits = 3\n\
                 ordering = no\ntsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
                d.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let mut tsa = Tsa {
            server: None,
            dir,
            port,
            url: format!("http://127.0.0.1:{port}/"),
        };
        tsa.resume();
        tsa
    }

    /// The CA certificate (PEM): what a config or an auditor trusts.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Stops answering (the port is then closed).
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Starts (again) on the same port.
    pub fn resume(&mut self) {
        assert!(self.server.is_none(), "already running");
        let mut cmd = Command::new("python3");
        cmd.arg(root().join("tests/support/tsa_server.py"))
            .arg("--config")
            .arg(self.dir.path().join("tsa.cnf"))
            .arg("--port")
            .arg(self.port.to_string())
            .stderr(Stdio::null());
        let server = Peer::start(
            cmd,
            "the TSA test server",
            "python3 and openssl are needed (apt-get install python3 openssl)",
            Ready::Announces("READY "),
            Duration::from_secs(30),
        );
        assert_eq!(server.port, self.port, "the TSA server took another port");
        self.server = Some(server);
    }

    /// A token (TimeStampResp DER) for the SHA-256 hex digest `sha256`,
    /// made with openssl directly, as an attacker holding this TSA would.
    pub fn stamp_digest(&self, sha256: &str) -> Vec<u8> {
        let d = self.dir.path();
        let q = d.join(format!("{sha256}.tsq"));
        let r = d.join(format!("{sha256}.tsr"));
        openssl(
            d,
            &[
                "ts",
                "-query",
                "-digest",
                sha256,
                "-sha256",
                "-cert",
                "-out",
                q.to_str().unwrap(),
            ],
        );
        openssl(
            d,
            &[
                "ts",
                "-reply",
                "-config",
                "tsa.cnf",
                "-queryfile",
                q.to_str().unwrap(),
                "-out",
                r.to_str().unwrap(),
            ],
        );
        std::fs::read(r).unwrap()
    }
}
