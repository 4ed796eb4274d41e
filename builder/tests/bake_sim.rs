//! The bake on the simulated account: the happy path, reuse, and every failure path the
//! bake must survive without leaving anything behind.

mod support;

use std::time::Duration;

use kiln_builder::naming::{self, TAG_INPUT_HASH, TAG_RECIPES, TAG_SOURCE_IMAGE, TAG_VERSION};
use kiln_builder::{bake, bake_with_journal, plan, BakeError, MemoryJournal};
use kiln_cloud::progress::{Recorder, Silent};
use kiln_cloud::{ImageFilter, ImageState, InstanceFilter, Tags, TAG_ROLE, TAG_RUN_ID};
use tokio_util::sync::CancellationToken;

use support::*;

#[tokio::test(start_paused = true)]
async fn happy_path_makes_a_tagged_image_and_leaves_nothing() {
    let cloud = cloud_with_faults("").await;
    let spec = spec(fixture_rendered());
    let plan = plan(&cloud, &spec).await.expect("plan");
    assert!(plan.reuse.is_none());

    let progress = Recorder::default();
    let outcome = bake(&cloud, &plan, &progress, &CancellationToken::new())
        .await
        .expect("bake");

    assert!(!outcome.reused);
    assert!(outcome.leftovers.is_empty(), "{:?}", outcome.leftovers);
    let image = describe_image(&cloud, &outcome.image.id)
        .await
        .expect("image exists");
    assert_eq!(image.state, ImageState::Available);
    assert_eq!(image.name, format!("{IMAGE_NAME}-{}", plan.version));
    assert_eq!(image.tags[TAG_INPUT_HASH], plan.input_hash);
    assert_eq!(image.tags[TAG_VERSION], plan.version);
    assert_eq!(image.tags[TAG_SOURCE_IMAGE], plan.source_image.to_string());
    assert_eq!(image.tags[TAG_RECIPES], "base,web");
    assert_eq!(image.tags[TAG_RUN_ID], plan.run_id);
    assert_eq!(image.tags[naming::TAG_COMMIT], "0123abc");
    assert_eq!(outcome.image.input_hash, plan.input_hash);

    assert_nothing_left(&cloud, &plan.run_id).await;
    let builders = instances_of(&cloud, &plan.run_id, naming::ROLE_BUILDER).await;
    let tests = instances_of(&cloud, &plan.run_id, naming::ROLE_TEST).await;
    assert_eq!(
        (builders, tests),
        (1, 1),
        "one builder and one test instance launched"
    );

    // Every step started and ended, with its position among all steps.
    let events = progress.events();
    for (n, label) in FIXTURE_STEPS.iter().enumerate() {
        let about: Vec<_> = events.iter().filter(|e| e.subject == *label).collect();
        assert_eq!(about.len(), 2, "start and end of {label}");
        let total = FIXTURE_STEPS.len() as u64;
        assert!(about
            .iter()
            .all(|e| e.position == Some((n as u64 + 1, total))));
    }
    let reboot = events.iter().find(|e| e.message.contains("rebooting"));
    assert!(
        reboot.is_some(),
        "the reboot step waited for the agent again"
    );
    let phases: Vec<&str> = outcome.timings.iter().map(|(p, _)| p.as_str()).collect();
    let announced: Vec<&str> = events
        .iter()
        .filter(|e| e.message.ends_with("phase started"))
        .map(|e| e.phase.as_str())
        .collect();
    assert_eq!(announced, phases, "each phase is announced as it starts");
    assert_eq!(
        phases,
        ["builder", "steps", "hygiene", "image", "test", "cleanup"]
    );
    assert!(outcome.timings.iter().all(|(_, d)| *d > Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn same_inputs_reuse_the_image_and_launch_nothing() {
    let cloud = cloud_with_faults("").await;
    let first = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let made = bake(&cloud, &first, &Silent, &CancellationToken::new())
        .await
        .expect("bake");

    let second = plan(&cloud, &spec(fixture_rendered()))
        .await
        .expect("plan again");
    assert_eq!(second.input_hash, first.input_hash);
    assert_eq!(second.reuse.as_ref().map(|i| &i.id), Some(&made.image.id));
    let again = bake(&cloud, &second, &Silent, &CancellationToken::new())
        .await
        .expect("bake");

    assert!(again.reused);
    assert_eq!(again.image, made.image);
    let launched = all_instances(&cloud, &second.run_id).await;
    assert_eq!(launched, 0, "a reused image launches no instance");
}

#[tokio::test(start_paused = true)]
async fn changed_input_makes_a_new_version() {
    let cloud = cloud_with_faults("").await;
    let first = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let made = bake(&cloud, &first, &Silent, &CancellationToken::new())
        .await
        .expect("bake");

    let mut rendered = fixture_rendered();
    rendered.inputs[0].1.extend_from_slice(b"\n# changed\n");
    let second = plan(&cloud, &spec(rendered)).await.expect("plan");
    assert_ne!(second.input_hash, first.input_hash);
    assert!(second.reuse.is_none());
    let remade = bake(&cloud, &second, &Silent, &CancellationToken::new())
        .await
        .expect("bake");

    assert_ne!(remade.image.id, made.image.id);
    assert!(naming::version_key(&remade.image.version) > naming::version_key(&made.image.version));
}

#[tokio::test(start_paused = true)]
async fn failing_step_names_itself_and_leaves_no_image() {
    let faults = r#"
steps:
  - step: web/install-httpd
    exit_code: 7
    stdout: ["resolving dependencies", "installing httpd"]
    stderr: ["error: package httpd-2.4 not found"]
"#;
    let cloud = cloud_with_faults(faults).await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let error = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();

    match &error {
        BakeError::StepFailed {
            recipe,
            step,
            exit_code,
            last_lines,
            truncated,
            region,
            ..
        } => {
            assert_eq!((recipe.as_str(), step.as_str()), ("web", "install-httpd"));
            assert_eq!(*exit_code, 7);
            assert!(last_lines.contains("installing httpd"), "{last_lines}");
            assert!(last_lines.contains("httpd-2.4 not found"), "{last_lines}");
            assert!(!truncated);
            assert_eq!(region, REGION);
        }
        other => panic!("expected StepFailed, got {other}"),
    }
    assert!(error.to_string().contains("web/install-httpd"));
    assert_eq!(
        images_of_run(&cloud, &plan.run_id).await,
        0,
        "no image registered"
    );
    assert_nothing_left(&cloud, &plan.run_id).await;
}

#[tokio::test(start_paused = true)]
async fn agent_never_online_times_out_and_leaves_nothing() {
    let cloud = cloud_with_faults("agent_never_online: [{role: builder}]").await;
    let spec = spec(fixture_rendered());
    let plan = plan(&cloud, &spec).await.expect("plan");
    let start = tokio::time::Instant::now();
    let journal = MemoryJournal::new();
    let error = bake_with_journal(&cloud, &plan, &Silent, &CancellationToken::new(), &journal)
        .await
        .unwrap_err();

    match &error {
        BakeError::AgentNotOnline { role, waited, .. } => {
            assert_eq!(role, "builder");
            assert_eq!(*waited, spec.timeouts.agent_online);
        }
        other => panic!("expected AgentNotOnline, got {other}"),
    }
    let budget = spec.timeouts.boot + spec.timeouts.agent_online;
    assert!(start.elapsed() < budget + spec.timeouts.instance_terminated);
    assert_nothing_left(&cloud, &plan.run_id).await;
    assert!(
        journal.open_records().is_empty(),
        "{:?}",
        journal.open_records()
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_during_the_steps_cleans_up() {
    let cloud = cloud_with_faults("").await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let cancel = CancellationToken::new();
    let progress = CancelOn {
        subject: Some("web/install-httpd"),
        message: "started",
        cancel: cancel.clone(),
    };

    let error = bake(&cloud, &plan, &progress, &cancel).await.unwrap_err();

    assert!(error.is_cancelled(), "{error}");
    assert!(matches!(&error, BakeError::Cancelled { phase, .. } if phase == "steps"));
    assert_eq!(images_of_run(&cloud, &plan.run_id).await, 0);
    assert_nothing_left(&cloud, &plan.run_id).await;
}

#[tokio::test(start_paused = true)]
async fn failed_test_deregisters_the_image() {
    let faults = r#"
steps:
  - step: web/smoke-test
    exit_code: 1
    stderr: ["curl: (7) Failed to connect to localhost port 80"]
"#;
    let cloud = cloud_with_faults(faults).await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let error = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();

    let BakeError::TestFailed { image, source, .. } = &error else {
        panic!("expected TestFailed, got {error}");
    };
    assert!(matches!(**source, BakeError::StepFailed { ref step, .. } if step == "smoke-test"));
    let found = describe_image(&cloud, image).await;
    assert!(
        found
            .as_ref()
            .is_none_or(|i| i.state == ImageState::Deregistered),
        "the image is gone: {found:?}"
    );
    assert_eq!(
        instances_of(&cloud, &plan.run_id, naming::ROLE_TEST).await,
        1
    );
    assert_nothing_left(&cloud, &plan.run_id).await;

    // A failed image is never reused: the next plan bakes again.
    let again = kiln_builder::plan(&cloud, &spec(fixture_rendered()))
        .await
        .expect("plan");
    assert!(again.reuse.is_none());
}

#[tokio::test(start_paused = true)]
async fn hung_step_times_out_and_its_command_is_cancelled() {
    let cloud = cloud_with_faults("step_hangs: [base/update-os]").await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let error = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();

    match &error {
        BakeError::StepTimedOut {
            recipe,
            step,
            timeout,
            ..
        } => {
            assert_eq!((recipe.as_str(), step.as_str()), ("base", "update-os"));
            assert_eq!(*timeout, STEP_TIMEOUT);
        }
        other => panic!("expected StepTimedOut, got {other}"),
    }
    assert_nothing_left(&cloud, &plan.run_id).await;
}

#[tokio::test(start_paused = true)]
async fn invocation_hidden_for_a_while_is_not_a_failure() {
    let cloud = cloud_with_faults("invocation_hidden_for: 40s").await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let outcome = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .expect("bake");
    assert!(outcome.leftovers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn throttling_storm_during_the_bake_is_survived() {
    let faults = "throttle_storm: {after: 2m, lasts: 90s}";
    let cloud = cloud_with_faults(faults).await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let outcome = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .expect("bake");
    assert!(outcome.leftovers.is_empty());
    assert_nothing_left(&cloud, &plan.run_id).await;
}

#[tokio::test(start_paused = true)]
async fn plan_changes_nothing_and_lists_the_changes() {
    let cloud = cloud_with_faults("").await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");

    assert_eq!(all_instances(&cloud, &plan.run_id).await, 0);
    let actions: Vec<&str> = plan.changes.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "launch",
            "run",
            "create",
            "launch",
            "terminate",
            "delete"
        ]
    );
    let json = serde_json::to_value(&plan).expect("plan serializes");
    assert_eq!(json["ami_name"], format!("{IMAGE_NAME}-{}", plan.version));
    assert!(
        json["steps"][0].get("script").is_none(),
        "scripts stay out of printed plans"
    );
}

#[tokio::test(start_paused = true)]
async fn explicit_version_already_used_is_refused() {
    let cloud = cloud_with_faults("").await;
    let mut first = spec(fixture_rendered());
    first.version = Some("7.0.0".into());
    let planned = plan(&cloud, &first).await.expect("plan");
    bake(&cloud, &planned, &Silent, &CancellationToken::new())
        .await
        .expect("bake");

    let mut second = spec(fixture_rendered());
    second.version = Some("7.0.0".into());
    second
        .variables
        .insert("changed".into(), serde_json::json!(true));
    let error = plan(&cloud, &second).await.unwrap_err();
    assert!(matches!(error, BakeError::NameTaken { ref name, .. } if name.ends_with("-7.0.0")));
}

#[tokio::test(start_paused = true)]
async fn missing_source_parameter_is_a_clear_error() {
    let cloud = cloud_with_faults("").await;
    let mut spec = spec(fixture_rendered());
    spec.source = kiln_builder::SourceImage::Parameter("/aws/service/nope".into());
    let error = plan(&cloud, &spec).await.unwrap_err();
    assert!(
        matches!(error, BakeError::SourceParameterMissing { .. }),
        "{error}"
    );
}

/// Nothing of the run is left running or registered: instances terminated, security
/// group deleted, no image or snapshot but the one kept.
async fn assert_nothing_left(cloud: &kiln_cloud::Cloud, run_id: &str) {
    let run = Tags::from([(TAG_RUN_ID.to_string(), run_id.to_string())]);
    let alive = cloud
        .compute
        .describe_instances(&InstanceFilter {
            tags: run.clone(),
            exclude_terminated: true,
            ..InstanceFilter::default()
        })
        .await
        .expect("describe instances");
    assert!(alive.is_empty(), "instances left: {alive:?}");
    let groups = cloud
        .compute
        .describe_security_groups(&[], &run)
        .await
        .expect("groups");
    assert!(groups.is_empty(), "security groups left: {groups:?}");

    let images = images_with(cloud, &run).await;
    let kept: Vec<_> = images
        .iter()
        .filter(|i| i.state == ImageState::Available)
        .collect();
    let snapshots = cloud
        .compute
        .describe_snapshots(&[], &run)
        .await
        .expect("snapshots");
    let kept_snapshots: usize = kept.iter().map(|i| i.block_devices.len()).sum();
    assert_eq!(
        snapshots.len(),
        kept_snapshots,
        "snapshots left: {snapshots:?}"
    );
}

async fn images_with(cloud: &kiln_cloud::Cloud, tags: &Tags) -> Vec<kiln_cloud::Image> {
    let filter = ImageFilter {
        owners: vec!["self".into()],
        tags: tags.clone(),
        ..ImageFilter::default()
    };
    let images = cloud
        .compute
        .describe_images(&filter)
        .await
        .expect("describe images");
    images
        .into_iter()
        .filter(|i| i.state != ImageState::Deregistered)
        .collect()
}

async fn images_of_run(cloud: &kiln_cloud::Cloud, run_id: &str) -> usize {
    let run = Tags::from([(TAG_RUN_ID.to_string(), run_id.to_string())]);
    images_with(cloud, &run).await.len()
}

async fn instances_of(cloud: &kiln_cloud::Cloud, run_id: &str, role: &str) -> usize {
    let tags = Tags::from([
        (TAG_RUN_ID.to_string(), run_id.to_string()),
        (TAG_ROLE.to_string(), role.to_string()),
    ]);
    let filter = InstanceFilter {
        tags,
        ..InstanceFilter::default()
    };
    cloud
        .compute
        .describe_instances(&filter)
        .await
        .expect("instances")
        .len()
}

async fn all_instances(cloud: &kiln_cloud::Cloud, run_id: &str) -> usize {
    let tags = Tags::from([(TAG_RUN_ID.to_string(), run_id.to_string())]);
    let filter = InstanceFilter {
        tags,
        ..InstanceFilter::default()
    };
    cloud
        .compute
        .describe_instances(&filter)
        .await
        .expect("instances")
        .len()
}

#[tokio::test(start_paused = true)]
async fn builder_that_never_boots_is_a_clear_error() {
    let cloud = cloud_with_faults("boot_fails: [{role: builder}]").await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let error = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();

    match &error {
        BakeError::InstanceEnded {
            role,
            state,
            region,
            ..
        } => {
            assert_eq!(role, "builder");
            assert!(state.starts_with("shutting-down") || state.starts_with("terminated"));
            assert!(
                state.contains("Server.InternalError"),
                "EC2's reason is shown: {state}"
            );
            assert_eq!(region, REGION);
        }
        other => panic!("expected InstanceEnded, got {other}"),
    }
    assert!(
        !error.to_string().contains("timeouts.boot"),
        "no longer wait would have helped: {error}"
    );
    assert_nothing_left(&cloud, &plan.run_id).await;
}

#[tokio::test(start_paused = true)]
async fn send_refused_after_the_agent_shows_online_is_retried() {
    let cloud = cloud_with_faults("invalid_instance_after_online: 90s").await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let outcome = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .expect("bake");
    assert!(outcome.leftovers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn cut_output_is_reported_and_secrets_are_hidden() {
    let noisy: Vec<String> = (0..400)
        .map(|i| format!("\"{i:04} {}\"", "x".repeat(75)))
        .collect();
    let faults = format!(
        "steps:\n  - step: web/install-httpd\n    exit_code: 1\n    stdout: [{}]\n    \
         stderr: [\"login failed for laravel_user with hunter2-secret\"]\n",
        noisy.join(", ")
    );
    let cloud = cloud_with_faults(&faults).await;
    let mut rendered = fixture_rendered();
    rendered.secrets = vec!["db_password".into()];
    let mut spec = spec(rendered);
    spec.variables
        .insert("db_password".into(), serde_json::json!("hunter2-secret"));
    let plan = plan(&cloud, &spec).await.expect("plan");
    let error = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();

    let BakeError::StepFailed {
        truncated,
        last_lines,
        ..
    } = &error
    else {
        panic!("expected StepFailed, got {error}");
    };
    assert!(truncated, "400 lines of 80 characters exceed SSM's 24,000");
    assert!(
        error.to_string().contains("cut the output at 24,000"),
        "{error}"
    );
    assert!(
        last_lines.contains("login failed for laravel_user with ***"),
        "{last_lines}"
    );
    assert!(!error.to_string().contains("hunter2"));
    assert!(
        !format!("{plan:?}").contains("hunter2"),
        "the plan's Debug hides secrets"
    );
}

#[tokio::test(start_paused = true)]
async fn test_instance_whose_agent_never_comes_fails_the_image() {
    let cloud = cloud_with_faults("agent_never_online: [{role: test}]").await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let error = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();

    let BakeError::TestFailed { image, source, .. } = &error else {
        panic!("expected TestFailed, got {error}");
    };
    assert!(
        matches!(**source, BakeError::AgentNotOnline { ref role, .. } if role == "test"),
        "{source}"
    );
    let found = describe_image(&cloud, image).await;
    assert!(
        found
            .as_ref()
            .is_none_or(|i| i.state == ImageState::Deregistered),
        "{found:?}"
    );
    assert_nothing_left(&cloud, &plan.run_id).await;
}

#[tokio::test(start_paused = true)]
async fn image_wait_budget_exceeded_removes_the_pending_image() {
    let cloud = cloud_with_faults("").await;
    let mut spec = spec(fixture_rendered());
    // The simulated account takes minutes to make an image.
    spec.timeouts.image_available = Duration::from_secs(60);
    let plan = plan(&cloud, &spec).await.expect("plan");
    let journal = MemoryJournal::new();
    let error = bake_with_journal(&cloud, &plan, &Silent, &CancellationToken::new(), &journal)
        .await
        .unwrap_err();

    match &error {
        BakeError::ImageNotAvailable { waited, name, .. } => {
            assert_eq!(*waited, Duration::from_secs(60));
            assert_eq!(name, &plan.ami_name);
        }
        other => panic!("expected ImageNotAvailable, got {other}"),
    }
    assert_eq!(images_of_run(&cloud, &plan.run_id).await, 0);
    assert_nothing_left(&cloud, &plan.run_id).await;
    assert!(
        journal.open_records().is_empty(),
        "{:?}",
        journal.open_records()
    );
}

#[tokio::test(start_paused = true)]
async fn a_successful_bake_leaves_only_the_image_it_keeps() {
    let cloud = cloud_with_faults("").await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let journal = MemoryJournal::new();
    let outcome = bake_with_journal(&cloud, &plan, &Silent, &CancellationToken::new(), &journal)
        .await
        .expect("bake");

    assert!(
        journal.open_records().is_empty(),
        "{:?}",
        journal.open_records()
    );
    let run = Tags::from([(TAG_RUN_ID.to_string(), plan.run_id.clone())]);
    let images = images_with(&cloud, &run).await;
    let ids: Vec<_> = images.iter().map(|i| &i.id).collect();
    assert_eq!(ids, [&outcome.image.id]);
}

#[tokio::test(start_paused = true)]
async fn cancel_while_the_image_is_made_removes_it() {
    let cloud = cloud_with_faults("").await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let cancel = CancellationToken::new();
    let progress = CancelOn {
        subject: None,
        message: "image poc-web-base-",
        cancel: cancel.clone(),
    };

    let error = bake(&cloud, &plan, &progress, &cancel).await.unwrap_err();

    assert!(
        matches!(&error, BakeError::Cancelled { phase, .. } if phase == "image"),
        "{error}"
    );
    assert_eq!(images_of_run(&cloud, &plan.run_id).await, 0);
    assert_nothing_left(&cloud, &plan.run_id).await;
}

#[tokio::test(start_paused = true)]
async fn throttled_creates_are_tried_again() {
    let faults = r#"
throttle:
  - { operation: CreateSecurityGroup, count: 1 }
  - { operation: RunInstances, count: 3 }
  - { operation: CreateImage, count: 2 }
  - { operation: TerminateInstances, count: 2 }
"#;
    let cloud = cloud_with_faults(faults).await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let outcome = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .expect("bake");
    assert!(outcome.leftovers.is_empty(), "{:?}", outcome.leftovers);
    assert_nothing_left(&cloud, &plan.run_id).await;
}
