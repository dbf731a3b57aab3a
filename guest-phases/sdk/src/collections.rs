//! Hash maps and sets for indexing a layout by service id.
//!
//! A layout of a large cluster holds thousands of services, and a phase that
//! looks ids up in a `BTreeMap` compares whole strings a dozen times per
//! lookup. Inside a component that comparison is a byte-at-a-time `memcmp`,
//! which made such lookups the largest single cost of a 1,000-node recovery.
//! These maps hash each id once instead.
//!
//! They hash with rustc's Fx hash, a few multiplications per eight bytes,
//! instead of std's SipHash, which is built to resist crafted keys and costs
//! several times more on a short id. The ids come from the host, not from an
//! adversary, and the hash is fixed, so a run is reproducible whatever seed
//! the sandbox gives. Iteration order is arbitrary: use these for lookups,
//! and a `BTreeMap` where the order of the output matters.

pub use rustc_hash::{FxHashMap as IdMap, FxHashSet as IdSet};
