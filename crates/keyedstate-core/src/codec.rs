//! Value codecs. bincode 2 is no longer developed upstream, so it stays behind [`Codec`] and is
//! pinned; another codec can replace it without touching the backends.

use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// The largest decode limit any codec may be configured with: 256 MiB.
pub const MAX_DECODE_LIMIT: usize = 256 << 20;

/// The default limit on one encoded value: 64 MiB.
pub const DEFAULT_DECODE_LIMIT: usize = 64 << 20;

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
}

/// serde + bincode 2, standard configuration (little endian, varint integers), with a limit on
/// the size of one encoded value, checked on encode and before decode.
pub struct BincodeCodec<T> {
    id: String,
    limit: usize,
    _type: PhantomData<fn(T) -> T>,
}

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_DECODE_LIMIT>,
>;

// Besides the runtime limit, bincode's own limit caps what any length read from corrupt bytes
// may claim before allocating.
const CONFIG: Config = bincode::config::standard().with_limit::<MAX_DECODE_LIMIT>();

impl<T: Serialize + DeserializeOwned> BincodeCodec<T> {
    /// A codec with the default limit, identified by the Rust type name.
    pub fn new() -> Self {
        BincodeCodec {
            id: format!("bincode2:{}", std::any::type_name::<T>()),
            limit: DEFAULT_DECODE_LIMIT,
            _type: PhantomData,
        }
    }

    /// Replaces the type part of the id, for a type whose Rust name may change (a renamed
    /// struct with the same encoding stays compatible).
    pub fn with_type_id(mut self, type_id: &str) -> Self {
        self.id = format!("bincode2:{type_id}");
        self
    }

    /// Sets the limit on one encoded value, at most [`MAX_DECODE_LIMIT`].
    pub fn with_limit(mut self, limit: usize) -> Result<Self> {
        if limit == 0 || limit > MAX_DECODE_LIMIT {
            return Err(Error::invalid_argument(format!(
                "decode limit {limit} is outside 1..={MAX_DECODE_LIMIT}"
            )));
        }
        self.limit = limit;
        Ok(self)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl<T: Serialize + DeserializeOwned> Default for BincodeCodec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> for BincodeCodec<T> {
    fn id(&self) -> &str {
        &self.id
    }

    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        if let Err(e) = bincode_encode(value, out) {
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

    fn decode(&self, bytes: &[u8]) -> Result<T> {
        if bytes.len() > self.limit {
            return Err(Error::invalid_argument(format!(
                "stored value of {} bytes exceeds the codec's decode limit of {} bytes",
                bytes.len(),
                self.limit
            )));
        }
        bincode_decode(bytes)
    }
}

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
