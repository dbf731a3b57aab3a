//! Replica recovery at unlock: the director's sessions, run on the layout
//! the guard checked, for the replicas the guard let through.

use std::sync::{Arc, Mutex};

use crate::bindings::types::{ClusterError, Epoch};
use crate::cluster::Cluster;
use crate::guard::ReplicasBeforeUnlock;
use crate::registry::Plugins;
use crate::replica::{LayoutIndex, Sessions, recover_replica};

/// The director's replica recovery, as its guards call it.
pub(super) struct SessionReplicas {
    pub cluster: Arc<dyn Cluster>,
    pub sessions: Arc<Mutex<Sessions>>,
}

#[async_trait::async_trait]
impl ReplicasBeforeUnlock for SessionReplicas {
    async fn bring_up(&self, plugins: &dyn Plugins, layout: &LayoutIndex<'_>, epoch: Epoch, id: &str) -> Result<(), ClusterError> {
        recover_replica(plugins, &*self.cluster, &self.sessions, layout, epoch, id).await.map(drop)
    }

    fn must_rebuild(&self, id: &str, epoch: Epoch) -> bool {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).must_rebuild(id, epoch)
    }
}
