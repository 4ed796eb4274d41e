//! The input hash: what decides whether an image already exists for these inputs.
//!
//! Two bakes with the same source AMI, recipe and template files, variable values (as the
//! recipes see them, defaults applied), image name and root volume make the same image, so
//! the second reuses the first. Each field is framed (label, length, bytes) so that no two
//! different inputs feed the same bytes to the hash.

use std::collections::BTreeMap;

use kiln_cloud::ImageId;
use sha2::{Digest, Sha256};

use crate::spec::RootVolumeSettings;

/// Changes whenever the framing below changes, so old hashes never match new ones.
/// v2: the variables are every declared variable's resolved value (defaults applied),
/// not only those the pipeline writes.
const HASH_VERSION: &[u8] = b"kiln-input-hash-v2";

/// What goes into the input hash.
#[derive(Debug, Clone, Copy)]
pub struct HashInputs<'a> {
    pub source_image: &'a ImageId,
    pub image_name: &'a str,
    /// Every recipe and template file used: path and content.
    pub files: &'a [(String, Vec<u8>)],
    /// Every declared variable's value, defaults applied ([`crate::recipe::Rendered`]).
    pub variables: &'a BTreeMap<String, serde_json::Value>,
    /// The root volume's size and encryption are part of the image.
    pub root_volume: &'a RootVolumeSettings,
}

/// The hex sha256 of the framed inputs; file order does not matter.
pub fn input_hash(inputs: &HashInputs<'_>) -> String {
    let mut hasher = Sha256::new();
    field(&mut hasher, "version", HASH_VERSION);
    field(
        &mut hasher,
        "source",
        inputs.source_image.as_str().as_bytes(),
    );
    field(&mut hasher, "name", inputs.image_name.as_bytes());

    let mut files: Vec<&(String, Vec<u8>)> = inputs.files.iter().collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, content) in files {
        field(&mut hasher, "path", path.as_bytes());
        field(&mut hasher, "content", content);
    }

    let variables = serde_json::Value::Object(
        inputs
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    field(
        &mut hasher,
        "variables",
        canonical_json(&variables).as_bytes(),
    );

    let volume = inputs.root_volume;
    let volume = format!(
        "{}|{}|{}|{}",
        volume.size_gib,
        volume.volume_type,
        volume.encrypted,
        volume.kms_key_id.as_deref().unwrap_or("")
    );
    field(&mut hasher, "root-volume", volume.as_bytes());
    hex::encode(hasher.finalize())
}

fn field(hasher: &mut Sha256, label: &str, bytes: &[u8]) {
    hasher.update(label.as_bytes());
    hasher.update([0u8]);
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// JSON with object keys sorted at every depth and no whitespace, whatever order the
/// map kept them in.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixture {
        source: ImageId,
        files: Vec<(String, Vec<u8>)>,
        variables: BTreeMap<String, serde_json::Value>,
        volume: RootVolumeSettings,
    }

    fn fixture() -> Fixture {
        Fixture {
            source: ImageId::new("ami-0123"),
            files: vec![
                ("recipes/base.yaml".into(), b"steps: []".to_vec()),
                ("templates/a.conf".into(), b"a=1".to_vec()),
            ],
            variables: BTreeMap::from([("port".to_string(), json!(6033))]),
            volume: RootVolumeSettings {
                size_gib: 20,
                volume_type: "gp3".into(),
                encrypted: true,
                kms_key_id: None,
            },
        }
    }

    fn hash_of(f: &Fixture) -> String {
        input_hash(&HashInputs {
            source_image: &f.source,
            image_name: "poc-web-base",
            files: &f.files,
            variables: &f.variables,
            root_volume: &f.volume,
        })
    }

    #[test]
    fn same_inputs_same_hash_whatever_the_file_order() {
        let a = fixture();
        let mut b = fixture();
        b.files.reverse();
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_eq!(hash_of(&a).len(), 64);
    }

    #[test]
    fn every_input_changes_the_hash() {
        let base = hash_of(&fixture());
        let mut changed = Vec::new();

        let mut f = fixture();
        f.source = ImageId::new("ami-0456");
        changed.push(hash_of(&f));
        let mut f = fixture();
        f.files[1].1 = b"a=2".to_vec();
        changed.push(hash_of(&f));
        let mut f = fixture();
        f.files[1].0 = "templates/b.conf".into();
        changed.push(hash_of(&f));
        let mut f = fixture();
        f.variables.insert("port".into(), json!("6033"));
        changed.push(hash_of(&f));
        let mut f = fixture();
        f.volume.size_gib = 30;
        changed.push(hash_of(&f));

        for hash in &changed {
            assert_ne!(hash, &base);
        }
    }

    #[test]
    fn moving_bytes_between_path_and_content_changes_the_hash() {
        let mut a = fixture();
        a.files = vec![("ab".into(), b"c".to_vec())];
        let mut b = fixture();
        b.files = vec![("a".into(), b"bc".to_vec())];
        assert_ne!(hash_of(&a), hash_of(&b));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": {"z": 1, "a": [true, null]}, "a": "x\"y"});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":"x\"y","b":{"a":[true,null],"z":1}}"#
        );
    }
}
