//! A scripted host for the phases' native unit tests.

use std::collections::BTreeMap;

use crate::types::{
    Assignment, AttemptState, ClusterError, Layout, LockInfo, LogCopy, Node, PlacementError, PlacementRequest, RecoveryConfig,
    ServiceDescriptor, ServiceKind, ShardTag, Version,
};
use crate::{Host, LogLevel};

/// A host that answers from tables and records every call.
#[derive(Debug, Default)]
pub struct ScriptedHost {
    /// The nodes `nodes()` returns.
    pub nodes: Vec<Node>,
    /// What `lock` answers per id; ids not listed are unreachable.
    pub locks: BTreeMap<String, Result<LockInfo, ClusterError>>,
    /// What `persist_layout` answers.
    pub persist: Option<Result<(), ClusterError>>,
    /// What `stage_layout` answers; on success the layout is kept.
    pub stage: Option<Result<(), ClusterError>>,
    /// The layout staged last, as the host keeps it.
    pub staged: Option<Layout>,
    /// Every call, as a line such as `lock log-1` or `create n1 log`.
    pub calls: Vec<String>,
    /// What `known_durable` answers per id; ids not listed are unknown.
    pub known_durable: BTreeMap<String, Version>,
    /// Every placement request, as asked.
    pub requests: Vec<PlacementRequest>,
    /// Every line logged: its message and fields.
    pub logged: Vec<(String, Vec<(String, String)>)>,
    next: u32,
}

impl ScriptedHost {
    /// A host with `count` healthy nodes over `zones` zones.
    pub fn with_nodes(count: usize, zones: usize) -> Self {
        let kinds = vec![ServiceKind::Log, ServiceKind::Storage, ServiceKind::Sequencer, ServiceKind::CommitProxy, ServiceKind::Resolver];
        ScriptedHost {
            nodes: (0..count)
                .map(|i| Node {
                    id: format!("n{}", i + 1),
                    zone: format!("z{}", i % zones + 1),
                    capabilities: kinds.clone(),
                    load: 0,
                    capacity: 100,
                    healthy: true,
                    last_seen_ms: 0,
                })
                .collect(),
            ..ScriptedHost::default()
        }
    }

    fn spawn(&mut self, node: &str, kind: ServiceKind) -> ServiceDescriptor {
        self.next += 1;
        let id = format!("{}-new{}", crate::kind_name(kind), self.next);
        ServiceDescriptor { id: id.clone(), kind, node: node.into(), address: format!("test://{id}") }
    }
}

/// An empty attempt state at `epoch`.
pub fn state(epoch: u64, old_layout: Option<Layout>) -> AttemptState {
    AttemptState {
        epoch,
        attempt: 1,
        config: RecoveryConfig {
            desired_logs: 3,
            replication_factor: 3,
            shards: 2,
            desired_proxies: 1,
            desired_resolvers: 1,
            log_replication: 3,
        },
        old_layout,
        locked_logs: vec![],
        locked_storage: vec![],
        unreachable: vec![],
        path: None,
        log_plan: vec![],
        recovery_version: None,
        durable_version: None,
        degraded_teams: vec![],
        vacancies: vec![],
        recruits: vec![],
        new_logs: vec![],
        new_storage_teams: vec![],
        sequencer: None,
        commit_proxies: vec![],
        resolvers: vec![],
        new_layout: None,
    }
}

impl Host for ScriptedHost {
    fn services(&mut self) -> Vec<ServiceDescriptor> {
        Vec::new()
    }
    fn nodes(&mut self) -> Vec<Node> {
        self.nodes.clone()
    }
    fn lock(&mut self, ids: &[String]) -> Vec<Result<LockInfo, ClusterError>> {
        ids.iter()
            .map(|id| {
                self.calls.push(format!("lock {id}"));
                self.locks.get(id).cloned().unwrap_or(Err(ClusterError::Unreachable(id.clone())))
            })
            .collect()
    }
    fn create_worker(&mut self, node: &str, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        self.calls.push(format!("create {node} {}", crate::kind_name(kind)));
        Ok(self.spawn(node, kind))
    }
    fn create_workers(&mut self, requests: &[(String, ServiceKind)]) -> Vec<Result<ServiceDescriptor, ClusterError>> {
        requests.iter().map(|(node, kind)| self.create_worker(node, *kind)).collect()
    }
    fn known_durable(&mut self, ids: &[String]) -> Result<Vec<Option<Version>>, ClusterError> {
        self.calls.push(format!("known-durable {}", ids.join(" ")));
        Ok(ids.iter().map(|id| self.known_durable.get(id).copied()).collect())
    }
    fn recover_logs(&mut self, copies: &[LogCopy]) -> Vec<Result<(), ClusterError>> {
        copies.iter().map(|c| self.recover_log(&c.target, &c.sources, &c.tags, c.first, c.last)).collect()
    }
    fn recover_log(
        &mut self,
        target: &str,
        sources: &[String],
        tags: &[ShardTag],
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError> {
        self.calls.push(format!("recover {target} from {} tags {tags:?} [{first}, {last}]", sources.join(",")));
        Ok(())
    }
    fn start_role(&mut self, node: &str, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        self.calls.push(format!("start {node} {}", crate::kind_name(kind)));
        Ok(self.spawn(node, kind))
    }
    fn stage_layout(&mut self, layout: &Layout) -> Result<(), ClusterError> {
        self.calls.push(format!("stage epoch {}", layout.epoch));
        let answer = self.stage.clone().unwrap_or(Ok(()));
        if answer.is_ok() {
            self.staged = Some(layout.clone());
        }
        answer
    }
    /// Fails as the host does when nothing was staged.
    fn unlock(&mut self, ids: &[String]) -> Vec<Result<(), ClusterError>> {
        if self.staged.is_none() {
            self.calls.push("unlock nothing staged".into());
            let refusal = ClusterError::Refused("I6: unlock before a layout was staged".into());
            return ids.iter().map(|_| Err(refusal.clone())).collect();
        }
        ids.iter()
            .map(|id| {
                self.calls.push(format!("unlock {id}"));
                Ok(())
            })
            .collect()
    }
    /// Fails as the host does when nothing was staged.
    fn persist_layout(&mut self) -> Result<(), ClusterError> {
        let Some(layout) = &self.staged else {
            self.calls.push("persist nothing staged".into());
            return Err(ClusterError::Refused("I6: persist before a layout was staged".into()));
        };
        self.calls.push(format!("persist epoch {}", layout.epoch));
        self.persist.clone().unwrap_or(Ok(()))
    }
    /// Places each group on the first healthy nodes, in order.
    fn place(&mut self, request: &PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        self.requests.push(request.clone());
        let healthy: Vec<&Node> = request.nodes.iter().filter(|n| n.healthy).collect();
        request
            .vacancies
            .iter()
            .enumerate()
            .map(|(i, group)| {
                if healthy.len() < group.count as usize {
                    return Err(PlacementError { vacancy: i as u32, constraint: "capacity".into(), message: "not enough nodes".into() });
                }
                Ok(Assignment { vacancy: i as u32, nodes: healthy.iter().take(group.count as usize).map(|n| n.id.clone()).collect() })
            })
            .collect()
    }
    fn now_ms(&mut self) -> u64 {
        0
    }
    fn sleep_ms(&mut self, _ms: u64) {}
    fn log(&mut self, _level: LogLevel, message: &str, fields: &[(String, String)]) {
        self.logged.push((message.to_string(), fields.to_vec()));
    }
}

/// A layout of epoch 1: 3 logs carrying shards 0 and 1, two teams of three
/// storage replicas, one sequencer, proxy and resolver, on nodes n1..n9.
pub fn old_layout() -> Layout {
    use crate::types::{KeyRange, LogAssignment, StorageTeam};
    let d = |id: &str, kind: ServiceKind, node: usize| ServiceDescriptor {
        id: id.into(),
        kind,
        node: format!("n{node}"),
        address: format!("test://{id}"),
    };
    let mut services =
        vec![d("seq", ServiceKind::Sequencer, 1), d("proxy", ServiceKind::CommitProxy, 2), d("res", ServiceKind::Resolver, 3)];
    let logs: Vec<LogAssignment> = (1..=3)
        .map(|i| {
            services.push(d(&format!("log{i}"), ServiceKind::Log, i));
            LogAssignment { id: format!("log{i}"), tags: vec![0, 1] }
        })
        .collect();
    let teams: Vec<StorageTeam> = (0..2u32)
        .map(|tag| {
            let ids: Vec<String> = (1..=3).map(|r| format!("st{tag}-{r}")).collect();
            for (r, id) in ids.iter().enumerate() {
                services.push(d(id, ServiceKind::Storage, 3 * tag as usize + r + 4));
            }
            let key_range = KeyRange {
                start: if tag == 0 { String::new() } else { "8".into() },
                end: if tag == 0 { "8".into() } else { String::new() },
            };
            StorageTeam { tag, key_range, storage_ids: ids, departing: Vec::new() }
        })
        .collect();
    Layout {
        epoch: 1,
        sequencer: Some("seq".into()),
        commit_proxies: vec!["proxy".into()],
        resolvers: vec!["res".into()],
        logs,
        storage_teams: teams,
        services,
        recovery_version: 0,
    }
}
