//! Launch templates in the simulation: numbered versions, default and latest, and
//! `$Latest`/`$Default` resolved when a group launches.

use crate::error::{CloudResult, ErrorKind};
use crate::types::*;

use super::model::SimTemplate;
use super::world::World;

fn find<'w>(w: &'w World, op: &'static str, t: &TemplateRef) -> CloudResult<&'w SimTemplate> {
    let found = match t {
        TemplateRef::Id(id) => w.r.templates.get(id.as_str()),
        TemplateRef::Name(name) => w.r.templates.values().find(|s| &s.template.name == name),
    };
    let code = match t {
        TemplateRef::Id(_) => "InvalidLaunchTemplateId.NotFound",
        TemplateRef::Name(_) => "InvalidLaunchTemplateName.NotFoundException",
    };
    found.ok_or_else(|| w.not_found(op, t.to_string(), code))
}

pub fn describe(w: &mut World, t: &TemplateRef) -> CloudResult<LaunchTemplate> {
    Ok(find(w, "DescribeLaunchTemplates", t)?.template.clone())
}

pub fn describe_all(w: &mut World) -> CloudResult<Vec<LaunchTemplate>> {
    Ok(w.r.templates.values().map(|t| t.template.clone()).collect())
}

pub fn describe_versions(
    w: &mut World,
    t: &TemplateRef,
    versions: &[i64],
) -> CloudResult<Vec<LaunchTemplateVersion>> {
    const OP: &str = "DescribeLaunchTemplateVersions";
    let template = find(w, OP, t)?;
    if versions.is_empty() {
        return Ok(template.versions.values().cloned().collect());
    }
    let mut out = Vec::new();
    for v in versions {
        match template.versions.get(v) {
            Some(found) => out.push(found.clone()),
            None => return Err(version_missing(w, OP, t, *v)),
        }
    }
    Ok(out)
}

fn version_missing(w: &World, op: &'static str, t: &TemplateRef, v: i64) -> crate::CloudError {
    let msg = format!("launch template {t} has no version {v}");
    let code = "InvalidLaunchTemplateId.VersionNotFound";
    w.err(
        ErrorKind::NotFound,
        op,
        format!("{t} version {v}"),
        code,
        msg,
    )
}

/// A new version copying `source_version`'s data with only the image changed
/// (`SourceVersion` semantics).
pub fn create_version(
    w: &mut World,
    req: &NewTemplateVersion,
) -> CloudResult<LaunchTemplateVersion> {
    const OP: &str = "CreateLaunchTemplateVersion";
    let template = find(w, OP, &req.template)?;
    let Some(source) = template.versions.get(&req.source_version) else {
        return Err(version_missing(w, OP, &req.template, req.source_version));
    };
    let id = template.template.id.clone();
    let mut data = source.data.clone();
    data.image_id = Some(req.image_id.clone());
    let template = w.r.templates.get_mut(id.as_str()).expect("found above");
    let number = template.template.latest_version.max(template.issued) + 1;
    template.issued = number;
    let version = LaunchTemplateVersion {
        template_id: id,
        template_name: template.template.name.clone(),
        version: number,
        description: Some(req.description.clone()),
        is_default: false,
        data,
    };
    template.template.latest_version = number;
    template.versions.insert(number, version.clone());
    Ok(version)
}

/// Deletes numbered versions, all or none: the default version is refused (EC2 refuses
/// it too), and so is a version that does not exist. Groups and instances that use a
/// version are not checked, as EC2 does not check them.
pub fn delete_versions(w: &mut World, t: &TemplateRef, versions: &[i64]) -> CloudResult<()> {
    const OP: &str = "DeleteLaunchTemplateVersions";
    let template = find(w, OP, t)?;
    let id = template.template.id.clone();
    for v in versions {
        if !template.versions.contains_key(v) {
            return Err(version_missing(w, OP, t, *v));
        }
        if *v == template.template.default_version {
            let msg = format!("version {v} is the default version of {t}");
            let what = format!("{t} version {v}");
            let code = "InvalidLaunchTemplateVersion.DefaultVersion";
            return Err(w.err(ErrorKind::Validation, OP, what, code, msg));
        }
    }
    let template = w.r.templates.get_mut(id.as_str()).expect("found above");
    template.issued = template.issued.max(template.template.latest_version);
    for v in versions {
        template.versions.remove(v);
    }
    let latest = template.versions.keys().next_back().copied();
    template.template.latest_version = latest.unwrap_or_default();
    Ok(())
}

/// The numbered version a group reference stands for now.
pub fn resolve(w: &World, op: &'static str, g: &GroupTemplate) -> CloudResult<(SimTemplate, i64)> {
    let t = match (&g.template_id, &g.template_name) {
        (Some(id), _) => TemplateRef::Id(id.clone()),
        (None, Some(name)) => TemplateRef::Name(name.clone()),
        (None, None) => {
            let msg = "a launch template id or name is required";
            return Err(w.err(
                ErrorKind::Validation,
                op,
                "launch template",
                "ValidationError",
                msg,
            ));
        }
    };
    let template = find(w, op, &t)?.clone();
    let number = match g.version.as_str() {
        "$Latest" => template.template.latest_version,
        "$Default" | "" => template.template.default_version,
        v => v.parse().map_err(|_| {
            let msg = format!("version {v} is not a number, $Latest or $Default");
            w.err(
                ErrorKind::Validation,
                op,
                t.to_string(),
                "ValidationError",
                msg,
            )
        })?,
    };
    if !template.versions.contains_key(&number) {
        return Err(version_missing(w, op, &t, number));
    }
    Ok((template, number))
}

/// The group reference of a numbered version, as the group's instances report it.
pub fn numbered(template: &SimTemplate, version: i64) -> GroupTemplate {
    GroupTemplate {
        template_id: Some(template.template.id.clone()),
        template_name: Some(template.template.name.clone()),
        version: version.to_string(),
    }
}
