//! Eight-byte numbers (`u64`, `i64`, `f64`) in `ks1` without serde: the most common keys and
//! values of keyed state, written and read as one 8-byte word on the hot path.
//!
//! Which type a value is, is known at compile time: [`to_ks1`] and [`from_ks1`] downcast through
//! `Any` on a concrete `T`, so the branches for other types are removed and what is left is a
//! byte swap. Their bytes are `ks1`'s (a test holds them to [`super::encode`]).

use super::Codec;
use super::de::unordered_f64;
use super::ser::ordered_f64;
use crate::error::Result;
use std::any::Any;
use std::sync::Arc;

/// `value`'s `ks1` encoding when it is a `u64`, an `i64` or an `f64`; `None` for every other
/// type.
#[inline(always)]
pub(crate) fn to_ks1<T: 'static>(value: &T) -> Option<[u8; 8]> {
    let any: &dyn Any = value;
    let word = if let Some(v) = any.downcast_ref::<u64>() {
        *v
    } else if let Some(v) = any.downcast_ref::<i64>() {
        // ks1 flips a signed integer's sign bit, so that the bytes order as the numbers.
        (*v as u64) ^ (1 << 63)
    } else {
        ordered_f64(any.downcast_ref::<f64>()?.to_bits())
    };
    Some(word.to_be_bytes())
}

/// The `u64`, `i64` or `f64` whose `ks1` encoding is `bytes`; `None` for every other type, and
/// for bytes that are not eight long (left to the codec, whose error names what is wrong).
#[inline(always)]
pub(crate) fn from_ks1<T: 'static>(bytes: &[u8]) -> Option<T> {
    let word = u64::from_be_bytes(bytes.try_into().ok()?);
    let mut out: Option<T> = None;
    let any: &mut dyn Any = &mut out;
    if let Some(v) = any.downcast_mut::<Option<u64>>() {
        *v = Some(word);
    } else if let Some(v) = any.downcast_mut::<Option<i64>>() {
        *v = Some((word ^ (1 << 63)) as i64);
    } else if let Some(v) = any.downcast_mut::<Option<f64>>() {
        *v = Some(f64::from_bits(unordered_f64(word)));
    }
    out
}

/// A state's value codec as its handle holds it: the descriptor's codec, and whether that codec
/// writes `ks1` (the default), so that `u64`, `i64` and `f64` values are encoded and decoded in place
/// instead of through a dynamic call and serde.
pub(crate) struct HandleCodec<T> {
    codec: Arc<dyn Codec<T>>,
    ks1: bool,
}

impl<T: 'static> HandleCodec<T> {
    pub(crate) fn new(codec: Arc<dyn Codec<T>>) -> Self {
        let ks1 = codec.writes_ks1_eight_bytes();
        HandleCodec { codec, ks1 }
    }

    /// `value`'s encoding when it is one 8-byte word written in place (see [`Self::encode`]):
    /// for callers that keep it on the stack instead of in a buffer.
    #[inline(always)]
    pub(crate) fn eight_bytes(&self, value: &T) -> Option<[u8; 8]> {
        to_ks1(value).filter(|_| self.ks1)
    }

    /// `value`'s encoding: in `word` when it is one 8-byte word (see [`Self::eight_bytes`]),
    /// else in `buf` (cleared first).
    #[inline(always)]
    pub(crate) fn encoded<'b>(
        &self,
        value: &T,
        word: &'b mut [u8; 8],
        buf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8]> {
        if let Some(bytes) = self.eight_bytes(value) {
            *word = bytes;
            return Ok(word);
        }
        buf.clear();
        self.codec.encode(value, buf)?;
        Ok(buf)
    }
}

impl<T: 'static> Codec<T> for HandleCodec<T> {
    fn id(&self) -> &str {
        self.codec.id()
    }

    #[inline]
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        match self.eight_bytes(value) {
            Some(bytes) => {
                out.extend_from_slice(&bytes);
                Ok(())
            }
            None => self.codec.encode(value, out),
        }
    }

    #[inline]
    fn decode(&self, bytes: &[u8]) -> Result<T> {
        match from_ks1(bytes) {
            Some(value) if self.ks1 => Ok(value),
            _ => self.codec.decode(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{BincodeCodec, StateCodec};

    #[test]
    fn the_in_place_bytes_are_those_of_ks1() {
        for v in [0u64, 1, 42, 1 << 63, u64::MAX] {
            let mut expected = Vec::new();
            crate::codec::encode(&v, &mut expected).unwrap();
            assert_eq!(to_ks1(&v).map(|b| b.to_vec()), Some(expected.clone()));
            assert_eq!(from_ks1::<u64>(&expected), Some(v));
        }
        for v in [0i64, 1, -1, i64::MIN, i64::MAX] {
            let mut expected = Vec::new();
            crate::codec::encode(&v, &mut expected).unwrap();
            assert_eq!(to_ks1(&v).map(|b| b.to_vec()), Some(expected.clone()));
            assert_eq!(from_ks1::<i64>(&expected), Some(v));
        }
        for v in [
            0.0f64,
            -0.0,
            1.5,
            -1.5,
            f64::MIN,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
        ] {
            let mut expected = Vec::new();
            crate::codec::encode(&v, &mut expected).unwrap();
            assert_eq!(to_ks1(&v).map(|b| b.to_vec()), Some(expected.clone()));
            let decoded = from_ks1::<f64>(&expected).map(f64::to_bits);
            assert_eq!(decoded, Some(v.to_bits()));
        }
        assert_eq!(to_ks1(&7u32), None);
        assert_eq!(to_ks1(&1.5f32), None);
        assert_eq!(from_ks1::<u32>(&[0; 8]), None);
        assert_eq!(from_ks1::<u64>(&[0; 7]), None);
    }

    #[test]
    fn a_handle_codec_writes_and_reads_what_its_codec_does() {
        fn check<
            T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
        >(
            codec: Arc<dyn Codec<T>>,
            value: T,
        ) {
            let handle = HandleCodec::new(codec.clone());
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            handle.encode(&value, &mut ours).unwrap();
            codec.encode(&value, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "{}", codec.id());
            assert_eq!(handle.decode(&ours).unwrap(), value);
            assert_eq!(handle.id(), codec.id());
        }
        check::<u64>(Arc::new(StateCodec::new()), 7);
        check::<i64>(Arc::new(StateCodec::new()), -7);
        check::<u64>(Arc::new(BincodeCodec::new()), 300);
        check::<i64>(Arc::new(BincodeCodec::new()), -300);
        check::<f64>(Arc::new(StateCodec::new()), -2.5);
        check::<f64>(Arc::new(BincodeCodec::new()), 2.5);
        check::<String>(Arc::new(StateCodec::new()), "seven".into());
        // The codec's limit stays the codec's: below eight bytes, nothing is decoded in place.
        let small: Arc<dyn Codec<u64>> = Arc::new(StateCodec::new().with_limit(4).unwrap());
        assert!(HandleCodec::new(small).decode(&[0; 8]).is_err());
        // Wrong lengths get the codec's error.
        let codec: Arc<dyn Codec<u64>> = Arc::new(StateCodec::new());
        assert!(HandleCodec::new(codec).decode(&[0; 9]).is_err());
    }
}
