//! The README's quickstart, run as written: every command between the `quickstart:begin` and `quickstart:end`
//! markers, in order, through `sh` with the built `rill` first on `PATH`, in a fresh directory, and each one's
//! stdout compared with the `#>` lines under it (none means it prints nothing).
//!
//! A block whose command is `rill broker ...` is the broker's terminal: the running broker (if any) gets the
//! Ctrl-C the text asks for and must exit 0, then the command starts in the background. The one change from a
//! newcomer's terminal: `RILL_LISTEN=127.0.0.1:0` so the test never takes a fixed port, and `RILL_BROKER` so the
//! other commands find that port.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{BrokerProcess, RILL};

/// One command of the quickstart and the output the README promises.
#[derive(Debug)]
struct Step {
    command: String,
    expected: String,
}

/// The `sh` code blocks between the markers, as lists of steps.
fn quickstart_blocks(readme: &str) -> Vec<Vec<Step>> {
    let begin = readme.find("<!-- quickstart:begin").expect("README has a quickstart:begin marker");
    let end = readme.find("<!-- quickstart:end").expect("README has a quickstart:end marker");
    let section = &readme[begin..end];
    let mut blocks = Vec::new();
    let mut current: Option<Vec<Step>> = None;
    for line in section.lines() {
        match (&mut current, line) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().expect("inside a block")),
            (Some(steps), line) => {
                if let Some(output) = line.strip_prefix("#>") {
                    let step = steps.last_mut().expect("#> output follows a command");
                    step.expected.push_str(output.strip_prefix(' ').unwrap_or(output));
                    step.expected.push('\n');
                } else if !line.trim().is_empty() && !line.starts_with('#') {
                    steps.push(Step { command: line.to_owned(), expected: String::new() });
                }
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "unterminated code block in the quickstart");
    blocks
}

#[test]
fn the_readme_quickstart_runs_as_written() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("read README.md");
    let blocks = quickstart_blocks(&readme);
    let work = tempfile::tempdir().expect("temp dir");
    let rill_dir = Path::new(RILL).parent().expect("the binary has a directory");
    let path = format!("{}:{}", rill_dir.display(), std::env::var("PATH").unwrap_or_default());

    let mut broker: Option<BrokerProcess> = None;
    let (mut commands_run, mut restarts) = (0, 0);
    for block in &blocks {
        for step in block {
            if let Some(args) = step.command.strip_prefix("rill broker") {
                assert!(block.len() == 1, "a broker block holds only the broker command: {block:?}");
                assert!(!args.contains(['"', '\'', '$', '&', '|']), "plain words only: {}", step.command);
                if let Some(running) = broker.take() {
                    let status = running.interrupt();
                    assert!(status.success(), "Ctrl-C stops the broker cleanly: {status:?}");
                    restarts += 1;
                }
                let mut command = Command::new(RILL);
                command.current_dir(work.path()).env("RILL_LISTEN", "127.0.0.1:0");
                let words: Vec<&str> = step.command.split_whitespace().skip(1).collect();
                broker = Some(BrokerProcess::start_command(command, &words));
                continue;
            }
            let running = broker.as_ref().expect("the quickstart starts a broker before using it");
            let mut command = Command::new("sh");
            command
                .args(["-c", &step.command])
                .current_dir(work.path())
                .env("PATH", &path)
                .env("RILL_BROKER", &running.addr);
            let output = common::run(&mut command, None);
            assert!(output.status.success(), "`{}` failed: {output:?}", step.command);
            assert_eq!(output.stderr, "", "`{}` wrote to stderr", step.command);
            assert_eq!(output.stdout, step.expected, "output of `{}`", step.command);
            commands_run += 1;
        }
    }
    assert!(commands_run >= 8, "the quickstart ran {commands_run} commands: is the section still there?");
    assert_eq!(restarts, 1, "the quickstart stops and restarts the broker once");
    assert!(work.path().join("rill-data").is_dir(), "the broker kept its data where the README says");
}
