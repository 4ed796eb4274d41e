//! The AWS adapter: every port on the official AWS SDK for Rust.
//!
//! A mechanical mapping from kiln's types to AWS requests and back: no waiting, no
//! strategy, no retry beyond the SDK's own bounded retry configuration. Every SDK error
//! becomes a [`CloudError`] that names the operation, the resource and the region, with
//! AWS's code and message and the [`crate::ErrorKind`] decisions are taken on.
//!
//! Nothing outside this module names an `aws_sdk_*` type.

mod autoscaling;
mod autoscaling_convert;
mod cloudwatch;
mod convert;
mod ec2;
mod ec2_convert;
mod elb;
mod elb_convert;
mod error;
mod ssm;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

pub use self::autoscaling::AutoScaling;
pub use self::cloudwatch::CloudWatch;
pub use self::ec2::Ec2Compute;
pub use self::elb::LoadBalancers;
pub use self::ssm::Ssm;
use crate::error::{CloudError, CloudResult, ErrorKind};
use crate::ports::{Account, Clock, Cloud};
use crate::types::Timestamp;

/// Attempts per call, the first included, with the SDK's standard exponential backoff.
/// Five attempts ride out a throttling burst of some tens of seconds (the standard
/// backoff caps at 20 s per wait), which covers the bursts a bake's polling meets;
/// beyond that the call fails as `Throttled` and the caller's own deadline decides.
pub const MAX_ATTEMPTS: u32 = 5;

/// Time to open a connection: a reachable endpoint answers in well under a second, so
/// this only catches a wrong endpoint or a dead network, quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time for one attempt of one call. The slowest calls kiln makes (CopyImage,
/// RunInstances, CreateImage) answer in seconds; a minute means the connection hangs,
/// and the attempt is retried rather than waited on forever.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach AWS. Every field left empty falls back to the SDK's standard chain
/// (environment, shared config and credentials files, SSO, instance role).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOptions {
    /// The home region; else `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile's region.
    pub region: Option<String>,
    /// A named profile of the shared config files; else `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
    /// Send every call to this endpoint (an emulator on loopback); else the SDK's own
    /// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` settings, or AWS itself.
    pub endpoint_url: Option<String>,
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// An AWS account reached through one shared SDK configuration.
pub struct AwsAccount {
    config: SdkConfig,
    home_region: String,
    account_id: String,
    clouds: Mutex<HashMap<String, Cloud>>,
}

impl std::fmt::Debug for AwsAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsAccount")
            .field("home_region", &self.home_region)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

impl AwsAccount {
    /// Loads the SDK configuration and asks STS whose credentials they are.
    pub async fn connect(options: AwsOptions) -> Result<AwsAccount, CloudError> {
        let config = load_config(&options).await;
        let home_region = config.region().map(ToString::to_string).ok_or_else(|| {
            CloudError::new(
                ErrorKind::Validation,
                "Connect",
                options
                    .profile
                    .clone()
                    .unwrap_or_else(|| "default profile".into()),
                "(none)",
                "NoRegion",
                "no region configured: pass --region, set AWS_REGION, or set `region` in \
                 the profile",
            )
        })?;
        let account_id = caller_account(&config, &home_region).await?;
        tracing::info!(account = %account_id, region = %home_region, "connected to AWS");
        Ok(Self::from_config(config, home_region, account_id))
    }

    /// An account on an SDK configuration built elsewhere (tests, embedding programs).
    pub(crate) fn from_config(config: SdkConfig, home_region: String, account_id: String) -> Self {
        Self {
            config,
            home_region,
            account_id,
            clouds: Mutex::new(HashMap::new()),
        }
    }

    fn build_cloud(&self, region: &str) -> Cloud {
        let config = self
            .config
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        Cloud {
            region: region.to_string(),
            compute: Arc::new(Ec2Compute::new(aws_sdk_ec2::Client::new(&config), region)),
            commands: Arc::new(Ssm::new(aws_sdk_ssm::Client::new(&config), region)),
            parameters: Arc::new(Ssm::new(aws_sdk_ssm::Client::new(&config), region)),
            scaling: Arc::new(AutoScaling::new(
                aws_sdk_autoscaling::Client::new(&config),
                region,
            )),
            load_balancing: Arc::new(LoadBalancers::new(
                aws_sdk_elasticloadbalancingv2::Client::new(&config),
                region,
            )),
            metrics: Arc::new(CloudWatch::new(
                aws_sdk_cloudwatch::Client::new(&config),
                region,
            )),
            clock: Arc::new(WallClock),
        }
    }
}

/// The SDK's standard retry (exponential backoff with jitter, throttling and transient
/// errors only), bounded at [`MAX_ATTEMPTS`].
pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

async fn load_config(options: &AwsOptions) -> SdkConfig {
    let retry = retry_config();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The account id of the credentials in use (STS GetCallerIdentity needs no permission).
pub(crate) async fn caller_account(config: &SdkConfig, region: &str) -> CloudResult<String> {
    let call = || error::Call {
        operation: "GetCallerIdentity",
        resource: "the configured credentials".to_string(),
        region,
    };
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| error::from_sdk(call(), e))?;
    out.account()
        .map(String::from)
        .ok_or_else(|| error::missing(call(), "Account"))
}

#[async_trait]
impl Account for AwsAccount {
    fn home_region(&self) -> &str {
        &self.home_region
    }

    fn account_id(&self) -> &str {
        &self.account_id
    }

    async fn region(&self, name: &str) -> CloudResult<Cloud> {
        let mut clouds = self.clouds.lock().unwrap_or_else(|e| e.into_inner());
        let cloud = clouds
            .entry(name.to_string())
            .or_insert_with(|| self.build_cloud(name));
        Ok(cloud.clone())
    }

    async fn regions(&self) -> CloudResult<Vec<String>> {
        let call = || error::Call {
            operation: "DescribeRegions",
            resource: "the account's regions".to_string(),
            region: &self.home_region,
        };
        // Without AllRegions AWS lists only the regions enabled for the account: the
        // ones kiln can have touched.
        let out = aws_sdk_ec2::Client::new(&self.config)
            .describe_regions()
            .send()
            .await
            .map_err(|e| error::from_sdk(call(), e))?;
        let mut names: Vec<String> = out
            .regions()
            .iter()
            .filter_map(|r| r.region_name().map(String::from))
            .collect();
        names.sort();
        Ok(names)
    }

    fn is_simulated(&self) -> bool {
        false
    }
}
