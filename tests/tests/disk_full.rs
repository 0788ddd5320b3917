//! A full disk under a running broker: produce fails with UNAVAILABLE, the cause and the `disk-full` reason (so a
//! client can tell it from a broker that is away), the broker keeps serving
//! reads and other calls, and produce works again once space returns. Uses a real tiny tmpfs, which needs root
//! (as CI and the development machines have); elsewhere the test says so and passes.

use std::path::PathBuf;
use std::process::Command;

use rill_protocol::v1;
use rill_tests::admin_http::{get, sample};
use rill_tests::{batch_of, produce_request, TestBroker};
use tonic::Code;

struct TinyFs {
    path: PathBuf,
}

impl TinyFs {
    fn mount(bytes: u64) -> Option<TinyFs> {
        let path = tempfile::tempdir().ok()?.keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(TinyFs { path })
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        // Lazy: if the test failed, the broker's runtime may still hold files open, which would make a plain
        // umount fail (busy) and leave the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[tokio::test]
async fn a_full_disk_is_unavailable_with_the_cause_and_produce_resumes_when_space_returns() {
    let Some(fs) = TinyFs::mount(1 << 20) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data_dir = fs.path.join("data");
    // No reserve: this is what the file system itself refuses.
    let mut broker = TestBroker::start_with(|c| {
        c.data_dir = data_dir.clone();
        c.min_free_disk_bytes = Some(0);
    })
    .await;
    let config = v1::TopicConfig {
        segment_bytes: Some(256 << 10),
        max_batch_bytes: Some(64 << 10),
        durability: v1::DurabilityPolicy::Always as i32,
        ..Default::default()
    };
    let create =
        v1::CreateTopicRequest { name: "full".into(), partition_count: 1, config: Some(config), ..Default::default() };
    broker.admin.create_topic(create).await.unwrap();
    let filler = fs.path.join("filler");
    std::fs::write(&filler, vec![0u8; 600 << 10]).unwrap();

    let value = "f".repeat(32 << 10);
    let mut acknowledged = 0;
    let status = loop {
        let request = produce_request("full", Some(0), batch_of(&[&value], 1), v1::Acks::Leader);
        match broker.records.produce(request).await {
            Ok(response) => {
                assert_eq!(response.into_inner().base_offset, acknowledged);
                acknowledged += 1;
                assert!(acknowledged < 64, "a 1 MiB file system never filled up");
            }
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(status.message().contains("No space left"), "{}", status.message());
    let reason = rill_protocol::reason::reason_of(&status).map(|reason| reason.as_str());
    assert_eq!(reason, Some("disk-full"), "the reason a client acts on travels in the status details");

    let fetched = broker.fetch_all_values("full", 0, 0).await;
    assert_eq!(fetched.len() as i64, acknowledged, "reads go on, every acknowledged record is there");
    broker.admin.list_topics(v1::ListTopicsRequest {}).await.unwrap();

    std::fs::remove_file(&filler).unwrap();
    let request = produce_request("full", Some(0), batch_of(&["after"], 1), v1::Acks::Leader);
    let resumed = broker.records.produce(request).await.expect("space is back").into_inner();
    assert_eq!(resumed.base_offset, acknowledged, "appends resume at the next offset");
    let dir = broker.shutdown().await;
    drop(dir);
    drop(fs);
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let output = Command::new("df").args(["--output=avail", "-B1"]).arg(path).output().expect("df");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().nth(1).and_then(|line| line.trim().parse().ok()).expect("df's figure")
}

#[tokio::test]
async fn appends_stop_at_the_disk_reserve_which_the_brokers_own_writes_keep() {
    let Some(fs) = TinyFs::mount(8 << 20) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data_dir = fs.path.join("data");
    let reserve: u64 = 3 << 20;
    let mut broker = TestBroker::start_with(|c| {
        c.data_dir = data_dir.clone();
        c.min_free_disk_bytes = Some(reserve);
    })
    .await;
    let config =
        v1::TopicConfig { segment_bytes: Some(256 << 10), max_batch_bytes: Some(64 << 10), ..Default::default() };
    let create =
        v1::CreateTopicRequest { name: "kept".into(), partition_count: 1, config: Some(config), ..Default::default() };
    broker.admin.create_topic(create).await.unwrap();

    let value = "k".repeat(32 << 10);
    let mut acknowledged = 0;
    let status = loop {
        let request = produce_request("kept", Some(0), batch_of(&[&value], 1), v1::Acks::Leader);
        match broker.records.produce(request).await {
            Ok(_) => {
                acknowledged += 1;
                assert!(acknowledged < 256, "an 8 MiB file system never reached its reserve");
            }
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(status.message().contains("min_free_disk_bytes"), "the reserve is named: {}", status.message());
    let reason = rill_protocol::reason::reason_of(&status).map(|reason| reason.as_str());
    assert_eq!(reason, Some("disk-full"), "clients treat it as a full disk");
    // Stopped at the reserve, give or take the last record and the index files of a segment rolled meanwhile:
    // most of the reserve is left.
    let free = free_bytes(&fs.path);
    assert!(free + (512 << 10) >= reserve, "{free} bytes free, the reserve is {reserve}");
    // What an operator's alert sees: below the reserve, appends refused, the reserve and the file system's size.
    let admin = broker.handle.as_ref().and_then(|h| h.admin_addr()).expect("the test config turns the listener on");
    let (_, text) = get(admin, "/metrics", "text/plain").await;
    assert_eq!(sample(&text, "rill_disk_below_reserve"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "rill_disk_reserve_refused_appends_total"), Some(1.0));
    assert_eq!(sample(&text, "rill_disk_reserve_bytes"), Some(reserve as f64));
    assert_eq!(sample(&text, "rill_disk_total_bytes"), Some((8 << 20) as f64));
    assert!(sample(&text, "rill_disk_free_bytes").is_some_and(|free| free < reserve as f64 + (512 << 10) as f64));

    // The room is the broker's: a topic's metadata is written, reads go on.
    let create = v1::CreateTopicRequest { name: "more".into(), partition_count: 1, ..Default::default() };
    broker.admin.create_topic(create).await.expect("a topic created below the reserve");
    let fetched = broker.fetch_all_values("kept", 0, 0).await;
    assert_eq!(fetched.len() as i64, acknowledged, "every acknowledged record is read");

    // Deleting a topic frees its segments: appends resume once the free space is read again.
    broker.admin.delete_topic(v1::DeleteTopicRequest { name: "kept".into() }).await.expect("delete");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let request = produce_request("more", Some(0), batch_of(&["after"], 1), v1::Acks::Leader);
        match broker.records.produce(request).await {
            Ok(_) => break,
            Err(status) => {
                assert!(std::time::Instant::now() < deadline, "appends never resumed: {}", status.message());
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    let (_, text) = get(admin, "/metrics", "text/plain").await;
    assert_eq!(sample(&text, "rill_disk_below_reserve"), Some(0.0), "{text}");
    let dir = broker.shutdown().await;
    drop(dir);
    drop(fs);
}
