//! The demo's two scenarios, each with its table: readers of every kind while prices change
//! ([`readers`]: one [`phase`] per kind, its [`reading`] tasks, and the two-tier cache's
//! breakdown by [`layers`]), then [`eviction`] replayed on one trace.

pub mod eviction;
pub mod layers;
pub mod phase;
pub mod readers;
pub mod reading;

use serde::Serializer;
use two_tier::{Kind, Layer};

/// A variant a table names by its label: its rows carry the variant, and compare variants, never
/// the text they print.
pub trait Labelled: Copy {
    /// The name the table prints.
    fn label(self) -> &'static str;
}

impl Labelled for Kind {
    fn label(self) -> &'static str {
        Kind::label(self)
    }
}

impl Labelled for Layer {
    fn label(self) -> &'static str {
        Layer::label(self)
    }
}

/// Serializes a variant as its label (`#[serde(serialize_with = "by_label")]`), so the JSON report
/// names a row as the table does.
pub fn by_label<T: Labelled, S: Serializer>(variant: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(variant.label())
}
