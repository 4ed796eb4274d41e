//! The manifest file the next CI stage reads, in the layout of Packer's manifest
//! post-processor, so that scripts written for Packer read kiln's as they are:
//!
//! ```json
//! {"builds": [{"name": "poc-web-base", "builder_type": "kiln", "build_time": 1767571200,
//!   "files": null, "artifact_id": "ap-northeast-1:ami-…,us-west-2:ami-…",
//!   "packer_run_uuid": "bake-…", "custom_data": {…}, "version": "…", …}],
//!  "last_run_uuid": "bake-…"}
//! ```
//!
//! Like Packer, each bake appends its build to the file's list; kiln adds its own fields
//! (`version`, `input_hash`, `reused`, `channel`, ...) beside Packer's.

use std::path::Path;

use anyhow::Context;
use kiln_builder::distribute::DistributionReport;
use kiln_builder::BakeOutcome;
use serde::Serialize;

use crate::exit::{self, Exit};

/// Where the manifest goes unless `--manifest` says otherwise: the current directory,
/// as Packer's `packer-manifest.json`.
pub const DEFAULT_MANIFEST: &str = "kiln-manifest.json";

/// One build, as Packer's manifest post-processor writes it, plus kiln's fields.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub name: String,
    pub builder_type: &'static str,
    /// Unix seconds.
    pub build_time: i64,
    /// Packer lists files for file artifacts; an AMI has none.
    pub files: Option<Vec<String>>,
    /// `region:ami` for every region the image is in, comma-separated.
    pub artifact_id: String,
    /// The run that wrote these builds (all the layers of one command share it).
    pub packer_run_uuid: String,
    pub custom_data: serde_json::Map<String, serde_json::Value>,
    pub version: String,
    pub input_hash: String,
    pub reused: bool,
    /// The channel parameter the image was published to, if any.
    pub channel: Option<String>,
    /// The kiln build id the image is tagged with (`kiln:run-id`).
    pub run_id: String,
    pub ami_name: String,
    pub region: String,
}

impl Build {
    pub fn new(
        outcome: &BakeOutcome,
        run_id: &str,
        run_uuid: &str,
        distribution: Option<&DistributionReport>,
        now: kiln_cloud::Timestamp,
    ) -> Self {
        let image = &outcome.image;
        let home = format!("{}:{}", image.region, image.id);
        let artifact_id = distribution
            .map(DistributionReport::artifact_id)
            .filter(|ids| !ids.is_empty())
            .unwrap_or(home);
        let channel = distribution
            .and_then(|d| d.regions.first())
            .and_then(|r| r.channel.clone());
        Self {
            name: family(&image.name, &image.version),
            builder_type: "kiln",
            build_time: now.timestamp(),
            files: None,
            artifact_id,
            packer_run_uuid: run_uuid.to_string(),
            custom_data: serde_json::Map::new(),
            version: image.version.clone(),
            input_hash: image.input_hash.clone(),
            reused: outcome.reused,
            channel,
            run_id: run_id.to_string(),
            ami_name: image.name.clone(),
            region: image.region.clone(),
        }
    }
}

fn family(name: &str, version: &str) -> String {
    name.strip_suffix(&format!("-{version}"))
        .unwrap_or(name)
        .to_string()
}

/// Refuses, before a bake starts, a manifest that [`append`] could not write after it: a
/// folder kiln cannot create a file in (read-only, missing, not a folder), or a file that
/// is there and is not a manifest. Found only after the bake, an hour of baking and a
/// distribution would end in a failure, with no rollout. Bad input: nothing has changed.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    let refuse = |problem: String| {
        let error = anyhow::anyhow!(
            "manifest {}: {problem}\n  hint: run from a folder kiln can write in, or name \
             another manifest with --manifest (or KILN_MANIFEST)",
            path.display()
        );
        Err(Exit::new(exit::BAD_INPUT, error).into())
    };
    if path.is_dir() {
        return refuse("is a folder".to_string());
    }
    if let Err(e) = read(path) {
        return refuse(format!("{e:#}"));
    }
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // Written and renamed as `append` does: a file of our own in the same folder.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let probe = folder.join(format!(".{name}.{}.probe", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match created {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => refuse(format!(
            "cannot create a file in {}: {e}",
            std::fs::canonicalize(folder)
                .unwrap_or_else(|_| folder.to_path_buf())
                .display()
        )),
    }
}

/// The manifest at `path` as JSON, an empty one when there is none.
fn read(path: &Path) -> anyhow::Result<serde_json::Value> {
    let manifest = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text).context("is not JSON")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e).context("cannot be read"),
    };
    // Another JSON file named by mistake (`--manifest package.json`) has no builds; an
    // empty object is a manifest yet to be written.
    let builds = manifest.get("builds");
    let empty = manifest.as_object().is_some_and(serde_json::Map::is_empty);
    if !manifest.is_object() || !(empty || builds.is_some_and(serde_json::Value::is_array)) {
        anyhow::bail!("is not a manifest (a JSON object whose `builds` is a list)");
    }
    Ok(manifest)
}

/// Appends `build` to the manifest at `path` (created when missing); builds already in
/// the file, and any field kiln does not know, are kept.
pub fn append(path: &Path, build: &Build) -> anyhow::Result<()> {
    let mut manifest = read(path).with_context(|| {
        format!(
            "manifest {} (move it away or name another with --manifest)",
            path.display()
        )
    })?;
    let object = manifest
        .as_object_mut()
        .with_context(|| format!("manifest {} is not a JSON object", path.display()))?;
    let builds = object
        .entry("builds")
        .or_insert_with(|| serde_json::json!([]));
    let Some(builds) = builds.as_array_mut() else {
        anyhow::bail!("manifest {}: `builds` is not a list", path.display());
    };
    builds.push(serde_json::to_value(build)?);
    object.insert("last_run_uuid".into(), build.packer_run_uuid.clone().into());

    // Written whole, then renamed, so that a reader never sees half a file.
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text)
        .with_context(|| format!("write manifest {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("write manifest {}", path.display()))?;
    Ok(())
}
