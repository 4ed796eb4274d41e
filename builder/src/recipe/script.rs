//! The bash scripts that Run Command executes, one per step.
//!
//! Every script is complete on its own: the instance needs nothing from kiln but the
//! script. Files travel inside it, base64-encoded, and are checked against their SHA-256
//! before they are moved into place.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::template::shell_quote;

/// Content bytes per file chunk. Each chunk is one Run Command script; base64 grows it by
/// 4/3 (12 KiB becomes 16 KiB) plus one newline per line, and the header and install
/// commands add a few hundred bytes, so a script stays near 17 KB: well under the
/// ~24 KB where SSM's script handling gets impractical (the same figure as its output
/// cap), though `SendCommand` itself would accept more.
pub const CHUNK_CONTENT_BYTES: usize = 12 * 1024;

/// Line width of the encoded content: base64's MIME width, which `base64 -d` reads.
const BASE64_LINE: usize = 76;

/// State kiln keeps on the instance during a bake; the hygiene recipe removes it.
const KILN_STATE_DIR: &str = "/var/lib/kiln";

/// What a script says about itself in its first lines.
pub struct Header<'a> {
    pub recipe: &'a str,
    pub step: &'a str,
    pub phase: &'a str,
}

impl Header<'_> {
    /// The lines the header takes at the top of every script: a step's own text starts
    /// on the next one.
    pub fn lines(&self) -> usize {
        self.render().lines().count()
    }

    fn render(&self) -> String {
        format!(
            "#!/bin/bash\n\
             set -euo pipefail\n\
             # kiln recipe `{}`, step `{}` ({} phase)\n\
             # Run Command starts scripts without HOME, which dnf plugins, aws and composer read.\n\
             export HOME=\"${{HOME:-/root}}\"\n\
             umask 022\n\n",
            self.recipe, self.step, self.phase
        )
    }
}

pub fn run(header: &Header<'_>, body: &str) -> String {
    let mut script = header.render();
    script.push_str(body);
    if !body.ends_with('\n') {
        script.push('\n');
    }
    script
}

pub fn packages(header: &Header<'_>, names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| shell_quote(n)).collect();
    run(header, &format!("dnf install -y {}\n", quoted.join(" ")))
}

pub fn service(header: &Header<'_>, name: &str, enable: bool, start: bool) -> String {
    // A recipe may just have installed the unit or a drop-in for it.
    let mut body = String::from("systemctl daemon-reload\n");
    let unit = shell_quote(name);
    if enable {
        body.push_str(&format!("systemctl enable {unit}\n"));
    }
    if start {
        body.push_str(&format!("systemctl start {unit}\n"));
    }
    body.push_str(&format!("systemctl --no-pager status {unit} || true\n"));
    run(header, &body)
}

/// Exit code 194 makes the SSM agent reboot the instance and then run the same script
/// again, so the script is two-faced: a marker file tells the second run it is done.
pub fn reboot(header: &Header<'_>) -> String {
    let marker = format!("{KILN_STATE_DIR}/reboot/{}--{}", header.recipe, header.step);
    let body = format!(
        "marker={marker}\n\
         if [[ -e \"$marker\" ]]; then\n\
         \x20 rm -f \"$marker\"\n\
         \x20 echo \"kiln: back from the reboot\"\n\
         \x20 exit 0\n\
         fi\n\
         mkdir -p {KILN_STATE_DIR}/reboot\n\
         touch \"$marker\"\n\
         sync\n\
         echo \"kiln: rebooting; the agent runs this script again after boot\"\n\
         exit 194\n"
    );
    run(header, &body)
}

/// Where and how a file is installed.
pub struct Destination<'a> {
    pub path: &'a str,
    pub owner: &'a str,
    pub group: &'a str,
    pub mode: &'a str,
}

/// One script per chunk of `content`; the last one checks and installs the file.
pub fn file(header: &Header<'_>, dest: &Destination<'_>, content: &[u8]) -> Vec<String> {
    let staging = format!(
        "{KILN_STATE_DIR}/staging/{}--{}",
        header.recipe, header.step
    );
    let chunks: Vec<&[u8]> = if content.is_empty() {
        vec![content]
    } else {
        content.chunks(CHUNK_CONTENT_BYTES).collect()
    };
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut body = format!("staging={staging}\n");
            if i == 0 {
                // Staged under a root-only folder: the content may be a config with
                // settings nobody but its owner should read.
                body.push_str(&format!("install -d -m 0700 {KILN_STATE_DIR}/staging\n"));
                body.push_str(": > \"$staging\"\n");
            }
            body.push_str(&append_chunk(chunk));
            if i == last {
                body.push_str(&install(dest, content));
            }
            run(header, &body)
        })
        .collect()
}

fn append_chunk(chunk: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(chunk);
    let mut text = String::from("base64 -d >> \"$staging\" <<'KILN_CHUNK'\n");
    for line in encoded.as_bytes().chunks(BASE64_LINE) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str("KILN_CHUNK\n");
    text
}

/// Checksum, then `install` beside the destination and rename over it, so that a reader
/// never sees a half-written file and the owner and mode are right from the start.
fn install(dest: &Destination<'_>, content: &[u8]) -> String {
    let sha = hex::encode(Sha256::digest(content));
    let path = shell_quote(dest.path);
    let next = shell_quote(&format!("{}.kiln-new", dest.path));
    format!(
        "if [[ \"$(sha256sum \"$staging\" | cut -d ' ' -f 1)\" != {sha} ]]; then\n\
         \x20 echo \"kiln: staged content of {path_plain} does not match its checksum; \
         a chunk was lost or sent twice\" >&2\n\
         \x20 exit 1\n\
         fi\n\
         mkdir -p \"$(dirname {path})\"\n\
         install -o {owner} -g {group} -m {mode} \"$staging\" {next}\n\
         mv -f {next} {path}\n\
         rm -f \"$staging\"\n\
         echo \"kiln: installed {path_plain} ({len} bytes, sha256 {sha})\"\n",
        path_plain = dest.path,
        owner = shell_quote(dest.owner),
        group = shell_quote(dest.group),
        mode = shell_quote(dest.mode),
        len = content.len(),
    )
}

/// The names of the steps a file becomes: the step's own name when it fits one chunk.
pub fn chunk_names(step: &str, chunks: usize) -> Vec<String> {
    if chunks == 1 {
        return vec![step.to_string()];
    }
    (1..=chunks)
        .map(|i| format!("{step}-part-{i}-of-{chunks}"))
        .collect()
}
