//! `marshal workflow check`: the shipped examples check clean and show their waves; a broken
//! file names each problem with its line and exits 1.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::process::Ran;
use crate::support::repo_root;

fn check(home: &std::path::Path, args: &[&str]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_marshal"));
    command.env_clear().env("HOME", home).current_dir(repo_root()).arg("workflow").arg("check").args(args);
    Ran::of(&mut command, None, Duration::from_secs(60))
}

#[test]
fn the_examples_check_clean_and_show_parallel_waves() {
    let home = tempfile::tempdir().unwrap();
    let ran = check(home.path(), &["examples/scout-plan-build.yaml", "--json"]).success();
    let plan: Value = serde_json::from_slice(&ran.0.stdout).unwrap();
    assert_eq!(plan["problems"], serde_json::json!([]));
    let waves: Vec<Vec<&str>> = plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect())
        .collect();
    assert_eq!(
        waves,
        vec![vec!["scout-code", "scout-risks"], vec!["plan"], vec!["build"], vec!["review", "docs"]]
    );
    let plan_step = &plan["waves"][1][0];
    assert_eq!((plan_step["tier"].as_str(), plan_step["model"].as_str()), (Some("strong"), Some("opus")));
    let text = check(home.path(), &["examples/research-analysis.yaml"]).success().stdout_text();
    assert!(
        text.starts_with(
            "workflow research-analysis (examples/research-analysis.yaml): 3 steps in 3 waves, no problems"
        ),
        "{text}"
    );
}

#[test]
fn a_broken_workflow_names_every_problem_with_its_line_and_runs_nothing() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("broken.yaml");
    std::fs::write(
        &file,
        "name: broken\nsteps:\n  - id: a\n    prompt: \"use {vars.missing}\"\n    depends_on: [b]\n  - id: b\n    prompt: y\n    depends_on: [a]\n  - id: a\n    prompt: z\n",
    )
    .unwrap();
    let shown = file.display().to_string();
    let text = check(home.path(), &[&shown]).code(1).stdout_text();
    for expected in [
        format!("{shown}:3: dependency cycle: a -> b -> a"),
        format!("{shown}:4: step 'a' uses {{vars.missing}}, but no such variable is set"),
        format!("{shown}:9: duplicate step id 'a' (first used on line 3)"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    // A key the format does not have is an error with its line, before anything else.
    std::fs::write(&file, "name: x\nsteps:\n  - id: a\n    prompt: hi\n    teir: weak\n").unwrap();
    let ran = check(home.path(), &[&shown]).code(1);
    assert!(
        ran.stdout_text().starts_with(&format!("{shown}:5: unknown field `teir`")),
        "{}",
        ran.stdout_text()
    );
    let json: Value =
        serde_json::from_slice(&check(home.path(), &[&shown, "--json"]).code(1).0.stdout).unwrap();
    assert_eq!(json["problems"][0]["line"], 5, "{json}");
    assert_eq!(json["waves"], serde_json::json!([]));
}
