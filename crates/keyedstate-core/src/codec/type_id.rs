//! Stable codec ids: the shape of a type as its `Deserialize` implementation asks for it, written
//! as text (`u64`, `(u64,string)`, `option<f64>`, `seq<u8>`, `Event{id:u64,tags:seq<string>}`,
//! `enum Kind{A|B}`). The shape is what decides whether stored bytes decode, and unlike
//! `std::any::type_name` it does not change with the compiler. The grammar is in
//! `docs/formats.md`.
//!
//! The tracer is a deserializer that reads no input: it notes each request of the type's
//! `Deserialize` and answers it with a placeholder value (numbers 1, empty strings, one element
//! per sequence), so that derived implementations walk their whole shape. Recursive types stop
//! at a depth limit (`…`). A type whose `Deserialize` refuses the placeholders is described up to
//! where it refused, then `…`.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

/// Nesting deeper than this is written `…`: recursive types end there.
const MAX_DEPTH: usize = 16;

/// The shape of `T`, as its `Deserialize` implementation asks for it.
pub fn type_shape<T: DeserializeOwned>() -> String {
    let mut out = String::new();
    if T::deserialize(Tracer {
        out: &mut out,
        depth: 0,
    })
    .is_err()
    {
        out.push('…');
    }
    out
}

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the type refused a placeholder value")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

struct Tracer<'a> {
    out: &'a mut String,
    depth: usize,
}

impl Tracer<'_> {
    /// The same tracer, for the next element at this depth.
    fn reborrow(&mut self) -> Tracer<'_> {
        Tracer {
            out: self.out,
            depth: self.depth,
        }
    }

    fn nested(&mut self) -> Tracer<'_> {
        Tracer {
            out: self.out,
            depth: self.depth + 1,
        }
    }

    /// Traces `len` elements, separated by commas and named by `names` when given.
    fn elements<'de, V: Visitor<'de>>(
        mut self,
        open: &str,
        close: &str,
        names: Option<&'static [&'static str]>,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.out.push_str(open);
        let value = visitor.visit_seq(Elements {
            tracer: self.nested(),
            names,
            index: 0,
            len,
        })?;
        self.out.push_str(close);
        Ok(value)
    }
}

macro_rules! primitive {
    ($($method:ident $visit:ident $name:literal $value:expr),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
            self.out.push_str($name);
            visitor.$visit($value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        // Self-describing types cannot be stored in ks1 anyway (see de.rs).
        self.out.push_str("any");
        Err(Stop)
    }

    primitive!(
        deserialize_bool visit_bool "bool" false,
        deserialize_i8 visit_i8 "i8" 1,
        deserialize_i16 visit_i16 "i16" 1,
        deserialize_i32 visit_i32 "i32" 1,
        deserialize_i64 visit_i64 "i64" 1,
        deserialize_i128 visit_i128 "i128" 1,
        deserialize_u8 visit_u8 "u8" 1,
        deserialize_u16 visit_u16 "u16" 1,
        deserialize_u32 visit_u32 "u32" 1,
        deserialize_u64 visit_u64 "u64" 1,
        deserialize_u128 visit_u128 "u128" 1,
        deserialize_f32 visit_f32 "f32" 1.0,
        deserialize_f64 visit_f64 "f64" 1.0,
        deserialize_char visit_char "char" 'a',
        deserialize_str visit_str "string" "",
        deserialize_string visit_str "string" "",
        deserialize_bytes visit_bytes "bytes" &[],
        deserialize_byte_buf visit_bytes "bytes" &[]
    );

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.out.push_str("()");
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Stop> {
        self.out.push_str("option<");
        let value = if self.depth >= MAX_DEPTH {
            self.out.push('…');
            visitor.visit_none()?
        } else {
            visitor.visit_some(self.nested())?
        };
        self.out.push('>');
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.out.push_str(name);
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.out.push_str(name);
        self.out.push('(');
        let value = visitor.visit_newtype_struct(self.nested())?;
        self.out.push(')');
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.out.push_str("seq");
        if self.depth >= MAX_DEPTH {
            // No element is asked for: the type ends here.
            self.out.push_str("<…>");
            return self.elements("", "", None, 0, visitor);
        }
        self.elements("<", ">", None, 1, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Stop> {
        self.elements("(", ")", None, len, v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.out.push_str(name);
        self.elements("(", ")", None, len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Stop> {
        self.out.push_str("map<");
        let entries = usize::from(self.depth < MAX_DEPTH);
        if entries == 0 {
            self.out.push('…');
        }
        let value = visitor.visit_map(Entries {
            tracer: self.nested(),
            left: entries,
        })?;
        self.out.push('>');
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        // A struct holds itself only through a sequence, map or option, which end at the limit.
        self.out.push_str(name);
        self.elements("{", "}", Some(fields), fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        // The variants by name, in order (their indexes are what ks1 stores); their contents
        // are not part of the shape, so the id stays one line for any enum.
        self.out.push_str("enum ");
        self.out.push_str(name);
        self.out.push('{');
        self.out.push_str(&variants.join("|"));
        self.out.push('}');
        visitor.visit_enum(FirstVariant)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_u32(0)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.deserialize_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

struct Elements<'a> {
    tracer: Tracer<'a>,
    names: Option<&'static [&'static str]>,
    index: usize,
    len: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        if self.index == self.len {
            return Ok(None);
        }
        if self.index > 0 {
            self.tracer.out.push(',');
        }
        if let Some(name) = self.names.and_then(|n| n.get(self.index)) {
            self.tracer.out.push_str(name);
            self.tracer.out.push(':');
        }
        self.index += 1;
        seed.deserialize(self.tracer.reborrow()).map(Some)
    }
}

struct Entries<'a> {
    tracer: Tracer<'a>,
    left: usize,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.tracer.reborrow()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        self.tracer.out.push(',');
        seed.deserialize(self.tracer.reborrow())
    }
}

/// Answers an enum with its first variant, whose contents are traced into nothing.
struct FirstVariant;

impl<'de> de::EnumAccess<'de> for FirstVariant {
    type Error = Stop;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Stop> {
        let value = seed.deserialize(IntoDeserializer::<Stop>::into_deserializer(0u32))?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for FirstVariant {
    type Error = Stop;

    fn unit_variant(self) -> Result<(), Stop> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Stop> {
        let mut ignored = String::new();
        seed.deserialize(Tracer {
            out: &mut ignored,
            depth: MAX_DEPTH,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Stop> {
        let mut ignored = String::new();
        Tracer {
            out: &mut ignored,
            depth: MAX_DEPTH,
        }
        .elements("(", ")", None, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        let mut ignored = String::new();
        Tracer {
            out: &mut ignored,
            depth: MAX_DEPTH,
        }
        .elements("{", "}", Some(fields), fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::type_shape;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Event {
        id: u64,
        tags: Vec<String>,
        score: Option<f64>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        A,
        B(u32),
        C { x: i8 },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Tree {
        children: Vec<Tree>,
    }

    #[test]
    fn shapes_name_the_types_as_documented() {
        assert_eq!(type_shape::<u64>(), "u64");
        assert_eq!(type_shape::<i64>(), "i64");
        assert_eq!(type_shape::<String>(), "string");
        assert_eq!(type_shape::<(u64, String)>(), "(u64,string)");
        assert_eq!(type_shape::<Vec<u8>>(), "seq<u8>");
        assert_eq!(type_shape::<Option<f64>>(), "option<f64>");
        assert_eq!(type_shape::<BTreeMap<String, u32>>(), "map<string,u32>");
        assert_eq!(type_shape::<()>(), "()");
        assert_eq!(
            type_shape::<Event>(),
            "Event{id:u64,tags:seq<string>,score:option<f64>}"
        );
        assert_eq!(type_shape::<Kind>(), "enum Kind{A|B|C}");
    }

    #[test]
    fn recursive_types_end_at_the_depth_limit() {
        let shape = type_shape::<Tree>();
        assert!(shape.starts_with("Tree{children:seq<Tree{children:seq<"));
        assert!(shape.ends_with('}'));
        assert!(shape.contains('…'));
    }

    #[test]
    fn a_type_refusing_placeholders_is_described_up_to_there() {
        // NonZeroU64 accepts the placeholder 1; a char in a u8 range check would not, but
        // every std type here traces whole.
        assert_eq!(type_shape::<std::num::NonZeroU64>(), "u64");
        assert_eq!(type_shape::<serde_json_like::Any>(), "any…");
    }

    mod serde_json_like {
        use serde::de::{Deserialize, Deserializer, IgnoredAny};
        pub struct Any;
        impl<'de> Deserialize<'de> for Any {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(IgnoredAny).map(|_| Any)
            }
        }
    }
}
