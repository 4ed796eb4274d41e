//! EC2 in the simulation: images, snapshots, instances, networks, security groups,
//! launch templates and tags, with AWS's validations and state transitions.

use crate::error::{CloudError, CloudResult, ErrorKind};
use crate::types::*;

use super::model::*;
use super::world::{glob, tags_match, World};

/// Pending to running: EC2 boots an instance in about half a minute.
const BOOT_SECS: (u64, u64) = (20, 40);
/// Running to the SSM agent registering: seconds to more than two minutes (PITFALLS 16).
const AGENT_SECS: (u64, u64) = (15, 150);
/// Running to the application answering `/health` (boot unit, httpd, PHP-FPM).
const APP_SECS: (u64, u64) = (20, 60);
/// Shutting-down to terminated.
const SHUTDOWN_SECS: (u64, u64) = (20, 60);
/// EC2 keeps listing terminated instances for about an hour.
const TERMINATED_VISIBLE_SECS: u64 = 3600;
/// The state reason EC2 gives an instance that failed to launch.
const BOOT_FAILURE: &str = "Server.InternalError: Internal error on launch";
/// A copy to another region takes ten to twenty minutes.
const COPY_SECS: (u64, u64) = (600, 1200);
/// CreateImage: pending for a few minutes while the snapshots are taken.
const IMAGE_SECS: (u64, u64) = (180, 480);
/// The owner id of Amazon's public images (the `amazon` owner alias).
pub const AMAZON_OWNER: &str = "137112412989";
/// AWS reserves the first four addresses of a subnet; hosts start after them.
const FIRST_HOST: u64 = 4;
/// Host addresses handed out in the last octet before wrapping (a /24 has 251 usable).
const HOST_ADDRESSES: u64 = 250;
/// The root device of Amazon Linux 2023 images.
const ROOT_DEVICE: &str = "/dev/xvda";
/// AL2023's default root volume size.
const DEFAULT_ROOT_GIB: i32 = 8;

// ---------------------------------------------------------------------------------------
// Images and snapshots

pub fn describe_images(w: &mut World, f: &ImageFilter) -> CloudResult<Vec<Image>> {
    for id in &f.ids {
        if !w.r.images.contains_key(id.as_str()) {
            return Err(w.not_found("DescribeImages", id.as_str(), "InvalidAMIID.NotFound"));
        }
    }
    let account = w.meta.account_id.clone();
    let out =
        w.r.images
            .values()
            .filter(|i| i.image.state != ImageState::Deregistered);
    let out = out.filter(|i| f.ids.is_empty() || f.ids.contains(&i.image.id));
    let out = out.filter(|i| f.owners.is_empty() || f.owners.iter().any(|o| owns(i, o, &account)));
    let out = out.filter(|i| f.name.as_deref().is_none_or(|n| glob(n, &i.image.name)));
    let out = out.filter(|i| tags_match(&i.image.tags, &f.tags));
    let out = out.filter(|i| f.tag_keys.iter().all(|k| i.image.tags.contains_key(k)));
    let visible = out.filter(|i| i.public || i.image.owner_id == account || !f.ids.is_empty());
    Ok(visible.map(|i| i.image.clone()).collect())
}

fn owns(image: &SimImage, owner: &str, account: &str) -> bool {
    match owner {
        "self" => image.image.owner_id == account,
        "amazon" => image.owner_alias.as_deref() == Some("amazon"),
        id => image.image.owner_id == id,
    }
}

pub fn create_image(w: &mut World, req: &CreateImage) -> CloudResult<ImageId> {
    const OP: &str = "CreateImage";
    let inst = instance(w, OP, &req.instance_id)?.clone();
    if inst.state() != InstanceState::Running && inst.state() != InstanceState::Stopped {
        let msg = format!(
            "instance {} is {:?}, not running or stopped",
            inst.id(),
            inst.state()
        );
        return Err(w.err(
            ErrorKind::Validation,
            OP,
            inst.id().as_str(),
            "IncorrectState",
            msg,
        ));
    }
    let account = w.meta.account_id.clone();
    let dup = w.r.images.values().any(|i| {
        i.image.owner_id == account
            && i.image.name == req.name
            && i.image.state != ImageState::Deregistered
    });
    if dup {
        let msg = format!("AMI name {} is already in use by an AMI you own", req.name);
        return Err(w.err(
            ErrorKind::Conflict,
            OP,
            &req.name,
            "InvalidAMIName.Duplicate",
            msg,
        ));
    }
    let ready_at = w.now + w.meta.rng.secs(IMAGE_SECS.0, IMAGE_SECS.1);
    let devices = snapshot_volumes(w, &inst, &req.tags, ready_at);
    let id = ImageId::new(w.meta.id("ami"));
    let image = Image {
        id: id.clone(),
        name: req.name.clone(),
        description: Some(req.description.clone()),
        state: ImageState::Pending,
        state_reason: None,
        owner_id: account,
        creation_date: Some(w.now),
        deprecation_time: None,
        block_devices: devices,
        tags: req.tags.clone(),
    };
    let mut sim = new_sim_image(image, Some(ready_at));
    sim.fail_reason = w.faults.image_fails.clone();
    w.r.images.insert(id.0.clone(), sim);
    tracing::debug!(image = %id, region = w.region, "simulated image pending");
    Ok(id)
}

/// CopyImage into `region` from the request's source region.
pub fn copy_image(s: &mut State, region: &str, req: &CopyImage) -> CloudResult<ImageId> {
    let source = copy_source(s, req)?;
    let mut w = s.world(region).expect("ports exist only for known regions");
    check_name_free(&w, "CopyImage", &req.name)?;
    check_copy_room(&w, source.image.block_devices.len())?;
    let ready_at = w.now + w.meta.rng.secs(COPY_SECS.0, COPY_SECS.1);
    let mut devices = source.image.block_devices.clone();
    for d in &mut devices {
        let id = SnapshotId::new(w.meta.id("snap"));
        let snapshot = Snapshot {
            id: id.clone(),
            state: "pending".into(),
            start_time: Some(w.now),
            tags: req.tags.clone(),
        };
        let sim = SimSnapshot {
            snapshot,
            ready_at: Some(ready_at),
        };
        w.r.snapshots.insert(id.0.clone(), sim);
        d.snapshot_id = Some(id);
        d.encrypted |= req.encrypted;
    }
    let id = ImageId::new(w.meta.id("ami"));
    let image = Image {
        id: id.clone(),
        name: req.name.clone(),
        description: Some(req.description.clone()),
        state: ImageState::Pending,
        state_reason: None,
        owner_id: w.meta.account_id.clone(),
        creation_date: Some(w.now),
        deprecation_time: None,
        block_devices: devices,
        tags: req.tags.clone(),
    };
    let mut sim = new_sim_image(image, Some(ready_at));
    sim.fail_reason = w.faults.copy_fault(region).map(|f| f.reason.clone());
    sim.copy_of = Some(format!("{}/{}", req.source_region, req.source_image_id));
    insert_image(&mut w, sim);
    Ok(id)
}

fn insert_image(w: &mut World, sim: SimImage) {
    w.r.images.insert(sim.image.id.0.clone(), sim);
}

/// The available image a copy reads, in its own region.
fn copy_source(s: &mut State, req: &CopyImage) -> CloudResult<SimImage> {
    const OP: &str = "CopyImage";
    let Some(src) = s.world(&req.source_region) else {
        let msg = "the simulated account has no such region";
        let r = &req.source_region;
        return Err(CloudError::new(
            ErrorKind::NotFound,
            OP,
            r,
            r,
            "InvalidRegion",
            msg,
        ));
    };
    let id = req.source_image_id.as_str();
    let image = src
        .r
        .images
        .get(id)
        .filter(|i| i.image.state != ImageState::Deregistered);
    let image = image
        .cloned()
        .ok_or_else(|| src.not_found(OP, id, "InvalidAMIID.NotFound"))?;
    if image.image.state != ImageState::Available {
        let msg = format!("image {id} is {:?}, not available", image.image.state);
        return Err(src.err(ErrorKind::Validation, OP, id, "IncorrectState", msg));
    }
    Ok(image)
}

/// EBS copies at most this many snapshots into one region at a time (PITFALLS 15).
const MAX_CONCURRENT_SNAPSHOT_COPIES: usize = 20;

fn check_copy_room(w: &World, adding: usize) -> CloudResult<()> {
    let copying: usize =
        w.r.images
            .values()
            .filter(|i| i.copy_of.is_some() && i.image.state == ImageState::Pending)
            .map(|i| i.image.block_devices.len())
            .sum();
    if copying + adding > MAX_CONCURRENT_SNAPSHOT_COPIES {
        let msg = format!(
            "{copying} snapshot copies are in progress into {}; at most \
             {MAX_CONCURRENT_SNAPSHOT_COPIES} run at once: retry when some finish",
            w.region
        );
        let e = ErrorKind::LimitExceeded;
        return Err(w.err(e, "CopyImage", w.region, "ResourceLimitExceeded", msg));
    }
    Ok(())
}

/// AMI names are unique per owner and region.
fn check_name_free(w: &World, op: &'static str, name: &str) -> CloudResult<()> {
    let account = &w.meta.account_id;
    let dup = w.r.images.values().any(|i| {
        &i.image.owner_id == account
            && i.image.name == name
            && i.image.state != ImageState::Deregistered
    });
    if dup {
        let msg = format!("AMI name {name} is already in use by an AMI you own");
        return Err(w.err(
            ErrorKind::Conflict,
            op,
            name,
            "InvalidAMIName.Duplicate",
            msg,
        ));
    }
    Ok(())
}

pub fn new_sim_image(image: Image, ready_at: Option<Timestamp>) -> SimImage {
    SimImage {
        image,
        owner_alias: None,
        public: false,
        ready_at,
        fail_reason: None,
        created_here: true,
        launch_permissions: LaunchPermissions::default(),
        copy_of: None,
    }
}

/// One snapshot per block device of the instance's volumes, tagged like the image.
fn snapshot_volumes(
    w: &mut World,
    inst: &SimInstance,
    tags: &Tags,
    ready_at: Timestamp,
) -> Vec<BlockDevice> {
    let source = w.r.images.get(inst.instance.image_id.as_str());
    let mut devices = source
        .map(|s| s.image.block_devices.clone())
        .unwrap_or_default();
    if devices.is_empty() {
        devices.push(root_device(None));
    }
    if let (Some(root), Some(first)) = (&inst.root_volume, devices.first_mut()) {
        first.volume_size_gib = Some(root.size_gib);
        first.encrypted = root.encrypted;
    }
    for device in &mut devices {
        let id = SnapshotId::new(w.meta.id("snap"));
        let snapshot = Snapshot {
            id: id.clone(),
            state: "pending".into(),
            start_time: Some(w.now),
            tags: tags.clone(),
        };
        let ready_at = Some(ready_at);
        w.r.snapshots
            .insert(id.0.clone(), SimSnapshot { snapshot, ready_at });
        device.snapshot_id = Some(id);
    }
    devices
}

pub fn root_device(snapshot: Option<SnapshotId>) -> BlockDevice {
    BlockDevice {
        device_name: ROOT_DEVICE.into(),
        snapshot_id: snapshot,
        volume_size_gib: Some(DEFAULT_ROOT_GIB),
        encrypted: false,
    }
}

pub fn deregister_image(w: &mut World, id: &ImageId) -> CloudResult<()> {
    let account = w.meta.account_id.clone();
    let Some(image) = w.r.images.get_mut(id.as_str()) else {
        return Err(w.not_found("DeregisterImage", id.as_str(), "InvalidAMIID.NotFound"));
    };
    if image.image.owner_id != account {
        let msg = format!("image {id} is not owned by account {account}");
        let e = ErrorKind::AccessDenied;
        return Err(w.err(e, "DeregisterImage", id.as_str(), "AuthFailure", msg));
    }
    // As in AWS, the snapshots stay behind (PITFALLS 14).
    image.image.state = ImageState::Deregistered;
    Ok(())
}

pub fn enable_deprecation(w: &mut World, id: &ImageId, at: Timestamp) -> CloudResult<()> {
    let image = own_image(w, "EnableImageDeprecation", id)?;
    image.image.deprecation_time = Some(at);
    Ok(())
}

pub fn add_launch_permissions(
    w: &mut World,
    id: &ImageId,
    p: &LaunchPermissions,
) -> CloudResult<()> {
    let image = own_image(w, "ModifyImageAttribute", id)?;
    let lp = &mut image.launch_permissions;
    lp.accounts.extend(p.accounts.iter().cloned());
    lp.organization_arns
        .extend(p.organization_arns.iter().cloned());
    lp.organizational_unit_arns
        .extend(p.organizational_unit_arns.iter().cloned());
    Ok(())
}

fn own_image<'w>(
    w: &'w mut World,
    op: &'static str,
    id: &ImageId,
) -> CloudResult<&'w mut SimImage> {
    let live =
        w.r.images
            .get(id.as_str())
            .is_some_and(|i| i.image.state != ImageState::Deregistered);
    if !live {
        return Err(w.not_found(op, id.as_str(), "InvalidAMIID.NotFound"));
    }
    Ok(w.r.images.get_mut(id.as_str()).expect("checked above"))
}

pub fn describe_snapshots(
    w: &mut World,
    ids: &[SnapshotId],
    tags: &Tags,
) -> CloudResult<Vec<Snapshot>> {
    for id in ids {
        if !w.r.snapshots.contains_key(id.as_str()) {
            let code = "InvalidSnapshot.NotFound";
            return Err(w.not_found("DescribeSnapshots", id.as_str(), code));
        }
    }
    let out = w.r.snapshots.values().map(|s| &s.snapshot);
    let out = out.filter(|s| ids.is_empty() || ids.contains(&s.id));
    Ok(out.filter(|s| tags_match(&s.tags, tags)).cloned().collect())
}

pub fn delete_snapshot(w: &mut World, id: &SnapshotId) -> CloudResult<()> {
    const OP: &str = "DeleteSnapshot";
    if !w.r.snapshots.contains_key(id.as_str()) {
        return Err(w.not_found(OP, id.as_str(), "InvalidSnapshot.NotFound"));
    }
    let user = w.r.images.values().find(|i| {
        i.image.state != ImageState::Deregistered
            && i.image
                .block_devices
                .iter()
                .any(|d| d.snapshot_id.as_ref() == Some(id))
    });
    if let Some(user) = user {
        let msg = format!(
            "snapshot {id} is in use by {}: deregister it first",
            user.image.id
        );
        return Err(w.err(
            ErrorKind::Conflict,
            OP,
            id.as_str(),
            "InvalidSnapshot.InUse",
            msg,
        ));
    }
    w.r.snapshots.remove(id.as_str());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Instances

pub fn instance<'w>(
    w: &'w World,
    op: &'static str,
    id: &InstanceId,
) -> CloudResult<&'w SimInstance> {
    w.r.instances
        .get(id.as_str())
        .ok_or_else(|| w.not_found(op, id.as_str(), "InvalidInstanceID.NotFound"))
}

/// RunInstances with its validations; the instance starts `pending`.
pub fn run_instance(w: &mut World, req: &RunInstance) -> CloudResult<Instance> {
    const OP: &str = "RunInstances";
    validate_image(w, OP, &req.image_id)?;
    let subnet = pick_subnet(w, OP, req.subnet_id.as_ref())?;
    for sg in &req.security_group_ids {
        if !w.r.security_groups.contains_key(sg.as_str()) {
            return Err(w.not_found(OP, sg.as_str(), "InvalidGroup.NotFound"));
        }
    }
    if let Some(profile) = &req.instance_profile {
        if !w.meta.instance_profiles.contains(profile) {
            let msg = format!("Value ({profile}) for parameter iamInstanceProfile.name is invalid");
            let code = "InvalidParameterValue";
            return Err(w.err(ErrorKind::Validation, OP, profile, code, msg));
        }
    }
    if !crate::types::is_instance_type(&req.instance_type) {
        let t = &req.instance_type;
        let msg = format!("Invalid value '{t}' for InstanceType.");
        let code = "InvalidParameterValue";
        return Err(w.err(ErrorKind::Validation, OP, t, code, msg));
    }
    if let Some(root) = &req.root_volume {
        check_root_size(w, OP, &req.image_id, root)?;
    }
    let sim = new_instance(w, req, &subnet);
    let out = sim.instance.clone();
    tracing::debug!(instance = %out.id, region = w.region, "simulated instance pending");
    w.r.instances.insert(out.id.0.clone(), sim);
    Ok(out)
}

/// EC2 refuses a root volume smaller than the image's root snapshot.
fn check_root_size(
    w: &World,
    op: &'static str,
    image: &ImageId,
    root: &crate::types::RootVolume,
) -> CloudResult<()> {
    let snapshot = w.r.images.get(image.as_str()).and_then(|i| {
        i.image
            .block_devices
            .iter()
            .find(|d| d.device_name == root.device_name)
            .and_then(|d| d.volume_size_gib)
    });
    match snapshot {
        Some(size) if root.size_gib < size => {
            let msg = format!(
                "Volume of size {}GB is smaller than snapshot of image {image}, expect size >= \
                 {size}GB",
                root.size_gib
            );
            let code = "InvalidBlockDeviceMapping";
            Err(w.err(ErrorKind::Validation, op, image.as_str(), code, msg))
        }
        _ => Ok(()),
    }
}

fn validate_image(w: &World, op: &'static str, id: &ImageId) -> CloudResult<()> {
    let Some(image) = w.r.images.get(id.as_str()) else {
        return Err(w.not_found(op, id.as_str(), "InvalidAMIID.NotFound"));
    };
    if image.image.state != ImageState::Available {
        let msg = format!("image {id} is {:?}, not available", image.image.state);
        return Err(w.err(
            ErrorKind::Validation,
            op,
            id.as_str(),
            "InvalidAMIID.Unavailable",
            msg,
        ));
    }
    Ok(())
}

fn pick_subnet(w: &World, op: &'static str, id: Option<&SubnetId>) -> CloudResult<Subnet> {
    let found = match id {
        Some(id) => w.r.subnets.iter().find(|s| &s.id == id),
        None => w.r.subnets.first(),
    };
    let name = id
        .map(|i| i.0.clone())
        .unwrap_or_else(|| "default subnet".into());
    found
        .cloned()
        .ok_or_else(|| w.not_found(op, name, "InvalidSubnetID.NotFound"))
}

fn new_instance(w: &mut World, req: &RunInstance, subnet: &Subnet) -> SimInstance {
    let id = InstanceId::new(w.meta.id("i"));
    let running_at = w.now + w.meta.rng.secs(BOOT_SECS.0, BOOT_SECS.1);
    let role = req.tags.get(crate::TAG_ROLE).map(String::as_str);
    let agent_at = if w.faults.agent_never(role) {
        None
    } else {
        Some(running_at + w.meta.rng.secs(AGENT_SECS.0, AGENT_SECS.1))
    };
    let created_here =
        w.r.images
            .get(req.image_id.as_str())
            .is_some_and(|i| i.created_here);
    let octet = w.meta.next_id % HOST_ADDRESSES + FIRST_HOST;
    let instance = Instance {
        id,
        image_id: req.image_id.clone(),
        instance_type: req.instance_type.clone(),
        state: InstanceState::Pending,
        state_reason: None,
        subnet_id: Some(subnet.id.clone()),
        availability_zone: Some(subnet.availability_zone.clone()),
        private_ip: Some(private_ip(&subnet.cidr, octet)),
        launch_time: Some(w.now),
        tags: req.tags.clone(),
    };
    SimInstance {
        instance,
        security_group_ids: req.security_group_ids.clone(),
        instance_profile: req.instance_profile.clone(),
        imdsv2_required: req.imdsv2_required,
        terminate_on_shutdown: req.terminate_on_shutdown,
        root_volume: req.root_volume.clone(),
        user_data: req.user_data.clone(),
        running_at,
        agent_at,
        agent_offline_until: None,
        app_ready_at: running_at + w.meta.rng.secs(APP_SECS.0, APP_SECS.1),
        bad_image: w.faults.image_bad(req.image_id.as_str(), created_here),
        boot_fails: w.faults.boot_fails(role),
        terminated_at: None,
        gone_at: None,
    }
}

/// An address inside the subnet's /24-or-larger block.
fn private_ip(cidr: &str, host: u64) -> String {
    let base = cidr.split('/').next().unwrap_or("10.0.0.0");
    let parts: Vec<&str> = base.split('.').collect();
    match parts.as_slice() {
        [a, b, c, _] => format!("{a}.{b}.{c}.{host}"),
        _ => format!("10.0.0.{host}"),
    }
}

pub fn describe_instances(w: &mut World, f: &InstanceFilter) -> CloudResult<Vec<Instance>> {
    for id in &f.ids {
        instance(w, "DescribeInstances", id)?;
    }
    let out = w.r.instances.values().map(|i| &i.instance);
    let out = out.filter(|i| f.ids.is_empty() || f.ids.contains(&i.id));
    let out = out.filter(|i| tags_match(&i.tags, &f.tags));
    let out = out.filter(|i| f.tag_keys.iter().all(|k| i.tags.contains_key(k)));
    let out = out.filter(|i| !(f.exclude_terminated && i.state == InstanceState::Terminated));
    Ok(out.cloned().collect())
}

pub fn terminate_instances(w: &mut World, ids: &[InstanceId]) -> CloudResult<()> {
    for id in ids {
        instance(w, "TerminateInstances", id)?;
    }
    for id in ids {
        terminate(w, id);
    }
    Ok(())
}

/// Starts shutting an instance down (no-op when it already is).
pub fn terminate(w: &mut World, id: &InstanceId) {
    let delay = w.meta.rng.secs(SHUTDOWN_SECS.0, SHUTDOWN_SECS.1);
    let Some(inst) = w.r.instances.get_mut(id.as_str()) else {
        return;
    };
    if inst.state().is_ending() {
        return;
    }
    inst.instance.state = InstanceState::ShuttingDown;
    inst.instance.state_reason = Some("Client.UserInitiatedShutdown".into());
    inst.terminated_at = Some(w.now + delay);
}

// ---------------------------------------------------------------------------------------
// Subnets and security groups

pub fn describe_subnets(w: &mut World, ids: &[SubnetId], tags: &Tags) -> CloudResult<Vec<Subnet>> {
    for id in ids {
        if !w.r.subnets.iter().any(|s| &s.id == id) {
            return Err(w.not_found("DescribeSubnets", id.as_str(), "InvalidSubnetID.NotFound"));
        }
    }
    let out =
        w.r.subnets
            .iter()
            .filter(|s| ids.is_empty() || ids.contains(&s.id));
    Ok(out.filter(|s| tags_match(&s.tags, tags)).cloned().collect())
}

pub fn describe_security_groups(
    w: &mut World,
    ids: &[SecurityGroupId],
    tags: &Tags,
) -> CloudResult<Vec<SecurityGroup>> {
    for id in ids {
        if !w.r.security_groups.contains_key(id.as_str()) {
            let code = "InvalidGroup.NotFound";
            return Err(w.not_found("DescribeSecurityGroups", id.as_str(), code));
        }
    }
    let out = w.r.security_groups.values();
    let out = out.filter(|s| ids.is_empty() || ids.contains(&s.id));
    Ok(out.filter(|s| tags_match(&s.tags, tags)).cloned().collect())
}

pub fn create_security_group(
    w: &mut World,
    req: &CreateSecurityGroup,
) -> CloudResult<SecurityGroupId> {
    const OP: &str = "CreateSecurityGroup";
    if !w.r.vpcs.contains(&req.vpc_id) {
        return Err(w.not_found(OP, &req.vpc_id, "InvalidVpcID.NotFound"));
    }
    let dup =
        w.r.security_groups
            .values()
            .any(|g| g.name == req.name && g.vpc_id == req.vpc_id);
    if dup {
        let msg = format!(
            "security group {} already exists in {}",
            req.name, req.vpc_id
        );
        return Err(w.err(
            ErrorKind::Conflict,
            OP,
            &req.name,
            "InvalidGroup.Duplicate",
            msg,
        ));
    }
    let id = SecurityGroupId::new(w.meta.id("sg"));
    let group = SecurityGroup {
        id: id.clone(),
        name: req.name.clone(),
        vpc_id: req.vpc_id.clone(),
        ingress_rules: 0,
        tags: req.tags.clone(),
    };
    w.r.security_groups.insert(id.0.clone(), group);
    Ok(id)
}

pub fn delete_security_group(w: &mut World, id: &SecurityGroupId) -> CloudResult<()> {
    const OP: &str = "DeleteSecurityGroup";
    if !w.r.security_groups.contains_key(id.as_str()) {
        return Err(w.not_found(OP, id.as_str(), "InvalidGroup.NotFound"));
    }
    // A shutting-down instance still holds its network interface, as in AWS.
    let user =
        w.r.instances
            .values()
            .find(|i| i.state() != InstanceState::Terminated && i.security_group_ids.contains(id));
    if let Some(user) = user {
        let msg = format!("resource {id} has a dependent object ({})", user.id());
        return Err(w.err(
            ErrorKind::Conflict,
            OP,
            id.as_str(),
            "DependencyViolation",
            msg,
        ));
    }
    w.r.security_groups.remove(id.as_str());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Tags

pub fn create_tags(w: &mut World, ids: &[String], tags: &Tags) -> CloudResult<()> {
    for id in ids {
        if tag_target(w, id).is_none() {
            return Err(w.not_found("CreateTags", id, "InvalidID"));
        }
    }
    for id in ids {
        if let Some(target) = tag_target(w, id) {
            target.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    Ok(())
}

fn tag_target<'w>(w: &'w mut World, id: &str) -> Option<&'w mut Tags> {
    let r = &mut *w.r;
    match id.split('-').next()? {
        "ami" => r.images.get_mut(id).map(|i| &mut i.image.tags),
        "snap" => r.snapshots.get_mut(id).map(|s| &mut s.snapshot.tags),
        "i" => r.instances.get_mut(id).map(|i| &mut i.instance.tags),
        "sg" => r.security_groups.get_mut(id).map(|g| &mut g.tags),
        "lt" => r.templates.get_mut(id).map(|t| &mut t.template.tags),
        "subnet" => r
            .subnets
            .iter_mut()
            .find(|s| s.id.0 == id)
            .map(|s| &mut s.tags),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Time passing

/// Instance, image and snapshot transitions due at `w.now`.
pub fn step(w: &mut World) -> bool {
    let mut changed = false;
    let now = w.now;
    for inst in w.r.instances.values_mut() {
        changed |= step_instance(inst, now);
    }
    let before = w.r.instances.len();
    w.r.instances
        .retain(|_, i| i.gone_at.is_none_or(|g| g > now));
    changed |= before != w.r.instances.len();
    for image in w.r.images.values_mut() {
        if image.ready_at.is_some_and(|at| at <= now) && image.image.state == ImageState::Pending {
            image.ready_at = None;
            image.image.state = match image.fail_reason.take() {
                Some(reason) => {
                    image.image.state_reason = Some(reason);
                    ImageState::Failed
                }
                None => ImageState::Available,
            };
            changed = true;
        }
    }
    for snap in w.r.snapshots.values_mut() {
        if snap.ready_at.is_some_and(|at| at <= now) {
            snap.ready_at = None;
            snap.snapshot.state = "completed".into();
        }
    }
    changed
}

fn step_instance(inst: &mut SimInstance, now: Timestamp) -> bool {
    match inst.state() {
        InstanceState::Pending if inst.running_at <= now && inst.boot_fails => {
            inst.instance.state = InstanceState::Terminated;
            inst.instance.state_reason = Some(BOOT_FAILURE.into());
            inst.terminated_at = Some(now);
            inst.gone_at = Some(now + secs(TERMINATED_VISIBLE_SECS));
            true
        }
        InstanceState::Pending if inst.running_at <= now => {
            inst.instance.state = InstanceState::Running;
            true
        }
        InstanceState::ShuttingDown if inst.terminated_at.is_some_and(|t| t <= now) => {
            inst.instance.state = InstanceState::Terminated;
            inst.gone_at = Some(now + secs(TERMINATED_VISIBLE_SECS));
            true
        }
        _ => false,
    }
}
