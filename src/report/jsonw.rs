//! Compact JSON writer: the bytes `serde_json::to_writer` writes, written faster.
//!
//! A big report is mostly short strings and field names (about 150 per connection).
//! `serde_json` writes each through `io::Write` in several pieces and escapes field names
//! byte by byte; here a field name is copied as it is (this crate's names need no escaping,
//! asserted in debug builds), and a string is checked eight bytes at a time and copied whole
//! unless it holds a character to escape. Numbers go through `itoa` and `serde_json`'s own
//! float formatting, so the output is the same byte for byte (tested against `serde_json` on
//! every sample and corpus capture). A map key that does not come out as a JSON string is an
//! error, and the caller falls back to `serde_json`.

use serde::ser::{self, Serialize};
use std::fmt;

#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

type Result<T = ()> = std::result::Result<T, Error>;

/// Appends `v` to `out` as compact JSON.
pub fn to_vec<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result {
    v.serialize(&mut Writer { out })
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// Bytes JSON escapes: `"`, `\` and control characters.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any of the eight bytes in `w` needs escaping (SWAR: a byte below 0x20, or equal
/// to `"` or `\`).
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    below_space | has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\')))
        != 0
}

/// Whether `s` holds no byte to escape, read in words: whole ones, then one that ends with the
/// string (overlapping the last whole one), so a short string costs a word check or two, not a
/// loop over its last bytes.
#[inline(always)]
fn clean(s: &[u8]) -> bool {
    let n = s.len();
    let word = |i: usize| -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(w)
    };
    // Four bytes in the low half of a word whose high half is a letter.
    let half = |i: usize| -> u64 {
        let mut w = [b'a'; 8];
        w[..4].copy_from_slice(&s[i..i + 4]);
        u64::from_le_bytes(w)
    };
    match n {
        0..=3 => s.iter().all(|&b| !needs_escape(b)),
        4..=7 => !word_needs_escape(half(0)) && !word_needs_escape(half(n - 4)),
        _ => {
            let mut i = 0;
            while i + 8 <= n {
                if word_needs_escape(word(i)) {
                    return false;
                }
                i += 8;
            }
            i == n || !word_needs_escape(word(n - 8))
        }
    }
}

/// `s` as a JSON string, escaped as `serde_json` escapes it.
fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if clean(bytes) {
        push_short(out, bytes);
    } else {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if !needs_escape(b) {
                continue;
            }
            out.extend_from_slice(&bytes[start..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\x08' => out.extend_from_slice(b"\\b"),
                b'\x0c' => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
    }
    out.push(b'"');
}

/// `,"key":` (or without the comma for the first field), for a field or variant name.
///
/// The names are this crate's own (identifiers, or renames in its models), so they are
/// written as they are, without the escaping check: a report writes millions of them, and
/// this path is a good part of its serialising time. Debug builds (the tests, which write
/// every model) assert that no name needs escaping.
#[inline(always)]
fn write_key(out: &mut Vec<u8>, first: bool, key: &'static str) {
    let k = key.as_bytes();
    debug_assert!(clean(k), "field name {key:?} would need escaping");
    out.reserve(k.len() + 4);
    if first {
        out.push(b'"');
    } else {
        out.extend_from_slice(b",\"");
    }
    push_short(out, k);
    out.extend_from_slice(b"\":");
}

/// Appends `b`; a short one (most of what a report writes: names, numbers, addresses, times)
/// with a copy of a length known at compile time, a few moves instead of a call to `memcpy`.
#[inline(always)]
fn push_short(out: &mut Vec<u8>, b: &[u8]) {
    macro_rules! fixed {
        ($($n:literal)*) => {
            match b.len() {
                $($n => out.extend_from_slice(&b[..$n]),)*
                _ => out.extend_from_slice(b),
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
}

fn int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    push_short(out, itoa::Buffer::new().format(v).as_bytes());
}

fn float<T: Serialize>(out: &mut Vec<u8>, v: T) -> Result {
    serde_json::to_writer(out, &v).map_err(|e| Error(e.to_string()))
}

/// The integer methods of the serializer: each through `itoa`.
macro_rules! integers {
    ($($method:ident : $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result {
            int(self.out, v);
            Ok(())
        }
    )*};
}

/// An array or object being written: whether the next element is the first.
pub struct Compound<'w, 'a> {
    w: &'w mut Writer<'a>,
    first: bool,
    /// Closing bytes (`]`, `}`, or `}}` for a variant wrapped in an object).
    close: &'static [u8],
}

impl<'w, 'a> Compound<'w, 'a> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
        v.serialize(&mut *self.w)
    }

    // Inlined into each model's derived `serialize`, where the name is a constant: its copy
    // then compiles to a few moves of known size.
    #[inline(always)]
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result {
        write_key(self.w.out, self.first, key);
        self.first = false;
        v.serialize(&mut *self.w)
    }

    fn end(self) -> Result {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl<'a> Writer<'a> {
    /// Starts an array or object (`open`), inside `{"variant":` for an enum variant's; the
    /// [`Compound`] writes `close` when it ends.
    fn open(
        &mut self,
        variant: Option<&'static str>,
        open: u8,
        close: &'static [u8],
    ) -> Compound<'_, 'a> {
        if let Some(v) = variant {
            self.out.push(b'{');
            write_key(self.out, true, v);
        }
        self.out.push(open);
        Compound {
            w: self,
            first: true,
            close,
        }
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, v: bool) -> Result {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128
    );
    fn serialize_f32(self, v: f32) -> Result {
        float(self.out, v)
    }
    fn serialize_f64(self, v: f64) -> Result {
        float(self.out, v)
    }
    fn serialize_char(self, v: char) -> Result {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result {
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result {
        self.out.push(b'{');
        write_key(self.out, true, variant);
        v.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Ok(self.open(None, b'[', b"]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Ok(self.open(Some(variant), b'[', b"]}"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Ok(self.open(None, b'{', b"}"))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Self::SerializeStruct> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Ok(self.open(Some(variant), b'{', b"}}"))
    }
}

/// The element and field methods of every compound shape, all through [`Compound`].
macro_rules! elements {
    ($($shape:ident :: $method:ident),*) => {$(
        impl ser::$shape for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result {
                self.element(v)
            }
            fn end(self) -> Result {
                Compound::end(self)
            }
        }
    )*};
}
elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! fields {
    ($($shape:ident),*) => {$(
        impl ser::$shape for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            #[inline(always)]
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result {
                self.field(key, v)
            }
            fn end(self) -> Result {
                Compound::end(self)
            }
        }
    )*};
}
fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    /// A key is written as any value, then must have come out as a JSON string (a string, a
    /// char, a unit variant). Anything else is an error, so the caller uses `serde_json`,
    /// which quotes number and bool keys.
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
        let start = self.w.out.len();
        key.serialize(&mut *self.w)?;
        if self.w.out.get(start) != Some(&b'"') {
            return Err(Error("map key is not a string".into()));
        }
        self.w.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result {
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn same<T: Serialize>(v: &T) {
        let mut ours = Vec::new();
        to_vec(&mut ours, v).expect("writes");
        let theirs = serde_json::to_vec(v).expect("serde_json writes");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[derive(serde::Serialize)]
    enum E {
        Unit,
        New(u8),
        Tup(u8, String),
        Rec { a: Option<f64>, b: Vec<bool> },
    }

    #[derive(serde::Serialize)]
    struct S<'a> {
        s: &'a str,
        n: i64,
        f: f64,
        e: Vec<E>,
        m: BTreeMap<String, u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        c: char,
        t: (u16, ()),
    }

    /// Every byte value in strings (each control character, quote, backslash, DEL, UTF-8 of
    /// several lengths, at every position relative to the eight-byte words), numbers at their
    /// limits, floats that need exponents and non-finite ones, and every kind of value serde
    /// has: the same bytes as `serde_json`.
    #[test]
    fn writes_what_serde_json_writes() {
        let mut text = String::new();
        for b in 0u8..=0x7f {
            text.push(char::from(b));
        }
        text.push_str("é€😀\u{2028}\u{fffd}");
        for start in 0..9 {
            for len in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17] {
                let s: String = text.chars().skip(start * 13).take(len).collect();
                same(&s);
                same(&format!("{}\"{}", "x".repeat(start), s));
            }
        }
        for f in [
            0.0,
            -0.0,
            1.5,
            0.1 + 0.2,
            1e21,
            1e-7,
            123456.789012,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
        ] {
            same(&f);
            same(&(f as f32));
        }
        same(&[i64::MIN, i64::MAX, 0]);
        same(&[u64::MAX, 0]);
        same(&[u128::MAX]);
        let mut m = BTreeMap::new();
        m.insert("k\"1\n".to_string(), 1);
        m.insert(String::new(), 2);
        same(&S {
            s: "a\tb",
            n: -5,
            f: 0.25,
            e: vec![
                E::Unit,
                E::New(3),
                E::Tup(4, "x".into()),
                E::Rec {
                    a: None,
                    b: vec![true, false],
                },
                E::Rec {
                    a: Some(1e300),
                    b: vec![],
                },
            ],
            m,
            skipped: None,
            c: '\u{1}',
            t: (7, ()),
        });
        same(&Some(b"bytes".as_slice()));
    }

    /// Field names are written without escaping: one that would need it is caught in debug
    /// builds, where every model is written by the tests.
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "would need escaping")]
    fn a_field_name_to_escape_is_caught() {
        #[derive(serde::Serialize)]
        struct Q {
            #[serde(rename = "q\"uote")]
            q: u8,
        }
        let _ = to_vec(&mut Vec::new(), &Q { q: 1 });
    }

    #[test]
    fn map_keys_that_are_not_strings_are_an_error() {
        let mut m = BTreeMap::new();
        m.insert(1u8, 2u8);
        assert!(to_vec(&mut Vec::new(), &m).is_err());
        let mut m = BTreeMap::new();
        m.insert(true, 2u8);
        assert!(to_vec(&mut Vec::new(), &m).is_err());
    }
}
