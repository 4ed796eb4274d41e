//! Shared helpers of the CLI tests: run the `kiln` binary on a simulated account in a
//! temporary folder, and read that account afterwards.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln::cloud::sim::SimAccount;
use kiln::cloud::{Account, Cloud, ImageFilter, Instance, InstanceFilter};

pub const POC_PIPELINE: &str = "examples/poc/pipeline.yaml";
pub const POC_REGION: &str = "ap-northeast-1";

/// A temporary folder holding one simulated account's state file.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary folder"),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("account.json")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    /// Runs `kiln --sim STATE --no-progress ARGS...` and returns what it printed.
    pub fn kiln(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("--sim")
            .arg(self.state())
            .arg("--no-progress")
            .args(args)
            .env_remove("AWS_REGION")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env("KILN_MANIFEST", self.path("kiln-manifest.json"))
            .output()
            .expect("run kiln");
        Run::from(output)
    }

    /// A fresh POC account made from the seed, to read what a run starts from.
    pub async fn cloud_of_seed(&self) -> (SimAccount, Cloud) {
        let seed = repo_path("examples/poc/account.yaml");
        let account = SimAccount::open(&self.state(), Some(&seed), None).expect("seed");
        let cloud = account.region(POC_REGION).await.expect("region");
        (account, cloud)
    }

    /// Copies of the POC's recipes and templates in this sandbox (`recipes/`,
    /// `templates/`), for a test to break; [`Sandbox::poc_pipeline`] names them once made.
    pub fn copy_recipes(&self) -> (PathBuf, PathBuf) {
        let (recipes, templates) = (self.path("recipes"), self.path("templates"));
        copy_dir(&repo_path("recipes"), &recipes);
        copy_dir(&repo_path("templates"), &templates);
        (recipes, templates)
    }

    /// A POC pipeline (`examples/poc/<name>`) written into the sandbox with `edit`
    /// applied; its recipes, templates and seed named by absolute path (the sandbox's
    /// copies of recipes and templates when made).
    pub fn poc_pipeline(&self, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
        let folder = |name: &str| {
            let copy = self.path(name);
            let dir = if copy.exists() { copy } else { repo_path(name) };
            dir.to_str().expect("UTF-8 path").to_string()
        };
        let example = repo_path("examples/poc").join(name);
        let text = std::fs::read_to_string(example).expect("POC pipeline");
        let seed = repo_path("examples/poc/account.yaml");
        let text = text
            .replace("../../recipes", &folder("recipes"))
            .replace("../../templates", &folder("templates"))
            .replace("seed: account.yaml", &format!("seed: {}", seed.display()));
        self.write(name, &edit(text))
    }

    /// The whole state of the simulated account, made from the POC seed on first use:
    /// what a test compares before and after a command that must change nothing.
    pub fn account_state(&self) -> serde_json::Value {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (account, _cloud) = self.cloud_of_seed().await;
            account.snapshot_json()
        })
    }

    /// The value of a Parameter Store parameter of the POC region (the account made from
    /// the POC seed on first use).
    pub fn parameter(&self, name: &str) -> Option<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (_account, cloud) = self.cloud_of_seed().await;
            let parameter = cloud.parameters.get_parameter(name, false).await;
            parameter.expect("read parameter").map(|p| p.value)
        })
    }

    /// The ports of the POC region of the account this sandbox's state file holds.
    pub async fn cloud(&self) -> (SimAccount, Cloud) {
        let account = SimAccount::open(&self.state(), None, None).expect("open state");
        let cloud = account.region(POC_REGION).await.expect("region");
        (account, cloud)
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Instances of the account that kiln tagged with this role (`builder`, `test`).
pub async fn instances_with_role(cloud: &Cloud, role: &str) -> Vec<Instance> {
    let mut filter = InstanceFilter::default();
    filter
        .tags
        .insert(kiln::cloud::TAG_ROLE.into(), role.into());
    cloud
        .compute
        .describe_instances(&filter)
        .await
        .expect("describe instances")
}

/// Images the account owns.
pub async fn own_images(cloud: &Cloud) -> Vec<kiln::cloud::Image> {
    let filter = ImageFilter {
        owners: vec!["self".into()],
        ..ImageFilter::default()
    };
    cloud
        .compute
        .describe_images(&filter)
        .await
        .expect("describe images")
}

/// Copies a folder and everything under it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

/// The 1-based line of the first line of `text` holding `line_of`, and the column where
/// `column_of` starts in it: where an error about that text must point.
pub fn position_in(text: &str, line_of: &str, column_of: &str) -> (usize, usize) {
    let (index, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(line_of))
        .unwrap_or_else(|| panic!("no line holds {line_of:?}"));
    let byte = line
        .find(column_of)
        .unwrap_or_else(|| panic!("{column_of:?} is not on line {line:?}"));
    (index + 1, line[..byte].chars().count() + 1)
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Starts `kiln --sim STATE --no-progress ARGS...` with stderr piped, to be read line by
/// line ([`stderr_lines`]) and signalled while it runs.
pub fn spawn_kiln(sandbox: &Sandbox, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--sim")
        .arg(sandbox.state())
        .arg("--no-progress")
        .args(args)
        .env_remove("AWS_REGION")
        .env_remove("KILN_STATE_DIR")
        .env("KILN_MANIFEST", sandbox.path("kiln-manifest.json"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start kiln")
}

/// The child's stderr, line by line. While the test does not read, a full pipe holds
/// the child still.
pub fn stderr_lines(child: &mut std::process::Child) -> impl Iterator<Item = String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("piped stderr");
    std::io::BufReader::new(stderr)
        .lines()
        .map(|l| l.expect("stderr line"))
}

/// Reads lines until one matches `wanted`; returns the lines read, that one last.
pub fn read_until(
    lines: &mut impl Iterator<Item = String>,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let hit = wanted(&line);
        seen.push(line);
        if hit {
            return seen;
        }
    }
    panic!("kiln ended before the awaited line:\n{}", seen.join("\n"));
}

/// Runs a future on a current-thread runtime with tokio's clock paused (for reading
/// the simulated account from a plain `#[test]`).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(future)
}
