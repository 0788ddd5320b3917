//! Decoding of every request message the broker accepts: arbitrary bytes give a message or an error, and
//! a decoded message encodes again. Never a panic, never an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use rill_protocol::v1;

fn round_trip<M: Message + Default>(data: &[u8]) {
    if let Ok(message) = M::decode(data) {
        let encoded = message.encode_to_vec();
        M::decode(encoded.as_slice()).expect("what was encoded decodes");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else { return };
    match kind % 11 {
        0 => round_trip::<v1::CreateTopicRequest>(body),
        1 => round_trip::<v1::DeleteTopicRequest>(body),
        2 => round_trip::<v1::ListTopicsRequest>(body),
        3 => round_trip::<v1::DescribeTopicRequest>(body),
        4 => round_trip::<v1::AddPartitionsRequest>(body),
        5 => round_trip::<v1::ProduceRequest>(body),
        6 => round_trip::<v1::FetchRequest>(body),
        7 => round_trip::<v1::SubscribeRequest>(body),
        8 => round_trip::<v1::ListOffsetsRequest>(body),
        9 => round_trip::<v1::CommitOffsetsRequest>(body),
        _ => round_trip::<v1::FetchOffsetsRequest>(body),
    }
});
