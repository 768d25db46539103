//! The Lambda runtime identifiers Flint accepts (`python3.12`, `nodejs20.x`, `provided.al2023`, ...)
//! and what each one asks for: a language family and, for managed runtimes, a language version.
//! Lambda's list is data: adding a runtime is one line here.

use crate::Family;

/// One supported runtime id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuntimeId {
    pub id: &'static str,
    pub family: Family,
    /// The language version the id names: (3, 12) for python3.12, (20, 0) for nodejs20.x.
    pub version: Option<(u32, u32)>,
}

const fn python(id: &'static str, minor: u32) -> RuntimeId {
    RuntimeId {
        id,
        family: Family::Python,
        version: Some((3, minor)),
    }
}

const fn node(id: &'static str, major: u32) -> RuntimeId {
    RuntimeId {
        id,
        family: Family::Node,
        version: Some((major, 0)),
    }
}

const fn ruby(id: &'static str, minor: u32) -> RuntimeId {
    RuntimeId {
        id,
        family: Family::Ruby,
        version: Some((3, minor)),
    }
}

/// `java8.al2` names Java 8 as (8, 0); `java21` names (21, 0).
const fn java(id: &'static str, major: u32) -> RuntimeId {
    RuntimeId {
        id,
        family: Family::Java,
        version: Some((major, 0)),
    }
}

const fn provided(id: &'static str) -> RuntimeId {
    RuntimeId {
        id,
        family: Family::Provided,
        version: None,
    }
}

/// Every runtime id Flint runs, in the order `flint runtimes` lists them.
pub(crate) const SUPPORTED: &[RuntimeId] = &[
    python("python3.8", 8),
    python("python3.9", 9),
    python("python3.10", 10),
    python("python3.11", 11),
    python("python3.12", 12),
    python("python3.13", 13),
    python("python3.14", 14),
    python("python3.15", 15),
    node("nodejs18.x", 18),
    node("nodejs20.x", 20),
    node("nodejs22.x", 22),
    node("nodejs24.x", 24),
    node("nodejs26.x", 26),
    ruby("ruby3.2", 2),
    ruby("ruby3.3", 3),
    ruby("ruby3.4", 4),
    java("java8.al2", 8),
    java("java11", 11),
    java("java17", 17),
    java("java21", 21),
    java("java25", 25),
    provided("provided"),
    provided("provided.al2"),
    provided("provided.al2023"),
];

/// The supported runtime with this exact id (Lambda's ids are case-sensitive).
pub(crate) fn lookup(id: &str) -> Option<&'static RuntimeId> {
    SUPPORTED.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_knows_every_python_from_3_8_to_3_15() {
        for minor in 8..=15 {
            let id = format!("python3.{minor}");
            let r = lookup(&id).expect("supported");
            assert_eq!(r.family, Family::Python);
            assert_eq!(r.version, Some((3, minor)));
        }
    }

    #[test]
    fn lookup_rejects_retired_and_malformed_ids() {
        for id in [
            "python3.7",
            "python2.7",
            "nodejs16.x",
            "nodejs20",
            "java22",
            "ruby2.7",
            "",
            "PYTHON3.12",
        ] {
            assert!(lookup(id).is_none(), "{id} must not be supported");
        }
    }

    #[test]
    fn lookup_maps_node_ids_to_their_major_version() {
        assert_eq!(lookup("nodejs22.x").map(|r| r.version), Some(Some((22, 0))));
        assert_eq!(
            lookup("provided.al2").map(|r| r.family),
            Some(Family::Provided)
        );
    }

    #[test]
    fn lookup_maps_ruby_and_java_ids_to_their_language_version() {
        assert_eq!(lookup("ruby3.3").map(|r| r.version), Some(Some((3, 3))));
        assert_eq!(lookup("ruby3.4").map(|r| r.family), Some(Family::Ruby));
        assert_eq!(lookup("java21").map(|r| r.version), Some(Some((21, 0))));
        assert_eq!(lookup("java8.al2").map(|r| r.version), Some(Some((8, 0))));
        assert_eq!(lookup("java17").map(|r| r.family), Some(Family::Java));
    }
}
