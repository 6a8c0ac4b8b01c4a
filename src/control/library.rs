//! The control library: the starter controls shipped in `controls/`
//! (embedded in the binary, with their policies and fixtures) and the
//! controls of a user's directory, which override built-in ones by id and
//! add their own. Every control is parsed, validated and compiled when the
//! library loads, so that a broken control is a located error at start-up,
//! never a silent gap in the assessment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::definition::{self, Control, ControlKind};
use super::policy::Policy;
use crate::config::ConfigError;

/// One built-in control: its id, file, policy and fixtures.
pub struct Builtin {
    /// The id (file stem).
    pub id: &'static str,
    /// `controls/<id>.toml`.
    pub toml: &'static str,
    /// `controls/<id>.rego`.
    pub rego: &'static str,
    /// `controls/fixtures/<id>.json`.
    pub fixtures: &'static str,
}

macro_rules! builtin {
    ($($id:literal),* $(,)?) => {
        &[$(Builtin {
            id: $id,
            toml: include_str!(concat!("../../controls/", $id, ".toml")),
            rego: include_str!(concat!("../../controls/", $id, ".rego")),
            fixtures: include_str!(concat!("../../controls/fixtures/", $id, ".json")),
        }),*]
    };
}

/// The starter library.
pub const BUILTIN: &[Builtin] = builtin![
    "aws-access-key-rotation",
    "aws-admin-count",
    "aws-cloudtrail-multi-region",
    "aws-config-all-regions",
    "aws-console-mfa",
    "aws-guardduty-all-regions",
    "aws-password-policy",
    "aws-root-access-keys",
    "aws-s3-encryption",
    "aws-s3-public-access-blocked",
    "aws-s3-versioning",
    "access-review-quarterly",
    "datadog-monitors-notify",
    "github-branch-protection",
    "github-org-2fa",
    "github-outside-collaborators-approved",
    "github-pr-approved",
    "leavers-removed",
    "okta-mfa-enrolled",
    "okta-suspended-no-sessions",
    "pagerduty-escalation-policies",
];

/// Where a control came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Shipped with Exhibit.
    BuiltIn,
    /// The user's controls directory.
    Directory,
}

impl Origin {
    /// `built-in` or `controls_dir`, as recorded with results.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::BuiltIn => "built-in",
            Origin::Directory => "controls_dir",
        }
    }
}

/// A control ready to evaluate.
#[derive(Debug, Clone)]
pub struct LoadedControl {
    /// The validated control.
    pub control: Control,
    /// Its compiled policy.
    pub policy: Arc<Policy>,
    /// Where it came from.
    pub origin: Origin,
    /// Its fixtures file (path for messages, text), when it has one.
    pub fixtures: Option<(PathBuf, String)>,
}

/// Every control, by id.
#[derive(Debug, Clone, Default)]
pub struct Library {
    controls: BTreeMap<String, LoadedControl>,
}

fn compile(
    control: Control,
    origin: Origin,
    fixtures: Option<(PathBuf, String)>,
) -> Result<LoadedControl, ConfigError> {
    let located = |message: String| ConfigError {
        file: control.policy.path.clone(),
        line: None,
        column: None,
        key: None,
        message,
    };
    let policy = Policy::compile(&control.policy).map_err(located)?;
    if control.kind == ControlKind::Event && !policy.has_occurrences() {
        return Err(located(
            "an event control's policy must define `occurrences` (a set of {\"id\", \"at\"} objects)".into(),
        ));
    }
    Ok(LoadedControl {
        control,
        policy: Arc::new(policy),
        origin,
        fixtures,
    })
}

fn load_builtin(b: &Builtin) -> Result<LoadedControl, ConfigError> {
    let path = PathBuf::from(format!("controls/{}.toml", b.id));
    let read = |name: &str| {
        if name == format!("{}.rego", b.id) {
            Ok((
                PathBuf::from(format!("controls/{name}")),
                b.rego.to_string(),
            ))
        } else {
            Err(format!("built-in controls have no file `{name}`"))
        }
    };
    let control = definition::parse(&path, b.toml, &read)?;
    let fixtures = Some((
        PathBuf::from(format!("controls/fixtures/{}.json", b.id)),
        b.fixtures.to_string(),
    ));
    compile(control, Origin::BuiltIn, fixtures)
}

/// Reads `name` beside a control file in `dir`; only plain file names.
fn sibling(dir: &Path, name: &str) -> Result<(PathBuf, String), String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(format!(
            "`{name}` must be a file name beside the control file"
        ));
    }
    let path = dir.join(name);
    std::fs::read_to_string(&path)
        .map(|text| (path.clone(), text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl Library {
    /// The built-in controls.
    pub fn builtin() -> Result<Library, ConfigError> {
        let mut lib = Library::default();
        for b in BUILTIN {
            lib.controls.insert(b.id.to_string(), load_builtin(b)?);
        }
        Ok(lib)
    }

    /// The built-in controls, overridden and extended by the `*.toml`
    /// files of `dir` (fixtures in `dir/fixtures/<id>.json`).
    pub fn load(dir: Option<&Path>) -> Result<Library, ConfigError> {
        let mut lib = Library::builtin()?;
        if let Some(dir) = dir {
            for c in Library::load_dir(dir)?.controls.into_values() {
                lib.controls.insert(c.control.id.clone(), c);
            }
        }
        Ok(lib)
    }

    /// Only the controls of `dir`.
    pub fn load_dir(dir: &Path) -> Result<Library, ConfigError> {
        let io = |e: std::io::Error| ConfigError {
            file: dir.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read the controls directory: {e}"),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        let mut lib = Library::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
                file: path.clone(),
                line: None,
                column: None,
                key: None,
                message: format!("cannot read: {e}"),
            })?;
            let control = definition::parse(&path, &text, &|name| sibling(dir, name))?;
            let fixtures_path = dir.join("fixtures").join(format!("{}.json", control.id));
            let fixtures = std::fs::read_to_string(&fixtures_path)
                .ok()
                .map(|t| (fixtures_path, t));
            let loaded = compile(control, Origin::Directory, fixtures)?;
            lib.controls.insert(loaded.control.id.clone(), loaded);
        }
        Ok(lib)
    }

    /// A control by id.
    pub fn get(&self, id: &str) -> Option<&LoadedControl> {
        self.controls.get(id)
    }

    /// Every control, by id.
    pub fn iter(&self) -> impl Iterator<Item = &LoadedControl> {
        self.controls.values()
    }

    /// How many controls.
    pub fn len(&self) -> usize {
        self.controls.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.controls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_control_loads_and_maps_to_criteria() {
        let lib = Library::builtin().unwrap_or_else(|e| panic!("{e}"));
        assert!(lib.len() >= 20, "{}", lib.len());
        for c in lib.iter() {
            assert!(!c.control.criteria.is_empty(), "{}", c.control.id);
            assert_eq!(c.origin, Origin::BuiltIn);
            assert!(c.fixtures.is_some());
        }
        // Every file in controls/ is listed, and nothing else.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("controls");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                (p.extension()? == "toml")
                    .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
            })
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = BUILTIN.iter().map(|b| b.id.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn a_users_directory_overrides_and_extends() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "aws-console-mfa.toml",
            "title = \"Stricter\"\ncriteria = [\"CC6.1\"]\nfrequency = \"daily\"\npolicy_file = \"mine.rego\"\n[[inputs]]\nname = \"report\"\nkind = \"aws-iam-credential-report\"\n",
        );
        write("mine.rego", "package mine\nfindings := set()\n");
        write(
            "extra.toml",
            "title = \"Extra\"\ncriteria = [\"CC7.2\"]\nfrequency = \"weekly\"\npolicy = \"package extra\\nfindings := set()\"\n[[inputs]]\nname = \"x\"\nkind = \"command\"\n",
        );
        let lib = Library::load(Some(dir.path())).unwrap();
        assert_eq!(lib.len(), BUILTIN.len() + 1);
        let mfa = lib.get("aws-console-mfa").unwrap();
        assert_eq!(mfa.control.title, "Stricter");
        assert_eq!(mfa.origin, Origin::Directory);
        assert!(mfa.fixtures.is_none());
        assert_eq!(lib.get("extra").unwrap().control.sample_size, 5);

        // A policy that does not compile names its file.
        write("mine.rego", "package mine\nfindings contains x if {\n");
        let e = Library::load(Some(dir.path())).unwrap_err();
        assert!(e.to_string().contains("mine.rego"), "{e}");
        // A policy file outside the directory is refused.
        write("mine.rego", "package mine\nfindings := set()\n");
        write(
            "extra.toml",
            "title = \"Extra\"\ncriteria = [\"CC7.2\"]\nfrequency = \"weekly\"\npolicy_file = \"../x.rego\"\n[[inputs]]\nname = \"x\"\nkind = \"command\"\n",
        );
        let e = Library::load(Some(dir.path())).unwrap_err();
        assert!(e.to_string().contains("beside the control file"), "{e}");
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn an_event_control_must_list_occurrences() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ev.toml"),
            "title = \"E\"\ncriteria = [\"CC8.1\"]\nfrequency = \"continuous\"\nkind = \"event\"\npolicy = \"package ev\\nfindings := set()\"\n[[inputs]]\nname = \"x\"\nkind = \"github-pull-requests\"\n",
        )
        .unwrap();
        let e = Library::load_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("occurrences"), "{e}");
    }
}
