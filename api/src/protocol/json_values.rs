//! Tensor elements as JSON numbers: nested or flat arrays in, flat arrays out.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::{DataType, ProtocolError};

/// One JSON scalar as it arrived, before its datatype is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A string or null: never valid for a numeric tensor.
    Other,
}

/// The `data` of a JSON tensor, with nesting flattened (row-major) and the shape of the
/// nesting remembered.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct FlatValues {
    pub(crate) values: Vec<Scalar>,
    /// The nesting's shape, taken from the first element at each level.
    pub(crate) nested_shape: Vec<usize>,
    /// False when sibling arrays differ in length or scalars sit at different depths.
    pub(crate) regular: bool,
    /// The depth of the first scalar seen.
    leaf_depth: Option<usize>,
}

impl<'de> Deserialize<'de> for FlatValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = FlatValues {
            regular: true,
            ..FlatValues::default()
        };
        deserializer.deserialize_any(FlattenVisitor {
            out: &mut out,
            depth: 0,
        })?;
        Ok(out)
    }
}

struct FlattenVisitor<'a> {
    out: &'a mut FlatValues,
    depth: usize,
}

impl FlattenVisitor<'_> {
    fn push(self, s: Scalar) {
        match self.out.leaf_depth {
            None => self.out.leaf_depth = Some(self.depth),
            Some(d) if d != self.depth => self.out.regular = false,
            Some(_) => {}
        }
        self.out.values.push(s);
    }
}

impl<'de> Visitor<'de> for FlattenVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, a boolean, or a (nested) array of them")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.push(Scalar::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.push(Scalar::Int(v));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.push(Scalar::Uint(v));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.push(Scalar::Float(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.push(Scalar::Other);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.push(Scalar::Other);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth;
        let out = self.out;
        let mut len = 0usize;
        loop {
            let element = seq.next_element_seed(FlattenSeed {
                out: &mut *out,
                depth: depth + 1,
            })?;
            if element.is_none() {
                break;
            }
            len += 1;
        }
        if out.nested_shape.len() <= depth {
            out.nested_shape.resize(depth + 1, usize::MAX);
        }
        if out.nested_shape[depth] == usize::MAX {
            out.nested_shape[depth] = len;
        } else if out.nested_shape[depth] != len {
            out.regular = false;
        }
        Ok(())
    }
}

struct FlattenSeed<'a> {
    out: &'a mut FlatValues,
    depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for FlattenSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(FlattenVisitor {
            out: self.out,
            depth: self.depth,
        })
    }
}

/// Turns JSON scalars into the little-endian bytes of `datatype`, checking each value's range.
pub(crate) fn encode_scalars(
    name: &str,
    datatype: DataType,
    values: &[Scalar],
) -> Result<Vec<u8>, ProtocolError> {
    let size = match datatype.size() {
        Some(size) if datatype.has_json_form() => size,
        _ => {
            return Err(ProtocolError::Unsupported {
                name: name.to_owned(),
                datatype: datatype.to_string(),
                reason: "cannot travel as JSON values; send it as binary data",
            });
        }
    };
    let bad = |v: &Scalar| ProtocolError::BadValue {
        name: name.to_owned(),
        datatype: datatype.to_string(),
        value: match v {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Uint(u) => u.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Other => "(a string or null)".to_owned(),
        },
    };
    let mut out = Vec::with_capacity(values.len() * size);
    macro_rules! ints {
        ($t:ty) => {
            for v in values {
                let x: $t = match *v {
                    Scalar::Int(i) => <$t>::try_from(i).map_err(|_| bad(v))?,
                    Scalar::Uint(u) => <$t>::try_from(u).map_err(|_| bad(v))?,
                    _ => return Err(bad(v)),
                };
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    macro_rules! floats {
        ($t:ty) => {
            for v in values {
                let x = match *v {
                    Scalar::Int(i) => i as $t,
                    Scalar::Uint(u) => u as $t,
                    Scalar::Float(f) => f as $t,
                    _ => return Err(bad(v)),
                };
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match datatype {
        DataType::Bool => {
            for v in values {
                match *v {
                    Scalar::Bool(b) => out.push(u8::from(b)),
                    _ => return Err(bad(v)),
                }
            }
        }
        DataType::Uint8 => ints!(u8),
        DataType::Uint16 => ints!(u16),
        DataType::Uint32 => ints!(u32),
        DataType::Uint64 => ints!(u64),
        DataType::Int8 => ints!(i8),
        DataType::Int16 => ints!(i16),
        DataType::Int32 => ints!(i32),
        DataType::Int64 => ints!(i64),
        DataType::Fp32 => floats!(f32),
        DataType::Fp64 => floats!(f64),
        DataType::Fp16 | DataType::Bf16 | DataType::Bytes => unreachable!("refused above"),
    }
    Ok(out)
}

/// Serializes little-endian tensor bytes as a flat JSON array of numbers.
pub(crate) struct JsonData<'a> {
    pub(crate) datatype: DataType,
    pub(crate) bytes: &'a [u8],
}

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let size = self.datatype.size().unwrap_or(1);
        let mut seq = serializer.serialize_seq(Some(self.bytes.len() / size))?;
        macro_rules! each {
            ($t:ty, $n:expr) => {
                for chunk in self.bytes.chunks_exact($n) {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(chunk);
                    seq.serialize_element(&<$t>::from_le_bytes(a))?;
                }
            };
        }
        match self.datatype {
            DataType::Bool => {
                for b in self.bytes {
                    seq.serialize_element(&(*b != 0))?;
                }
            }
            DataType::Uint8 => each!(u8, 1),
            DataType::Uint16 => each!(u16, 2),
            DataType::Uint32 => each!(u32, 4),
            DataType::Uint64 => each!(u64, 8),
            DataType::Int8 => each!(i8, 1),
            DataType::Int16 => each!(i16, 2),
            DataType::Int32 => each!(i32, 4),
            DataType::Int64 => each!(i64, 8),
            DataType::Fp32 => each!(f32, 4),
            DataType::Fp64 => each!(f64, 8),
            DataType::Fp16 => {
                for chunk in self.bytes.chunks_exact(2) {
                    let v = half::f16::from_le_bytes([chunk[0], chunk[1]]);
                    seq.serialize_element(&v.to_f32())?;
                }
            }
            DataType::Bf16 => {
                for chunk in self.bytes.chunks_exact(2) {
                    let v = half::bf16::from_le_bytes([chunk[0], chunk[1]]);
                    seq.serialize_element(&v.to_f32())?;
                }
            }
            DataType::Bytes => {}
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(json: &str) -> FlatValues {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn nested_arrays_flatten_row_major_and_keep_their_shape() {
        let f = flat("[[1, 2, 3], [4, 5, 6]]");
        assert_eq!(f.nested_shape, vec![2, 3]);
        assert!(f.regular);
        assert_eq!(f.values.len(), 6);
        assert_eq!(f.values[3], Scalar::Uint(4));
    }

    #[test]
    fn ragged_nesting_is_noticed() {
        assert!(!flat("[[1, 2], [3]]").regular);
        assert!(!flat("[1, [2]]").regular);
    }

    #[test]
    fn values_are_range_checked_for_their_type() {
        let ok = encode_scalars("x", DataType::Int8, &flat("[-128, 127]").values).unwrap();
        assert_eq!(ok, vec![0x80, 0x7f]);
        let err = encode_scalars("x", DataType::Uint8, &flat("[256]").values).unwrap_err();
        assert!(
            err.to_string().contains("256 is not a valid UINT8"),
            "{err}"
        );
        assert!(encode_scalars("x", DataType::Int32, &flat("[1.5]").values).is_err());
        assert!(encode_scalars("x", DataType::Bool, &flat("[1]").values).is_err());
        assert!(encode_scalars("x", DataType::Fp16, &flat("[1.0]").values).is_err());
    }

    #[test]
    fn floats_and_bools_round_trip_through_json() {
        let bytes = encode_scalars("x", DataType::Fp32, &flat("[0.5, -2, 3]").values).unwrap();
        let json = serde_json::to_string(&JsonData {
            datatype: DataType::Fp32,
            bytes: &bytes,
        })
        .unwrap();
        assert_eq!(json, "[0.5,-2.0,3.0]");
        let bools = encode_scalars("b", DataType::Bool, &flat("[true, false]").values).unwrap();
        let json = serde_json::to_string(&JsonData {
            datatype: DataType::Bool,
            bytes: &bools,
        })
        .unwrap();
        assert_eq!(json, "[true,false]");
    }
}
