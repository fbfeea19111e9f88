//! The variants a demo compares, declared once.
//!
//! Every lesson runs several versions of one idea side by side: five stampede strategies, eight
//! invalidation strategies, four readers, write modes. Each needs a name to match on, a label for
//! the report, a slug for keys and flags, and the list of all of them that the demo walks. Written
//! by hand, those are four lists kept in step by hand, and a variant missing from one of them still
//! compiles: the demo skips it silently. [`variants!`](crate::variants) writes all four from one.
//!
//! What building a variant means differs per lesson, so that stays a `match` in the lesson; a
//! `match` on the kind without a wildcard arm fails to compile when a variant is added and not
//! built, which is the check wanted.

/// The serde the generated `Serialize` names, so that a lesson need not depend on it by name.
#[doc(hidden)]
pub use serde;

/// Declares an enum of the variants a demo compares, each with its slug and its label, and gives
/// it `ALL` (every variant, in the order written), `label()`, `slug()`, `from_slug()`, and
/// `Display` and `Serialize` as the label.
///
/// ```
/// shared::variants! {
///     /// How a write reaches the cache.
///     pub enum Mode {
///         /// Commit, then store.
///         Through = ("through", "write-through"),
///         /// Store and queue; a flusher commits later.
///         Behind = ("behind", "write-behind"),
///     }
/// }
/// assert_eq!(Mode::ALL, [Mode::Through, Mode::Behind]);
/// assert_eq!(Mode::Behind.label(), "write-behind");
/// assert_eq!(Mode::from_slug("through"), Some(Mode::Through));
/// assert_eq!(Mode::Through.to_string(), "write-through");
/// ```
#[macro_export]
macro_rules! variants {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = ($slug:literal, $label:literal)
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in the order of the declaration (the order of the chapter).
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The name reports and tables use.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// A short name for flags, keys and namespaces.
            pub fn slug(self) -> &'static str {
                match self {
                    $($name::$variant => $slug,)+
                }
            }

            /// The variant whose slug is `slug`.
            pub fn from_slug(slug: &str) -> Option<$name> {
                $name::ALL.into_iter().find(|variant| variant.slug() == slug)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }

        /// A report in JSON names the variant as its table does, by its label.
        impl $crate::variants::serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> Result<S::Ok, S::Error>
            where
                S: $crate::variants::serde::Serializer,
            {
                serializer.serialize_str(self.label())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::variants! {
        /// Three variants.
        enum Count {
            /// The first.
            One = ("one", "One"),
            /// The second.
            Two = ("two", "Two"),
            /// The third.
            Three = ("three", "Three"),
        }
    }

    #[test]
    fn every_variant_is_listed_once_in_order_with_its_names() {
        assert_eq!(Count::ALL, [Count::One, Count::Two, Count::Three]);
        let slugs: Vec<_> = Count::ALL.iter().map(|v| v.slug()).collect();
        assert_eq!(slugs, ["one", "two", "three"]);
        for variant in Count::ALL {
            assert_eq!(Count::from_slug(variant.slug()), Some(variant));
            assert_eq!(variant.to_string(), variant.label());
        }
        assert_eq!(Count::from_slug("four"), None);
    }
}
