//! Errors that never came from AWS: a dead endpoint, and an answer that is not AWS's.

use aws_credential_types::credential_fn::provide_credentials_fn;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ssm::Client;
use aws_smithy_mocks::mock;

use super::{error_response, mocked, REGION};
use crate::aws::{Ec2Compute, Ssm};
use crate::ports::{Compute, Parameters};
use crate::types::ImageFilter;
use crate::ErrorKind;

#[tokio::test]
async fn a_dead_endpoint_is_a_transport_error() {
    // A loopback port nobody listens on: the connection is refused at once.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
        .build();
    let compute = Ec2Compute::new(aws_sdk_ec2::Client::from_conf(config), REGION);

    let err = compute
        .describe_images(&ImageFilter::default())
        .await
        .expect_err("nobody listens");

    assert_eq!(err.kind, ErrorKind::Transport, "{err}");
    assert!(err.is_transient());
    assert_eq!(err.operation, "DescribeImages");
    assert!(err.message.contains("check the network"), "{err}");
}

#[tokio::test]
async fn an_html_error_page_is_shown_short_with_its_status() {
    let get = mock!(Client::get_parameter).then_http_response(|| {
        error_response(
            500,
            "<!doctype html>\n<html><title>500 Internal Server Error</title>",
        )
    });
    let parameters = Ssm::new(mocked!(aws_sdk_ssm, get), REGION);

    let err = parameters
        .get_parameter("/kiln/web/stable", false)
        .await
        .expect_err("500");

    assert_eq!(err.kind, ErrorKind::Other);
    assert_eq!(err.code, "HTTP500");
    assert!(err.message.starts_with("HTTP 500"), "{err}");
    assert!(
        err.message
            .contains("<title>500 Internal Server Error</title>"),
        "{err}"
    );
    assert!(
        !err.message.contains("service error"),
        "never a bare service error: {err}"
    );
    assert!(!err.message.contains('\n'), "one line: {err}");
}

#[tokio::test]
async fn a_missing_parameter_is_none_not_an_error() {
    let get = mock!(Client::get_parameter)
        .then_http_response(|| super::json_error("ParameterNotFound", ""));
    let parameters = Ssm::new(mocked!(aws_sdk_ssm, get), REGION);

    let found = parameters
        .get_parameter("/kiln/web/none", false)
        .await
        .expect("no error");

    assert_eq!(found, None);
}

#[tokio::test]
async fn credentials_that_cannot_load_are_access_denied() {
    let nothing = provide_credentials_fn(|| async {
        Err(CredentialsError::not_loaded("the SSO session has expired"))
    });
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(nothing))
        .endpoint_url("http://127.0.0.1:9")
        .build();

    let err = crate::aws::caller_account(&config, REGION)
        .await
        .expect_err("no credentials");

    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
    assert_eq!(err.code, "CredentialsNotLoaded");
    assert_eq!(err.operation, "GetCallerIdentity");
    assert!(err.message.contains("the SSO session has expired"), "{err}");
    assert!(
        err.message.contains("aws sso login"),
        "says what to do: {err}"
    );
}
