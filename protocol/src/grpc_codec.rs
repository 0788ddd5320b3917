//! The gRPC codec of `rill.v1`: prost's, except that a message's buffer is sized once, before encoding.
//!
//! Why: tonic encodes into a growing `BytesMut`. Prost writes a 1 MiB `bytes` field with one exact `reserve`,
//! so the next field (a few bytes) finds the buffer full and makes it grow, copying the megabyte again: a
//! produce or fetch paid for two copies of its record bytes instead of one. Reserving `encoded_len()` first
//! leaves one copy, the one tonic's buffer needs.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// What `tonic_prost_build` puts in the generated clients and servers (`codec_path` in `build.rs`).
#[derive(Debug)]
pub struct SizedProstCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SizedProstCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SizedProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = SizedProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        SizedProstEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub struct SizedProstEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for SizedProstEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf).map_err(|e| Status::internal(format!("cannot encode a {}: {e}", std::any::type_name::<T>())))
    }
}

/// The start of the status message for a message that does not parse.
pub const MALFORMED_MESSAGE: &str = "malformed protobuf message";

#[derive(Debug)]
pub struct ProstDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for ProstDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // INTERNAL, as gRPC's status code guide asks for a message that does not parse (a client reading a broken
        // answer); the broker makes it INVALID_ARGUMENT on its side, where it is the caller's malformed request.
        U::decode(buf).map(Some).map_err(|e| Status::internal(format!("{MALFORMED_MESSAGE}: {e}")))
    }
}
