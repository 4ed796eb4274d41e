//! [`Commands`] and [`Parameters`] on Systems Manager: agent status, Run Command and
//! Parameter Store.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ssm::types as ssm;
use aws_sdk_ssm::Client;

use super::convert::{parse_time, seconds_i32, timestamp_opt};
use super::error::{from_sdk, invalid, missing, Call};
use crate::error::CloudResult;
use crate::ports::{Commands, Parameters};
use crate::types::*;
use crate::MAX_INSTANCES_PER_COMMAND;

/// SendCommand refuses a `Comment` longer than this; the comment only labels the command
/// in the console, so a longer one is cut rather than refused.
const MAX_COMMENT_CHARS: usize = 100;

/// Systems Manager of one region.
#[derive(Debug, Clone)]
pub struct Ssm {
    client: Client,
    region: String,
}

impl Ssm {
    pub(crate) fn new(client: Client, region: impl Into<String>) -> Self {
        Self {
            client,
            region: region.into(),
        }
    }

    fn call(&self, operation: &'static str, resource: impl ToString) -> Call<'_> {
        Call::new(&self.region, operation, resource)
    }
}

fn joined<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn ping_status(status: Option<&ssm::PingStatus>) -> PingStatus {
    match status {
        Some(ssm::PingStatus::Online) => PingStatus::Online,
        Some(ssm::PingStatus::ConnectionLost) => PingStatus::ConnectionLost,
        _ => PingStatus::Inactive,
    }
}

fn agent_info(i: &ssm::InstanceInformation) -> AgentInfo {
    AgentInfo {
        instance_id: InstanceId::new(i.instance_id().unwrap_or_default()),
        ping_status: ping_status(i.ping_status()),
        agent_version: i.agent_version().map(String::from),
        last_ping: timestamp_opt(i.last_ping_date_time()),
    }
}

fn invocation_status(status: Option<&ssm::CommandInvocationStatus>) -> InvocationStatus {
    use ssm::CommandInvocationStatus as S;
    match status {
        Some(S::Pending) => InvocationStatus::Pending,
        Some(S::InProgress) => InvocationStatus::InProgress,
        Some(S::Delayed) => InvocationStatus::Delayed,
        Some(S::Success) => InvocationStatus::Success,
        Some(S::Cancelling) => InvocationStatus::Cancelling,
        Some(S::Cancelled) => InvocationStatus::Cancelled,
        Some(S::TimedOut) => InvocationStatus::TimedOut,
        // Failed, or a status newer than this client: the command did not succeed.
        _ => InvocationStatus::Failed,
    }
}

/// One entry of ListCommandInvocations. SSM gives the output per plugin and shorter than
/// GetCommandInvocation does; kiln's documents have one plugin, so its output and exit
/// code are the invocation's.
fn listed_invocation(c: &ssm::CommandInvocation) -> Invocation {
    let plugins = c.command_plugins();
    let first = plugins.first();
    Invocation {
        command_id: CommandId::new(c.command_id().unwrap_or_default()),
        instance_id: InstanceId::new(c.instance_id().unwrap_or_default()),
        status: invocation_status(c.status()),
        status_details: c.status_details().unwrap_or_default().to_string(),
        response_code: first.map_or(-1, |p| p.response_code()),
        stdout: plugins
            .iter()
            .filter_map(|p| p.output())
            .collect::<Vec<_>>()
            .join("\n"),
        stderr: String::new(),
        execution_start: timestamp_opt(first.and_then(|p| p.response_start_date_time())),
        execution_end: timestamp_opt(first.and_then(|p| p.response_finish_date_time())),
    }
}

fn parameter_type(kind: ParameterType) -> ssm::ParameterType {
    match kind {
        ParameterType::String => ssm::ParameterType::String,
        ParameterType::StringList => ssm::ParameterType::StringList,
        ParameterType::SecureString => ssm::ParameterType::SecureString,
    }
}

fn kiln_parameter_type(kind: Option<&ssm::ParameterType>) -> ParameterType {
    match kind {
        Some(ssm::ParameterType::StringList) => ParameterType::StringList,
        Some(ssm::ParameterType::SecureString) => ParameterType::SecureString,
        _ => ParameterType::String,
    }
}

fn parameter(p: &ssm::Parameter) -> Parameter {
    Parameter {
        name: p.name().unwrap_or_default().to_string(),
        value: p.value().unwrap_or_default().to_string(),
        kind: kiln_parameter_type(p.r#type()),
        version: p.version(),
        last_modified: timestamp_opt(p.last_modified_date()),
        description: None,
    }
}

fn history_entry(p: &ssm::ParameterHistory) -> Parameter {
    Parameter {
        name: p.name().unwrap_or_default().to_string(),
        value: p.value().unwrap_or_default().to_string(),
        kind: kiln_parameter_type(p.r#type()),
        version: p.version(),
        last_modified: timestamp_opt(p.last_modified_date()),
        description: p.description().map(String::from),
    }
}

#[async_trait]
impl Commands for Ssm {
    async fn describe_instance_information(
        &self,
        ids: &[InstanceId],
    ) -> CloudResult<Vec<AgentInfo>> {
        let call = || self.call("DescribeInstanceInformation", joined(ids));
        let filter = (!ids.is_empty())
            .then(|| {
                ssm::InstanceInformationStringFilter::builder()
                    .key("InstanceIds")
                    .set_values(Some(ids.iter().map(ToString::to_string).collect()))
                    .build()
            })
            .transpose()
            .map_err(|e| invalid(call(), e.to_string()))?;
        let found = self
            .client
            .describe_instance_information()
            .set_filters(filter.map(|f| vec![f]))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        Ok(found.iter().map(agent_info).collect())
    }

    async fn send_command(&self, r: &SendCommand) -> CloudResult<CommandId> {
        let call = || self.call("SendCommand", joined(&r.instance_ids));
        if r.instance_ids.len() > MAX_INSTANCES_PER_COMMAND {
            let message = format!(
                "{} instance ids, SendCommand takes at most {MAX_INSTANCES_PER_COMMAND}; \
                 send in batches",
                r.instance_ids.len()
            );
            return Err(invalid(call(), message));
        }
        let parameters = HashMap::from([
            ("commands".to_string(), r.commands.clone()),
            (
                "executionTimeout".to_string(),
                vec![r.execution_timeout.as_secs().to_string()],
            ),
        ]);
        let (bucket, prefix) = r.output_s3.clone().unzip();
        let out = self
            .client
            .send_command()
            .set_instance_ids(Some(
                r.instance_ids.iter().map(ToString::to_string).collect(),
            ))
            .document_name(&r.document)
            .set_parameters(Some(parameters))
            .timeout_seconds(seconds_i32(r.delivery_timeout))
            .comment(
                r.comment
                    .chars()
                    .take(MAX_COMMENT_CHARS)
                    .collect::<String>(),
            )
            .set_max_concurrency(r.max_concurrency.clone())
            .set_max_errors(r.max_errors.clone())
            .set_output_s3_bucket_name(bucket)
            .set_output_s3_key_prefix(prefix)
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        let id = out
            .command()
            .and_then(|c| c.command_id())
            .ok_or_else(|| missing(call(), "Command.CommandId"))?;
        Ok(CommandId::new(id))
    }

    async fn get_command_invocation(
        &self,
        command: &CommandId,
        instance: &InstanceId,
    ) -> CloudResult<Invocation> {
        let out = self
            .client
            .get_command_invocation()
            .command_id(command.as_str())
            .instance_id(instance.as_str())
            .send()
            .await
            .map_err(|e| {
                from_sdk(
                    self.call("GetCommandInvocation", format!("{command} on {instance}")),
                    e,
                )
            })?;
        Ok(Invocation {
            command_id: command.clone(),
            instance_id: instance.clone(),
            status: invocation_status(out.status()),
            status_details: out.status_details().unwrap_or_default().to_string(),
            response_code: out.response_code(),
            stdout: out
                .standard_output_content()
                .unwrap_or_default()
                .to_string(),
            stderr: out.standard_error_content().unwrap_or_default().to_string(),
            execution_start: parse_time(out.execution_start_date_time()),
            execution_end: parse_time(out.execution_end_date_time()),
        })
    }

    async fn list_command_invocations(&self, command: &CommandId) -> CloudResult<Vec<Invocation>> {
        let found = self
            .client
            .list_command_invocations()
            .command_id(command.as_str())
            .details(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("ListCommandInvocations", command), e))?;
        Ok(found.iter().map(listed_invocation).collect())
    }

    async fn cancel_command(
        &self,
        command: &CommandId,
        instances: &[InstanceId],
    ) -> CloudResult<()> {
        let ids =
            (!instances.is_empty()).then(|| instances.iter().map(ToString::to_string).collect());
        self.client
            .cancel_command()
            .command_id(command.as_str())
            .set_instance_ids(ids)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("CancelCommand", command), e))?;
        Ok(())
    }
}

#[async_trait]
impl Parameters for Ssm {
    async fn get_parameter(&self, name: &str, decrypt: bool) -> CloudResult<Option<Parameter>> {
        let result = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(decrypt)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.parameter().map(parameter)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                Ok(None)
            }
            Err(e) => Err(from_sdk(self.call("GetParameter", name), e)),
        }
    }

    async fn get_parameters_by_path(
        &self,
        path: &str,
        decrypt: bool,
    ) -> CloudResult<Vec<Parameter>> {
        let found = self
            .client
            .get_parameters_by_path()
            .path(path)
            .recursive(true)
            .with_decryption(decrypt)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("GetParametersByPath", path), e))?;
        Ok(found
            .iter()
            .flat_map(|page| page.parameters())
            .map(parameter)
            .collect())
    }

    async fn get_parameter_history(
        &self,
        name: &str,
        decrypt: bool,
    ) -> CloudResult<Vec<Parameter>> {
        let found = self
            .client
            .get_parameter_history()
            .name(name)
            .with_decryption(decrypt)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("GetParameterHistory", name), e))?;
        let mut history: Vec<_> = found
            .iter()
            .flat_map(|page| page.parameters())
            .map(history_entry)
            .collect();
        history.sort_by_key(|p| p.version);
        Ok(history)
    }

    async fn put_parameter(&self, r: &PutParameter) -> CloudResult<i64> {
        let out = self
            .client
            .put_parameter()
            .name(&r.name)
            .value(&r.value)
            .r#type(parameter_type(r.kind))
            .set_description(r.description.clone())
            .overwrite(r.overwrite)
            .set_data_type(r.data_type.clone())
            .send()
            .await
            .map_err(|e| from_sdk(self.call("PutParameter", &r.name), e))?;
        Ok(out.version())
    }

    async fn delete_parameter(&self, name: &str) -> CloudResult<()> {
        self.client
            .delete_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DeleteParameter", name), e))?;
        Ok(())
    }
}
