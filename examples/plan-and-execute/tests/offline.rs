//! The example runs offline, as a reader would run it: the binary with no
//! arguments, a scripted model, the custom tool and the calculator.

use std::process::Command;

#[test]
fn example_runs_offline_with_the_custom_tool() {
    let out = Command::new(env!("CARGO_BIN_EXE_plan-and-execute"))
        .output()
        .expect("the example binary starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for line in [
        "model: scripted (offline; --local PATH or --openai URL for a real model)",
        "objective: How much do 3 notebooks and 2 pens cost together?",
        "1. Look up the price of 3 notebooks in the catalogue.",
        "3. Add the two prices and give the total.",
        "  catalogue_price({\"item\":\"notebook\",\"quantity\":3}) -> 3 x notebook: 7.50 euros",
        "  catalogue_price({\"item\":\"pen\",\"quantity\":2}) -> 2 x pen: 2.40 euros",
        "  calculator({\"expression\":\"7.50 + 2.40\"}) -> 9.9",
        "answer: Together they cost 9.90 euros.",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    assert!(
        stderr.contains("... step 3: Add the two prices"),
        "{stderr}"
    );
}

#[test]
fn flags_are_checked() {
    let out = Command::new(env!("CARGO_BIN_EXE_plan-and-execute"))
        .args(["--local", "a.gguf", "--openai", "http://127.0.0.1:1/v1"])
        .output()
        .expect("the example binary starts");
    assert_eq!(out.status.code(), Some(2), "clap refuses both at once");
}
