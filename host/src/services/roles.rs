//! The stateless roles of a generation: sequencer, commit proxy, resolver.
//! Each is fenced by the epoch of the generation that started it.

use super::ServiceError;
use crate::bindings::types::{Epoch, Version};

/// The fence every role carries: the generation it serves, and whether a
/// newer generation has stopped it.
#[derive(Clone, Debug)]
struct Fence {
    epoch: Epoch,
    /// The newest generation that stopped the role, if any.
    stopped_by: Option<Epoch>,
}

impl Fence {
    fn new(epoch: Epoch) -> Self {
        Fence { epoch, stopped_by: None }
    }

    /// Stops the role: a newer (or the same) generation has locked it. A
    /// generation older than one that already stopped it is refused, as a
    /// log refuses a lock below its holder: it has been superseded.
    fn stop(&mut self, by: Epoch) -> Result<(), ServiceError> {
        let fence = self.newest();
        if by < fence {
            return Err(ServiceError::Superseded(fence));
        }
        self.stopped_by = Some(by);
        Ok(())
    }

    /// The newest generation that holds the role: its own, or the one that
    /// stopped it.
    fn newest(&self) -> Epoch {
        self.stopped_by.unwrap_or(self.epoch).max(self.epoch)
    }

    /// Admits a request of generation `epoch`.
    fn admit(&self, epoch: Epoch) -> Result<(), ServiceError> {
        if let Some(by) = self.stopped_by {
            return Err(ServiceError::Stopped { serving: self.epoch, by });
        }
        if epoch != self.epoch {
            return Err(ServiceError::Fenced { serving: self.epoch, request: epoch });
        }
        Ok(())
    }
}

/// Hands out commit versions for one generation.
#[derive(Clone, Debug)]
pub struct Sequencer {
    fence: Fence,
    last: Version,
}

impl Sequencer {
    /// A sequencer for generation `epoch` whose first version follows `start`.
    pub fn new(epoch: Epoch, start: Version) -> Self {
        Sequencer { fence: Fence::new(epoch), last: start }
    }

    /// The next `(prev, version)` pair for a commit of generation `epoch`.
    pub fn next_version(&mut self, epoch: Epoch) -> Result<(Version, Version), ServiceError> {
        self.fence.admit(epoch)?;
        let prev = self.last;
        self.last = prev.checked_add(1).ok_or(ServiceError::VersionsExhausted(prev))?;
        Ok((prev, self.last))
    }

    /// Stops the sequencer: a newer generation has locked it.
    pub fn stop(&mut self, by: Epoch) -> Result<(), ServiceError> {
        self.fence.stop(by)
    }

    /// The newest generation that holds it: its own, or the one that
    /// stopped it.
    pub fn holder(&self) -> Epoch {
        self.fence.newest()
    }

    /// The generation it serves.
    pub fn epoch(&self) -> Epoch {
        self.fence.epoch
    }

    /// Whether it serves generation `epoch` (it has not been stopped).
    pub fn serves(&self, epoch: Epoch) -> bool {
        self.fence.admit(epoch).is_ok()
    }
}

/// Accepts commits for one generation, once unlocked.
#[derive(Clone, Debug)]
pub struct CommitProxy {
    fence: Fence,
    open: bool,
}

impl CommitProxy {
    /// A proxy for generation `epoch`; it accepts commits once unlocked.
    pub fn new(epoch: Epoch) -> Self {
        CommitProxy { fence: Fence::new(epoch), open: false }
    }

    /// Opens the proxy against its generation's layout.
    pub fn unlock(&mut self, epoch: Epoch) -> Result<(), ServiceError> {
        self.fence.admit(epoch)?;
        self.open = true;
        Ok(())
    }

    /// The generation a commit goes to, if the proxy may commit now.
    pub fn admit(&self) -> Result<Epoch, ServiceError> {
        self.fence.admit(self.fence.epoch)?;
        if !self.open {
            return Err(ServiceError::NotLocked { caller: self.fence.epoch, holder: None });
        }
        Ok(self.fence.epoch)
    }

    /// Whether it admits commits of generation `epoch`.
    pub fn serves(&self, epoch: Epoch) -> bool {
        self.open && self.fence.admit(epoch).is_ok()
    }

    /// Stops the proxy: a newer generation has locked it.
    pub fn stop(&mut self, by: Epoch) -> Result<(), ServiceError> {
        self.fence.stop(by)
    }

    /// The newest generation that holds it: its own, or the one that
    /// stopped it.
    pub fn holder(&self) -> Epoch {
        self.fence.newest()
    }
}

/// Checks transactions for conflicts within one generation. Writes in this
/// reference cluster are blind, so every transaction of the live generation
/// resolves; the fence is what matters.
#[derive(Clone, Debug)]
pub struct Resolver {
    fence: Fence,
}

impl Resolver {
    /// A resolver for generation `epoch`.
    pub fn new(epoch: Epoch) -> Self {
        Resolver { fence: Fence::new(epoch) }
    }

    /// Resolves a batch of generation `epoch`.
    pub fn resolve(&self, epoch: Epoch) -> Result<(), ServiceError> {
        self.fence.admit(epoch)
    }

    /// Stops the resolver: a newer generation has locked it.
    pub fn stop(&mut self, by: Epoch) -> Result<(), ServiceError> {
        self.fence.stop(by)
    }

    /// The newest generation that holds it: its own, or the one that
    /// stopped it.
    pub fn holder(&self) -> Epoch {
        self.fence.newest()
    }

    /// The generation it serves.
    pub fn epoch(&self) -> Epoch {
        self.fence.epoch
    }

    /// Whether it serves generation `epoch` (it has not been stopped).
    pub fn serves(&self, epoch: Epoch) -> bool {
        self.fence.admit(epoch).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_serve_only_their_generation() {
        let mut seq = Sequencer::new(2, 10);
        assert_eq!(seq.next_version(2), Ok((10, 11)));
        assert!(seq.next_version(1).is_err());
        seq.stop(3).unwrap();
        let stopped = seq.next_version(2).unwrap_err();
        assert_eq!(stopped, ServiceError::Stopped { serving: 2, by: 3 });
        assert_eq!(stopped.to_string(), "stopped: generation 2 was stopped by the lock of generation 3");
        let mut proxy = CommitProxy::new(2);
        assert!(proxy.admit().is_err(), "closed until unlocked");
        proxy.unlock(2).unwrap();
        assert_eq!(proxy.admit(), Ok(2));
        assert_eq!(proxy.stop(1), Err(ServiceError::Superseded(2)));
        let resolver = Resolver::new(2);
        assert!(resolver.resolve(2).is_ok() && resolver.resolve(3).is_err());
    }

    #[test]
    fn a_role_stopped_by_a_newer_generation_refuses_an_older_one() {
        // Found by the simulator: a late lock of epoch 4 reached a resolver
        // that epoch 6 had already stopped, and was accepted.
        let mut resolver = Resolver::new(2);
        resolver.stop(6).unwrap();
        assert_eq!(resolver.stop(4), Err(ServiceError::Superseded(6)));
        assert_eq!(resolver.stop(6), Ok(()), "the same generation may lock again");
        resolver.stop(7).unwrap();
        assert_eq!(resolver.stop(6), Err(ServiceError::Superseded(7)));
    }
}
