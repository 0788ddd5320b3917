//! The registry against the open-file budget and concurrent creates, and its lookups by topic id.

use super::*;

async fn registry_with_room_for(partitions: u64, data_dir: &Path) -> Registry {
    let config = Arc::new(BrokerConfig::for_tests(data_dir));
    std::fs::create_dir_all(data_dir).unwrap();
    let budget = FileBudget { max_open_files: 100 + 3 * partitions, reserved_files: 100, files_per_partition: 3 };
    Registry::restore(config, budget, Arc::new(SegmentFileCache::new(4)), None, None).await.unwrap()
}

#[tokio::test]
async fn topic_changes_past_the_open_file_budget_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_with_room_for(3, dir.path()).await;
    let config = v1::TopicConfig::default();
    registry.create("a", 2, &config).await.unwrap();
    let refused = registry.create("b", 2, &config).await.err().expect("no room for 2 more partitions");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.to_string().starts_with(
            "creating topic \"b\" with 2 partitions would need 6 more open files; the broker may open 109"
        ),
        "{refused}"
    );
    let grown = registry.add_partitions("a", 4).await.err().expect("no room for 2 more partitions");
    assert_eq!(grown.code(), tonic::Code::ResourceExhausted);
    assert!(grown.to_string().starts_with("adding 2 partitions to topic \"a\" would need 6 more"), "{grown}");
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    left.sort();
    assert_eq!(left, ["__topics", "a-0", "a-1"], "no directory of the refused topic or partitions");
    assert_eq!(registry.list().len(), 1);
    registry.create("c", 1, &config).await.expect("what fits is still created");
    registry.close_all().await;
}

#[tokio::test]
async fn concurrent_creates_of_one_name_create_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_with_room_for(100, dir.path()).await;
    let config = v1::TopicConfig::default();
    let results = futures_join_all((0..8).map(|_| registry.create("same", 2, &config))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.code() == tonic::Code::AlreadyExists));
    // Side by side, different names all succeed and count against the limits.
    let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let results = futures_join_all(names.iter().map(|n| registry.create(n, 1, &config))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(registry.list().len(), 21);
    assert_eq!(registry.partition_total(), 22);
    registry.close_all().await;
}

#[tokio::test]
async fn names_by_id_finds_the_topics_asked_that_exist_and_forgets_deleted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_with_room_for(10, dir.path()).await;
    let config = v1::TopicConfig::default();
    for name in ["a", "b", "c"] {
        registry.create(name, 1, &config).await.unwrap();
    }
    let id = |name: &str| registry.topic(name).unwrap().id;
    let stranger = TopicId::from_uuid(uuid::Uuid::from_u128(7)).expect("not nil");
    let names = registry.names_by_id(&BTreeSet::from([id("a"), id("c"), stranger]));
    assert_eq!(names, BTreeMap::from([(id("a"), "a".to_owned()), (id("c"), "c".to_owned())]));
    assert!(registry.names_by_id(&BTreeSet::new()).is_empty());
    assert_eq!(registry.topic_by_id(id("b")).map(|t| t.name.to_string()), Some("b".to_owned()));
    let b = id("b");
    registry.delete("b").await.unwrap();
    assert!(registry.topic_by_id(b).is_none() && registry.names_by_id(&BTreeSet::from([b])).is_empty());
    let (a, c) = (id("a"), id("c"));
    registry.close_all().await;
    // Reopened: the ids of the topics restored are found again.
    let reopened = registry_with_room_for(10, dir.path()).await;
    let names = reopened.names_by_id(&BTreeSet::from([a, b, c]));
    assert_eq!(names, BTreeMap::from([(a, "a".to_owned()), (c, "c".to_owned())]));
    reopened.close_all().await;
}

/// Runs the futures concurrently on this task, in order of the results.
async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut is_done = true;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => is_done = false,
                }
            }
        }
        if is_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}
