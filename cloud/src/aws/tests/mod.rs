//! Recorded-response tests of the adapter (aws-smithy-mocks): the requests kiln sends,
//! asserted field by field, and AWS's answers (modeled outputs, and raw error bodies as
//! AWS sends them) turned into kiln's types and error kinds. They cover what the
//! emulator lacks or gets wrong: instance refresh, agent status, invocation listings,
//! cancellation, CloudWatch, image deprecation, and the exact shape of each request.

mod cloudwatch;
mod ec2;
mod elb;
mod errors;
mod refresh;
mod ssm;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// The region every mocked client is bound to.
const REGION: &str = "ap-northeast-1";

/// A client of `$krate` answering from the given rules only (an unmatched request
/// panics), with no retries so that one recorded error is one failed call.
macro_rules! mocked {
    ($krate:ident, $($rule:expr),+ $(,)?) => {{
        let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
            .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
        $(interceptor = interceptor.with_rule(&$rule);)+
        let credentials =
            $krate::config::Credentials::new("AKIDTEST", "secret", None, None, "test");
        let config = $krate::Config::builder()
            .behavior_version($krate::config::BehaviorVersion::latest())
            .region($krate::config::Region::new(crate::aws::tests::REGION))
            .credentials_provider(credentials)
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .retry_config($krate::config::retry::RetryConfig::disabled())
            .interceptor(interceptor)
            .build();
        $krate::Client::from_conf(config)
    }};
}
pub(crate) use mocked;

/// An error answer as AWS sends it: the status and the body in the service's protocol.
fn error_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).expect("a valid status"),
        SdkBody::from(body.to_string()),
    )
}

/// EC2's error body (its own query protocol).
fn ec2_error(code: &str, message: &str) -> HttpResponse {
    error_response(
        400,
        &format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>\
             </Error></Errors><RequestID>req-1</RequestID></Response>"
        ),
    )
}

/// The error body of the query-protocol services (Auto Scaling, ELB, CloudWatch).
fn query_error(code: &str, message: &str) -> HttpResponse {
    error_response(
        400,
        &format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"
        ),
    )
}

/// SSM's error body (JSON 1.1).
fn json_error(code: &str, message: &str) -> HttpResponse {
    error_response(
        400,
        &format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
    )
}
