//! The stateless roles of a generation: sequencer, commit proxy, resolver.
//! Each is fenced by the epoch of the generation that started it.

use super::ServiceError;
use crate::bindings::types::{Epoch, Version};

/// The fence every role carries: the generation it serves, and whether a
/// newer generation has stopped it.
#[derive(Clone, Debug)]
struct Fence {
    epoch: Epoch,
    stopped: bool,
}

impl Fence {
    fn new(epoch: Epoch) -> Self {
        Fence { epoch, stopped: false }
    }

    /// Stops the role: a newer (or the same) generation has locked it.
    fn stop(&mut self, by: Epoch) -> Result<(), ServiceError> {
        if by < self.epoch {
            return Err(ServiceError::Superseded(self.epoch));
        }
        self.stopped = true;
        Ok(())
    }

    /// Admits a request of generation `epoch`.
    fn admit(&self, epoch: Epoch) -> Result<(), ServiceError> {
        if self.stopped || epoch != self.epoch {
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
        self.last += 1;
        Ok((prev, self.last))
    }

    /// Stops the sequencer: a newer generation has locked it.
    pub fn stop(&mut self, by: Epoch) -> Result<(), ServiceError> {
        self.fence.stop(by)
    }

    /// The generation it serves.
    pub fn epoch(&self) -> Epoch {
        self.fence.epoch
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

    /// Stops the proxy: a newer generation has locked it.
    pub fn stop(&mut self, by: Epoch) -> Result<(), ServiceError> {
        self.fence.stop(by)
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

    /// The generation it serves.
    pub fn epoch(&self) -> Epoch {
        self.fence.epoch
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
        assert!(seq.next_version(2).is_err());
        let mut proxy = CommitProxy::new(2);
        assert!(proxy.admit().is_err(), "closed until unlocked");
        proxy.unlock(2).unwrap();
        assert_eq!(proxy.admit(), Ok(2));
        assert_eq!(proxy.stop(1), Err(ServiceError::Superseded(2)));
        let resolver = Resolver::new(2);
        assert!(resolver.resolve(2).is_ok() && resolver.resolve(3).is_err());
    }
}
