//! The rules the guard enforces, as types: what a refusal names, and what
//! tests and reports branch on.

use std::fmt;

/// A rule the host enforces whatever the plugins do: the invariants I1–I9
/// and the guarantees S1–S6 they add up to (see `docs/invariants.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Invariant {
    /// I1: every attempt gets a fresh epoch above any issued before.
    EpochsRise,
    /// I2: a service accepts a lock only from an epoch at or above its own.
    LockPrecedence,
    /// I3: before recruitment only services named in the old layout are locked.
    SelectiveLocking,
    /// I4: every change to a service, and every copy source, is locked by the attempt.
    LockedBeforeUse,
    /// I5: with logs in the old layout, the cluster is never initialized anew.
    NoInitialization,
    /// I6: a layout names only services the attempt holds, carries its
    /// epoch and keeps every team at quorum.
    LayoutClosure,
    /// I7: the layout is written with compare-and-swap on the epoch.
    FencedPersistence,
    /// I8: once superseded, every call of the attempt fails.
    SupersededStop,
    /// I9: plugins run sandboxed, bounded in time, fuel and memory.
    Sandbox,
    /// S1: every acknowledged write survives the recovery.
    AcknowledgedWritesSurvive,
    /// S2: no version is issued twice.
    VersionsIssuedOnce,
    /// S3: a persisted layout is a faithful successor of the old one.
    FaithfulLayout,
    /// S4: nothing is staged while a shard lacks the logs that tell what
    /// was acknowledged.
    KnownAcknowledgements,
    /// S5: replica recovery never leaves a replica without a kept version.
    ReplicasKeepVersions,
    /// S6: bad arguments are refused with the rule, never a panic.
    ArgumentsChecked,
}

impl Invariant {
    /// Every rule, in order.
    pub const ALL: [Invariant; 15] = [
        Invariant::EpochsRise,
        Invariant::LockPrecedence,
        Invariant::SelectiveLocking,
        Invariant::LockedBeforeUse,
        Invariant::NoInitialization,
        Invariant::LayoutClosure,
        Invariant::FencedPersistence,
        Invariant::SupersededStop,
        Invariant::Sandbox,
        Invariant::AcknowledgedWritesSurvive,
        Invariant::VersionsIssuedOnce,
        Invariant::FaithfulLayout,
        Invariant::KnownAcknowledgements,
        Invariant::ReplicasKeepVersions,
        Invariant::ArgumentsChecked,
    ];

    /// The rule's short code: `I1`..`I9`, `S1`..`S6`.
    pub fn code(self) -> &'static str {
        match self {
            Invariant::EpochsRise => "I1",
            Invariant::LockPrecedence => "I2",
            Invariant::SelectiveLocking => "I3",
            Invariant::LockedBeforeUse => "I4",
            Invariant::NoInitialization => "I5",
            Invariant::LayoutClosure => "I6",
            Invariant::FencedPersistence => "I7",
            Invariant::SupersededStop => "I8",
            Invariant::Sandbox => "I9",
            Invariant::AcknowledgedWritesSurvive => "S1",
            Invariant::VersionsIssuedOnce => "S2",
            Invariant::FaithfulLayout => "S3",
            Invariant::KnownAcknowledgements => "S4",
            Invariant::ReplicasKeepVersions => "S5",
            Invariant::ArgumentsChecked => "S6",
        }
    }
}

impl From<Invariant> for &'static str {
    fn from(rule: Invariant) -> Self {
        rule.code()
    }
}

impl TryFrom<String> for Invariant {
    type Error = String;

    fn try_from(code: String) -> Result<Self, String> {
        Invariant::ALL.into_iter().find(|rule| rule.code() == code).ok_or_else(|| format!("`{code}` is not a rule (I1-I9, S1-S6)"))
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A call the guard refused: the rule it would have broken, and why.
///
/// Shown as `RULE: message` (`S3: storage team 2 lists storage-7 twice`),
/// which is also what the plugin receives in `cluster-error.refused`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// The rule.
    pub rule: Invariant,
    /// What was wrong, naming the offending ids and figures.
    pub message: String,
}

impl Refusal {
    /// A refusal under `rule`.
    pub fn new(rule: Invariant, message: impl Into<String>) -> Self {
        Refusal { rule, message: message.into() }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_its_own_code() {
        let codes: std::collections::BTreeSet<&str> = Invariant::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Invariant::ALL.len());
        let refusal = Refusal::new(Invariant::FaithfulLayout, "team 2 lists storage-7 twice");
        assert_eq!(refusal.to_string(), "S3: team 2 lists storage-7 twice");
    }
}
