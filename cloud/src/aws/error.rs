//! Turning an SDK error into a [`CloudError`]: operation, resource, region, AWS's code and
//! message, and the [`ErrorKind`] kiln's decisions are taken on.
//!
//! The kind comes from the error code in the response metadata (the code that the typed
//! error variants are generated from), then from the HTTP status when AWS sent no code.

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::{DispatchFailure, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{CloudError, ErrorKind};

/// How much of an unparseable response body goes into the message: enough to recognise an
/// HTML error page or a proxy's answer, short enough for one log line.
const BODY_EXCERPT_CHARS: usize = 200;

/// Codes that mean "slow down", whatever the service.
const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Codes that mean the resource does not exist, beyond EC2's `*.NotFound` convention.
const NOT_FOUND: &[&str] = &[
    "InvocationDoesNotExist",
    "NoSuchEntity",
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "ActiveInstanceRefreshNotFound",
    "ActiveInstanceRefreshNotFoundFault",
    "TargetGroupNotFound",
    "ListenerNotFound",
    "LoadBalancerNotFound",
    "RuleNotFound",
    "ResourceNotFound",
    "ResourceNotFoundException",
    "InvalidDocument",
    "InvalidCommandId",
];

/// Codes that mean something running or existing blocks the request.
const CONFLICT: &[&str] = &[
    "InstanceRefreshInProgress",
    "InstanceRefreshInProgressFault",
    "DependencyViolation",
    "ResourceInUse",
    "ResourceInUseFault",
    "ScalingActivityInProgress",
    "AlreadyExists",
    "AlreadyExistsFault",
    "ParameterAlreadyExists",
    "DuplicateTargetGroupName",
    "PriorityInUse",
    "IncorrectInstanceState",
    "IncorrectState",
    "InvalidGroup.Duplicate",
    "InvalidAMIName.Duplicate",
    "InvalidLaunchTemplateName.AlreadyExistsException",
    "ResourceContention",
    "ResourceContentionFault",
];

const ACCESS_DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthFailure",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "OptInRequired",
    "Blocked",
];

const UNSUPPORTED: &[&str] = &[
    "UnsupportedOperation",
    "UnsupportedOperationException",
    "InvalidAction",
    "NotImplemented",
    "UnsupportedFeature",
];

const VALIDATION: &[&str] = &[
    "ValidationError",
    "ValidationException",
    "MissingParameter",
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidConfigurationRequest",
];

/// The kind of a service error, from AWS's code (and the HTTP status when there is none).
pub(crate) fn kind_for_code(code: &str, status: Option<u16>) -> ErrorKind {
    // SSM's InvalidInstanceId: not registered with SSM, or not online yet. EC2's
    // InvalidInstanceID.NotFound is a different code and falls to NotFound below.
    if code == "InvalidInstanceId" || code == "InvalidInstanceInformationFilterValue" {
        return ErrorKind::InvalidInstance;
    }
    let listed = |list: &[&str]| list.contains(&code);
    if listed(THROTTLED) {
        ErrorKind::Throttled
    } else if listed(NOT_FOUND)
        || code.ends_with(".NotFound")
        || code.ends_with("NotFoundException")
        || code.ends_with("NotFound")
    {
        ErrorKind::NotFound
    } else if listed(CONFLICT) || code.ends_with(".Duplicate") {
        ErrorKind::Conflict
    } else if listed(ACCESS_DENIED) {
        ErrorKind::AccessDenied
    } else if code.ends_with("LimitExceeded")
        || code.ends_with("LimitExceededException")
        || code.ends_with("LimitExceededFault")
        || code.starts_with("TooMany")
    {
        ErrorKind::LimitExceeded
    } else if listed(UNSUPPORTED) {
        ErrorKind::Unsupported
    } else if listed(VALIDATION) || code.starts_with("Invalid") || code.ends_with(".Malformed") {
        ErrorKind::Validation
    } else {
        kind_for_status(status)
    }
}

fn kind_for_status(status: Option<u16>) -> ErrorKind {
    match status {
        Some(401 | 403) => ErrorKind::AccessDenied,
        Some(404) => ErrorKind::NotFound,
        Some(429) => ErrorKind::Throttled,
        Some(501) => ErrorKind::Unsupported,
        _ => ErrorKind::Other,
    }
}

/// Where a call failed: the operation, what it was about, and the region.
pub(crate) struct Call<'a> {
    pub operation: &'static str,
    pub resource: String,
    pub region: &'a str,
}

impl<'a> Call<'a> {
    /// The one constructor every service's `call` helper goes through.
    pub(crate) fn new(region: &'a str, operation: &'static str, resource: impl ToString) -> Self {
        Self {
            operation,
            resource: resource.to_string(),
            region,
        }
    }

    fn error(&self, kind: ErrorKind, code: &str, message: String) -> CloudError {
        CloudError::new(
            kind,
            self.operation,
            self.resource.clone(),
            self.region,
            code,
            message,
        )
    }
}

/// Converts any SDK error into a [`CloudError`] naming the call.
pub(crate) fn from_sdk<E>(call: Call<'_>, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let context = || DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => answered(&call, service.err(), service.raw()),
        SdkError::ResponseError(response) => {
            let status = response.raw().status().as_u16();
            let message = format!("HTTP {status}, unreadable: {}", excerpt(response.raw()));
            let code = format!("HTTP{status}");
            call.error(kind_for_status(Some(status)), &code, message)
        }
        SdkError::TimeoutError(_) => call.error(
            ErrorKind::Transport,
            "Timeout",
            format!("{}; check the network and the endpoint", context()),
        ),
        SdkError::DispatchFailure(failure) => not_sent(&call, failure, &err),
        SdkError::ConstructionFailure(_) => call.error(
            ErrorKind::Validation,
            "ConstructionFailure",
            format!("{}; check the region and the request", context()),
        ),
        _ => call.error(ErrorKind::Other, "Unknown", context()),
    }
}

/// An error AWS answered: its code and message, or the status and body when it sent none.
fn answered<E: ProvideErrorMetadata>(call: &Call<'_>, err: &E, raw: &HttpResponse) -> CloudError {
    let status = raw.status().as_u16();
    let code = match err.code() {
        Some(code) if !code.is_empty() => code.to_string(),
        _ => format!("HTTP{status}"),
    };
    let message = match err.message() {
        Some(message) if !message.is_empty() => message.to_string(),
        _ => format!("HTTP {status} without an AWS error: {}", excerpt(raw)),
    };
    call.error(kind_for_code(&code, Some(status)), &code, message)
}

/// A request that never reached AWS: the network, or no credentials to sign it with.
fn not_sent(
    call: &Call<'_>,
    failure: &DispatchFailure,
    err: &(dyn std::error::Error + 'static),
) -> CloudError {
    let context = DisplayErrorContext(err).to_string();
    if failure.is_io() || failure.is_timeout() {
        let message = format!("{context}; check the network and the endpoint");
        return call.error(ErrorKind::Transport, "DispatchFailure", message);
    }
    if has_source::<CredentialsError>(err) {
        let message = format!(
            "{context}; check the profile (`aws sso login` for SSO), the environment's \
             credentials or the instance role"
        );
        return call.error(ErrorKind::AccessDenied, "CredentialsNotLoaded", message);
    }
    call.error(ErrorKind::Other, "DispatchFailure", context)
}

/// Whether an error of type `T` is anywhere in the chain of sources.
fn has_source<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<T>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// The start of a response body, on one line: enough to recognise an HTML error page.
fn excerpt(raw: &HttpResponse) -> String {
    let text = raw
        .body()
        .bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(BODY_EXCERPT_CHARS).collect()
}

/// A request refused before it reached AWS.
pub(crate) fn invalid(call: Call<'_>, message: impl Into<String>) -> CloudError {
    call.error(ErrorKind::Validation, "KilnValidation", message.into())
}

/// A response that lacks a field AWS documents as always present.
pub(crate) fn missing(call: Call<'_>, field: &str) -> CloudError {
    call.error(
        ErrorKind::Other,
        "IncompleteResponse",
        format!("the response has no {field}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_kinds_decisions_use() {
        let cases = [
            ("InvalidAMIID.NotFound", ErrorKind::NotFound),
            ("InvalidInstanceID.NotFound", ErrorKind::NotFound),
            (
                "InvalidLaunchTemplateName.NotFoundException",
                ErrorKind::NotFound,
            ),
            ("InvocationDoesNotExist", ErrorKind::NotFound),
            ("Throttling", ErrorKind::Throttled),
            ("RequestLimitExceeded", ErrorKind::Throttled),
            ("InvalidInstanceId", ErrorKind::InvalidInstance),
            ("InstanceRefreshInProgress", ErrorKind::Conflict),
            ("DependencyViolation", ErrorKind::Conflict),
            ("InvalidGroup.Duplicate", ErrorKind::Conflict),
            ("UnauthorizedOperation", ErrorKind::AccessDenied),
            ("InstanceLimitExceeded", ErrorKind::LimitExceeded),
            ("TooManyTargetGroups", ErrorKind::LimitExceeded),
            ("InvalidParameterValue", ErrorKind::Validation),
            ("InvalidAMIID.Malformed", ErrorKind::Validation),
            ("InternalError", ErrorKind::Other),
        ];
        for (code, kind) in cases {
            assert_eq!(kind_for_code(code, Some(400)), kind, "{code}");
        }
    }

    #[test]
    fn status_decides_when_there_is_no_known_code() {
        assert_eq!(kind_for_code("HTTP403", Some(403)), ErrorKind::AccessDenied);
        assert_eq!(kind_for_code("HTTP429", Some(429)), ErrorKind::Throttled);
        assert_eq!(kind_for_code("HTTP500", Some(500)), ErrorKind::Other);
    }
}
