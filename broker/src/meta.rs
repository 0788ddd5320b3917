//! Topic metadata on disk: one TOML file per topic, `<data>/__topics/<name>.toml`, written atomically.
//!
//! A metadata file is the commit point of every topic change. Create opens the partition logs first and writes
//! the file last; delete removes the file first and the partition directories after; adding partitions opens
//! the new logs and then rewrites the file. So after a crash at any point, the files say exactly which topics
//! and partitions were acknowledged, and partition directories they do not mention are leftovers of an
//! unfinished change (removed at start, see `registry.rs`).
//!
//! ```toml
//! format_version = 1
//! name = "orders"
//! partition_count = 3
//! topic_id = "7f1c5b0e-3d2a-4c8e-9b1f-2a6d4e8c0b3a"   # absent in files older than topic ids: one is
//!                                                   # given and written back at load (`topic_id.rs`)
//!
//! [settings]
//! segment_bytes = 1073741824
//! durability = "interval"
//! flush_interval_ms = 1000
//! max_batch_bytes = 8388608
//! retention_ms = 604800000      # absent: keep forever
//! # retention_bytes = ...       # absent: keep forever
//! ```

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use rill_storage::{CompactionSettings, Durability, LogConfig, TopicName};
use serde::{Deserialize, Serialize};

use crate::config::DurabilityPolicy;
use crate::error::{BrokerError, Result};
use crate::replication::throttle::ThrottledReplicas;
use crate::topic_id::TopicId;

/// Directory under the data dir that holds the topic metadata files. The `__` prefix keeps it apart from
/// partition directories (`<topic>-<n>`), since user topic names may not start with `__`.
/// Keys one compaction pass of a partition maps at most (Kafka's `log.cleaner.dedupe.buffer.size` is 128 MiB for
/// all its cleaner threads; rill runs one pass at a time): past it a pass cleans part of the log and the next goes on.
const COMPACTION_KEY_MAP_BYTES: usize = 64 << 20;

pub const TOPICS_DIR: &str = "__topics";
const FORMAT_VERSION: u32 = 1;

/// A topic's effective settings: every value resolved, so a change of a node's static defaults (its flags)
/// never changes an existing topic behind its owner's back. Only a cluster's dynamic topic default does, set by an
/// operator, for the keys the topic does not own (`topic_defaults.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    pub segment_bytes: u64,
    pub durability: DurabilityPolicy,
    pub flush_interval_ms: u64,
    pub max_batch_bytes: u64,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    /// Kafka's `cleanup.policy` and the compaction settings beside it. Left out of the files while it is the
    /// default (delete only, as every topic was before compaction), so those read the same to an older broker.
    #[serde(default, skip_serializing_if = "Cleanup::is_default")]
    pub cleanup: Cleanup,
    /// Kafka's `segment.ms`: the active segment rolls once it is this old, so that retention and compaction, which
    /// never touch the active segment, reach a quiet topic's records. Left out of the files while it is Kafka's
    /// default (7 days, what every topic had before it was a setting).
    #[serde(default = "default_segment_ms", skip_serializing_if = "is_default_segment_ms")]
    pub segment_ms: u64,
    /// Kafka's `message.timestamp.*` configs. Left out of the files while they are the default.
    #[serde(default, skip_serializing_if = "MessageTimestamps::is_default")]
    pub timestamps: MessageTimestamps,
    /// Kafka's `compression.type`. Left out of the files while it is the default (`producer`).
    #[serde(default, skip_serializing_if = "TopicCompression::is_producer")]
    pub compression: TopicCompression,
    /// Kafka's `compression.gzip.level`, `compression.lz4.level` and `compression.zstd.level` (KIP-390): the level
    /// a batch is stored at when `compression` names that codec. Left out of the files while all are defaults.
    #[serde(default, skip_serializing_if = "CompressionLevels::is_default")]
    pub compression_levels: CompressionLevels,
    /// Confluent's broker-side schema id validation (`confluent.key.schema.validation`, ...): every record's key
    /// or value must carry the id of a schema registered under its subject (`schema_registry/validation.rs`).
    /// Left out of the files while off.
    #[serde(default, skip_serializing_if = "SchemaIdChecks::is_default")]
    pub schema_ids: SchemaIdChecks,
    /// Kafka's `errors.deadletterqueue.group.enable`: share groups may write their dead letters here
    /// (`share_groups/dead_letters.rs`). Left out of the files while off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub takes_dead_letters: bool,
    /// Kafka's `leader.replication.throttled.replicas` and `follower.replication.throttled.replicas`: which
    /// out-of-sync replicas the cluster's replication throttle applies to besides a move's new ones
    /// (`replication/throttle.rs`). Left out of the files while both are empty.
    #[serde(default, skip_serializing_if = "ThrottledReplicas::is_default")]
    pub throttled_replicas: ThrottledReplicas,
    /// The keys the topic set itself, which the cluster's dynamic defaults leave alone (`topic_defaults.rs`).
    /// Absent from files written before they were kept: those keys are then the ones whose value differs from
    /// the broker's defaults (`topic_config::own_keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_keys: Option<crate::topic_config::OwnKeys>,
}

/// How a schema id's subject is named: Confluent's subject name strategies, named as its classes are (their
/// `Debug` spelling is the class's simple name, what its tools and ours show).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names)]
pub enum SubjectNameStrategy {
    /// `TOPIC-key` or `TOPIC-value` (Confluent's default).
    #[default]
    TopicNameStrategy,
    /// The record's fully qualified Avro name.
    RecordNameStrategy,
    /// `TOPIC-` and the record's fully qualified Avro name.
    TopicRecordNameStrategy,
}

impl SubjectNameStrategy {
    pub const NAMES: &'static str = "TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy (or \
                                     io.confluent.kafka.serializers.subject. and one of them)";
    const PACKAGE: &'static str = "io.confluent.kafka.serializers.subject.";

    /// Confluent's class name, as its tools show it.
    pub fn class_name(self) -> String {
        format!("{}{self:?}", Self::PACKAGE)
    }

    pub fn parse(value: &str) -> Option<Self> {
        let name = value.trim();
        let name = name.strip_prefix(Self::PACKAGE).unwrap_or(name);
        [Self::TopicNameStrategy, Self::RecordNameStrategy, Self::TopicRecordNameStrategy]
            .into_iter()
            .find(|strategy| format!("{strategy:?}") == name)
    }
}

/// One side's check: on or off, and where its subject is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaIdCheck {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub strategy: SubjectNameStrategy,
}

/// A topic's schema id checks of record keys and values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaIdChecks {
    #[serde(default)]
    pub key: SchemaIdCheck,
    #[serde(default)]
    pub value: SchemaIdCheck,
}

impl SchemaIdChecks {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn is_on(&self) -> bool {
        self.key.enabled || self.value.enabled
    }
}

/// Reads a boolean topic config as Kafka does (`true` or `false`, any case).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Kafka's `compression.type` of a topic: `producer` stores each batch as its producer compressed it (byte for
/// byte, rill's default and Kafka's); a codec has the broker store every batch in that codec, recompressing the
/// ones that arrive in another (`rill_protocol::compressed::recompress`), as Kafka's broker does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicCompression {
    #[default]
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl TopicCompression {
    pub const NAMES: &'static str = "producer, uncompressed, gzip, snappy, lz4 or zstd";

    pub fn is_producer(&self) -> bool {
        *self == TopicCompression::Producer
    }

    /// As Kafka spells it.
    pub fn name(&self) -> &'static str {
        match self {
            TopicCompression::Producer => "producer",
            TopicCompression::Uncompressed => "uncompressed",
            TopicCompression::Gzip => "gzip",
            TopicCompression::Snappy => "snappy",
            TopicCompression::Lz4 => "lz4",
            TopicCompression::Zstd => "zstd",
        }
    }

    pub fn parse(value: &str) -> Option<TopicCompression> {
        [
            TopicCompression::Producer,
            TopicCompression::Uncompressed,
            TopicCompression::Gzip,
            TopicCompression::Snappy,
            TopicCompression::Lz4,
            TopicCompression::Zstd,
        ]
        .into_iter()
        .find(|codec| codec.name() == value.trim())
    }

    /// The codec every batch is stored in, at the topic's level for it (`levels`; Kafka's defaults where unset);
    /// `None` for `producer`.
    pub fn codec(&self, levels: &CompressionLevels) -> Option<(rill_protocol::Compression, i32)> {
        use rill_protocol::Compression;
        let codec = match self {
            TopicCompression::Producer => return None,
            TopicCompression::Uncompressed => Compression::None,
            TopicCompression::Gzip => Compression::Gzip,
            TopicCompression::Snappy => Compression::Snappy,
            TopicCompression::Lz4 => Compression::Lz4,
            TopicCompression::Zstd => Compression::Zstd,
        };
        Some((codec, levels.level(codec)))
    }
}

/// A topic's compression levels, one per codec that has levels (Kafka's KIP-390 topic configs); `None` is Kafka's
/// default for that codec. Each applies only when the topic's `compression.type` names its codec: a producer's
/// batches kept as sent keep the producer's level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionLevels {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lz4: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd: Option<i32>,
}

impl CompressionLevels {
    pub fn is_default(&self) -> bool {
        *self == CompressionLevels::default()
    }

    /// The level set for `codec`, if any.
    pub fn get(&self, codec: rill_protocol::Compression) -> Option<i32> {
        use rill_protocol::Compression;
        match codec {
            Compression::Gzip => self.gzip,
            Compression::Lz4 => self.lz4,
            Compression::Zstd => self.zstd,
            Compression::None | Compression::Snappy => None,
        }
    }

    /// The level `codec` is compressed at, in `rill_protocol::compression::compress_into`'s terms.
    pub fn level(&self, codec: rill_protocol::Compression) -> i32 {
        self.get(codec).unwrap_or_else(|| rill_protocol::compression::default_level(codec))
    }

    /// The value Kafka shows for `codec`'s level config: the topic's, or Kafka's default (gzip's is -1).
    pub fn shown(&self, codec: rill_protocol::Compression) -> i32 {
        match codec {
            rill_protocol::Compression::Gzip => self.gzip.unwrap_or(-1),
            _ => self.level(codec),
        }
    }

    /// Checks each set level against its codec's range (`parse`); the error names the first codec out of range.
    pub fn check(&self) -> std::result::Result<(), (rill_protocol::Compression, String)> {
        use rill_protocol::Compression;
        for (codec, level) in
            [(Compression::Gzip, self.gzip), (Compression::Lz4, self.lz4), (Compression::Zstd, self.zstd)]
        {
            if let Some(level) = level {
                CompressionLevels::parse(codec, &level.to_string())
                    .map_err(|reason| (codec, format!("{level} is not a level: it {reason}")))?;
            }
        }
        Ok(())
    }

    /// Reads a level for `codec` as Kafka checks it: gzip 1 to 9 or -1 (zlib's default), lz4 1 to 17, zstd
    /// -131072 to 22. The error says what is allowed.
    pub fn parse(codec: rill_protocol::Compression, value: &str) -> std::result::Result<i32, String> {
        use rill_protocol::compression::{GZIP_LEVELS, LZ4_LEVELS, ZSTD_LEVELS};
        use rill_protocol::Compression;
        let (levels, allowed) = match codec {
            Compression::Gzip => (GZIP_LEVELS, "from 1 (fastest) to 9 (smallest), or -1 for zlib's default (6)"),
            Compression::Lz4 => {
                (LZ4_LEVELS, "from 1 to 17 (9, the default, is LZ4's fast compressor; the others LZ4 HC)")
            }
            Compression::Zstd => (ZSTD_LEVELS, "from -131072 (fastest) to 22 (smallest); 3 is the default"),
            Compression::None | Compression::Snappy => return Err("this codec has no levels".into()),
        };
        match value.trim().parse::<i32>() {
            Ok(-1) if codec == Compression::Gzip => Ok(-1),
            Ok(level) if levels.contains(&level) => Ok(level),
            _ => Err(format!("must be a whole number {allowed}")),
        }
    }
}

/// Kafka's `segment.ms` default: a week.
pub const DEFAULT_SEGMENT_MS: u64 = 7 * 24 * 3600 * 1000;

fn default_segment_ms() -> u64 {
    DEFAULT_SEGMENT_MS
}

fn is_default_segment_ms(ms: &u64) -> bool {
    *ms == DEFAULT_SEGMENT_MS
}

/// Which clock a topic's record timestamps come from, and how far a producer's may be from the broker's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTimestamps {
    /// Kafka's `message.timestamp.type=LogAppendTime`: every batch is stamped with the broker's clock as it is
    /// produced (`rill_protocol::stamp_log_append_time`); false is `CreateTime`, the producer's timestamps.
    #[serde(default)]
    pub log_append_time: bool,
    /// Kafka's `message.timestamp.before.max.ms`: a CreateTime record at most this far behind the broker's clock
    /// (`None`: any age, Kafka's Long.MAX_VALUE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_max_ms: Option<u64>,
    /// Kafka's `message.timestamp.after.max.ms`: at most this far ahead of it (`None`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_max_ms: Option<u64>,
}

impl MessageTimestamps {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// `message.timestamp.type` as Kafka spells it.
    pub fn type_name(&self) -> &'static str {
        if self.log_append_time {
            "LogAppendTime"
        } else {
            "CreateTime"
        }
    }

    /// Reads a `message.timestamp.type` value: `Some(true)` for LogAppendTime, `Some(false)` for CreateTime.
    pub fn parse_type(value: &str) -> Option<bool> {
        match value.trim() {
            "LogAppendTime" => Some(true),
            "CreateTime" => Some(false),
            _ => None,
        }
    }

    /// The bounds the produce path checks each CreateTime record against.
    pub fn bounds(&self) -> rill_protocol::TimestampBounds {
        rill_protocol::TimestampBounds { before_max_ms: self.before_max_ms, after_max_ms: self.after_max_ms }
    }
}

/// How a topic's old records go: retention deletes old segments (`delete`), compaction keeps each key's newest
/// record (`compact`), or both (`compact,delete`). Named after Kafka's topic configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cleanup {
    pub compact: bool,
    /// Retention by `retention_ms` and `retention_bytes` applies; always true without `compact`.
    pub delete: bool,
    /// Kafka's `delete.retention.ms`: how long a tombstone stays in a compacted topic.
    pub delete_retention_ms: u64,
    /// Kafka's `min.compaction.lag.ms`: a record is never compacted away younger than this.
    pub min_compaction_lag_ms: u64,
    /// Kafka's `min.cleanable.dirty.ratio`, in thousandths.
    pub min_cleanable_dirty_permille: u16,
    /// Kafka's `max.compaction.lag.ms`: a record is compacted within about this long of being written, however
    /// little of the log is dirty (`None`: Kafka's Long.MAX_VALUE, only the dirty ratio decides). Left out of the
    /// files while unset, so they read the same to a broker from before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_compaction_lag_ms: Option<u64>,
}

impl Default for Cleanup {
    /// Kafka's defaults: delete only; a day for tombstones, no lag, a pass once half the log is dirty.
    fn default() -> Self {
        Self {
            compact: false,
            delete: true,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_permille: 500,
            max_compaction_lag_ms: None,
        }
    }
}

impl Cleanup {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// `cleanup.policy` as Kafka spells it.
    pub fn policy(&self) -> &'static str {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        }
    }

    /// Reads a `cleanup.policy` value (a list of `compact` and `delete`, in any order, at least one) into
    /// `(compact, delete)`; `None` for anything else.
    pub fn parse_policy(value: &str) -> Option<(bool, bool)> {
        let (mut compact, mut delete) = (false, false);
        for item in value.split(',').map(str::trim) {
            match item {
                "compact" => compact = true,
                "delete" => delete = true,
                _ => return None,
            }
        }
        (compact || delete).then_some((compact, delete))
    }

    /// `min.cleanable.dirty.ratio` as Kafka writes it (0.5).
    pub fn dirty_ratio_text(&self) -> String {
        (f64::from(self.min_cleanable_dirty_permille) / 1000.0).to_string()
    }

    /// Reads a `min.cleanable.dirty.ratio` (0 to 1, to a thousandth) into thousandths.
    pub fn parse_dirty_ratio(value: &str) -> Option<u16> {
        let ratio: f64 = value.trim().parse().ok()?;
        (0.0..=1.0).contains(&ratio).then(|| (ratio * 1000.0).round() as u16)
    }
}

impl TopicSettings {
    /// What a topic that sets nothing itself has under the broker's static defaults alone.
    pub fn defaults_of(config: &crate::config::BrokerConfig) -> TopicSettings {
        TopicSettings {
            segment_bytes: config.default_segment_bytes,
            durability: config.default_durability,
            flush_interval_ms: config.default_flush_interval_ms,
            max_batch_bytes: crate::topic_config::default_max_batch_bytes(
                crate::topic_config::Defaults::of(config),
                config.default_segment_bytes,
            ),
            retention_ms: config.default_retention_ms,
            retention_bytes: config.default_retention_bytes,
            cleanup: Cleanup::default(),
            segment_ms: DEFAULT_SEGMENT_MS,
            timestamps: MessageTimestamps::default(),
            compression: config.default_compression_type,
            compression_levels: config.default_compression_levels,
            schema_ids: SchemaIdChecks::default(),
            takes_dead_letters: false,
            throttled_replicas: ThrottledReplicas::default(),
            own_keys: Some(crate::topic_config::OwnKeys::default()),
        }
    }

    /// The storage config of each of the topic's partition logs.
    pub fn log_config(&self) -> LogConfig {
        let durability = match self.durability {
            DurabilityPolicy::Always => Durability::Always,
            DurabilityPolicy::Interval => Durability::Interval { interval_ms: self.flush_interval_ms },
            DurabilityPolicy::Never => Durability::Never,
        };
        // Kafka rolls a compacted topic's active segment by max.compaction.lag.ms too: a pass never takes the
        // active segment, so without a roll its records could wait past the lag.
        let max_lag = self.cleanup.max_compaction_lag_ms.filter(|_| self.cleanup.compact);
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: Some(max_lag.map_or(self.segment_ms, |lag| lag.clamp(1, self.segment_ms))),
            max_batch_bytes: usize::try_from(self.max_batch_bytes).unwrap_or(usize::MAX),
            // Compaction alone (no `delete`) keeps every key's newest record however old or large the log is.
            retention_ms: self.retention_ms.filter(|_| self.cleanup.delete),
            retention_bytes: self.retention_bytes.filter(|_| self.cleanup.delete),
            durability,
            compaction: self.cleanup.compact.then_some(CompactionSettings {
                min_cleanable_dirty_permille: self.cleanup.min_cleanable_dirty_permille,
                min_compaction_lag_ms: self.cleanup.min_compaction_lag_ms,
                delete_retention_ms: self.cleanup.delete_retention_ms,
                max_compaction_lag_ms: self.cleanup.max_compaction_lag_ms,
                key_map_bytes: COMPACTION_KEY_MAP_BYTES,
            }),
            ..LogConfig::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicMeta {
    pub format_version: u32,
    pub name: String,
    pub partition_count: u32,
    /// `None` only as read from a file written before topic ids; `load_all` gives it one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<TopicId>,
    pub settings: TopicSettings,
}

impl TopicMeta {
    pub fn new(name: &TopicName, id: TopicId, partition_count: u32, settings: TopicSettings) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            name: name.as_str().to_owned(),
            partition_count,
            topic_id: Some(id),
            settings,
        }
    }
}

pub fn topics_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(TOPICS_DIR)
}

fn meta_path(data_dir: &Path, topic: &TopicName) -> PathBuf {
    topics_dir(data_dir).join(format!("{topic}.toml"))
}

/// Writes the topic's metadata file atomically: a temporary file, fsynced, renamed over the old one, then the
/// directory fsynced so the rename itself survives a crash.
pub fn store(data_dir: &Path, meta: &TopicMeta) -> Result<()> {
    let name = TopicName::new(&meta.name)?;
    let text = toml::to_string(meta).map_err(|e| BrokerError::Internal(format!("encoding topic metadata: {e}")))?;
    write_atomically(&meta_path(data_dir, &name), text.as_bytes())
}

/// Removes the topic's metadata file (durably): from here on the topic does not exist.
pub fn remove(data_dir: &Path, topic: &TopicName) -> Result<()> {
    let path = meta_path(data_dir, topic);
    fs::remove_file(&path).map_err(BrokerError::io(&path))?;
    fsync_dir(&topics_dir(data_dir))
}

/// Every topic's metadata, read from the data dir. Leftover temporary files of an interrupted write are removed.
pub fn load_all(data_dir: &Path) -> Result<Vec<TopicMeta>> {
    let dir = topics_dir(data_dir);
    fs::create_dir_all(&dir).map_err(BrokerError::io(&dir))?;
    let mut metas = Vec::new();
    for entry in fs::read_dir(&dir).map_err(BrokerError::io(&dir))? {
        let path = entry.map_err(BrokerError::io(&dir))?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {
                let mut meta = load(&path)?;
                if meta.topic_id.is_none() {
                    // Written before topic ids: the id is chosen once and stored, so it stays the same from here on.
                    let id = TopicId::random();
                    meta.topic_id = Some(id);
                    store(data_dir, &meta)?;
                    tracing::info!(topic = %meta.name, topic_id = %id, "gave a topic from before topic ids its id");
                }
                metas.push(meta);
            }
            Some("tmp") => {
                tracing::info!(path = %path.display(), "removing an interrupted metadata write");
                fs::remove_file(&path).map_err(BrokerError::io(&path))?;
            }
            _ => tracing::warn!(path = %path.display(), "ignoring an unexpected file among topic metadata"),
        }
    }
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(metas)
}

fn load(path: &Path) -> Result<TopicMeta> {
    let corrupt = |reason: String| BrokerError::CorruptMetadata { path: path.to_owned(), reason };
    let text = fs::read_to_string(path).map_err(BrokerError::io(path))?;
    let meta: TopicMeta = toml::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if meta.format_version != FORMAT_VERSION {
        return Err(corrupt(format!("unknown format_version {}", meta.format_version)));
    }
    let name = TopicName::new(&meta.name).map_err(|e| corrupt(e.to_string()))?;
    if path.file_stem().and_then(|s| s.to_str()) != Some(name.as_str()) {
        return Err(corrupt(format!("holds topic {:?}, which does not match the file name", meta.name)));
    }
    if meta.partition_count == 0 {
        return Err(corrupt("partition_count is 0".into()));
    }
    Ok(meta)
}

/// The bytes of a file the broker keeps beside the partitions, or `None` when there is none yet.
pub fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(BrokerError::io(path)(err)),
    }
}

/// Such a file that holds what it never should, named with why: the broker does not start on it.
pub fn unreadable(path: &Path, why: impl std::fmt::Display) -> BrokerError {
    BrokerError::Internal(format!("{} cannot be read: {why}", path.display()))
}

/// Writes `bytes` to `path` whole: a temporary file, fsynced, renamed into place, the directory fsynced. Refused
/// before anything is written when an fsync of the directory has failed before (`sync_dir`).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().ok_or_else(|| BrokerError::Internal(format!("{} has no parent", path.display())))?;
    refuse_after_failed_sync(dir).map_err(BrokerError::io(dir))?;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(BrokerError::io(&tmp))?;
    file.write_all(bytes).map_err(BrokerError::io(&tmp))?;
    file.sync_all().map_err(BrokerError::io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(BrokerError::io(path))?;
    fsync_dir(dir)
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    sync_dir(dir).map_err(BrokerError::io(dir))
}

/// Directories an fsync of which failed in this process, with its error.
static FAILED_DIR_SYNCS: std::sync::Mutex<std::collections::BTreeMap<PathBuf, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn failed_dir_syncs() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<PathBuf, String>> {
    FAILED_DIR_SYNCS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// fsyncs `dir`, which makes what was renamed into it durable. Linux reports a failed writeback to one fsync and
/// may mark the directory's changes clean, so a retry can succeed while a rename never reached the disk
/// ("fsyncgate"). The first failure therefore sticks, for the process (the kernel's state is the process's
/// too): every later fsync of that directory, and every `write_atomically` into it (before it writes), fails
/// naming it, until a restart reads back what the disk holds (docs/durability.md, "A failed fsync").
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    refuse_after_failed_sync(dir)?;
    let opened = File::open(dir)?;
    if let Err(err) = sync_opened_dir(&opened, dir) {
        tracing::error!(dir = %dir.display(), error = %err, "an fsync of a directory failed; nothing more is written there until the broker restarts");
        failed_dir_syncs().entry(dir.to_path_buf()).or_insert_with(|| err.to_string());
        return Err(err);
    }
    Ok(())
}

fn refuse_after_failed_sync(dir: &Path) -> std::io::Result<()> {
    match failed_dir_syncs().get(dir) {
        Some(reason) => Err(std::io::Error::other(format!(
            "an earlier fsync of this directory failed ({reason}): what was renamed into it since may not be on the \
             disk, so nothing more is written there until the broker restarts and reads it back"
        ))),
        None => Ok(()),
    }
}

#[cfg(not(test))]
fn sync_opened_dir(opened: &File, _dir: &Path) -> std::io::Result<()> {
    opened.sync_all()
}

/// Directories whose next fsync fails, for the tests (a real failing directory fsync needs a failing device).
#[cfg(test)]
static INJECTED_DIR_SYNC_FAILURES: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

#[cfg(test)]
fn sync_opened_dir(opened: &File, dir: &Path) -> std::io::Result<()> {
    let injected = INJECTED_DIR_SYNC_FAILURES.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(dir);
    if injected {
        return Err(std::io::Error::other("injected: EIO"));
    }
    opened.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_directory_fsync_sticks_and_refuses_later_writes_there_before_they_write() {
        let (failing, other) = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
        let path = failing.path().join("state.json");
        write_atomically(&path, b"one").expect("written");
        INJECTED_DIR_SYNC_FAILURES.lock().expect("lock").insert(failing.path().to_path_buf());
        let first = write_atomically(&path, b"two").expect_err("the fsync fails").to_string();
        assert!(first.contains("injected"), "{first}");
        // The disk would take the next fsync: it is refused all the same, and before anything is written.
        std::fs::remove_file(&path).expect("remove");
        let later = write_atomically(&path, b"three").expect_err("sticks").to_string();
        assert!(later.contains("earlier fsync") && later.contains("restarts"), "{later}");
        assert!(!path.exists() && !path.with_extension("tmp").exists(), "nothing written");
        assert!(fsync_dir(failing.path()).is_err(), "a bare fsync too");
        // Another directory is not concerned.
        write_atomically(&other.path().join("state.json"), b"one").expect("another directory");
    }

    fn settings() -> TopicSettings {
        TopicSettings {
            segment_bytes: 1 << 20,
            durability: DurabilityPolicy::Always,
            flush_interval_ms: 1000,
            max_batch_bytes: 1 << 16,
            retention_ms: None,
            retention_bytes: Some(1 << 30),
            cleanup: crate::meta::Cleanup::default(),
            segment_ms: DEFAULT_SEGMENT_MS,
            timestamps: MessageTimestamps::default(),
            compression: TopicCompression::default(),
            compression_levels: CompressionLevels::default(),
            schema_ids: SchemaIdChecks::default(),
            takes_dead_letters: false,
            throttled_replicas: Default::default(),
            own_keys: None,
        }
    }

    #[test]
    fn metadata_round_trips_and_temp_files_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(topics_dir(dir.path())).unwrap();
        let meta = TopicMeta::new(&TopicName::new("orders").unwrap(), TopicId::random(), 3, settings());
        store(dir.path(), &meta).unwrap();
        fs::write(topics_dir(dir.path()).join("half.tmp"), b"partial").unwrap();
        assert_eq!(load_all(dir.path()).unwrap(), vec![meta]);
        assert!(!topics_dir(dir.path()).join("half.tmp").exists());
        remove(dir.path(), &TopicName::new("orders").unwrap()).unwrap();
        assert!(load_all(dir.path()).unwrap().is_empty());
    }

    /// Settings added after the first release are left out of the file while they are the default, so a file of a
    /// topic that does not use them reads the same to an older broker; set, they round-trip.
    #[test]
    fn later_settings_stay_out_of_the_file_until_set() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(topics_dir(dir.path())).unwrap();
        let name = TopicName::new("orders").unwrap();
        let plain = TopicMeta::new(&name, TopicId::random(), 1, settings());
        let text = toml::to_string(&plain).unwrap();
        for later in ["cleanup", "segment_ms", "timestamps", "compression", "own_keys"] {
            assert!(!text.contains(later), "{later} in {text}");
        }
        let mut set = settings();
        set.segment_ms = 60_000;
        set.timestamps = MessageTimestamps { log_append_time: true, before_max_ms: Some(5), after_max_ms: None };
        set.cleanup.compact = true;
        set.cleanup.max_compaction_lag_ms = Some(9);
        set.compression = TopicCompression::Zstd;
        set.compression_levels.zstd = Some(-7);
        let own = [crate::topic_config::ConfigKey::RetentionMs, crate::topic_config::ConfigKey::CompressionType];
        set.own_keys = Some(crate::topic_config::OwnKeys(own.into_iter().collect()));
        let meta = TopicMeta::new(&name, TopicId::random(), 1, set);
        let text = toml::to_string(&meta).unwrap();
        assert!(text.contains(r#"own_keys = ["retention.ms", "compression.type"]"#), "{text}");
        store(dir.path(), &meta).unwrap();
        assert_eq!(load_all(dir.path()).unwrap(), vec![meta]);
    }

    #[test]
    fn a_topic_from_before_topic_ids_gets_one_at_load_that_stays() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(topics_dir(dir.path())).unwrap();
        let mut old = TopicMeta::new(&TopicName::new("orders").unwrap(), TopicId::random(), 3, settings());
        old.topic_id = None;
        store(dir.path(), &old).unwrap();
        let text = fs::read_to_string(topics_dir(dir.path()).join("orders.toml")).unwrap();
        assert!(!text.contains("topic_id"), "an old file has no id: {text}");
        let first = load_all(dir.path()).unwrap();
        let id = first[0].topic_id.expect("given an id at load");
        let again = load_all(dir.path()).unwrap();
        assert_eq!(again[0].topic_id, Some(id), "the id was persisted, not drawn again");
    }

    #[test]
    fn a_damaged_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(topics_dir(dir.path())).unwrap();
        fs::write(topics_dir(dir.path()).join("x.toml"), b"name = 3").unwrap();
        let err = load_all(dir.path()).unwrap_err();
        assert!(matches!(err, BrokerError::CorruptMetadata { .. }), "{err}");
        assert!(err.to_string().contains("x.toml"));
    }
}
