//! Flat tables whose tag key picks a typed variant (`[robust] aggregator = "krum"`,
//! `[attack] kind = "backdoor"`): the tag is read first, shared keys are taken aside,
//! and the rest of the table is deserialised as the variant's own options struct,
//! whose keys are the only ones accepted. A key of another variant is refused by name
//! while the map is read, so errors keep the key's dotted path (and so its line);
//! internally tagged serde enums would lose both.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};

use crate::ConfigError;

/// A table read tag first. `Self::Shared` collects the keys every variant takes.
pub(super) trait Tagged: Sized {
    /// The tag key (`aggregator`, `kind`).
    const TAG: &'static str;
    /// What the tag names, for messages (`aggregator`, `attack`).
    const WHAT: &'static str;
    /// Every variant's own option keys: one of them given to another variant is "not
    /// an option of" it; any other key is unknown.
    const OPTIONS: &'static [&'static str];
    /// The shared keys, beside the tag.
    const SHARED: &'static [&'static str];
    /// The tag's type.
    type Kind: for<'de> Deserialize<'de> + Copy + fmt::Display;
    /// The shared keys' values.
    type Shared: Default;

    /// The variant when the table has no tag (`None`: the tag is required).
    fn default_kind() -> Option<Self::Kind>;

    /// Reads the value of the shared key `key` into `shared`.
    fn read_shared<'de, A: MapAccess<'de>>(
        shared: &mut Self::Shared,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error>;

    /// The typed variant.
    type Variant;

    /// Whether `key` (not an option of the variant) with the value just read is a
    /// default that earlier versions wrote for every variant, and is skipped.
    fn legacy_default(_key: &str, _value: &toml::Value) -> bool {
        false
    }

    /// The variant `kind` with its options read from `d`.
    fn variant<'de, D: Deserializer<'de>>(
        kind: Self::Kind,
        d: D,
    ) -> Result<Self::Variant, D::Error>;

    /// The whole table from its variant and shared keys.
    fn assemble(variant: Self::Variant, shared: Self::Shared) -> Self;
}

/// Deserialises a [`Tagged`] table.
pub(super) fn deserialize<'de, T: Tagged, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(TaggedVisitor::<T>(PhantomData))
}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: Tagged> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a table with `{}`", T::TAG)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let first = map.next_key::<String>()?;
        if first.as_deref() == Some(T::TAG) {
            let kind: T::Kind = map.next_value()?;
            return read::<T, A>(kind, map);
        }
        // The tag comes later (or not at all): collect the table, then read it tag
        // first. The experiment loader puts tags first, so its errors keep their keys.
        let mut table = toml::Table::new();
        if let Some(first) = first {
            table.insert(first, map.next_value()?);
        }
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value()?;
            table.insert(k, v);
        }
        let kind = match table.remove(T::TAG) {
            Some(v) => T::Kind::deserialize(v).map_err(|e| de::Error::custom(e.message()))?,
            None => T::default_kind().ok_or_else(|| de::Error::missing_field(T::TAG))?,
        };
        read::<T, _>(kind, de::value::MapDeserializer::new(table.into_iter()))
            .map_err(|e: toml::de::Error| de::Error::custom(e.message()))
    }
}

fn read<'de, T: Tagged, A: MapAccess<'de>>(kind: T::Kind, map: A) -> Result<T, A::Error> {
    let mut shared = T::Shared::default();
    let rest = Rest::<T, A> {
        map,
        shared: &mut shared,
        kind,
        fields: &[],
    };
    let variant = T::variant(kind, rest).map_err(|e| required_for::<T, A::Error>(kind, e))?;
    Ok(T::assemble(variant, shared))
}

/// "missing field `x`" from the variant's struct, saying which variant requires it.
fn required_for<T: Tagged, E: de::Error>(kind: T::Kind, e: E) -> E {
    let m = e.to_string();
    let first = m.lines().next().unwrap_or_default();
    match first.strip_prefix("missing field `") {
        Some(rest) if rest.ends_with('`') => {
            de::Error::custom(format!("{first}: is required for {} \"{kind}\"", T::WHAT))
        }
        _ => e,
    }
}

/// The variant `kind` with every option at its default, or an error naming the first
/// option it requires (keyed by the bare option name).
pub(super) fn defaults<T: Tagged>(kind: T::Kind) -> Result<T::Variant, ConfigError> {
    let mut track = serde_path_to_error::Track::new();
    let empty = toml::Value::Table(toml::Table::new());
    T::variant(
        kind,
        serde_path_to_error::Deserializer::new(empty, &mut track),
    )
    .map_err(|e| required_for::<T, toml::de::Error>(kind, e))
    .map_err(|e| super::load::serde_error(&serde_path_to_error::Error::new(track.path(), e)))
}

/// The keys after the tag as a deserializer of the variant's options struct: shared
/// keys are taken aside, a key that is not one of the variant's own is refused by name.
struct Rest<'s, T: Tagged, A> {
    map: A,
    shared: &'s mut T::Shared,
    kind: T::Kind,
    fields: &'static [&'static str],
}

impl<'de, T: Tagged, A: MapAccess<'de>> Deserializer<'de> for Rest<'_, T, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, A::Error> {
        v.visit_map(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, A::Error> {
        self.fields = fields;
        v.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

impl<'de, T: Tagged, A: MapAccess<'de>> MapAccess<'de> for Rest<'_, T, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<String>()? else {
                return Ok(None);
            };
            if key == T::TAG {
                return Err(de::Error::duplicate_field(T::TAG));
            }
            if T::SHARED.contains(&key.as_str()) {
                T::read_shared(self.shared, &key, &mut self.map)?;
                continue;
            }
            if self.fields.contains(&key.as_str()) {
                return seed.deserialize(key.into_deserializer()).map(Some);
            }
            if T::OPTIONS.contains(&key.as_str()) {
                let value: toml::Value = self.map.next_value()?;
                if T::legacy_default(&key, &value) {
                    continue;
                }
                let own = if self.fields.is_empty() {
                    "it has none of its own".to_string()
                } else {
                    format!("its own: {}", self.fields.join(", "))
                };
                return Err(de::Error::custom(format!(
                    "unknown field `{key}`: is not an option of {} \"{}\" ({own})",
                    T::WHAT,
                    self.kind
                )));
            }
            let expected: Vec<String> = std::iter::once(&T::TAG)
                .chain(T::SHARED)
                .chain(self.fields)
                .map(|k| format!("`{k}`"))
                .collect();
            return Err(de::Error::custom(format!(
                "unknown field `{key}`, expected one of {}",
                expected.join(", ")
            )));
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}
