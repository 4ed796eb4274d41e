//! The POC pipeline end to end through the `kiln` binary on the simulated account:
//! bake, roll out, reuse, a failing step, and bad input refused before any change.

mod support;

use kiln::cloud::InstanceState;
use support::{instances_with_role, own_images, Sandbox, POC_PIPELINE};

#[tokio::test(start_paused = true)]
async fn poc_pipeline_bakes_and_rolls_out_then_reuses_the_image() {
    let sandbox = Sandbox::new();

    let first = sandbox.kiln(&["--output", "json", "pipeline", "run", POC_PIPELINE]);
    first.assert_code(0);
    let result = first.json();
    let image = &result["image"];
    let image_id = image["id"].as_str().expect("image id").to_string();
    assert!(image_id.starts_with("ami-"), "image id {image_id}");
    assert_eq!(image["reused"], false);
    assert_eq!(image["region"], "ap-northeast-1");
    assert_eq!(image["input_hash"].as_str().map(str::len), Some(64));
    assert!(result["leftovers"]
        .as_array()
        .expect("leftovers")
        .is_empty());

    let rollouts = result["rollouts"].as_array().expect("rollouts");
    assert_eq!(rollouts.len(), 1);
    let rollout = &rollouts[0];
    assert_eq!(rollout["target"], "poc-web");
    assert_eq!(rollout["group"], "poc-web-asg");
    assert_eq!(rollout["strategy"], "rolling");
    assert_eq!(rollout["desired"], 3);
    assert_eq!(rollout["on_new_image"], 3);

    // Progress names every step; the recipes' step names come from the files.
    for step in [
        "base-os/",
        "proxysql/",
        "laravel/",
        "monitoring/",
        "hygiene/",
    ] {
        assert!(
            first.stderr.contains(step),
            "progress does not name {step}:\n{}",
            first.stderr
        );
    }

    // Every instance of the group now runs the new image, and no builder or test
    // instance is still alive.
    let (_account, cloud) = sandbox.cloud().await;
    let groups = cloud
        .scaling
        .describe_groups(&["poc-web-asg".into()])
        .await
        .unwrap();
    let ids: Vec<_> = groups[0].instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids.len(), 3);
    let filter = kiln::cloud::InstanceFilter {
        ids,
        ..Default::default()
    };
    for instance in cloud.compute.describe_instances(&filter).await.unwrap() {
        assert_eq!(
            instance.image_id.as_str(),
            image_id,
            "{} runs another image",
            instance.id
        );
    }
    let builders = instances_with_role(&cloud, "builder").await;
    assert_eq!(builders.len(), 1, "one builder launched by the first run");
    for instance in builders
        .iter()
        .chain(&instances_with_role(&cloud, "test").await)
    {
        assert!(
            instance.state.is_ending(),
            "{} is {:?}",
            instance.id,
            instance.state
        );
    }
    // The ports hold the account (and its lock) open: let go before the next run.
    drop((_account, cloud));

    // Same inputs: the image is reused and no instance is launched.
    let second = sandbox.kiln(&["--output", "json", "pipeline", "run", POC_PIPELINE]);
    second.assert_code(0);
    let again = second.json();
    assert_eq!(again["image"]["id"], image_id.as_str());
    assert_eq!(again["image"]["reused"], true);
    let (_account, cloud) = sandbox.cloud().await;
    assert_eq!(
        instances_with_role(&cloud, "builder").await.len(),
        1,
        "no second builder"
    );
    drop((_account, cloud));

    // A default written out (composer_version) or left to the recipe (app_version) is
    // the same input: the plan reuses the image.
    let respelt = sandbox.poc_pipeline("pipeline.yaml", |t| {
        t.replace(
            "    app_version: \"1.0.0\"\n",
            "    composer_version: \"2.8.4\"\n",
        )
    });
    let text = std::fs::read_to_string(&respelt).expect("pipeline");
    assert!(text.contains("composer_version") && !text.contains("app_version"));
    let plan = sandbox.kiln(&["--output", "json", "plan", respelt.to_str().unwrap()]);
    plan.assert_code(0);
    let plan = plan.json();
    assert_eq!(plan["action"], "reuse", "{plan}");
    assert_eq!(plan["bake"]["reuse"]["id"], image_id.as_str());
    assert_eq!(plan["bake"]["input_hash"], image["input_hash"]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_proxysql_step_stops_the_bake_and_leaves_nothing() {
    let sandbox = Sandbox::new();
    let faults = sandbox.write(
        "faults.yaml",
        "steps:\n  - step: proxysql/install-proxysql\n    exit_code: 7\n    stderr: [\"error: package proxysql-2.6.3 not found\"]\n",
    );
    let run = sandbox.kiln(&[
        "--faults",
        faults.to_str().unwrap(),
        "--output",
        "json",
        "bake",
        POC_PIPELINE,
    ]);
    run.assert_code(3);
    // CI archives stdout: even a failed run leaves a result naming the failure.
    let result = run.json();
    assert_eq!(result["error"]["exit_code"], 3);
    assert!(result["error"]["message"]
        .as_str()
        .unwrap()
        .contains("proxysql/install-proxysql"));
    assert!(
        run.stderr.contains("proxysql/install-proxysql"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("exit code 7"), "{}", run.stderr);
    let stopped: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("build step stopped the bake"))
        .collect();
    assert_eq!(stopped.len(), 1, "each event is shown once: {stopped:?}");
    assert!(
        run.stderr.contains("package proxysql-2.6.3 not found"),
        "{}",
        run.stderr
    );

    let (_account, cloud) = sandbox.cloud().await;
    let baked: Vec<_> = own_images(&cloud)
        .await
        .into_iter()
        .filter(|i| i.tags.contains_key(kiln::cloud::TAG_RUN_ID))
        .collect();
    assert!(baked.is_empty(), "an image was registered: {baked:?}");
    for instance in instances_with_role(&cloud, "builder").await {
        assert!(
            matches!(
                instance.state,
                InstanceState::Terminated | InstanceState::ShuttingDown
            ),
            "builder {} is {:?}",
            instance.id,
            instance.state
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_image_that_fails_health_checks_is_rolled_back_with_exit_4() {
    let sandbox = Sandbox::new();
    let faults = support::repo_path("examples/poc/faults/bad-image.yaml");
    let before = {
        let seed_only = Sandbox::new();
        let (_account, cloud) = seed_only.cloud_of_seed().await;
        let groups = cloud
            .scaling
            .describe_groups(&["poc-web-asg".into()])
            .await
            .unwrap();
        groups[0].launch_template.clone().expect("template").version
    };
    let run = sandbox.kiln(&[
        "--faults",
        faults.to_str().unwrap(),
        "pipeline",
        "run",
        POC_PIPELINE,
    ]);
    run.assert_code(4);
    assert!(
        run.stderr.contains("Unhealthy in the target group"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("rolled back to launch template version"),
        "{}",
        run.stderr
    );

    // The group is back on the version it had, and serves from instances of that version.
    let (_account, cloud) = sandbox.cloud().await;
    let group = &cloud
        .scaling
        .describe_groups(&["poc-web-asg".into()])
        .await
        .unwrap()[0];
    assert_eq!(group.launch_template.as_ref().unwrap().version, before);
    let in_service: Vec<_> = group.instances.iter().filter(|i| i.in_service()).collect();
    assert_eq!(in_service.len(), 3, "{:?}", group.instances);
    for instance in in_service {
        let version = &instance.launch_template.as_ref().expect("template").version;
        assert_eq!(*version, before, "{} runs version {version}", instance.id);
    }
}

#[tokio::test(start_paused = true)]
async fn bake_then_rollout_by_image_id_as_jenkins_stages_do() {
    let sandbox = Sandbox::new();
    let validated = sandbox.kiln(&["--output", "json", "validate", POC_PIPELINE]);
    validated.assert_code(0);
    let steps = validated.json()["steps"].as_u64().expect("steps");
    assert!(steps > 20, "the POC recipes have many steps, got {steps}");
    assert!(!sandbox.state().exists(), "validate opened the account");

    let baked = sandbox.kiln(&["--output", "json", "bake", POC_PIPELINE]);
    baked.assert_code(0);
    let image = baked.json()["image"]["id"]
        .as_str()
        .expect("image id")
        .to_string();

    let rolled = sandbox.kiln(&[
        "--output",
        "json",
        "rollout",
        POC_PIPELINE,
        "--image",
        &image,
    ]);
    rolled.assert_code(0);
    let result = rolled.json();
    assert_eq!(result["image"], image.as_str());
    let rollout = &result["rollouts"][0];
    assert_eq!(rollout["status"], "Successful");
    assert_eq!(rollout["on_new_image"], 3);
    assert_eq!(rollout["desired"], 3);

    // A target the file does not have is refused before anything happens.
    let unknown = sandbox.kiln(&[
        "rollout",
        POC_PIPELINE,
        "--image",
        &image,
        "--target",
        "nope",
    ]);
    unknown.assert_code(2);
    assert!(
        unknown.stderr.contains("no target named `nope`"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.stderr.contains("poc-web"), "{}", unknown.stderr);
}
