//! Value codecs. The default, [`StateCodec`], is serde with keyedstate's own binary format
//! `ks1` (`docs/formats.md`): fixed-width, order-preserving integers and floats, so that map
//! keys iterate in numeric order and the hot path encodes a `u64` in a few instructions. Keys and
//! namespaces are always `ks1`. bincode 2 stays available as [`BincodeCodec`] (it is no longer
//! developed upstream: pinned, behind [`Codec`]).
//!
//! Codec ids are stable: the format's name and the type's shape ([`type_shape`]), never
//! `std::any::type_name`.

mod de;
mod eight_bytes;
mod ser;
mod type_id;

pub use de::DecodeError;
pub(crate) use eight_bytes::{HandleCodec, to_ks1};
pub use ser::EncodeError;
pub use type_id::type_shape;

use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// The largest decode limit any codec may be configured with: 256 MiB.
pub const MAX_DECODE_LIMIT: usize = 256 << 20;

/// The default limit on one encoded value: 64 MiB.
pub const DEFAULT_DECODE_LIMIT: usize = 64 << 20;

/// The name of keyedstate's binary format in codec ids (`ks1:<shape>`).
pub const KS1: &str = "ks1";

/// Turns values into bytes and back. Implementations must be deterministic: equal values give
/// equal bytes, because keys are compared, hashed and assigned to key groups by their bytes.
pub trait Codec<T>: Send + Sync + 'static {
    /// Identifies the encoding and the type; a state re-registered with another id is
    /// incompatible.
    fn id(&self) -> &str;

    /// Appends the encoding of `value` to `out`.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<()>;

    /// Decodes exactly `bytes` (trailing bytes are corruption).
    fn decode(&self, bytes: &[u8]) -> Result<T>;

    /// Whether this codec encodes a `u64`, an `i64` or an `f64` as `ks1` does, and admits eight-byte
    /// values: then the state handles encode and decode those in place, without calling it.
    #[doc(hidden)]
    fn writes_ks1_eight_bytes(&self) -> bool {
        false
    }
}

/// The checks every serde codec applies: the id and the limit on one encoded value, checked
/// on encode and before decode.
struct Limits {
    id: String,
    limit: usize,
}

impl Limits {
    fn set_limit(&mut self, limit: usize) -> Result<()> {
        if limit == 0 || limit > MAX_DECODE_LIMIT {
            return Err(Error::invalid_argument(format!(
                "decode limit {limit} is outside 1..={MAX_DECODE_LIMIT}"
            )));
        }
        self.limit = limit;
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<()> {
        let start = out.len();
        if let Err(e) = f(out) {
            out.truncate(start);
            return Err(e);
        }
        let len = out.len() - start;
        if len > self.limit {
            out.truncate(start);
            return Err(Error::invalid_argument(format!(
                "encoded value of {len} bytes exceeds the codec's limit of {} bytes",
                self.limit
            )));
        }
        Ok(())
    }

    #[inline]
    fn check_decode(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() > self.limit {
            return Err(self.over_limit(bytes.len()));
        }
        Ok(())
    }

    #[cold]
    fn over_limit(&self, len: usize) -> Error {
        Error::invalid_argument(format!(
            "stored value of {len} bytes exceeds the codec's decode limit of {} bytes",
            self.limit
        ))
    }
}

/// A serde data format a [`SerdeCodec`] encodes with.
pub trait Format: Send + Sync + 'static {
    /// The format's name, the first part of codec ids.
    const NAME: &'static str;
    /// Whether this is `ks1` (whose `u64`s, `i64`s and `f64`s the state handles write themselves).
    #[doc(hidden)]
    const IS_KS1: bool = false;
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()>;
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T>;
}

/// keyedstate's binary format (`docs/formats.md`).
pub struct Ks1;

impl Format for Ks1 {
    const NAME: &'static str = KS1;
    const IS_KS1: bool = true;
    #[inline]
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        encode(value, out)
    }
    #[inline]
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        decode(bytes)
    }
}

/// bincode 2, standard configuration (little endian, varint integers).
pub struct Bincode2;

impl Format for Bincode2 {
    const NAME: &'static str = "bincode2";
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        bincode_encode(value, out)
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        bincode_decode(bytes)
    }
}

/// serde + a [`Format`], with a limit on the size of one encoded value, checked on encode and
/// before decode.
pub struct SerdeCodec<T, F> {
    limits: Limits,
    _type: PhantomData<fn(T, F) -> T>,
}

/// serde + `ks1`, the default codec of every state descriptor.
pub type StateCodec<T> = SerdeCodec<T, Ks1>;

/// serde + bincode 2, for callers that want bincode's bytes (it is no longer developed
/// upstream: pinned).
pub type BincodeCodec<T> = SerdeCodec<T, Bincode2>;

impl<T: Serialize + DeserializeOwned, F: Format> SerdeCodec<T, F> {
    /// A codec with the default limit, identified by the format and the type's shape:
    /// `<format>:<shape>`.
    pub fn new() -> Self {
        SerdeCodec {
            limits: Limits {
                id: format!("{}:{}", F::NAME, type_shape::<T>()),
                limit: DEFAULT_DECODE_LIMIT,
            },
            _type: PhantomData,
        }
    }

    /// Replaces the shape part of the id, for a type whose shape changes while its encoding
    /// stays compatible (a renamed struct), or one the shape does not tell apart.
    pub fn with_type_id(mut self, type_id: &str) -> Self {
        self.limits.id = format!("{}:{type_id}", F::NAME);
        self
    }

    /// Sets the limit on one encoded value, at most [`MAX_DECODE_LIMIT`].
    pub fn with_limit(mut self, limit: usize) -> Result<Self> {
        self.limits.set_limit(limit)?;
        Ok(self)
    }

    pub fn limit(&self) -> usize {
        self.limits.limit
    }
}

impl<T: Serialize + DeserializeOwned, F: Format> Default for SerdeCodec<T, F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Serialize + DeserializeOwned + 'static, F: Format> Codec<T> for SerdeCodec<T, F> {
    fn id(&self) -> &str {
        &self.limits.id
    }

    #[inline]
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        self.limits.encode(out, |out| F::encode(value, out))
    }

    #[inline]
    fn decode(&self, bytes: &[u8]) -> Result<T> {
        self.limits.check_decode(bytes)?;
        F::decode(bytes)
    }

    fn writes_ks1_eight_bytes(&self) -> bool {
        F::IS_KS1 && self.limits.limit >= 8
    }
}

/// Appends the `ks1` encoding of `value` (keys and namespaces are encoded this way).
#[inline]
pub fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    value
        .serialize(&mut ser::Encoder { out })
        .map_err(|e| Error::invalid_argument(format!("cannot encode: {e}")))
}

/// Decodes exactly `bytes` as `ks1`.
#[inline]
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut decoder = de::Decoder { input: bytes };
    let value = T::deserialize(&mut decoder)
        .map_err(|e| Error::corruption(format!("cannot decode: {e}")))?;
    if !decoder.input.is_empty() {
        return Err(Error::corruption(format!(
            "{} trailing bytes after decoding",
            decoder.input.len()
        )));
    }
    Ok(value)
}

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_DECODE_LIMIT>,
>;

// Besides the runtime limit, bincode's own limit caps what any length read from corrupt bytes
// may claim before allocating.
const CONFIG: Config = bincode::config::standard().with_limit::<MAX_DECODE_LIMIT>();

/// Appends the bincode encoding of `value` (keys and namespaces are encoded this way).
pub fn bincode_encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    bincode::serde::encode_into_std_write(value, out, CONFIG)
        .map(drop)
        .map_err(|e| Error::invalid_argument(format!("cannot encode: {e}")))
}

/// Decodes exactly `bytes` as bincode.
pub fn bincode_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, CONFIG)
        .map_err(|e| Error::corruption(format!("cannot decode: {e}")))?;
    if read != bytes.len() {
        return Err(Error::corruption(format!(
            "{} trailing bytes after decoding",
            bytes.len() - read
        )));
    }
    Ok(value)
}
