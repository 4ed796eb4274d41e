//! Finding the line and column of a node in a YAML document, by its path.
//!
//! serde gives positions only with errors, so the locator walks the document with a
//! deserializer that fails on purpose at the node it looks for: serde_yaml_ng marks that
//! error with the node's position. It runs only when an error is being reported, on a
//! document that already parsed, so its cost does not matter.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into a YAML document.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The 1-based (line, column) of the node at `path`, if the document has one.
pub fn locate(source: &str, path: &[Seg<'_>]) -> Option<(usize, usize)> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(source);
    match (Probe { path }).deserialize(deserializer) {
        // The walk ended without reaching the node.
        Ok(()) => None,
        Err(error) => error.location().map(|l| (l.line(), l.column())),
    }
}

pub use kiln_cloud::yaml::without_location;

struct Probe<'p, 'a> {
    path: &'p [Seg<'a>],
}

impl<'de> DeserializeSeed<'de> for Probe<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            d.deserialize_any(Hit)
        } else {
            d.deserialize_any(Walk { path: self.path })
        }
    }
}

/// Fails on whatever node it meets, so that the error carries the node's position.
struct Hit;

impl<'de> Visitor<'de> for Hit {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the node being located")
    }
}

/// Walks maps and sequences along the path; scalars on the way mean "not there".
struct Walk<'p, 'a> {
    path: &'p [Seg<'a>],
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Every entry is consumed, found or not: serde_yaml_ng reports a map left half
        // read as an error, which would pass for a hit.
        while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
            match self.path[0] {
                Seg::Key(wanted) if key.as_str() == Some(wanted) => {
                    map.next_value_seed(Probe {
                        path: &self.path[1..],
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let more = match self.path[0] {
                Seg::Index(wanted) if index == wanted => seq
                    .next_element_seed(Probe {
                        path: &self.path[1..],
                    })?
                    .is_some(),
                _ => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        "name: x\nbuild:\n  - name: one\n    run: a\n  - name: two\n    timeout: 3h\n";

    #[test]
    fn locates_keys_and_sequence_items() {
        assert_eq!(locate(DOC, &[Seg::Key("name")]), Some((1, 7)));
        let path = [Seg::Key("build"), Seg::Index(1), Seg::Key("timeout")];
        assert_eq!(locate(DOC, &path), Some((6, 14)));
        let step = [Seg::Key("build"), Seg::Index(0)];
        assert_eq!(locate(DOC, &step), Some((3, 5)));
    }

    #[test]
    fn missing_paths_have_no_position() {
        assert_eq!(locate(DOC, &[Seg::Key("test")]), None);
        assert_eq!(locate(DOC, &[Seg::Key("build"), Seg::Index(5)]), None);
        assert_eq!(locate(DOC, &[Seg::Key("name"), Seg::Key("x")]), None);
    }
}
