//! [`Compute`] on EC2: images, snapshots, instances, subnets, security groups, launch
//! templates and tags.

use async_trait::async_trait;
use aws_sdk_ec2::types as ec2;
use aws_sdk_ec2::Client;
use base64::Engine as _;

use super::convert::aws_timestamp;
use super::ec2_convert as conv;
use super::error::{from_sdk, missing, Call};
use crate::error::{CloudError, CloudResult, ErrorKind};
use crate::ports::Compute;
use crate::types::*;

/// EC2 of one region.
#[derive(Debug, Clone)]
pub struct Ec2Compute {
    client: Client,
    region: String,
}

impl Ec2Compute {
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

fn filter(name: &str, values: impl IntoIterator<Item = String>) -> ec2::Filter {
    ec2::Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

/// `tag:KEY` filters for every pair, and one `tag-key` filter for the bare keys.
fn tag_filters(tags: &Tags, tag_keys: &[String]) -> Vec<ec2::Filter> {
    let mut filters: Vec<_> = tags
        .iter()
        .map(|(k, v)| filter(&format!("tag:{k}"), [v.clone()]))
        .collect();
    if !tag_keys.is_empty() {
        filters.push(filter("tag-key", tag_keys.iter().cloned()));
    }
    filters
}

pub(crate) fn ec2_tags(tags: &Tags) -> Vec<ec2::Tag> {
    tags.iter()
        .map(|(k, v)| ec2::Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_spec(kind: ec2::ResourceType, tags: &Tags) -> ec2::TagSpecification {
    ec2::TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(ec2_tags(tags)))
        .build()
}

/// Tag specifications for each resource kind, none when there are no tags (EC2 refuses
/// a specification with an empty tag list).
fn tag_specs(kinds: &[ec2::ResourceType], tags: &Tags) -> Option<Vec<ec2::TagSpecification>> {
    (!tags.is_empty()).then(|| kinds.iter().map(|k| tag_spec(k.clone(), tags)).collect())
}

fn ids<T: ToString>(ids: &[T]) -> Option<Vec<String>> {
    (!ids.is_empty()).then(|| ids.iter().map(ToString::to_string).collect())
}

/// Every instance state but `terminated`.
const LIVE_STATES: [&str; 5] = ["pending", "running", "shutting-down", "stopping", "stopped"];

/// The template selector of the launch template calls.
fn template_fields(template: &TemplateRef) -> (Option<String>, Option<String>) {
    match template {
        TemplateRef::Id(id) => (Some(id.to_string()), None),
        TemplateRef::Name(name) => (None, Some(name.clone())),
    }
}

/// The kind of a version DeleteLaunchTemplateVersions refused, from its item error code
/// (`launchTemplateVersionDoesNotExist`, `launchTemplateIdMalformed`...), which is not
/// one of the service error codes.
fn version_error_kind(code: &str) -> ErrorKind {
    if code.ends_with("DoesNotExist") {
        ErrorKind::NotFound
    } else if code.ends_with("Malformed") {
        ErrorKind::Validation
    } else {
        ErrorKind::Other
    }
}

#[async_trait]
impl Compute for Ec2Compute {
    async fn describe_images(&self, f: &ImageFilter) -> CloudResult<Vec<Image>> {
        let mut filters = tag_filters(&f.tags, &f.tag_keys);
        if let Some(name) = &f.name {
            filters.push(filter("name", [name.clone()]));
        }
        let images = self
            .client
            .describe_images()
            .set_image_ids(ids(&f.ids))
            .set_owners((!f.owners.is_empty()).then(|| f.owners.clone()))
            .set_filters((!filters.is_empty()).then_some(filters))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeImages", describe_what(f)), e))?;
        Ok(images.iter().map(conv::image).collect())
    }

    async fn create_image(&self, r: &CreateImage) -> CloudResult<ImageId> {
        let call = || self.call("CreateImage", format!("{} from {}", r.name, r.instance_id));
        let out = self
            .client
            .create_image()
            .instance_id(r.instance_id.as_str())
            .name(&r.name)
            .description(&r.description)
            .set_tag_specifications(tag_specs(
                &[ec2::ResourceType::Image, ec2::ResourceType::Snapshot],
                &r.tags,
            ))
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        let id = out.image_id().ok_or_else(|| missing(call(), "ImageId"))?;
        Ok(ImageId::new(id))
    }

    async fn copy_image(&self, r: &CopyImage) -> CloudResult<ImageId> {
        let call = || {
            let what = format!("{} from {}", r.source_image_id, r.source_region);
            self.call("CopyImage", what)
        };
        let out = self
            .client
            .copy_image()
            .source_region(&r.source_region)
            .source_image_id(r.source_image_id.as_str())
            .name(&r.name)
            .description(&r.description)
            .encrypted(r.encrypted)
            .set_kms_key_id(r.kms_key_id.clone())
            .set_tag_specifications(tag_specs(
                &[ec2::ResourceType::Image, ec2::ResourceType::Snapshot],
                &r.tags,
            ))
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        let id = out.image_id().ok_or_else(|| missing(call(), "ImageId"))?;
        Ok(ImageId::new(id))
    }

    async fn deregister_image(&self, image: &ImageId) -> CloudResult<()> {
        self.client
            .deregister_image()
            .image_id(image.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DeregisterImage", image), e))?;
        Ok(())
    }

    async fn enable_image_deprecation(&self, image: &ImageId, at: Timestamp) -> CloudResult<()> {
        self.client
            .enable_image_deprecation()
            .image_id(image.as_str())
            .deprecate_at(aws_timestamp(at))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("EnableImageDeprecation", image), e))?;
        Ok(())
    }

    async fn add_launch_permissions(
        &self,
        image: &ImageId,
        permissions: &LaunchPermissions,
    ) -> CloudResult<()> {
        self.client
            .modify_image_attribute()
            .image_id(image.as_str())
            .launch_permission(conv::launch_permission_add(permissions))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("ModifyImageAttribute", image), e))?;
        Ok(())
    }

    async fn describe_snapshots(
        &self,
        snapshot_ids: &[SnapshotId],
        tags: &Tags,
    ) -> CloudResult<Vec<Snapshot>> {
        let filters = tag_filters(tags, &[]);
        // Without an owner, DescribeSnapshots lists every public snapshot of the region.
        let snapshots = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .set_snapshot_ids(ids(snapshot_ids))
            .set_filters((!filters.is_empty()).then_some(filters))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeSnapshots", list(snapshot_ids)), e))?;
        Ok(snapshots.iter().map(conv::snapshot).collect())
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotId) -> CloudResult<()> {
        self.client
            .delete_snapshot()
            .snapshot_id(snapshot.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DeleteSnapshot", snapshot), e))?;
        Ok(())
    }

    async fn run_instance(&self, r: &RunInstance) -> CloudResult<Instance> {
        let call = || {
            self.call(
                "RunInstances",
                format!("{} from {}", r.instance_type, r.image_id),
            )
        };
        let out = self
            .run_instances_request(r)
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        let instance = out
            .instances()
            .first()
            .ok_or_else(|| missing(call(), "Instances"))?;
        Ok(conv::instance(instance))
    }

    async fn describe_instances(&self, f: &InstanceFilter) -> CloudResult<Vec<Instance>> {
        let mut filters = tag_filters(&f.tags, &f.tag_keys);
        if f.exclude_terminated {
            filters.push(filter("instance-state-name", LIVE_STATES.map(String::from)));
        }
        let reservations = self
            .client
            .describe_instances()
            .set_instance_ids(ids(&f.ids))
            .set_filters((!filters.is_empty()).then_some(filters))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeInstances", list(&f.ids)), e))?;
        Ok(reservations
            .iter()
            .flat_map(|r| r.instances())
            .map(conv::instance)
            .collect())
    }

    async fn terminate_instances(&self, instance_ids: &[InstanceId]) -> CloudResult<()> {
        if instance_ids.is_empty() {
            return Ok(());
        }
        self.client
            .terminate_instances()
            .set_instance_ids(ids(instance_ids))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("TerminateInstances", list(instance_ids)), e))?;
        Ok(())
    }

    async fn describe_subnets(
        &self,
        subnet_ids: &[SubnetId],
        tags: &Tags,
    ) -> CloudResult<Vec<Subnet>> {
        let filters = tag_filters(tags, &[]);
        let subnets = self
            .client
            .describe_subnets()
            .set_subnet_ids(ids(subnet_ids))
            .set_filters((!filters.is_empty()).then_some(filters))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeSubnets", list(subnet_ids)), e))?;
        Ok(subnets.iter().map(conv::subnet).collect())
    }

    async fn describe_security_groups(
        &self,
        group_ids: &[SecurityGroupId],
        tags: &Tags,
    ) -> CloudResult<Vec<SecurityGroup>> {
        let filters = tag_filters(tags, &[]);
        let groups = self
            .client
            .describe_security_groups()
            .set_group_ids(ids(group_ids))
            .set_filters((!filters.is_empty()).then_some(filters))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeSecurityGroups", list(group_ids)), e))?;
        Ok(groups.iter().map(conv::security_group).collect())
    }

    async fn create_security_group(&self, r: &CreateSecurityGroup) -> CloudResult<SecurityGroupId> {
        let call = || self.call("CreateSecurityGroup", format!("{} in {}", r.name, r.vpc_id));
        let out = self
            .client
            .create_security_group()
            .group_name(&r.name)
            .description(&r.description)
            .vpc_id(&r.vpc_id)
            .set_tag_specifications(tag_specs(&[ec2::ResourceType::SecurityGroup], &r.tags))
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        let id = out.group_id().ok_or_else(|| missing(call(), "GroupId"))?;
        Ok(SecurityGroupId::new(id))
    }

    async fn delete_security_group(&self, id: &SecurityGroupId) -> CloudResult<()> {
        self.client
            .delete_security_group()
            .group_id(id.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DeleteSecurityGroup", id), e))?;
        Ok(())
    }

    async fn describe_launch_template(
        &self,
        template: &TemplateRef,
    ) -> CloudResult<LaunchTemplate> {
        let call = || self.call("DescribeLaunchTemplates", template);
        let (id, name) = template_fields(template);
        let out = self
            .client
            .describe_launch_templates()
            .set_launch_template_ids(id.map(|i| vec![i]))
            .set_launch_template_names(name.map(|n| vec![n]))
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        let found = out.launch_templates().first().ok_or_else(|| {
            let message = "no such launch template; check its name or id and the region";
            CloudError::new(
                ErrorKind::NotFound,
                call().operation,
                template.to_string(),
                &self.region,
                "KilnNotFound",
                message,
            )
        })?;
        Ok(conv::launch_template(found))
    }

    async fn describe_launch_template_versions(
        &self,
        template: &TemplateRef,
        versions: &[i64],
    ) -> CloudResult<Vec<LaunchTemplateVersion>> {
        let (id, name) = template_fields(template);
        let found = self
            .client
            .describe_launch_template_versions()
            .set_launch_template_id(id)
            .set_launch_template_name(name)
            .set_versions(ids(versions))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeLaunchTemplateVersions", template), e))?;
        Ok(found.iter().map(conv::template_version).collect())
    }

    async fn create_launch_template_version(
        &self,
        r: &NewTemplateVersion,
    ) -> CloudResult<LaunchTemplateVersion> {
        let call = || {
            let what = format!("{} from version {}", r.template, r.source_version);
            self.call("CreateLaunchTemplateVersion", what)
        };
        let (id, name) = template_fields(&r.template);
        // Only the image changes: everything else comes from the source version.
        let data = ec2::RequestLaunchTemplateData::builder()
            .image_id(r.image_id.as_str())
            .build();
        let out = self
            .client
            .create_launch_template_version()
            .set_launch_template_id(id)
            .set_launch_template_name(name)
            .source_version(r.source_version.to_string())
            .version_description(&r.description)
            .launch_template_data(data)
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        let version = out
            .launch_template_version()
            .ok_or_else(|| missing(call(), "LaunchTemplateVersion"))?;
        Ok(conv::template_version(version))
    }

    async fn describe_launch_templates(&self) -> CloudResult<Vec<LaunchTemplate>> {
        let templates = self
            .client
            .describe_launch_templates()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeLaunchTemplates", "every template"), e))?;
        Ok(templates.iter().map(conv::launch_template).collect())
    }

    async fn delete_launch_template_versions(
        &self,
        template: &TemplateRef,
        versions: &[i64],
    ) -> CloudResult<()> {
        const OP: &str = "DeleteLaunchTemplateVersions";
        if versions.is_empty() {
            return Ok(());
        }
        let (id, name) = template_fields(template);
        let out = self
            .client
            .delete_launch_template_versions()
            .set_launch_template_id(id)
            .set_launch_template_name(name)
            .set_versions(ids(versions))
            .send()
            .await
            .map_err(|e| from_sdk(self.call(OP, template), e))?;
        // A version AWS refuses comes back in the answer, not as an error of the call.
        let Some(refused) = out
            .unsuccessfully_deleted_launch_template_versions()
            .first()
        else {
            return Ok(());
        };
        let (code, message) = refused
            .response_error()
            .map(|e| {
                let code = e.code().map(|c| c.as_str().to_string()).unwrap_or_default();
                (code, e.message().unwrap_or_default().to_string())
            })
            .unwrap_or_default();
        let version = refused.version_number().unwrap_or_default();
        Err(CloudError::new(
            version_error_kind(&code),
            OP,
            format!("{template} version {version}"),
            &self.region,
            code,
            message,
        ))
    }

    async fn create_tags(&self, resource_ids: &[String], tags: &Tags) -> CloudResult<()> {
        if resource_ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        self.client
            .create_tags()
            .set_resources(Some(resource_ids.to_vec()))
            .set_tags(Some(ec2_tags(tags)))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("CreateTags", resource_ids.join(",")), e))?;
        Ok(())
    }
}

impl Ec2Compute {
    fn run_instances_request(
        &self,
        r: &RunInstance,
    ) -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder {
        let metadata = r.imdsv2_required.then(|| {
            ec2::InstanceMetadataOptionsRequest::builder()
                .http_tokens(ec2::HttpTokensState::Required)
                .http_endpoint(ec2::InstanceMetadataEndpointState::Enabled)
                .build()
        });
        let shutdown = r
            .terminate_on_shutdown
            .then_some(ec2::ShutdownBehavior::Terminate);
        let profile = r.instance_profile.as_ref().map(|name| {
            ec2::IamInstanceProfileSpecification::builder()
                .name(name)
                .build()
        });
        let user_data = r
            .user_data
            .as_ref()
            .map(|text| base64::engine::general_purpose::STANDARD.encode(text));
        self.client
            .run_instances()
            .image_id(r.image_id.as_str())
            .instance_type(ec2::InstanceType::from(r.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .set_subnet_id(r.subnet_id.as_ref().map(ToString::to_string))
            .set_security_group_ids(ids(&r.security_group_ids))
            .set_iam_instance_profile(profile)
            .set_metadata_options(metadata)
            .set_instance_initiated_shutdown_behavior(shutdown)
            .set_block_device_mappings(r.root_volume.as_ref().map(|v| vec![conv::root_mapping(v)]))
            .set_user_data(user_data)
            .set_tag_specifications(tag_specs(
                &[ec2::ResourceType::Instance, ec2::ResourceType::Volume],
                &r.tags,
            ))
    }
}

fn describe_what(f: &ImageFilter) -> String {
    if !f.ids.is_empty() {
        list(&f.ids)
    } else if let Some(name) = &f.name {
        format!("images named {name}")
    } else {
        "images".to_string()
    }
}

/// A short list of ids for an error's resource.
fn list<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "all".to_string()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}
