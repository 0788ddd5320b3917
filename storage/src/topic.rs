//! Topic names and the partition directories built from them.
//!
//! A topic name becomes part of a path, so no path is ever built from a name that did not pass
//! [`TopicName::new`]: the allowed alphabet has no separator, and `.` and `..` are refused.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Result, StorageError};

/// Kafka's limit, kept so that names move between the two systems.
pub const TOPIC_NAME_MAX_CHARS: usize = 249;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

impl TopicName {
    pub fn new(name: &str) -> Result<Self> {
        let invalid = |reason| Err(StorageError::InvalidTopicName { name: name.to_owned(), reason });
        if name.is_empty() {
            return invalid("a topic name cannot be empty");
        }
        if name.len() > TOPIC_NAME_MAX_CHARS {
            return invalid("a topic name is at most 249 characters");
        }
        if name == "." || name == ".." {
            return invalid("'.' and '..' are not topic names");
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return invalid("a topic name may only hold ASCII letters, digits, '.', '_' and '-'");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a partition directory is renamed to before it is removed ([`crate::Log::delete`]). A partition
/// directory's name ends in its number, so no partition is ever named like this.
pub const DELETED_DIR_SUFFIX: &str = ".deleted";

/// `dir` with [`DELETED_DIR_SUFFIX`] appended to its name.
pub fn deleted_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(DELETED_DIR_SUFFIX);
    dir.with_file_name(name)
}

/// Whether a directory name is a partition directory renamed for removal: a leftover if one is still there.
pub fn is_deleted_dir_name(name: &str) -> bool {
    name.strip_suffix(DELETED_DIR_SUFFIX).is_some_and(|partition| parse_partition_dir_name(partition).is_some())
}

/// `<data_dir>/<topic>-<partition>`, Kafka's layout.
pub fn partition_dir(data_dir: &Path, topic: &TopicName, partition: u32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// The topic and partition a directory name stands for, or `None` if it is no partition directory.
/// Topic names may hold `-`, so the partition is what follows the last one.
pub fn parse_partition_dir_name(name: &str) -> Option<(TopicName, u32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((TopicName::new(topic).ok()?, partition.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_style_names_and_refuses_path_tricks() {
        for ok in ["orders", "a", "my.topic_v2-x", &"x".repeat(249)] {
            assert!(TopicName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "../etc", "a b", "ü", &"x".repeat(250), "a\0b"] {
            assert!(TopicName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_deleted_partition_directory_is_never_a_partition_directory() {
        let topic = TopicName::new("orders").unwrap();
        let doomed = deleted_dir(&partition_dir(Path::new("/data"), &topic, 3));
        assert_eq!(doomed, Path::new("/data/orders-3.deleted"));
        let name = doomed.file_name().unwrap().to_str().unwrap();
        assert!(is_deleted_dir_name(name));
        assert!(parse_partition_dir_name(name).is_none());
        assert!(
            !is_deleted_dir_name("orders-3")
                && !is_deleted_dir_name("x.deleted")
                && !is_deleted_dir_name("a-b.deleted")
        );
    }

    #[test]
    fn partition_dir_names_round_trip() {
        let topic = TopicName::new("my-topic-2").unwrap();
        let dir = partition_dir(Path::new("/data"), &topic, 17);
        assert_eq!(dir, Path::new("/data/my-topic-2-17"));
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_partition_dir_name(name), Some((topic, 17)));
        assert_eq!(parse_partition_dir_name("lost+found"), None);
        assert_eq!(parse_partition_dir_name("topic-"), None);
        assert_eq!(parse_partition_dir_name("topic-x1"), None);
    }
}
