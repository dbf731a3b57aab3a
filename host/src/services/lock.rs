//! The epoch lock every service carries.

use super::ServiceError;
use crate::bindings::types::Epoch;

/// I2 in one place: a service accepts a lock only from an epoch at or above
/// the one holding it (the same epoch re-locking is idempotent), and a change
/// is allowed only to the epoch that holds the lock (I4).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochLock {
    holder: Option<Epoch>,
}

impl EpochLock {
    /// Locks at `epoch`, or refuses because a newer epoch holds the lock.
    pub fn lock(&mut self, epoch: Epoch) -> Result<(), ServiceError> {
        match self.holder {
            Some(holder) if holder > epoch => Err(ServiceError::Superseded(holder)),
            _ => {
                self.holder = Some(epoch);
                Ok(())
            }
        }
    }

    /// Checks that `epoch` holds the lock.
    pub fn check(&self, epoch: Epoch) -> Result<(), ServiceError> {
        match self.holder {
            Some(holder) if holder == epoch => Ok(()),
            Some(holder) if holder > epoch => Err(ServiceError::Superseded(holder)),
            holder => Err(ServiceError::NotLocked { caller: epoch, holder }),
        }
    }

    /// The epoch holding the lock.
    pub fn holder(&self) -> Option<Epoch> {
        self.holder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_or_the_same_epoch_may_lock() {
        let mut lock = EpochLock::default();
        lock.lock(3).unwrap();
        lock.lock(3).unwrap();
        assert_eq!(lock.lock(2), Err(ServiceError::Superseded(3)));
        lock.lock(5).unwrap();
        assert_eq!(lock.check(3), Err(ServiceError::Superseded(5)));
        assert_eq!(lock.check(5), Ok(()));
        assert_eq!(EpochLock::default().check(1), Err(ServiceError::NotLocked { caller: 1, holder: None }));
    }
}
