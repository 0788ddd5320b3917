use super::*;

fn defaults() -> BrokerConfig {
    BrokerConfig::default()
}

fn created(defaults: &BrokerConfig) -> TopicConfigState {
    TopicConfigState {
        settings: TopicSettings {
            segment_bytes: defaults.default_segment_bytes,
            durability: defaults.default_durability,
            flush_interval_ms: defaults.default_flush_interval_ms,
            max_batch_bytes: defaults.max_batch_bytes,
            retention_ms: defaults.default_retention_ms,
            retention_bytes: defaults.default_retention_bytes,
            cleanup: crate::meta::Cleanup::default(),
            segment_ms: crate::meta::DEFAULT_SEGMENT_MS,
            timestamps: crate::meta::MessageTimestamps::default(),
            compression: crate::meta::TopicCompression::Producer,
            compression_levels: crate::meta::CompressionLevels::default(),
            schema_ids: crate::meta::SchemaIdChecks::default(),
            takes_dead_letters: false,
            throttled_replicas: Default::default(),
            own_keys: None,
        },
        min_insync_replicas: 2,
    }
}

fn refusal_of(result: Result<TopicConfigState>) -> String {
    match result {
        Err(err @ BrokerError::InvalidTopicConfig { .. }) => err.to_string(),
        other => panic!("expected an invalid-config refusal, got {other:?}"),
    }
}

#[test]
fn sets_under_kafka_or_field_names_change_only_their_settings() {
    let defaults = defaults();
    let before = created(&defaults);
    let changes = [
        ConfigChange::set("retention.ms", "3600000"),
        ConfigChange::set("retention_bytes", "-1"),
        ConfigChange::set("segment.bytes", "1048576"),
        ConfigChange::set("max.message.bytes", "65536"),
        ConfigChange::set("min.insync.replicas", "3"),
    ];
    let after = apply_changes(&before, &changes, 3, Defaults::of(&defaults)).expect("all valid");
    assert_eq!(after.settings.retention_ms, Some(3_600_000));
    assert_eq!(after.settings.retention_bytes, None);
    assert_eq!((after.settings.segment_bytes, after.settings.max_batch_bytes), (1 << 20, 65536));
    assert_eq!(after.min_insync_replicas, 3);
    assert_eq!(after.settings.durability, before.settings.durability, "what was not named stays");
    let keys = overridden_keys(&after, 3, &defaults);
    assert!(keys.contains(&ConfigKey::RetentionMs) && keys.contains(&ConfigKey::MinInsyncReplicas), "{keys:?}");
    assert!(!keys.contains(&ConfigKey::Durability));
}

#[test]
fn a_delete_goes_back_to_the_brokers_default() {
    let defaults = defaults();
    let mut altered = created(&defaults);
    altered.settings.retention_ms = Some(5);
    altered.settings.durability = DurabilityPolicy::Always;
    altered.min_insync_replicas = 3;
    let changes = [
        ConfigChange::delete("retention.ms"),
        ConfigChange::delete("rill.durability"),
        ConfigChange::delete("min_insync_replicas"),
    ];
    let after = apply_changes(&altered, &changes, 3, Defaults::of(&defaults)).expect("deletes are always valid");
    let mut expected = created(&defaults);
    expected.settings.own_keys = Some(OwnKeys::default());
    assert_eq!(after, expected);
    assert!(overridden_keys(&after, 3, &defaults).is_empty());
}

#[test]
fn one_bad_change_refuses_the_request_naming_key_value_and_what_is_allowed() {
    let defaults = defaults();
    let before = created(&defaults);
    let unknown =
        refusal_of(apply_changes(&before, &[ConfigChange::set("preallocate", "true")], 3, Defaults::of(&defaults)));
    assert!(unknown.contains("preallocate") && unknown.contains("retention.ms"), "{unknown}");
    let negative = refusal_of(apply_changes(
        &before,
        &[ConfigChange::set("retention.ms", "60000"), ConfigChange::set("retention.bytes", "-5")],
        3,
        Defaults::of(&defaults),
    ));
    assert!(negative.contains("retention.bytes=-5") && negative.contains("-1 for no size limit"), "{negative}");
    let above_rf = refusal_of(apply_changes(
        &before,
        &[ConfigChange::set("min.insync.replicas", "4")],
        3,
        Defaults::of(&defaults),
    ));
    assert!(above_rf.contains("replication factor, 3"), "{above_rf}");
    let single = refusal_of(apply_changes(
        &before,
        &[ConfigChange::set("min.insync.replicas", "2")],
        1,
        Defaults::of(&defaults),
    ));
    assert!(single.contains("replication factor, 1"), "{single}");
    let huge = (defaults.max_batch_bytes + 1).to_string();
    let over_broker =
        refusal_of(apply_changes(&before, &[ConfigChange::set("max.message.bytes", huge)], 3, Defaults::of(&defaults)));
    assert!(over_broker.contains("max_batch_bytes"), "{over_broker}");
    let tiny =
        refusal_of(apply_changes(&before, &[ConfigChange::set("segment.bytes", "100")], 3, Defaults::of(&defaults)));
    assert!(tiny.contains("1024"), "{tiny}");
    let policy = refusal_of(apply_changes(
        &before,
        &[ConfigChange::set("cleanup.policy", "shrink")],
        3,
        Defaults::of(&defaults),
    ));
    assert!(policy.contains("delete, compact, or compact,delete"), "{policy}");
    let ratio = refusal_of(apply_changes(
        &before,
        &[ConfigChange::set("min.cleanable.dirty.ratio", "2")],
        3,
        Defaults::of(&defaults),
    ));
    assert!(ratio.contains("from 0 to 1"), "{ratio}");
    let twice = refusal_of(apply_changes(
        &before,
        &[ConfigChange::set("retention.ms", "1"), ConfigChange::delete("retention_ms")],
        3,
        Defaults::of(&defaults),
    ));
    assert!(twice.contains("twice"), "{twice}");
}

#[test]
fn settings_that_only_hold_together_are_checked_together() {
    let defaults = defaults();
    let before = created(&defaults);
    let batch_over_segment = refusal_of(apply_changes(
        &before,
        &[ConfigChange::set("segment.bytes", "4096"), ConfigChange::set("max.message.bytes", "8192")],
        3,
        Defaults::of(&defaults),
    ));
    assert!(batch_over_segment.contains("fit in one segment"), "{batch_over_segment}");
    let contradiction = refusal_of(apply_changes(
        &before,
        &[ConfigChange::set("flush.ms", "10"), ConfigChange::set("rill.durability", "always")],
        3,
        Defaults::of(&defaults),
    ));
    assert!(contradiction.contains("flush.ms"), "{contradiction}");
    let interval =
        apply_changes(&before, &[ConfigChange::set("flush.ms", "10")], 3, Defaults::of(&defaults)).expect("valid");
    assert_eq!((interval.settings.durability, interval.settings.flush_interval_ms), (DurabilityPolicy::Interval, 10));
}

#[test]
fn alter_configs_replaces_the_whole_set() {
    let changes = replace_all(vec![("retention.ms".into(), "1000".into())]);
    assert!(changes.contains(&ConfigChange::set("retention.ms", "1000")));
    assert!(changes.contains(&ConfigChange::delete("segment.bytes")));
    assert!(!changes.iter().any(|c| c.key == "retention.ms" && c.value.is_none()));
    let defaults = defaults();
    let mut altered = created(&defaults);
    altered.settings.segment_bytes = 4096;
    let after = apply_changes(&altered, &changes, 3, Defaults::of(&defaults)).expect("valid");
    assert_eq!(after.settings.segment_bytes, defaults.default_segment_bytes, "an unnamed key went back");
    assert_eq!(after.settings.retention_ms, Some(1000));
}

#[test]
fn a_max_message_bytes_the_topic_does_not_set_follows_its_segment_bytes() {
    let defaults = defaults();
    let before = created(&defaults);
    let one_mib = [ConfigChange::set("segment.bytes", "1048576")];
    let small =
        apply_changes(&before, &one_mib, 3, Defaults::of(&defaults)).expect("a segment below the broker's max batch");
    assert_eq!(small.settings.max_batch_bytes, 1 << 20);
    assert!(!overridden_keys(&small, 3, &defaults).contains(&ConfigKey::MaxMessageBytes), "still the default");
    let back =
        apply_changes(&small, &[ConfigChange::delete("segment.bytes")], 3, Defaults::of(&defaults)).expect("valid");
    assert_eq!(back.settings.max_batch_bytes, defaults.max_batch_bytes);

    // One the topic sets stays, and a segment below it is refused.
    let set = apply_changes(&before, &[ConfigChange::set("max.message.bytes", "2097152")], 3, Defaults::of(&defaults))
        .expect("ok");
    let refused = refusal_of(apply_changes(&set, &one_mib, 3, Defaults::of(&defaults)));
    assert!(refused.contains("fit in one segment"), "{refused}");
    let reset = [ConfigChange::delete("max.message.bytes"), ConfigChange::set("segment.bytes", "1048576")];
    let after = apply_changes(&set, &reset, 3, Defaults::of(&defaults)).expect("a reset limit follows the segment");
    assert_eq!(after.settings.max_batch_bytes, 1 << 20);
}

/// A topic becomes compacted and back: the policy, the compaction settings and what each does to the log's config
/// (no retention under compact alone), each shown as set while it differs from Kafka's default.
#[test]
fn compaction_settings_change_and_reset() {
    let defaults = BrokerConfig { default_retention_ms: Some(1000), ..BrokerConfig::default() };
    let before = created(&defaults);
    let changes = [
        ConfigChange::set("cleanup.policy", "compact"),
        ConfigChange::set("delete.retention.ms", "5000"),
        ConfigChange::set("min.cleanable.dirty.ratio", "0.1"),
    ];
    let compacted = apply_changes(&before, &changes, 3, Defaults::of(&defaults)).unwrap();
    let cleanup = compacted.settings.cleanup;
    assert_eq!((cleanup.compact, cleanup.delete, cleanup.delete_retention_ms), (true, false, 5000));
    assert_eq!(cleanup.dirty_ratio_text(), "0.1");
    let log = compacted.settings.log_config();
    assert_eq!(log.retention_ms, None, "compact alone keeps every key's newest record however old");
    let compaction = log.compaction.expect("a compacted log");
    assert_eq!((compaction.min_cleanable_dirty_permille, compaction.delete_retention_ms), (100, 5000));
    let shown = overridden_keys(&compacted, 3, &defaults);
    assert!(shown.contains(&ConfigKey::CleanupPolicy) && shown.contains(&ConfigKey::MinCleanableDirtyRatio));
    let both =
        apply_changes(&compacted, &[ConfigChange::set("cleanup.policy", "delete,compact")], 3, Defaults::of(&defaults));
    assert_eq!(both.unwrap().settings.log_config().retention_ms, Some(1000), "compact,delete keeps retention");
    let reset =
        apply_changes(&compacted, &[ConfigChange::delete("cleanup.policy")], 3, Defaults::of(&defaults)).unwrap();
    assert_eq!(reset.settings.cleanup.policy(), "delete");
    assert_eq!(reset.settings.log_config().compaction, None);
}

#[test]
fn timestamp_settings_and_segment_ms_change_reset_and_reach_the_log() {
    let defaults = defaults();
    let before = created(&defaults);
    let changes = [
        ConfigChange::set("message.timestamp.type", "LogAppendTime"),
        ConfigChange::set("message.timestamp.before.max.ms", "3600000"),
        // Kafka's Long.MAX_VALUE, as its tools send the default back: no bound.
        ConfigChange::set("message.timestamp.after.max.ms", "9223372036854775807"),
        ConfigChange::set("segment_ms", "60000"),
    ];
    let after = apply_changes(&before, &changes, 3, Defaults::of(&defaults)).expect("all valid");
    let timestamps = after.settings.timestamps;
    assert_eq!(
        (timestamps.log_append_time, timestamps.before_max_ms, timestamps.after_max_ms),
        (true, Some(3_600_000), None)
    );
    assert_eq!(after.settings.log_config().segment_ms, Some(60_000));
    let shown = overridden_keys(&after, 3, &defaults);
    for key in [ConfigKey::MessageTimestampType, ConfigKey::MessageTimestampBeforeMaxMs, ConfigKey::SegmentMs] {
        assert!(shown.contains(&key), "{key:?} in {shown:?}");
    }
    // Set to Kafka's no-bound value, the default's: the topic's own all the same, so no default reaches it.
    assert!(shown.contains(&ConfigKey::MessageTimestampAfterMaxMs));
    let deletes = ["message.timestamp.type", "message.timestamp.before.max.ms", "segment.ms"].map(ConfigChange::delete);
    let reset = apply_changes(&after, &deletes, 3, Defaults::of(&defaults)).unwrap();
    let owning_after_max = [ConfigKey::MessageTimestampAfterMaxMs].into_iter().collect();
    let expected = TopicSettings { own_keys: Some(OwnKeys(owning_after_max)), ..before.settings.clone() };
    assert_eq!(reset.settings, expected, "every one back to Kafka's default");
    for (key, value, allowed) in [
        ("message.timestamp.type", "BrokerTime", "CreateTime or LogAppendTime"),
        ("message.timestamp.before.max.ms", "-5", "whole number"),
        ("segment.ms", "0", "at least 1"),
        ("max.compaction.lag.ms", "0", "at least 1"),
    ] {
        let refusal = refusal_of(apply_changes(&before, &[ConfigChange::set(key, value)], 3, Defaults::of(&defaults)));
        assert!(refusal.contains(key) && refusal.contains(allowed), "{refusal}");
    }
}

/// Kafka's rule: a record may not have to be compacted before it may be; and a compacted topic's active segment
/// rolls by the lag, so a pass can reach its records in time.
#[test]
fn max_compaction_lag_holds_above_the_min_and_rolls_the_active_segment() {
    let defaults = defaults();
    let compacted = apply_changes(
        &created(&defaults),
        &[ConfigChange::set("cleanup.policy", "compact")],
        3,
        Defaults::of(&defaults),
    )
    .unwrap();
    let changes =
        [ConfigChange::set("min.compaction.lag.ms", "5000"), ConfigChange::set("max.compaction.lag.ms", "4000")];
    let refusal = refusal_of(apply_changes(&compacted, &changes, 3, Defaults::of(&defaults)));
    assert!(refusal.contains("below min.compaction.lag.ms (5000)"), "{refusal}");
    let lagged =
        apply_changes(&compacted, &[ConfigChange::set("max.compaction.lag.ms", "30000")], 3, Defaults::of(&defaults))
            .unwrap();
    let log = lagged.settings.log_config();
    assert_eq!(log.compaction.unwrap().max_compaction_lag_ms, Some(30_000));
    assert_eq!(log.segment_ms, Some(30_000), "rolled by the lag, below segment.ms");
    let deleted =
        apply_changes(&lagged, &[ConfigChange::set("cleanup.policy", "delete")], 3, Defaults::of(&defaults)).unwrap();
    assert_eq!(deleted.settings.log_config().segment_ms, Some(crate::meta::DEFAULT_SEGMENT_MS), "not compacted");
}

#[test]
fn compression_type_names_a_codec_or_producer() {
    let defaults = defaults();
    let before = created(&defaults);
    let zstd =
        apply_changes(&before, &[ConfigChange::set("compression.type", "zstd")], 3, Defaults::of(&defaults)).unwrap();
    assert_eq!(
        zstd.settings.compression.codec(&zstd.settings.compression_levels),
        Some((rill_protocol::Compression::Zstd, 3))
    );
    assert!(overridden_keys(&zstd, 3, &defaults).contains(&ConfigKey::CompressionType));
    let back = apply_changes(&zstd, &[ConfigChange::delete("compression_type")], 3, Defaults::of(&defaults)).unwrap();
    let before_owning_none = TopicSettings { own_keys: Some(OwnKeys::default()), ..before.settings.clone() };
    assert_eq!(back.settings, before_owning_none, "producer again: batches stored as sent");
    let refusal = refusal_of(apply_changes(
        &before,
        &[ConfigChange::set("compression.type", "brotli")],
        3,
        Defaults::of(&defaults),
    ));
    assert!(refusal.contains("producer, uncompressed, gzip, snappy, lz4 or zstd"), "{refusal}");
}

#[test]
fn compression_levels_are_kafkas_ranges_and_reach_the_stored_codec() {
    use rill_protocol::Compression;
    let defaults = defaults();
    let before = created(&defaults);
    let changes = [
        ConfigChange::set("compression.type", "gzip"),
        ConfigChange::set("compression.gzip.level", "1"),
        ConfigChange::set("compression.zstd.level", "-50"),
        ConfigChange::set("compression_lz4_level", "12"),
    ];
    let set = apply_changes(&before, &changes, 3, Defaults::of(&defaults)).unwrap();
    let levels = &set.settings.compression_levels;
    assert_eq!((levels.gzip, levels.lz4, levels.zstd), (Some(1), Some(12), Some(-50)));
    assert_eq!(set.settings.compression.codec(levels), Some((Compression::Gzip, 1)));
    let overridden = overridden_keys(&set, 3, &defaults);
    for key in [ConfigKey::CompressionGzipLevel, ConfigKey::CompressionLz4Level, ConfigKey::CompressionZstdLevel] {
        assert!(overridden.contains(&key), "{key:?} shown as the topic's");
    }
    let zstd =
        apply_changes(&set, &[ConfigChange::set("compression.type", "zstd")], 3, Defaults::of(&defaults)).unwrap();
    assert_eq!(zstd.settings.compression.codec(&zstd.settings.compression_levels), Some((Compression::Zstd, -50)));
    let reset = [ConfigChange::delete("compression.zstd.level"), ConfigChange::delete("compression.gzip.level")];
    let reset = apply_changes(&zstd, &reset, 3, Defaults::of(&defaults)).unwrap();
    assert_eq!(reset.settings.compression.codec(&reset.settings.compression_levels), Some((Compression::Zstd, 3)));
    assert_eq!(reset.settings.compression_levels.lz4, Some(12), "only the named levels go back");
    let lz4 =
        apply_changes(&before, &[ConfigChange::set("compression.type", "lz4")], 3, Defaults::of(&defaults)).unwrap();
    assert_eq!(lz4.settings.compression.codec(&lz4.settings.compression_levels), Some((Compression::Lz4, 9)));
    assert_eq!(lz4.settings.compression_levels.shown(Compression::Gzip), -1, "Kafka shows gzip's default as -1");
    for (key, value, allowed) in [
        ("compression.gzip.level", "0", "from 1 (fastest) to 9 (smallest), or -1"),
        ("compression.gzip.level", "-2", "or -1 for zlib's default (6)"),
        ("compression.lz4.level", "0", "from 1 to 17"),
        ("compression.zstd.level", "-131073", "from -131072 (fastest) to 22"),
        ("compression.zstd.level", "3.5", "a whole number"),
    ] {
        let refusal = refusal_of(apply_changes(&before, &[ConfigChange::set(key, value)], 3, Defaults::of(&defaults)));
        assert!(refusal.contains(key) && refusal.contains(allowed), "{refusal}");
    }
}

#[test]
fn a_brokers_default_compression_is_what_a_reset_goes_back_to_and_not_shown_as_set() {
    use rill_protocol::Compression;
    let defaults = BrokerConfig {
        default_compression_type: crate::meta::TopicCompression::Zstd,
        default_compression_levels: CompressionLevels { gzip: Some(9), lz4: None, zstd: Some(19) },
        ..BrokerConfig::default()
    };
    let mut before = created(&defaults);
    before.settings.compression = defaults.default_compression_type;
    before.settings.compression_levels = defaults.default_compression_levels;
    assert!(overridden_keys(&before, 3, &defaults).is_empty(), "the broker's defaults are not the topic's own");

    let changes = [ConfigChange::set("compression.type", "gzip"), ConfigChange::set("compression.zstd.level", "1")];
    let set = apply_changes(&before, &changes, 3, Defaults::of(&defaults)).unwrap();
    assert_eq!(set.settings.compression.codec(&set.settings.compression_levels), Some((Compression::Gzip, 9)));
    let shown = overridden_keys(&set, 3, &defaults);
    assert_eq!(shown, [ConfigKey::CompressionType, ConfigKey::CompressionZstdLevel], "gzip's 9 is the broker's");

    let resets = [ConfigChange::delete("compression.type"), ConfigChange::delete("compression.zstd.level")];
    let reset = apply_changes(&set, &resets, 3, Defaults::of(&defaults)).unwrap();
    assert_eq!(reset.settings.compression.codec(&reset.settings.compression_levels), Some((Compression::Zstd, 19)));
    assert!(overridden_keys(&reset, 3, &defaults).is_empty());

    // Its own keys are kept, not read from values: under other defaults it still owns none.
    assert!(overridden_keys(&reset, 3, &BrokerConfig::default()).is_empty());
    // A topic stored before they were kept owns those whose value differs from the defaults.
    let stored_before = TopicConfigState { settings: TopicSettings { own_keys: None, ..reset.settings }, ..reset };
    assert_eq!(overridden_keys(&stored_before, 3, &BrokerConfig::default()).len(), 3);
}
