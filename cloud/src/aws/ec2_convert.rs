//! EC2 types to kiln's, and kiln's requests to EC2's.

use aws_sdk_ec2::types as ec2;
use base64::Engine as _;

use super::convert::{parse_time, tags_from, timestamp_opt};
use crate::types::*;

pub(crate) fn tags(tags: &[ec2::Tag]) -> Tags {
    tags_from(tags.iter().map(|t| (t.key(), t.value())))
}

fn image_state(state: Option<&ec2::ImageState>) -> ImageState {
    match state {
        Some(ec2::ImageState::Available) => ImageState::Available,
        Some(ec2::ImageState::Pending) => ImageState::Pending,
        Some(ec2::ImageState::Failed) => ImageState::Failed,
        Some(ec2::ImageState::Invalid) => ImageState::Invalid,
        Some(ec2::ImageState::Deregistered) => ImageState::Deregistered,
        Some(ec2::ImageState::Transient) => ImageState::Transient,
        Some(ec2::ImageState::Disabled) => ImageState::Disabled,
        // A state newer than this client: not usable, and the state reason says why.
        _ => ImageState::Error,
    }
}

pub(crate) fn image(i: &ec2::Image) -> Image {
    Image {
        id: ImageId::new(i.image_id().unwrap_or_default()),
        name: i.name().unwrap_or_default().to_string(),
        description: i.description().map(String::from),
        state: image_state(i.state()),
        state_reason: i.state_reason().and_then(|r| r.message()).map(String::from),
        owner_id: i.owner_id().unwrap_or_default().to_string(),
        creation_date: parse_time(i.creation_date()),
        deprecation_time: parse_time(i.deprecation_time()),
        block_devices: i.block_device_mappings().iter().map(block_device).collect(),
        tags: tags(i.tags()),
    }
}

fn block_device(m: &ec2::BlockDeviceMapping) -> BlockDevice {
    let ebs = m.ebs();
    BlockDevice {
        device_name: m.device_name().unwrap_or_default().to_string(),
        snapshot_id: ebs.and_then(|e| e.snapshot_id()).map(SnapshotId::new),
        volume_size_gib: ebs.and_then(|e| e.volume_size()),
        encrypted: ebs.and_then(|e| e.encrypted()).unwrap_or(false),
    }
}

pub(crate) fn snapshot(s: &ec2::Snapshot) -> Snapshot {
    Snapshot {
        id: SnapshotId::new(s.snapshot_id().unwrap_or_default()),
        state: s
            .state()
            .map(|st| st.as_str().to_string())
            .unwrap_or_default(),
        start_time: timestamp_opt(s.start_time()),
        tags: tags(s.tags()),
    }
}

pub(crate) fn launch_permission_add(p: &LaunchPermissions) -> ec2::LaunchPermissionModifications {
    let accounts = p
        .accounts
        .iter()
        .map(|a| ec2::LaunchPermission::builder().user_id(a).build());
    let orgs = p
        .organization_arns
        .iter()
        .map(|a| ec2::LaunchPermission::builder().organization_arn(a).build());
    let units = p.organizational_unit_arns.iter().map(|a| {
        ec2::LaunchPermission::builder()
            .organizational_unit_arn(a)
            .build()
    });
    ec2::LaunchPermissionModifications::builder()
        .set_add(Some(accounts.chain(orgs).chain(units).collect()))
        .build()
}

fn instance_state(state: Option<&ec2::InstanceState>) -> InstanceState {
    match state.and_then(|s| s.name()) {
        Some(ec2::InstanceStateName::Pending) => InstanceState::Pending,
        Some(ec2::InstanceStateName::Running) => InstanceState::Running,
        Some(ec2::InstanceStateName::ShuttingDown) => InstanceState::ShuttingDown,
        Some(ec2::InstanceStateName::Stopping) => InstanceState::Stopping,
        Some(ec2::InstanceStateName::Stopped) => InstanceState::Stopped,
        // Terminated, or a state newer than this client: nothing runs on it.
        _ => InstanceState::Terminated,
    }
}

pub(crate) fn instance(i: &ec2::Instance) -> Instance {
    Instance {
        id: InstanceId::new(i.instance_id().unwrap_or_default()),
        image_id: ImageId::new(i.image_id().unwrap_or_default()),
        instance_type: i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        state: instance_state(i.state()),
        state_reason: i.state_reason().and_then(|r| r.message()).map(String::from),
        subnet_id: i.subnet_id().map(SubnetId::new),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .map(String::from),
        private_ip: i.private_ip_address().map(String::from),
        launch_time: timestamp_opt(i.launch_time()),
        tags: tags(i.tags()),
    }
}

pub(crate) fn root_mapping(v: &RootVolume) -> ec2::BlockDeviceMapping {
    let ebs = ec2::EbsBlockDevice::builder()
        .volume_size(v.size_gib)
        .volume_type(ec2::VolumeType::from(v.volume_type.as_str()))
        .encrypted(v.encrypted)
        .set_kms_key_id(v.kms_key_id.clone())
        .delete_on_termination(true)
        .build();
    ec2::BlockDeviceMapping::builder()
        .device_name(&v.device_name)
        .ebs(ebs)
        .build()
}

pub(crate) fn subnet(s: &ec2::Subnet) -> Subnet {
    Subnet {
        id: SubnetId::new(s.subnet_id().unwrap_or_default()),
        vpc_id: s.vpc_id().unwrap_or_default().to_string(),
        availability_zone: s.availability_zone().unwrap_or_default().to_string(),
        cidr: s.cidr_block().unwrap_or_default().to_string(),
        tags: tags(s.tags()),
    }
}

pub(crate) fn security_group(g: &ec2::SecurityGroup) -> SecurityGroup {
    SecurityGroup {
        id: SecurityGroupId::new(g.group_id().unwrap_or_default()),
        name: g.group_name().unwrap_or_default().to_string(),
        vpc_id: g.vpc_id().unwrap_or_default().to_string(),
        ingress_rules: g.ip_permissions().len(),
        tags: tags(g.tags()),
    }
}

pub(crate) fn launch_template(t: &ec2::LaunchTemplate) -> LaunchTemplate {
    LaunchTemplate {
        id: LaunchTemplateId::new(t.launch_template_id().unwrap_or_default()),
        name: t.launch_template_name().unwrap_or_default().to_string(),
        default_version: t.default_version_number().unwrap_or_default(),
        latest_version: t.latest_version_number().unwrap_or_default(),
        tags: tags(t.tags()),
    }
}

pub(crate) fn template_version(v: &ec2::LaunchTemplateVersion) -> LaunchTemplateVersion {
    LaunchTemplateVersion {
        template_id: LaunchTemplateId::new(v.launch_template_id().unwrap_or_default()),
        template_name: v.launch_template_name().unwrap_or_default().to_string(),
        version: v.version_number().unwrap_or_default(),
        description: v.version_description().map(String::from),
        is_default: v.default_version().unwrap_or(false),
        data: v
            .launch_template_data()
            .map(template_data)
            .unwrap_or_default(),
    }
}

/// User data comes back base64-encoded; kiln keeps the text (as it sends it).
fn decode_user_data(encoded: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|_| encoded.to_string())
}

fn template_data(d: &ec2::ResponseLaunchTemplateData) -> LaunchTemplateData {
    let instance_tags = d
        .tag_specifications()
        .iter()
        .filter(|s| s.resource_type() == Some(&ec2::ResourceType::Instance))
        .flat_map(|s| s.tags())
        .map(|t| (t.key(), t.value()));
    LaunchTemplateData {
        image_id: d.image_id().map(ImageId::new),
        instance_type: d.instance_type().map(|t| t.as_str().to_string()),
        security_group_ids: d
            .security_group_ids()
            .iter()
            .map(SecurityGroupId::new)
            .collect(),
        instance_profile: d
            .iam_instance_profile()
            .and_then(|p| p.name().or(p.arn()))
            .map(String::from),
        user_data: d.user_data().map(decode_user_data),
        metadata_http_tokens: d
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|t| t.as_str().to_string()),
        tags: tags_from(instance_tags),
    }
}
