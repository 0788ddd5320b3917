use proptest::prelude::*;

use super::*;

fn checkpoint(entries: &[(&str, u32, i64)]) -> HighWatermarkCheckpoint {
    HighWatermarkCheckpoint {
        partitions: entries.iter().map(|(topic, partition, hw)| (((*topic).to_owned(), *partition), *hw)).collect(),
    }
}

/// A body with a valid frame around it, so a test reaches the checks after the CRC.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = [MAGIC.as_slice(), body].concat();
    let crc = crc32fast::hash(&out).to_be_bytes();
    out.extend_from_slice(&crc);
    out
}

#[test]
fn stored_checkpoint_loads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let stored = checkpoint(&[("orders", 0, 42), ("orders", 1, 0), ("__consumer_offsets", 7, 1 << 40)]);
    stored.store(dir.path()).unwrap();
    assert_eq!(HighWatermarkCheckpoint::load(dir.path()).unwrap(), Some(stored));
    assert_eq!(HighWatermarkCheckpoint::load(dir.path()).unwrap().unwrap().get("orders", 0), Some(42));
}

#[test]
fn a_missing_file_loads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(HighWatermarkCheckpoint::load(dir.path()).unwrap(), None);
    assert_eq!(HighWatermarkCheckpoint::load(&dir.path().join("absent")).unwrap(), None);
}

#[test]
fn a_store_replaces_the_file_whole_and_a_crashed_store_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = checkpoint(&[("orders", 0, 10), ("orders", 1, 11)]);
    first.store(dir.path()).unwrap();
    let second = checkpoint(&[("orders", 0, 20)]);
    second.store(dir.path()).unwrap();
    assert_eq!(HighWatermarkCheckpoint::load(dir.path()).unwrap(), Some(second.clone()));
    // A store that crashed before its rename: a torn temp file beside the real one.
    let torn = dir.path().join(format!("{FILE_NAME}{TEMP_INFIX}1-0"));
    fs::write(&torn, &checkpoint(&[("orders", 0, 99)]).encode()[..9]).unwrap();
    assert_eq!(HighWatermarkCheckpoint::load(dir.path()).unwrap(), Some(second), "the temp file is never read");
    assert!(!torn.exists(), "load removes what a crashed store left");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [FILE_NAME], "no temp file left after stores");
}

#[test]
fn every_damaged_byte_or_cut_makes_the_file_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let good = checkpoint(&[("orders", 0, 10), ("payments", 3, 7)]).encode();
    for at in 0..good.len() {
        let mut flipped = good.clone();
        flipped[at] ^= 0x40;
        assert!(HighWatermarkCheckpoint::decode(&flipped).is_err(), "a flip at byte {at} went unnoticed");
    }
    for len in 0..good.len() {
        assert!(HighWatermarkCheckpoint::decode(&good[..len]).is_err(), "a cut at {len} went unnoticed");
    }
    let mut damaged = good.clone();
    damaged[20] ^= 1;
    fs::write(dir.path().join(FILE_NAME), damaged).unwrap();
    assert_eq!(HighWatermarkCheckpoint::load(dir.path()).unwrap(), None, "a damaged file is ignored, not an error");
}

#[test]
fn an_unknown_version_is_named_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = 2u16.to_be_bytes().to_vec();
    body.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(HighWatermarkCheckpoint::decode(&framed(&body)), Err(DecodeError::UnknownVersion { found: 2 }));
    fs::write(dir.path().join(FILE_NAME), framed(&body)).unwrap();
    assert_eq!(HighWatermarkCheckpoint::load(dir.path()).unwrap(), None);
}

#[test]
fn entries_out_of_order_twice_or_negative_are_refused() {
    let entry = |topic: &str, partition: u32, hw: i64| {
        let mut out = (topic.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(topic.as_bytes());
        out.extend_from_slice(&partition.to_be_bytes());
        out.extend_from_slice(&hw.to_be_bytes());
        out
    };
    let file = |entries: &[Vec<u8>], extra: &[u8]| {
        let mut body = VERSION.to_be_bytes().to_vec();
        body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        body.extend(entries.iter().flatten());
        body.extend_from_slice(extra);
        framed(&body)
    };
    let ok = file(&[entry("a", 0, 1), entry("a", 1, 2)], &[]);
    assert_eq!(HighWatermarkCheckpoint::decode(&ok).unwrap().partitions.len(), 2);
    let twice = file(&[entry("a", 0, 1), entry("a", 0, 2)], &[]);
    assert_eq!(
        HighWatermarkCheckpoint::decode(&twice),
        Err(DecodeError::Entry { index: 1, reason: "not after the previous entry" })
    );
    let backwards = file(&[entry("b", 0, 1), entry("a", 0, 2)], &[]);
    assert!(matches!(HighWatermarkCheckpoint::decode(&backwards), Err(DecodeError::Entry { index: 1, .. })));
    let negative = file(&[entry("a", 0, -1)], &[]);
    assert_eq!(
        HighWatermarkCheckpoint::decode(&negative),
        Err(DecodeError::Entry { index: 0, reason: "negative high watermark" })
    );
    let trailing = file(&[entry("a", 0, 1)], &[0]);
    assert_eq!(HighWatermarkCheckpoint::decode(&trailing), Err(DecodeError::Layout("bytes after the last entry")));
    let not_utf8 = file(
        &[entry("\u{e9}", 0, 1)].map(|mut e| {
            e[2] = 0xff;
            e
        }),
        &[],
    );
    assert_eq!(
        HighWatermarkCheckpoint::decode(&not_utf8),
        Err(DecodeError::Entry { index: 0, reason: "topic name is not UTF-8" })
    );
}

proptest! {
    #[test]
    fn any_checkpoint_round_trips(
        partitions in prop::collection::btree_map(("[a-z_.-]{1,249}", any::<u32>()), 0..i64::MAX, 0..40)
    ) {
        let stored = HighWatermarkCheckpoint { partitions };
        prop_assert_eq!(HighWatermarkCheckpoint::decode(&stored.encode()), Ok(stored));
    }

    #[test]
    fn any_bytes_decode_without_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        framed_body in any::<bool>(),
    ) {
        // Framed, the bytes reach the field checks past the CRC; raw, they mostly stop at the frame.
        let input = if framed_body { framed(&bytes) } else { bytes };
        let _ = HighWatermarkCheckpoint::decode(&input);
    }
}
