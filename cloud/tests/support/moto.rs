//! A moto server (an AWS API emulator) on loopback for the adapter's tests.
//!
//! The server binary comes from `KILN_MOTO_SERVER`, else `moto_server` on `PATH`; without
//! either the test fails and says how to get one (never a silent skip). One server runs
//! per test binary; [`session`] hands it to one test at a time, reset to an empty account.
//! The server dies with the test binary: a shell between the two kills it when the
//! binary's end of a pipe closes, which happens however the binary exits.
//!
//! Tests of other packages (the CLI's `--endpoint-url` runs) use the same fixture with
//! `#[path = "../cloud/tests/support/moto.rs"] mod moto;` and [`Moto::endpoint`]; it
//! needs tokio with `net`, `io-util`, `time` and `sync`.
//!
//! Seeding helpers create what kiln never creates itself (launch templates, load
//! balancers, listeners) through moto's query API, as an operator's other tools would.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, MutexGuard};

/// How long moto may take to answer after it starts: it imports every service's models
/// first, which takes a few seconds on a busy two-core machine.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two "are you up" probes during startup.
const STARTUP_POLL: Duration = Duration::from_millis(100);
/// The deadline of one request to moto's own API (reset, seeding).
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// The dummy credentials every test signs with; moto checks none of them.
pub const ACCESS_KEY: &str = "testing";
/// The account id moto answers GetCallerIdentity with.
pub const ACCOUNT_ID: &str = "123456789012";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    shell: Child,
    /// The writing end of the pipe the watchdog shell reads; closing it ends the server.
    lifeline: Option<ChildStdin>,
    pub endpoint: String,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Closing the lifeline makes the shell kill moto and exit.
        drop(self.lifeline.take());
        let _ = self.shell.wait();
    }
}

/// Runs the server command (`$2...`) on port `$0` with its log in `$1`, kills it when
/// stdin closes, and exits when it does, so that a server that dies at startup is
/// noticed at once.
const WATCHDOG: &str = r#"exec 3<&0
port=$0; log=$1; shift
"$@" -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
pid=$!
{ read _ <&3; kill "$pid" 2>/dev/null; } &
wait "$pid""#;

static SERVER: Mutex<Option<Moto>> = Mutex::const_new(None);

/// The server for one test, reset; other tests wait until the guard is dropped.
pub async fn session() -> MutexGuard<'static, Option<Moto>> {
    session_of(vec![server_binary()]).await
}

/// Like [`session`], with moto started through `moto_with_agents.py`, which adds the SSM
/// agent registration moto lacks (for whole bakes through the adapter). One test binary
/// uses one kind of session only.
pub async fn session_with_agents() -> MutexGuard<'static, Option<Moto>> {
    let binary = server_binary();
    let python = binary.with_file_name("python");
    let launcher = workspace_root().join("cloud/tests/support/moto_with_agents.py");
    session_of(vec![python, launcher]).await
}

async fn session_of(command: Vec<PathBuf>) -> MutexGuard<'static, Option<Moto>> {
    set_dummy_credentials();
    let mut guard = SERVER.lock().await;
    if guard.is_none() {
        *guard = Some(Moto::start(&command).await);
    }
    guard.as_ref().expect("started").reset().await;
    guard
}

/// The workspace's root: the nearest folder above this package holding `Cargo.lock`.
fn workspace_root() -> PathBuf {
    let package = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    package
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(&package)
        .to_path_buf()
}

/// Dummy credentials, and no shared config or instance metadata: nothing of the machine
/// running the tests may leak into them.
fn set_dummy_credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let missing = std::env::temp_dir().join("kiln-test-no-such-aws-file");
        for (key, value) in [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", ACCESS_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", missing.to_str().unwrap_or_default()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                missing.to_str().unwrap_or_default(),
            ),
        ] {
            std::env::set_var(key, value);
        }
        let unset = [
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        ];
        for key in unset {
            std::env::remove_var(key);
        }
    });
}

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KILN_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "no moto server: these tests need moto 5 (`moto[server]` from PyPI). Run the \
             test command of the README (scripts/test), which installs it and sets \
             KILN_MOTO_SERVER, or put `moto_server` on PATH"
        )
    })
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

impl Moto {
    async fn start(command: &[PathBuf]) -> Moto {
        let binary = command[0].clone();
        let port = free_port();
        let log = std::env::temp_dir().join(format!("kiln-moto-{port}.log"));
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(port.to_string())
            .arg(&log)
            .args(command)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let lifeline = shell.stdin.take().expect("piped stdin");
        let mut moto = Moto {
            shell,
            lifeline: Some(lifeline),
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        moto.wait_until_up(&binary, &log).await;
        moto
    }

    async fn wait_until_up(&mut self, binary: &std::path::Path, log: &std::path::Path) {
        let deadline = tokio::time::Instant::now() + STARTUP_DEADLINE;
        let mut exited = None;
        while tokio::time::Instant::now() < deadline {
            if self.request("GET", "/moto-api/", &[], "").await.is_ok() {
                return;
            }
            exited = self.shell.try_wait().ok().flatten();
            if exited.is_some() {
                break;
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
        let output = std::fs::read_to_string(log).unwrap_or_default();
        let what = match exited {
            Some(status) => format!("exited ({status})"),
            None => format!("did not answer within {STARTUP_DEADLINE:?}"),
        };
        panic!(
            "{} on port {} {what}; its output:\n{output}",
            binary.display(),
            self.port
        );
    }

    /// Empties every service of the emulated account.
    pub async fn reset(&self) {
        let (status, body) = self
            .request("POST", "/moto-api/reset", &[], "")
            .await
            .expect("reset moto");
        assert_eq!(status, 200, "moto reset answered {status}: {body}");
    }

    /// One raw HTTP/1.1 exchange: status and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            let mut head = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
                 Content-Length: {}\r\n",
                self.port,
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            Ok::<_, std::io::Error>(parse_response(&String::from_utf8_lossy(&response)))
        };
        tokio::time::timeout(REQUEST_DEADLINE, exchange)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    /// A query-protocol call (EC2, ELB), as the SDK would sign it; moto reads the
    /// service and region from the credential scope and checks no signature.
    pub async fn query(&self, service: &str, region: &str, params: &[(&str, &str)]) -> String {
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{region}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let headers = [
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("Authorization", auth),
        ];
        let (status, text) = self
            .request("POST", "/", &headers, &body)
            .await
            .expect("query moto");
        assert_eq!(
            status, 200,
            "seeding {service} {params:?} answered {status}: {text}"
        );
        text
    }

    /// An IAM instance profile (IAM is global: moto keeps it in us-east-1).
    pub async fn create_instance_profile(&self, name: &str) {
        self.query(
            "iam",
            "us-east-1",
            &[
                ("Action", "CreateInstanceProfile"),
                ("Version", "2010-05-08"),
                ("InstanceProfileName", name),
            ],
        )
        .await;
    }

    /// A launch template (version 1) with an image and an instance type.
    pub async fn create_launch_template(&self, region: &str, name: &str, image: &str) -> String {
        let body = self
            .query(
                "ec2",
                region,
                &[
                    ("Action", "CreateLaunchTemplate"),
                    ("Version", "2016-11-15"),
                    ("LaunchTemplateName", name),
                    ("LaunchTemplateData.ImageId", image),
                    ("LaunchTemplateData.InstanceType", "t3.micro"),
                    ("LaunchTemplateData.MetadataOptions.HttpTokens", "required"),
                ],
            )
            .await;
        xml_value(&body, "launchTemplateId").expect("launch template id")
    }

    /// An application load balancer in the given subnets; returns its ARN.
    pub async fn create_load_balancer(
        &self,
        region: &str,
        name: &str,
        subnets: &[String],
    ) -> String {
        let mut params = vec![
            ("Action", "CreateLoadBalancer"),
            ("Version", "2015-12-01"),
            ("Name", name),
            ("Type", "application"),
        ];
        let keys: Vec<String> = (1..=subnets.len())
            .map(|i| format!("Subnets.member.{i}"))
            .collect();
        params.extend(
            keys.iter()
                .map(String::as_str)
                .zip(subnets.iter().map(String::as_str)),
        );
        let body = self.query("elasticloadbalancing", region, &params).await;
        xml_value(&body, "LoadBalancerArn").expect("load balancer arn")
    }

    /// An HTTP listener on port 80 forwarding to one target group; returns its ARN.
    pub async fn create_listener(&self, region: &str, lb_arn: &str, tg_arn: &str) -> String {
        let body = self
            .query(
                "elasticloadbalancing",
                region,
                &[
                    ("Action", "CreateListener"),
                    ("Version", "2015-12-01"),
                    ("LoadBalancerArn", lb_arn),
                    ("Protocol", "HTTP"),
                    ("Port", "80"),
                    ("DefaultActions.member.1.Type", "forward"),
                    ("DefaultActions.member.1.TargetGroupArn", tg_arn),
                ],
            )
            .await;
        xml_value(&body, "ListenerArn").expect("listener arn")
    }
}

fn parse_response(text: &str) -> (u16, String) {
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// The text of the first `<tag>` element of an XML answer.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
