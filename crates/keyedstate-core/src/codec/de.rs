//! The decoder of `ks1` (see `ser.rs` and `docs/formats.md`). It reads from a slice and never
//! allocates more than the input could hold: every length is checked against the bytes left
//! before anything is taken, and sequences report no more elements than bytes remain.

use super::ser::{ordered_f32, ordered_f64};
use crate::key_layout::get_varint;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

/// Why bytes do not decode.
#[derive(Debug)]
pub struct DecodeError(pub(crate) String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError(msg.to_string())
    }
}

type Res<T> = Result<T, DecodeError>;

/// The bits of the `f64` whose `ks1` bits ([`ordered_f64`]) are `stored`.
#[inline]
pub(crate) fn unordered_f64(stored: u64) -> u64 {
    let bits = if stored >> 63 == 1 {
        stored & !(1 << 63)
    } else {
        !stored
    };
    debug_assert_eq!(ordered_f64(bits), stored);
    bits
}

/// Reads `ks1` values from the front of a slice.
pub struct Decoder<'de> {
    pub(crate) input: &'de [u8],
}

impl<'de> Decoder<'de> {
    #[inline]
    fn take<const N: usize>(&mut self) -> Res<[u8; N]> {
        match self.input.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.input = rest;
                Ok(*head)
            }
            None => Err(DecodeError(format!(
                "{N} bytes wanted, {} left",
                self.input.len()
            ))),
        }
    }

    fn len(&mut self) -> Res<usize> {
        let (len, rest) = get_varint(self.input).map_err(|e| DecodeError(e.to_string()))?;
        self.input = rest;
        usize::try_from(len).map_err(|_| DecodeError(format!("length {len} overflows")))
    }

    fn slice(&mut self) -> Res<&'de [u8]> {
        let len = self.len()?;
        if len > self.input.len() {
            return Err(DecodeError(format!(
                "length {len} but only {} bytes left",
                self.input.len()
            )));
        }
        let (head, rest) = self.input.split_at(len);
        self.input = rest;
        Ok(head)
    }

    fn str(&mut self) -> Res<&'de str> {
        std::str::from_utf8(self.slice()?).map_err(|e| DecodeError(format!("a string: {e}")))
    }

    fn variant(&mut self) -> Res<u32> {
        let index = self.len()?;
        u32::try_from(index).map_err(|_| DecodeError(format!("variant index {index} overflows")))
    }
}

macro_rules! unsigned {
    ($($method:ident $visit:ident $ty:ty),*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
            visitor.$visit(<$ty>::from_be_bytes(self.take()?))
        }
    )*};
}

macro_rules! signed {
    ($($method:ident $visit:ident $ty:ty, $uty:ty),*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
            let bits = <$uty>::from_be_bytes(self.take()?) ^ (1 << (<$uty>::BITS - 1));
            visitor.$visit(bits as $ty)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Res<V::Value> {
        Err(DecodeError(
            "ks1 is not self-describing: a type that decodes with deserialize_any \
             (untagged or internally tagged enums, flatten) cannot be stored with it"
                .into(),
        ))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.take::<1>()?[0] {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(DecodeError(format!("bool byte {b}"))),
        }
    }

    unsigned!(
        deserialize_u8 visit_u8 u8,
        deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32,
        deserialize_u64 visit_u64 u64,
        deserialize_u128 visit_u128 u128
    );

    signed!(
        deserialize_i8 visit_i8 i8, u8,
        deserialize_i16 visit_i16 i16, u16,
        deserialize_i32 visit_i32 i32, u32,
        deserialize_i64 visit_i64 i64, u64,
        deserialize_i128 visit_i128 i128, u128
    );

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        // The transform is its own inverse once the sign bit tells which way it went.
        let stored = u32::from_be_bytes(self.take()?);
        let bits = if stored >> 31 == 1 {
            stored & !(1 << 31)
        } else {
            !stored
        };
        debug_assert_eq!(ordered_f32(bits), stored);
        visitor.visit_f32(f32::from_bits(bits))
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let stored = u64::from_be_bytes(self.take()?);
        visitor.visit_f64(f64::from_bits(unordered_f64(stored)))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let code = u32::from_be_bytes(self.take()?);
        let c = char::from_u32(code).ok_or_else(|| DecodeError(format!("char {code:#x}")))?;
        visitor.visit_char(c)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_borrowed_bytes(self.slice()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_borrowed_bytes(self.slice()?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.take::<1>()?[0] {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            b => Err(DecodeError(format!("option tag {b}"))),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Res<V::Value> {
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Res<V::Value> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let len = self.len()?;
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Res<V::Value> {
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let len = self.len()?;
        visitor.visit_map(Elements {
            de: self,
            left: len,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_seq(Elements {
            de: self,
            left: fields.len(),
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_u32(self.variant()?)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Res<V::Value> {
        self.deserialize_any(v)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple, struct or map.
struct Elements<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Res<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // Every element takes a byte at least (but zero-sized ones): a corrupt length cannot
        // make a collection reserve more than the input holds.
        Some(self.left.min(self.de.input.len()))
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, 'de> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Res<V::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(self.de.input.len()))
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = DecodeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Res<(V::Value, Self)> {
        let index = self.variant()?;
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = DecodeError;

    fn unit_variant(self) -> Res<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Res<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Res<V::Value> {
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_seq(Elements {
            de: self,
            left: fields.len(),
        })
    }
}
