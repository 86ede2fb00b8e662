//! The protobuf codec of the generated gRPC service: `tonic_prost`'s, except that a message
//! that does not decode is the sender's fault. `tonic_prost` answers `INTERNAL` to a
//! truncated or garbled `ModelInferRequest`, which tells a client the server broke; this
//! codec answers `INVALID_ARGUMENT`, as a malformed REST body gets 400.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// `ProstCodec` with decode failures answered `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ProtobufCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtobufCodec<T, U> {
    fn default() -> Self {
        Self {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for ProtobufCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = SenderFaultDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        SenderFaultDecoder(ProstCodec::<T, U>::raw_decoder(BufferSettings::default()))
    }
}

/// `ProstDecoder`, its failures turned into `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct SenderFaultDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for SenderFaultDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(src).map_err(|status| match status.code() {
            Code::Internal => Status::invalid_argument(format!(
                "the message does not decode as protobuf: {}",
                status.message()
            )),
            _ => status,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
