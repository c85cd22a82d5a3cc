//! The encoder of keyedstate's binary format `ks1` (the bytes are in `docs/formats.md`):
//! fixed-width big-endian integers and floats, transformed so that the bytes of two numbers of
//! one type compare as the numbers do; length-prefixed strings, bytes and sequences; nothing
//! for the structure of tuples and structs. The encoding of a value is its only one, so keys
//! may be compared, hashed and assigned to key groups by their bytes.

use crate::key_layout::put_varint;
use serde::ser::{self, Serialize};
use std::fmt;

/// Why a value cannot be encoded.
#[derive(Debug)]
pub struct EncodeError(pub(crate) String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

/// The order-preserving bits of a float: positive numbers get the sign bit set, negative ones
/// are inverted, so the unsigned big-endian bytes order as the numbers (-0.0 just below 0.0,
/// NaNs at the ends).
#[inline]
pub(crate) fn ordered_f64(bits: u64) -> u64 {
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

#[inline]
pub(crate) fn ordered_f32(bits: u32) -> u32 {
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

/// Appends the `ks1` encoding of values to a buffer.
pub struct Encoder<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    #[inline]
    fn len(&mut self, len: usize) {
        put_varint(self.out, len as u64);
    }
}

type Res = Result<(), EncodeError>;

/// Signed integers: two's complement with the sign bit flipped, so they order as numbers.
macro_rules! signed {
    ($($method:ident $ty:ty, $uty:ty),*) => {$(
        #[inline]
        fn $method(self, v: $ty) -> Res {
            self.put(&((v as $uty) ^ (1 << (<$uty>::BITS - 1))).to_be_bytes());
            Ok(())
        }
    )*};
}

macro_rules! unsigned {
    ($($method:ident $ty:ty),*) => {$(
        #[inline]
        fn $method(self, v: $ty) -> Res {
            self.put(&v.to_be_bytes());
            Ok(())
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, v: bool) -> Res {
        self.out.push(u8::from(v));
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Res {
        self.out.push((v as u8) ^ 0x80);
        Ok(())
    }
    signed!(
        serialize_i16 i16, u16,
        serialize_i32 i32, u32,
        serialize_i64 i64, u64,
        serialize_i128 i128, u128
    );
    #[inline]
    fn serialize_u8(self, v: u8) -> Res {
        self.out.push(v);
        Ok(())
    }
    unsigned!(
        serialize_u16 u16,
        serialize_u32 u32,
        serialize_u64 u64,
        serialize_u128 u128
    );
    #[inline]
    fn serialize_f32(self, v: f32) -> Res {
        self.put(&ordered_f32(v.to_bits()).to_be_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Res {
        self.put(&ordered_f64(v.to_bits()).to_be_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Res {
        self.put(&u32::from(v).to_be_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Res {
        self.len(v.len());
        self.put(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Res {
        self.len(v.len());
        self.put(v);
        Ok(())
    }
    fn serialize_none(self) -> Res {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Res {
        self.out.push(1);
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Res {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Res {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, index: u32, _: &'static str) -> Res {
        self.len(index as usize);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> Res {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        v: &T,
    ) -> Res {
        self.len(index as usize);
        v.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, EncodeError> {
        let len = len.ok_or_else(|| {
            EncodeError(
                "a sequence of unknown length cannot be encoded (ks1 prefixes lengths)".into(),
            )
        })?;
        self.len(len);
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        self.len(index as usize);
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, EncodeError> {
        let len = len.ok_or_else(|| {
            EncodeError("a map of unknown length cannot be encoded (ks1 prefixes lengths)".into())
        })?;
        self.len(len);
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        self.len(index as usize);
        Ok(self)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

macro_rules! compound {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = EncodeError;
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
                value.serialize(&mut **self)
            }
            fn end(self) -> Res {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut Encoder<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Res {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

macro_rules! compound_struct {
    ($($trait:ident),*) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = EncodeError;
            fn serialize_field<T: ?Sized + Serialize>(&mut self, _: &'static str, value: &T) -> Res {
                value.serialize(&mut **self)
            }
            fn end(self) -> Res {
                Ok(())
            }
        }
    )*};
}

compound_struct!(SerializeStruct, SerializeStructVariant);
