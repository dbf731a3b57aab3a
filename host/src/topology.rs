//! What the cluster is made of, as every part of the host sees it: the
//! nodes it is created with, which shard owns a key, and how large a page
//! of a bulk transfer is. A leaf: it imports nothing of the host but the
//! WIT's types.

use crate::bindings::types::{Layout, ShardTag};

/// A node to create the cluster with.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The node's id.
    pub id: String,
    /// Its zone.
    pub zone: String,
    /// How many workers it may host.
    pub capacity: u32,
}

impl NodeSpec {
    /// `count` nodes dealt round-robin over `zones` zones, named `n1..` and
    /// `z1..`, each hosting up to `capacity` workers.
    pub fn spread(count: usize, zones: usize, capacity: u32) -> Vec<NodeSpec> {
        (0..count).map(|i| NodeSpec { id: format!("n{}", i + 1), zone: format!("z{}", i % zones.max(1) + 1), capacity }).collect()
    }
}

/// The shard owning `key`: the team whose range contains it.
pub fn tag_of(layout: &Layout, key: &str) -> ShardTag {
    layout
        .storage_teams
        .iter()
        .find(|t| key >= t.key_range.start.as_str() && (t.key_range.end.is_empty() || key < t.key_range.end.as_str()))
        .or(layout.storage_teams.first())
        .map(|t| t.tag)
        .unwrap_or(0)
}

/// The most a page of a bulk transfer (a log range, a pull, a snapshot)
/// holds, in bytes, unless a worker is told otherwise: a large log moves in
/// many frames, each well under the frame limit.
pub const PAGE_BYTES: usize = 4 << 20;
