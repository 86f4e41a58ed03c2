//! The store's behavioural tests, run against both backends: every test
//! body takes a [`TestStore`] and [`both_backends!`] runs it on a
//! file-backed [`SqliteStore`] and on a [`PgStore`] in a database of its
//! own on the PostgreSQL server at `ZUN_TEST_POSTGRES_URL` (started by
//! `scripts/postgres.sh start`, which prints the URL; `scripts/test.sh`
//! does both). Without that variable the PostgreSQL tests fail: nothing is
//! skipped.

#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Duration as TimeDelta, SubsecRound, TimeZone, Utc};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use zun_types::container::{CapsuleMember, DesiredState, RecordKind};
use zun_types::image::{Image, ImageTask, Registry};
use zun_types::network::{Ipv4Net, mac_for};
use zun_types::volume::{Mount, VolumeRef};
use zun_types::{ApiError, Container, ContainerStatus, TaskState};

use crate::sql::{format_time, parse_bool};
use crate::{
    COMPUTE_BINARY, ComputeNode, FILTER_KEYS, ImageListQuery, ImageStore, ListQuery, NetworkRecord,
    NewAction, NodeUsage, PgStore, Placement, QuotaLimits, QuotaUsage, RegistryListQuery,
    SORT_KEYS, SecurityGroupRecord, ServiceChange, SortDir, SqliteStore, Store, StoreError,
    WebsocketGrant,
};

mod postgres_only;
mod sqlite_only;

/// What the tests need beyond [`Store`]: a look at the row's revision and a
/// way to make compare-and-swaps lose.
#[async_trait]
pub(crate) trait Harness: Store {
    async fn revision(&self, uuid: &str) -> i64;
    /// Makes the next `n` compare-and-swaps fail.
    fn force_conflicts(&self, n: u32);
    fn forced_conflicts_left(&self) -> u32;
}

pub(crate) type TestStore = Arc<dyn Harness>;

#[async_trait]
impl Harness for SqliteStore {
    async fn revision(&self, uuid: &str) -> i64 {
        sqlx::query_scalar("SELECT revision FROM containers WHERE uuid = $1")
            .bind(uuid)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    fn force_conflicts(&self, n: u32) {
        self.forced_conflicts.store(n, AtomicOrdering::SeqCst);
    }

    fn forced_conflicts_left(&self) -> u32 {
        self.forced_conflicts.load(AtomicOrdering::SeqCst)
    }
}

#[async_trait]
impl Harness for PgStore {
    async fn revision(&self, uuid: &str) -> i64 {
        sqlx::query_scalar("SELECT revision FROM containers WHERE uuid = $1")
            .bind(uuid)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    fn force_conflicts(&self, n: u32) {
        self.forced_conflicts.store(n, AtomicOrdering::SeqCst);
    }

    fn forced_conflicts_left(&self) -> u32 {
        self.forced_conflicts.load(AtomicOrdering::SeqCst)
    }
}

/// A directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let path = std::env::temp_dir().join(format!("zun-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server's URL, or a failure saying how to get one.
fn postgres_url() -> String {
    std::env::var("ZUN_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "ZUN_TEST_POSTGRES_URL is not set: run `bash scripts/postgres.sh start` and export \
             the URL it prints last (scripts/test.sh does both)"
        )
    })
}

/// A database of its own on the test server, so tests are independent (and
/// NOTIFYs of one never wake another: channels are per database). Dropped
/// by [`TestDb::drop_database`] when the test passes; a failed test's
/// database is left for a look.
pub(crate) struct TestDb {
    admin: PgConnectOptions,
    pub(crate) name: String,
}

impl TestDb {
    pub(crate) async fn create() -> Self {
        let admin = PgConnectOptions::from_str(&postgres_url()).unwrap();
        let name = format!("zun_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await.unwrap();
        // The name is ours (hex), not user input.
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        Self { admin, name }
    }

    pub(crate) fn options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }

    pub(crate) async fn store(&self) -> PgStore {
        PgStore::connect_with(self.options()).await.unwrap()
    }

    pub(crate) async fn drop_database(self) {
        let mut conn = PgConnection::connect_with(&self.admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
}

/// Runs each named test body on both backends, as `sqlite::NAME` and
/// `postgres::NAME`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let dir = super::TempDir::new();
                    let store = crate::SqliteStore::open(&dir.0.join("zun.db")).await.unwrap();
                    super::$name(std::sync::Arc::new(store.clone())).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::TestDb::create().await;
                    let store = db.store().await;
                    super::$name(std::sync::Arc::new(store.clone())).await;
                    store.close().await;
                    db.drop_database().await;
                }
            )*
        }
    };
}

both_backends!(
    capsules_go_in_and_out_with_their_members_and_count_once,
    volumes_serve_one_container_and_go_with_the_one_they_were_made_for,
    security_groups_are_unique_per_project_and_go_with_their_container,
    network_members_name_the_containers_on_it,
    networks_in_use_cannot_be_deleted_and_ports_detach_one_by_one,
    websocket_grants_work_once_and_expired_ones_are_purged,
    round_trip,
    pagination_over_every_sort_key,
    markers_and_bad_keys,
    filters_and_project_scope,
    update_applies_and_records_action,
    rejected_update_leaves_row_untouched,
    lost_compare_and_swap_is_retried_then_bounded,
    concurrent_writers,
    quota_rows_and_limit_resolution,
    usage_sums_the_project,
    insert_over_quota_is_refused_and_writes_nothing,
    checked_update_counts_the_new_resources,
    concurrent_creates_never_overshoot_a_quota,
    pending_actions_lifecycle,
    events,
    wait_for_work_wakes_on_new_actions,
    registries_round_trip_and_pages_cover_every_row_once,
    a_registry_in_use_cannot_be_deleted,
    registry_delete_races_container_writes,
    image_tasks_are_per_host_and_updates_are_conditional,
    services_heartbeat_and_change,
    nodes_keep_their_uuid_and_count_what_is_placed,
    host_usage_reads_memory_as_quota_usage_does,
    placed_inserts_never_over_commit_a_host,
    networks_are_created_once_per_project_and_name,
    pools_run_out_of_subnets,
    ports_take_the_lowest_free_address,
    fixed_addresses_are_checked,
    a_subnet_runs_out_of_addresses,
    concurrent_allocations_never_share_an_address,
    deleting_a_container_releases_its_ports,
    ports_on_host_and_release,
);

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
}

pub(crate) fn container(i: usize, project: &str) -> Container {
    let statuses = ContainerStatus::ALL;
    Container {
        image_driver: Some("docker".into()),
        command: Some(vec!["sleep".into(), "1000".into()]),
        cpu: match i % 6 {
            0 => None,
            _ => Some([0.5, 1.0, 2.0][i % 3]),
        },
        memory: match i % 5 {
            0 => None,
            _ => Some(["512", "1024", "64"][i % 3].to_owned()),
        },
        disk: (i % 4) as i64 * 10,
        environment: BTreeMap::from([("A".to_owned(), i.to_string())]),
        auto_remove: i % 2 != 1,
        host: match i % 4 {
            0 => None,
            _ => Some(format!("host{}", i % 3)),
        },
        status: statuses[i % 5],
        task_state: match i % 3 {
            0 => None,
            1 => Some(TaskState::ImagePulling),
            _ => Some(TaskState::ContainerStarting),
        },
        desired_state: DesiredState::Running,
        created_at: base_time() + chrono::Duration::minutes((i % 9) as i64),
        updated_at: if i % 3 == 1 {
            None
        } else {
            Some(base_time() + chrono::Duration::seconds((i * 7 % 11) as i64))
        },
        ..Container::new(
            uuid::Uuid::new_v4().to_string(),
            format!("c{}", i % 7),
            project,
            ["u1", "u2", "u3"][i % 3],
            ["nginx", "busybox", "alpine", "redis"][i % 4],
        )
    }
}

pub(crate) fn new_action(action: &str, host: Option<&str>) -> NewAction {
    NewAction {
        request_id: format!("req-{}", uuid::Uuid::new_v4()),
        action: action.to_owned(),
        user_id: "u1".into(),
        project_id: "p1".into(),
        host: host.map(str::to_owned),
        params: serde_json::json!({"timeout": 10}),
    }
}

fn query(project: Option<&str>, sort_key: &str, sort_dir: SortDir) -> ListQuery {
    ListQuery {
        project_id: project.map(str::to_owned),
        filters: Vec::new(),
        limit: 1000,
        marker: None,
        sort_key: sort_key.to_owned(),
        sort_dir,
        kind: RecordKind::Container,
    }
}

async fn revision(store: &dyn Harness, uuid: &str) -> i64 {
    store.revision(uuid).await
}

/// Inserts `n` containers in `p1` and `m` in `p2`, sequentially, so the
/// row id of element k is k + 1.
async fn populate(store: &dyn Harness, n: usize, m: usize) -> Vec<Container> {
    let mut all = Vec::new();
    for i in 0..n + m {
        let project = if i < n { "p1" } else { "p2" };
        let c = container(i, project);
        store
            .insert_container(&c, &new_action("create", c.host.as_deref()), None)
            .await
            .unwrap();
        all.push(c);
    }
    all
}

#[derive(PartialEq, PartialOrd)]
enum Key {
    I(i64),
    F(f64),
    S(String),
}

fn key_of(c: &Container, id: i64, key: &str) -> Key {
    match key {
        "id" => Key::I(id),
        "uuid" => Key::S(c.uuid.clone()),
        "name" => Key::S(c.name.clone()),
        "project_id" => Key::S(c.project_id.clone()),
        "user_id" => Key::S(c.user_id.clone()),
        "image" => Key::S(c.image.clone()),
        "status" => Key::S(c.status.as_str().to_owned()),
        "task_state" => Key::S(c.task_state.map(|t| t.as_str()).unwrap_or("").to_owned()),
        "host" => Key::S(c.host.clone().unwrap_or_default()),
        "memory" => Key::S(c.memory.clone().unwrap_or_default()),
        "cpu" => Key::F(c.cpu.unwrap_or(-1.0)),
        "disk" => Key::I(c.disk),
        "auto_remove" => Key::I(i64::from(c.auto_remove)),
        "created_at" => Key::S(format_time(&c.created_at)),
        "updated_at" => Key::S(c.updated_at.as_ref().map(format_time).unwrap_or_default()),
        other => panic!("no model for sort key {other}"),
    }
}

/// The expected order of `all` (row id = index + 1) in the model.
fn expected(all: &[Container], project: Option<&str>, key: &str, dir: SortDir) -> Vec<String> {
    let mut rows: Vec<(Key, i64, &Container)> = all
        .iter()
        .enumerate()
        .filter(|(_, c)| project.is_none_or(|p| c.project_id == p))
        .map(|(i, c)| (key_of(c, i as i64 + 1, key), i as i64 + 1, c))
        .collect();
    rows.sort_by(|a, b| {
        a.0.partial_cmp(&b.0)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.1.cmp(&b.1))
    });
    if dir == SortDir::Desc {
        rows.reverse();
    }
    rows.into_iter().map(|(_, _, c)| c.uuid.clone()).collect()
}

fn uuids(containers: &[Container]) -> Vec<String> {
    containers.iter().map(|c| c.uuid.clone()).collect()
}

async fn websocket_grants_work_once_and_expired_ones_are_purged(store: TestStore) {
    let grant = WebsocketGrant {
        container_uuid: "c1".into(),
        project_id: "p1".into(),
        exec_id: Some("e1".into()),
        expires_at: DateTime::from_timestamp(Utc::now().timestamp() + 60, 0).unwrap(),
    };
    store
        .insert_websocket_grant("hash-a", &grant)
        .await
        .unwrap();
    assert_eq!(store.take_websocket_grant("hash-b").await.unwrap(), None);
    assert_eq!(
        store.take_websocket_grant("hash-a").await.unwrap(),
        Some(grant.clone())
    );
    assert_eq!(store.take_websocket_grant("hash-a").await.unwrap(), None);

    let expired = WebsocketGrant {
        exec_id: None,
        expires_at: DateTime::from_timestamp(Utc::now().timestamp() - 1, 0).unwrap(),
        ..grant.clone()
    };
    store.insert_websocket_grant("old", &expired).await.unwrap();
    // Recording another grant purges the expired one.
    store.insert_websocket_grant("new", &grant).await.unwrap();
    assert_eq!(store.take_websocket_grant("old").await.unwrap(), None);
    assert!(store.take_websocket_grant("new").await.unwrap().is_some());
}

async fn round_trip(store: TestStore) {
    let c = container(1, "p1");
    let action = new_action("create", Some("host1"));
    let record = store.insert_container(&c, &action, None).await.unwrap();
    assert_eq!(record.container_uuid, c.uuid);
    assert_eq!(record.request_id, action.request_id);
    assert_eq!(record.params, action.params);
    assert_eq!(record.host.as_deref(), Some("host1"));
    assert!(record.finish_time.is_none());

    assert_eq!(store.get_container(&c.uuid).await.unwrap(), Some(c.clone()));
    assert_eq!(store.get_container("nope").await.unwrap(), None);
    assert_eq!(
        store.list_actions(&c.uuid).await.unwrap(),
        vec![record.clone()]
    );

    let found = store
        .find_containers_by_name(&c.name, Some("p1"))
        .await
        .unwrap();
    assert_eq!(found, vec![c.clone()]);
    assert!(
        store
            .find_containers_by_name(&c.name, Some("p2"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_containers_by_name(&c.name, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.containers_on_host("host1").await.unwrap(),
        vec![c.clone()]
    );
    assert!(store.containers_on_host("host2").await.unwrap().is_empty());

    // Duplicate uuid: a database error, and no stray action is recorded.
    let dup = store
        .insert_container(&c, &new_action("create", None), None)
        .await;
    assert!(matches!(dup, Err(StoreError::Database(_))), "{dup:?}");
    assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 1);

    assert!(store.delete_container(&c.uuid).await.unwrap());
    assert!(!store.delete_container(&c.uuid).await.unwrap());
    assert_eq!(store.get_container(&c.uuid).await.unwrap(), None);
    // The action log survives the container.
    assert_eq!(store.list_actions(&c.uuid).await.unwrap(), vec![record]);
}

async fn pagination_over_every_sort_key(store: TestStore) {
    let all = populate(&*store, 23, 6).await;
    for project in [Some("p1"), None] {
        for key in SORT_KEYS {
            for dir in [SortDir::Asc, SortDir::Desc] {
                let want = expected(&all, project, key, dir);
                let full = store
                    .list_containers(&query(project, key, dir))
                    .await
                    .unwrap();
                assert_eq!(
                    uuids(&full),
                    want,
                    "full list by {key} {dir:?} in {project:?}"
                );
                for limit in [1, 4, 5] {
                    let mut got = Vec::new();
                    let mut q = query(project, key, dir);
                    q.limit = limit;
                    for _ in 0..=want.len() {
                        let page = store.list_containers(&q).await.unwrap();
                        assert!(page.len() <= limit as usize);
                        let Some(last) = page.last() else { break };
                        q.marker = Some(last.uuid.clone());
                        got.extend(uuids(&page));
                    }
                    assert_eq!(
                        got, want,
                        "pages of {limit} by {key} {dir:?} in {project:?}"
                    );
                }
            }
        }
    }
}

async fn markers_and_bad_keys(store: TestStore) {
    let all = populate(&*store, 3, 2).await;
    let mut q = query(Some("p1"), "created_at", SortDir::Asc);
    q.marker = Some(uuid::Uuid::new_v4().to_string());
    assert!(matches!(
        store.list_containers(&q).await,
        Err(StoreError::MarkerNotFound(_))
    ));
    // A marker from another project is not visible in this scope...
    q.marker = Some(all[4].uuid.clone());
    assert!(matches!(
        store.list_containers(&q).await,
        Err(StoreError::MarkerNotFound(_))
    ));
    // ...but is across all projects.
    q.project_id = None;
    assert!(store.list_containers(&q).await.is_ok());

    let mut q = query(None, "body", SortDir::Asc);
    assert!(matches!(
        store.list_containers(&q).await,
        Err(StoreError::Rejected(_))
    ));
    q.sort_key = "id".into();
    q.filters = vec![("body".into(), "x".into())];
    assert!(matches!(
        store.list_containers(&q).await,
        Err(StoreError::Rejected(_))
    ));
    q.filters = vec![("name' OR 1=1 --".into(), "x".into())];
    assert!(matches!(
        store.list_containers(&q).await,
        Err(StoreError::Rejected(_))
    ));

    q.filters.clear();
    q.limit = 2;
    assert_eq!(store.list_containers(&q).await.unwrap().len(), 2);
    q.limit = 0;
    assert!(store.list_containers(&q).await.unwrap().is_empty());
}

async fn filters_and_project_scope(store: TestStore) {
    let all = populate(&*store, 20, 8).await;

    let check = |filters: Vec<(&str, &str)>, project: Option<&str>| {
        let store = store.clone();
        let all = all.clone();
        let filters: Vec<(String, String)> = filters
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let project = project.map(str::to_owned);
        async move {
            let mut q = query(project.as_deref(), "id", SortDir::Asc);
            q.filters = filters.clone();
            let got = uuids(&store.list_containers(&q).await.unwrap());
            let want: Vec<String> = all
                .iter()
                .filter(|c| project.as_deref().is_none_or(|p| c.project_id == p))
                .filter(|c| {
                    filters.iter().all(|(k, v)| match k.as_str() {
                        "name" => &c.name == v,
                        "image" => &c.image == v,
                        "project_id" => &c.project_id == v,
                        "user_id" => &c.user_id == v,
                        "memory" => c.memory.as_ref() == Some(v),
                        "host" => c.host.as_ref() == Some(v),
                        "task_state" => c.task_state.map(|t| t.as_str()) == Some(v.as_str()),
                        "status" => c.status.as_str() == v,
                        "auto_remove" => parse_bool(v) == Some(c.auto_remove),
                        other => panic!("unknown filter {other}"),
                    })
                })
                .map(|c| c.uuid.clone())
                .collect();
            assert_eq!(got, want, "filters {filters:?} in {project:?}");
            got.len()
        }
    };

    assert_eq!(check(vec![], Some("p1")).await, 20);
    assert_eq!(check(vec![], Some("p2")).await, 8);
    assert_eq!(check(vec![], Some("p3")).await, 0);
    assert_eq!(check(vec![], None).await, 28);
    assert!(check(vec![("name", "c3")], Some("p1")).await > 0);
    assert!(
        check(vec![("name", "c3")], None).await > check(vec![("name", "c3")], Some("p1")).await
    );
    assert!(check(vec![("image", "redis")], None).await > 0);
    assert!(check(vec![("user_id", "u2")], Some("p2")).await > 0);
    assert!(check(vec![("memory", "1024")], None).await > 0);
    assert!(check(vec![("host", "host1")], None).await > 0);
    assert!(check(vec![("task_state", "image_pulling")], None).await > 0);
    assert!(check(vec![("status", "Running")], None).await > 0);
    assert_eq!(check(vec![("project_id", "p2")], Some("p1")).await, 0);
    assert_eq!(check(vec![("project_id", "p2")], None).await, 8);
    let trues = check(vec![("auto_remove", "true")], None).await;
    assert_eq!(trues, 14);
    assert_eq!(check(vec![("auto_remove", "True")], None).await, trues);
    assert_eq!(check(vec![("auto_remove", "1")], None).await, trues);
    assert_eq!(
        check(vec![("auto_remove", "false")], None).await,
        28 - trues
    );
    assert_eq!(
        check(vec![("auto_remove", "False")], None).await,
        28 - trues
    );
    assert_eq!(check(vec![("auto_remove", "0")], None).await, 28 - trues);
    assert_eq!(check(vec![("auto_remove", "maybe")], None).await, 0);
    assert!(
        check(
            vec![
                ("image", "nginx"),
                ("auto_remove", "true"),
                ("user_id", "u1")
            ],
            None
        )
        .await
            > 0
    );
    assert_eq!(check(vec![("status", "running")], None).await, 0);
    // Every declared filter key is accepted.
    for key in FILTER_KEYS {
        check(vec![(key, "x")], None).await;
    }
}

async fn update_applies_and_records_action(store: TestStore) {
    let c = container(3, "p1");
    store
        .insert_container(&c, &new_action("create", Some("host0")), None)
        .await
        .unwrap();
    assert_eq!(revision(&*store, &c.uuid).await, 1);

    let before = Utc::now();
    let action = new_action("start", Some("host9"));
    let (updated, record) = store
        .update_container(
            &c.uuid,
            &|c: &mut Container| {
                c.status = ContainerStatus::Running;
                c.task_state = Some(TaskState::ContainerStarting);
                c.host = Some("host9".into());
                c.uuid = "must-not-change".into();
                Ok(())
            },
            Some(&action),
        )
        .await
        .unwrap();
    let record = record.unwrap();
    assert_eq!(updated.uuid, c.uuid);
    assert_eq!(updated.status, ContainerStatus::Running);
    assert!(updated.updated_at.unwrap() >= before.trunc_subsecs(6));
    assert_eq!(record.action, "start");
    assert_eq!(
        store.get_container(&c.uuid).await.unwrap(),
        Some(updated.clone())
    );
    assert_eq!(revision(&*store, &c.uuid).await, 2);
    // Newest first.
    let actions = store.list_actions(&c.uuid).await.unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0], record);
    assert_eq!(actions[1].action, "create");

    // The extracted columns follow the body.
    assert_eq!(
        store.containers_on_host("host9").await.unwrap(),
        vec![updated.clone()]
    );
    let mut q = query(None, "id", SortDir::Asc);
    q.filters = vec![
        ("status".into(), "Running".into()),
        ("task_state".into(), "container_starting".into()),
    ];
    assert_eq!(store.list_containers(&q).await.unwrap(), vec![updated]);

    // Without an action nothing is recorded.
    let (_, none) = store
        .update_container(
            &c.uuid,
            &|c: &mut Container| {
                c.task_state = None;
                Ok(())
            },
            None,
        )
        .await
        .unwrap();
    assert!(none.is_none());
    assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 2);
    assert_eq!(revision(&*store, &c.uuid).await, 3);

    let missing = store
        .update_container("nope", &|_: &mut Container| Ok(()), None)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(ref u)) if u == "nope"));
}

async fn rejected_update_leaves_row_untouched(store: TestStore) {
    let c = container(4, "p1");
    store
        .insert_container(&c, &new_action("create", Some("h")), None)
        .await
        .unwrap();
    let err = store
        .update_container(
            &c.uuid,
            &|c: &mut Container| {
                c.status = ContainerStatus::Deleting;
                c.name = "changed".into();
                Err(ApiError::conflict(
                    "Cannot stop container in Creating state",
                ))
            },
            Some(&new_action("stop", Some("h"))),
        )
        .await;
    match err {
        Err(StoreError::Rejected(e)) => {
            assert_eq!(e.status, 409);
            assert_eq!(e.detail, "Cannot stop container in Creating state");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(store.get_container(&c.uuid).await.unwrap(), Some(c.clone()));
    assert_eq!(revision(&*store, &c.uuid).await, 1);
    assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 1);
    assert_eq!(store.pending_actions("h").await.unwrap().len(), 1);
    // The store still works afterwards (the transaction was released).
    store
        .update_container(&c.uuid, &|_: &mut Container| Ok(()), None)
        .await
        .unwrap();
    assert_eq!(revision(&*store, &c.uuid).await, 2);
}

async fn lost_compare_and_swap_is_retried_then_bounded(store: TestStore) {
    let c = container(5, "p1");
    store
        .insert_container(&c, &new_action("create", Some("h")), None)
        .await
        .unwrap();
    let push = |c: &mut Container| {
        let n = c.labels.len();
        c.labels.insert(format!("k{n}"), "v".into());
        Ok(())
    };

    store.force_conflicts(3);
    let (updated, record) = store
        .update_container(&c.uuid, &push, Some(&new_action("stop", Some("h"))))
        .await
        .unwrap();
    assert_eq!(store.forced_conflicts_left(), 0);
    assert_eq!(updated.labels.len(), 1, "the mutation lands once");
    assert!(record.is_some());
    assert_eq!(revision(&*store, &c.uuid).await, 2);
    assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 2);

    store.force_conflicts(1000);
    let err = store
        .update_container(&c.uuid, &push, Some(&new_action("kill", Some("h"))))
        .await;
    assert!(matches!(err, Err(StoreError::Database(_))), "{err:?}");
    store.force_conflicts(0);
    assert_eq!(store.get_container(&c.uuid).await.unwrap(), Some(updated));
    assert_eq!(revision(&*store, &c.uuid).await, 2);
    assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 2);
}

async fn concurrent_writers(store: TestStore) {
    // 50 concurrent inserts.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let c = container(i, "p1");
            store
                .insert_container(&c, &new_action("create", Some("h")), None)
                .await
                .map(|_| c.uuid)
        }));
    }
    let mut inserted = HashSet::new();
    for task in tasks {
        inserted.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(inserted.len(), 50);
    let listed = store
        .list_containers(&query(None, "id", SortDir::Asc))
        .await
        .unwrap();
    assert_eq!(listed.len(), 50);
    assert_eq!(store.pending_actions("h").await.unwrap().len(), 50);

    // 50 concurrent read-modify-writes of one row: none may be lost.
    let target = listed[0].uuid.clone();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mutate = move |c: &mut Container| {
                let n: u32 = c
                    .labels
                    .get("counter")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                c.labels.insert("counter".into(), (n + 1).to_string());
                c.labels.insert(format!("writer{i}"), "yes".into());
                Ok(())
            };
            store
                .update_container(&target, &mutate, Some(&new_action("update", Some("h"))))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let after = store.get_container(&target).await.unwrap().unwrap();
    assert_eq!(after.labels.get("counter").map(String::as_str), Some("50"));
    assert_eq!(after.labels.len(), 51);
    assert_eq!(revision(&*store, &target).await, 51);
    assert_eq!(store.list_actions(&target).await.unwrap().len(), 51);
}

/// A container of `project` holding exactly these resources.
fn sized(project: &str, cpu: Option<f64>, memory: Option<&str>, disk: i64) -> Container {
    let mut c = container(1, project);
    c.cpu = cpu;
    c.memory = memory.map(str::to_owned);
    c.disk = disk;
    c
}

fn limits(containers: i64, cpu: i64, memory: i64, disk: i64) -> QuotaLimits {
    QuotaLimits {
        containers,
        cpu,
        memory,
        disk,
    }
}

async fn count_rows(store: &dyn Harness, project: &str) -> i64 {
    store.usage(project).await.unwrap().containers
}

async fn quota_rows_and_limit_resolution(store: TestStore) {
    assert!(store.project_quotas("p1").await.unwrap().is_empty());
    assert!(store.quota_class("default").await.unwrap().is_empty());
    let defaults = QuotaLimits::UPSTREAM_DEFAULTS;
    let resolve = async |project: &str| {
        defaults
            .overridden_by(&store.quota_class(crate::DEFAULT_QUOTA_CLASS).await.unwrap())
            .overridden_by(&store.project_quotas(project).await.unwrap())
    };
    assert_eq!(resolve("p1").await, limits(40, 20, 51200, 100));

    // The class `default` overrides the configured defaults for all.
    store.set_quota_class("default", "cpu", 8).await.unwrap();
    store.set_quota_class("gold", "cpu", 64).await.unwrap();
    assert_eq!(resolve("p1").await, limits(40, 8, 51200, 100));
    assert_eq!(resolve("p2").await, limits(40, 8, 51200, 100));
    assert_eq!(
        store.quota_class("gold").await.unwrap(),
        BTreeMap::from([("cpu".to_owned(), 64)])
    );

    // A project row overrides both; setting again replaces it.
    store.set_project_quota("p1", "cpu", 2).await.unwrap();
    store
        .set_project_quota("p1", "containers", 5)
        .await
        .unwrap();
    store
        .set_project_quota("p1", "containers", -1)
        .await
        .unwrap();
    assert_eq!(
        store.project_quotas("p1").await.unwrap(),
        BTreeMap::from([("containers".to_owned(), -1), ("cpu".to_owned(), 2)])
    );
    assert_eq!(resolve("p1").await, limits(-1, 2, 51200, 100));
    assert_eq!(resolve("p2").await, limits(40, 8, 51200, 100));

    // Deleting reverts the project to the defaults, and only it.
    store.set_project_quota("p2", "disk", 7).await.unwrap();
    store.delete_project_quotas("p1").await.unwrap();
    store.delete_project_quotas("nobody").await.unwrap();
    assert!(store.project_quotas("p1").await.unwrap().is_empty());
    assert_eq!(resolve("p1").await, limits(40, 8, 51200, 100));
    assert_eq!(resolve("p2").await, limits(40, 8, 51200, 7));
    store.set_quota_class("default", "cpu", 30).await.unwrap();
    assert_eq!(resolve("p1").await.cpu, 30);
}

async fn usage_sums_the_project(store: TestStore) {
    assert_eq!(store.usage("p1").await.unwrap(), QuotaUsage::default());
    for c in [
        sized("p1", Some(0.1), Some("512"), 10),
        sized("p1", Some(0.2), Some("64"), 0),
        sized("p1", None, None, 5),
        sized("p2", Some(4.0), Some("4096"), 100),
    ] {
        store
            .insert_container(&c, &new_action("create", None), None)
            .await
            .unwrap();
    }
    let usage = store.usage("p1").await.unwrap();
    assert_eq!(
        usage,
        QuotaUsage {
            containers: 3,
            cpu: 0.3,
            memory: 576,
            disk: 15
        }
    );
    assert_eq!(store.usage("p2").await.unwrap().memory, 4096);
}

async fn insert_over_quota_is_refused_and_writes_nothing(store: TestStore) {
    let quota = limits(2, 3, 1024, -1);
    for _ in 0..2 {
        let c = sized("p1", Some(1.0), Some("256"), 50);
        store
            .insert_container(&c, &new_action("create", Some("h")), Some(&quota))
            .await
            .unwrap();
    }
    let third = sized("p1", Some(1.0), Some("256"), 50);
    let err = store
        .insert_container(&third, &new_action("create", Some("h")), Some(&quota))
        .await;
    match err {
        Err(StoreError::Rejected(e)) => {
            assert_eq!(e.status, 403);
            assert_eq!(e.code, "over-quota");
            assert_eq!(e.detail, "Quota exceeded for resources: ['containers']");
        }
        other => panic!("expected over-quota, got {other:?}"),
    }
    assert_eq!(store.get_container(&third.uuid).await.unwrap(), None);
    assert!(store.list_actions(&third.uuid).await.unwrap().is_empty());
    assert_eq!(store.pending_actions("h").await.unwrap().len(), 2);

    // Every exceeded resource is named, sorted as upstream sorts them.
    let quota = limits(2, 2, 600, 120);
    let big = sized("p1", Some(0.5), Some("100"), 30);
    let err = store
        .insert_container(&big, &new_action("create", None), Some(&quota))
        .await;
    match err {
        Err(StoreError::Rejected(e)) => assert_eq!(
            e.detail,
            "Quota exceeded for resources: ['containers', 'cpu', 'disk', 'memory']"
        ),
        other => panic!("expected over-quota, got {other:?}"),
    }
    // Exactly at a limit is allowed; other projects do not count.
    let fits = sized("p1", Some(1.0), Some("512"), 0);
    store
        .insert_container(
            &fits,
            &new_action("create", None),
            Some(&limits(3, 3, 1024, 100)),
        )
        .await
        .unwrap();
    let zero = limits(0, 0, 0, 0);
    let err = store
        .insert_container(
            &sized("p2", None, None, 0),
            &new_action("create", None),
            Some(&zero),
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::Rejected(ref e)) if e.detail.ends_with("['containers']")),
        "{err:?}"
    );
    store
        .insert_container(
            &sized("p2", Some(16.0), Some("8192"), 160),
            &new_action("create", None),
            Some(&QuotaLimits::UNLIMITED),
        )
        .await
        .unwrap();
    assert_eq!(count_rows(&*store, "p1").await, 3);
    assert_eq!(count_rows(&*store, "p2").await, 1);
}

async fn checked_update_counts_the_new_resources(store: TestStore) {
    let quota = limits(10, 4, 2048, -1);
    let a = sized("p1", Some(1.0), Some("512"), 0);
    let b = sized("p1", Some(2.0), Some("512"), 0);
    for c in [&a, &b] {
        store
            .insert_container(c, &new_action("create", None), Some(&quota))
            .await
            .unwrap();
    }
    let set = |cpu: f64, memory: &'static str| {
        move |c: &mut Container| {
            c.cpu = Some(cpu);
            c.memory = Some(memory.to_owned());
            Ok(())
        }
    };
    // 2 + 1.5 = 3.5 cpus and 512 + 1536 MiB: within.
    let (grown, _) = store
        .update_container_checked(&a.uuid, &set(1.5, "1536"), None, Some(&quota))
        .await
        .unwrap();
    assert_eq!(grown.cpu, Some(1.5));
    // 2 + 2.5 = 4.5 cpus: over; the row keeps its values.
    let err = store
        .update_container_checked(
            &a.uuid,
            &set(2.5, "1536"),
            Some(&new_action("update", None)),
            Some(&quota),
        )
        .await;
    match err {
        Err(StoreError::Rejected(e)) => {
            assert_eq!(e.status, 403);
            assert_eq!(e.detail, "Quota exceeded for resources: ['cpu']");
        }
        other => panic!("expected over-quota, got {other:?}"),
    }
    let stored = store.get_container(&a.uuid).await.unwrap().unwrap();
    assert_eq!(stored, grown);
    assert_eq!(store.list_actions(&a.uuid).await.unwrap().len(), 1);
    let err = store
        .update_container_checked(&a.uuid, &set(1.0, "1537"), None, Some(&quota))
        .await;
    assert!(
        matches!(err, Err(StoreError::Rejected(ref e)) if e.detail.ends_with("['memory']")),
        "{err:?}"
    );
    // Without limits nothing is checked.
    store
        .update_container(&a.uuid, &set(8.0, "4096"), None)
        .await
        .unwrap();
    assert_eq!(store.usage("p1").await.unwrap().cpu, 10.0);
}

async fn concurrent_creates_never_overshoot_a_quota(store: TestStore) {
    let quota = limits(3, -1, -1, -1);
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let c = container(i, "p1");
            barrier.wait().await;
            store
                .insert_container(&c, &new_action("create", Some("h")), Some(&quota))
                .await
        }));
    }
    let (mut accepted, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(StoreError::Rejected(e)) => {
                assert_eq!(e.code, "over-quota");
                assert_eq!(e.detail, "Quota exceeded for resources: ['containers']");
                refused += 1;
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!((accepted, refused), (3, 17));
    assert_eq!(count_rows(&*store, "p1").await, 3);
    assert_eq!(store.pending_actions("h").await.unwrap().len(), 3);
    assert_eq!(store.usage("p1").await.unwrap().containers, 3);
}

async fn pending_actions_lifecycle(store: TestStore) {
    let a = container(1, "p1");
    let b = container(2, "p1");
    let create_a = store
        .insert_container(&a, &new_action("create", Some("h1")), None)
        .await
        .unwrap();
    let create_b = store
        .insert_container(&b, &new_action("create", Some("h2")), None)
        .await
        .unwrap();
    let (_, stop_a) = store
        .update_container(
            &a.uuid,
            &|_: &mut Container| Ok(()),
            Some(&new_action("stop", Some("h1"))),
        )
        .await
        .unwrap();
    let stop_a = stop_a.unwrap();

    assert_eq!(
        store.pending_actions("h1").await.unwrap(),
        vec![create_a.clone(), stop_a.clone()]
    );
    assert_eq!(
        store.pending_actions("h2").await.unwrap(),
        vec![create_b.clone()]
    );
    assert!(store.pending_actions("h3").await.unwrap().is_empty());

    store.finish_action(create_a.id, None).await.unwrap();
    assert_eq!(
        store.pending_actions("h1").await.unwrap(),
        vec![stop_a.clone()]
    );
    store.finish_action(stop_a.id, Some("Error")).await.unwrap();
    assert!(store.pending_actions("h1").await.unwrap().is_empty());
    assert_eq!(store.pending_actions("h2").await.unwrap(), vec![create_b]);

    let actions = store.list_actions(&a.uuid).await.unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0].id, stop_a.id);
    assert_eq!(actions[0].message.as_deref(), Some("Error"));
    assert!(actions[0].finish_time.unwrap() >= actions[0].start_time);
    assert_eq!(actions[1].id, create_a.id);
    assert_eq!(actions[1].message, None);
    assert!(actions[1].finish_time.is_some());
    assert_eq!(actions[1].params, serde_json::json!({"timeout": 10}));
}

async fn events(store: TestStore) {
    let c = container(1, "p1");
    let action = new_action("create", Some("h"));
    let record = store.insert_container(&c, &action, None).await.unwrap();

    let (got, events) = store
        .get_action(&c.uuid, &action.request_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, record);
    assert!(events.is_empty());
    assert!(
        store
            .get_action(&c.uuid, "req-unknown")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_action("other", &action.request_id)
            .await
            .unwrap()
            .is_none()
    );

    let event = "compute__do_container_create";
    store.start_event(record.id, event).await.unwrap();
    // Redone after a crash: the open event is reused.
    store.start_event(record.id, event).await.unwrap();
    let (_, events) = store
        .get_action(&c.uuid, &action.request_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, event);
    assert!(events[0].finish_time.is_none() && events[0].result.is_none());

    store
        .finish_event(record.id, event, "Error", Some("boom"))
        .await
        .unwrap();
    let (_, events) = store
        .get_action(&c.uuid, &action.request_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].result.as_deref(), Some("Error"));
    assert_eq!(events[0].traceback.as_deref(), Some("boom"));
    assert!(events[0].finish_time.unwrap() >= events[0].start_time);

    // A finished event is not reused; the next finish closes the new one.
    store.start_event(record.id, event).await.unwrap();
    store
        .finish_event(record.id, event, "Success", None)
        .await
        .unwrap();
    // Finishing an event never started records it.
    store
        .finish_event(record.id, "compute__other", "Success", None)
        .await
        .unwrap();
    let (_, events) = store
        .get_action(&c.uuid, &action.request_id)
        .await
        .unwrap()
        .unwrap();
    let summary: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| (e.event.as_str(), e.result.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (event, Some("Error")),
            (event, Some("Success")),
            ("compute__other", Some("Success"))
        ]
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[0].start_time <= w[1].start_time)
    );
    assert_eq!(events[1].traceback, None);

    // Events belong to an existing action.
    assert!(store.start_event(record.id + 100, event).await.is_err());
}

async fn wait_for_work_wakes_on_new_actions(store: TestStore) {
    let started = std::time::Instant::now();
    store.wait_for_work("h", Duration::from_millis(100)).await;
    assert!(started.elapsed() >= Duration::from_millis(90));

    // Work for another host does not wake this one.
    let other = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            store.wait_for_work("h", Duration::from_millis(700)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .insert_container(
            &container(9, "p1"),
            &new_action("create", Some("elsewhere")),
            None,
        )
        .await
        .unwrap();
    assert!(other.await.unwrap() >= Duration::from_millis(650));

    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            store.wait_for_work("h", Duration::from_secs(30)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = container(1, "p1");
    store
        .insert_container(&c, &new_action("create", Some("h")), None)
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");

    // An update with an action wakes waiters too.
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_work("h", Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .update_container(
            &c.uuid,
            &|_: &mut Container| Ok(()),
            Some(&new_action("stop", Some("h"))),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
}

fn registry(i: usize, project: &str) -> Registry {
    Registry {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: (!i.is_multiple_of(4)).then(|| format!("reg{}", i % 3)),
        domain: format!("registry{}.example.com:5000", i % 2),
        username: Some(format!("user{}", i % 5)),
        password_sealed: Some(format!("v1:sealed-{i}")),
        project_id: project.to_owned(),
        user_id: format!("u{}", i % 2),
        created_at: Utc::now().trunc_subsecs(6) + TimeDelta::seconds((i % 7) as i64),
        updated_at: None,
    }
}

fn image(i: usize, host: &str, task: Option<ImageTask>) -> Image {
    Image {
        uuid: uuid::Uuid::new_v4().to_string(),
        image_id: None,
        repo: format!("repo{}", i % 3),
        tag: "latest".into(),
        size: None,
        host: host.to_owned(),
        project_id: "p1".into(),
        user_id: "u1".into(),
        task,
        created_at: Utc::now().trunc_subsecs(6),
        updated_at: None,
    }
}

fn registry_query(project: Option<&str>, key: &str, dir: SortDir, limit: u32) -> RegistryListQuery {
    RegistryListQuery {
        project_id: project.map(str::to_owned),
        filters: Vec::new(),
        limit,
        marker: None,
        sort_key: key.to_owned(),
        sort_dir: dir,
    }
}

async fn registries_round_trip_and_pages_cover_every_row_once(store: TestStore) {
    let mut all = Vec::new();
    for i in 0..23 {
        let r = registry(i, ["p1", "p2"][i % 2]);
        store.insert_registry(&r).await.unwrap();
        all.push(r);
    }
    assert_eq!(
        store.get_registry(&all[3].uuid).await.unwrap().as_ref(),
        Some(&all[3])
    );
    assert_eq!(store.get_registry("nope").await.unwrap(), None);
    for key in crate::REGISTRY_SORT_KEYS {
        for dir in [SortDir::Asc, SortDir::Desc] {
            let mut query = registry_query(Some("p1"), key, dir, 5);
            let mut seen = Vec::new();
            loop {
                let page = store.list_registries(&query).await.unwrap();
                seen.extend(page.iter().map(|r| r.uuid.clone()));
                match page.last() {
                    Some(last) if page.len() == 5 => query.marker = Some(last.uuid.clone()),
                    _ => break,
                }
            }
            let mut expected: Vec<String> = all
                .iter()
                .filter(|r| r.project_id == "p1")
                .map(|r| r.uuid.clone())
                .collect();
            assert_eq!(seen.len(), expected.len(), "{key} {dir:?}");
            seen.sort();
            expected.sort();
            assert_eq!(seen, expected, "{key} {dir:?}");
        }
    }
    let mut by_name = registry_query(None, "id", SortDir::Asc, 100);
    by_name.filters = vec![
        ("name".into(), "reg1".into()),
        ("project_id".into(), "p2".into()),
    ];
    let found = store.list_registries(&by_name).await.unwrap();
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|r| r.name.as_deref() == Some("reg1") && r.project_id == "p2")
    );
    assert_eq!(
        store
            .find_registries_by_name("reg1", Some("p2"))
            .await
            .unwrap()
            .len(),
        found.len()
    );
    let mut bad = registry_query(None, "password_sealed", SortDir::Asc, 5);
    assert!(matches!(
        store.list_registries(&bad).await,
        Err(StoreError::Rejected(_))
    ));
    bad.sort_key = "id".into();
    bad.filters = vec![("password_sealed".into(), "x".into())];
    assert!(matches!(
        store.list_registries(&bad).await,
        Err(StoreError::Rejected(_))
    ));
    bad.filters.clear();
    bad.marker = Some("missing".into());
    assert!(matches!(
        store.list_registries(&bad).await,
        Err(StoreError::MarkerNotFound(_))
    ));
}

async fn a_registry_in_use_cannot_be_deleted(store: TestStore) {
    let r = registry(1, "p1");
    store.insert_registry(&r).await.unwrap();
    let mut c = container(1, "p1");
    c.registry_id = Some(r.uuid.clone());
    store
        .insert_container(&c, &new_action("create", None), None)
        .await
        .unwrap();
    let err = store.delete_registry(&r.uuid).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(e) if e.status == 409));
    assert!(store.delete_container(&c.uuid).await.unwrap());
    assert!(store.delete_registry(&r.uuid).await.unwrap());
    assert!(!store.delete_registry(&r.uuid).await.unwrap());
    let mut gone = r.clone();
    gone.name = Some("renamed".into());
    assert!(!store.update_registry(&gone).await.unwrap());
}

async fn image_tasks_are_per_host_and_updates_are_conditional(store: TestStore) {
    let pulling = image(0, "h1", Some(ImageTask::Pulling));
    let done = image(1, "h1", None);
    let other_host = image(2, "h2", Some(ImageTask::Pulling));
    for i in [&pulling, &done, &other_host] {
        store.insert_image(i).await.unwrap();
    }
    let tasks = store.image_tasks("h1").await.unwrap();
    assert_eq!(tasks, vec![pulling.clone()]);
    // A delete asked for during the pull...
    let mut deleting = pulling.clone();
    deleting.task = Some(ImageTask::Deleting);
    assert!(
        store
            .update_image_if(&deleting, Some(ImageTask::Pulling))
            .await
            .unwrap()
    );
    // ...is not overwritten by the pull finishing.
    let mut pulled = pulling.clone();
    pulled.task = None;
    pulled.image_id = Some("sha256:abc".into());
    assert!(
        !store
            .update_image_if(&pulled, Some(ImageTask::Pulling))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_image(&pulling.uuid).await.unwrap().unwrap().task,
        Some(ImageTask::Deleting)
    );
    let mut query = ImageListQuery {
        limit: 2,
        marker: None,
        sort_key: "repo".into(),
        sort_dir: SortDir::Desc,
    };
    let first = store.list_images(&query).await.unwrap();
    assert_eq!(first.len(), 2);
    query.marker = Some(first[1].uuid.clone());
    let second = store.list_images(&query).await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(store.delete_image(&pulling.uuid).await.unwrap());
    assert!(store.get_image(&pulling.uuid).await.unwrap().is_none());
}

/// A registry deleted while containers referencing it are being written:
/// the delete either refuses (a reference committed first) or wins (and no
/// write committed a reference before it); nothing deadlocks.
async fn registry_delete_races_container_writes(store: TestStore) {
    for round in 0..20 {
        let r = registry(round, "p1");
        store.insert_registry(&r).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let insert = {
            let (store, barrier, registry_id) = (store.clone(), barrier.clone(), r.uuid.clone());
            tokio::spawn(async move {
                let mut c = container(round, "p1");
                c.registry_id = Some(registry_id);
                barrier.wait().await;
                store
                    .insert_container(&c, &new_action("create", None), None)
                    .await
                    .unwrap();
                c.uuid
            })
        };
        let delete = {
            let (store, barrier, uuid) = (store.clone(), barrier.clone(), r.uuid.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.delete_registry(&uuid).await
            })
        };
        barrier.wait().await;
        let inserted = insert.await.unwrap();
        match delete.await.unwrap() {
            Err(StoreError::Rejected(e)) => {
                assert_eq!(e.status, 409);
                assert!(store.get_registry(&r.uuid).await.unwrap().is_some());
            }
            Ok(existed) => {
                assert!(existed);
                assert!(store.get_registry(&r.uuid).await.unwrap().is_none());
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
        // Either way the container was written, and a registry it still
        // references cannot go.
        assert!(store.get_container(&inserted).await.unwrap().is_some());
        if store.get_registry(&r.uuid).await.unwrap().is_some() {
            assert!(store.delete_registry(&r.uuid).await.is_err());
        }
    }
}

pub(crate) fn node(hostname: &str, cpus: f64) -> ComputeNode {
    ComputeNode {
        uuid: uuid::Uuid::new_v4().to_string(),
        hostname: hostname.into(),
        cpus,
        mem_total: 4096,
        disk_total: 100,
        disk_quota_supported: false,
        runtimes: vec!["runc".into()],
        labels: Default::default(),
        architecture: Some("x86_64".into()),
        os_type: Some("linux".into()),
        os: Some("Debian".into()),
        kernel_version: Some("6.1".into()),
        enable_cpu_pinning: false,
        endpoint: None,
        overlay_address: None,
    }
}

/// Room for containers of 1 cpu while the host is up.
pub(crate) fn fits_one_cpu(host: &zun_scheduler::HostState) -> Result<(), String> {
    if host.up && host.cpu_used + 1.0 <= host.cpus {
        Ok(())
    } else {
        Err(format!("{} is full", host.hostname))
    }
}

/// Container `i` of `project` on `host`, holding 1 cpu.
pub(crate) fn one_cpu_on(i: usize, project: &str, host: &str) -> Container {
    let mut c = container(i, project);
    c.host = Some(host.into());
    c.cpu = Some(1.0);
    c.status = ContainerStatus::Creating;
    c
}

async fn services_heartbeat_and_change(store: TestStore) {
    let first = store
        .report_service("h1", COMPUTE_BINARY, Some("az1"))
        .await
        .unwrap();
    assert_eq!(first.report_count, 1);
    let second = store
        .report_service("h1", COMPUTE_BINARY, Some("az1"))
        .await
        .unwrap();
    assert_eq!((second.id, second.report_count), (first.id, 2));
    assert!(second.is_up(Utc::now(), Duration::from_secs(60)));
    assert!(!second.is_up(
        Utc::now() + chrono::Duration::seconds(61),
        Duration::from_secs(60)
    ));
    let change = ServiceChange {
        disabled: Some((true, Some("maintenance".into()))),
        forced_down: Some(true),
    };
    let changed = store
        .update_service("h1", COMPUTE_BINARY, &change)
        .await
        .unwrap()
        .unwrap();
    assert!(changed.disabled && changed.forced_down);
    assert_eq!(changed.disabled_reason.as_deref(), Some("maintenance"));
    assert!(
        !changed.is_up(Utc::now(), Duration::from_secs(60)),
        "forced down"
    );
    assert!(
        store
            .update_service("nope", COMPUTE_BINARY, &change)
            .await
            .unwrap()
            .is_none()
    );
    store.upsert_compute_node(&node("h1", 2.0)).await.unwrap();
    assert!(store.delete_service("h1", COMPUTE_BINARY).await.unwrap());
    assert!(store.list_services().await.unwrap().is_empty());
    assert!(
        store.get_host("h1").await.unwrap().is_none(),
        "its node went too"
    );
}

async fn nodes_keep_their_uuid_and_count_what_is_placed(store: TestStore) {
    let first = store.upsert_compute_node(&node("h1", 2.0)).await.unwrap();
    let again = store.upsert_compute_node(&node("h1", 4.0)).await.unwrap();
    assert_eq!(again.uuid, first.uuid);
    store
        .report_service("h1", COMPUTE_BINARY, None)
        .await
        .unwrap();
    for (i, status) in [(1, "Running"), (2, "Stopped"), (3, "Error")] {
        let mut c = container(i, "p1");
        c.host = Some("h1".into());
        c.cpu = Some(0.5);
        c.memory = Some("256".into());
        c.disk = 1;
        c.status = match status {
            "Running" => ContainerStatus::Running,
            "Stopped" => ContainerStatus::Stopped,
            _ => ContainerStatus::Error,
        };
        store
            .insert_container(&c, &new_action("create", Some("h1")), None)
            .await
            .unwrap();
    }
    let view = store.get_host(&first.uuid).await.unwrap().unwrap();
    assert_eq!(view.node.cpus, 4.0);
    assert_eq!(
        view.usage,
        NodeUsage {
            cpu_used: 1.0,
            mem_used: 512,
            disk_used: 2,
            total_containers: 2
        },
        "Error containers hold nothing"
    );
    let listed = store.list_hosts().await.unwrap();
    assert_eq!(listed, vec![view]);
}

/// A host's memory is summed as a project's is: the MiB of the decimal
/// string, nothing for a container without a limit; hosts without a node
/// are not listed, nodes without containers hold nothing.
async fn host_usage_reads_memory_as_quota_usage_does(store: TestStore) {
    store.upsert_compute_node(&node("h1", 8.0)).await.unwrap();
    store.upsert_compute_node(&node("h2", 8.0)).await.unwrap();
    for (i, memory, host) in [
        (1, None, "h1"),
        (2, Some("64"), "h1"),
        (3, Some("1024"), "h1"),
        (4, Some("512"), "elsewhere"),
    ] {
        let mut c = container(i, "p9");
        c.host = Some(host.into());
        c.memory = memory.map(str::to_owned);
        c.cpu = Some(0.25);
        c.disk = 3;
        c.status = ContainerStatus::Running;
        store
            .insert_container(&c, &new_action("create", Some(host)), None)
            .await
            .unwrap();
    }
    let hosts = store.list_hosts().await.unwrap();
    let names: Vec<&str> = hosts.iter().map(|h| h.node.hostname.as_str()).collect();
    assert_eq!(names, ["h1", "h2"]);
    assert_eq!(
        hosts[0].usage,
        NodeUsage {
            cpu_used: 0.75,
            mem_used: 1088,
            disk_used: 9,
            total_containers: 3
        }
    );
    assert_eq!(hosts[1].usage, NodeUsage::default());
    assert!(hosts.iter().all(|h| h.service.is_none()));
    let quota = store.usage("p9").await.unwrap();
    assert_eq!(
        quota.memory,
        hosts[0].usage.mem_used + 512,
        "the same reading of memory"
    );
}

async fn placed_inserts_never_over_commit_a_host(store: TestStore) {
    store.upsert_compute_node(&node("h1", 3.0)).await.unwrap();
    store
        .report_service("h1", COMPUTE_BINARY, None)
        .await
        .unwrap();
    // Room for three containers of 1 cpu.
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let c = one_cpu_on(i, "p1", "h1");
            let placement = Placement {
                down_after: Duration::from_secs(60),
                fits: &fits_one_cpu,
            };
            barrier.wait().await;
            store
                .insert_placed_container(
                    &c,
                    &new_action("create", Some("h1")),
                    None,
                    Some(&placement),
                )
                .await
        }));
    }
    let mut placed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => placed += 1,
            Err(StoreError::NoRoom(reason)) => assert_eq!(reason, "h1 is full"),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(placed, 3);
    assert_eq!(store.containers_on_host("h1").await.unwrap().len(), 3);
    assert_eq!(store.pending_actions("h1").await.unwrap().len(), 3);
    let missing = Placement {
        down_after: Duration::from_secs(60),
        fits: &fits_one_cpu,
    };
    let c = one_cpu_on(99, "p1", "ghost");
    let err = store
        .insert_placed_container(
            &c,
            &new_action("create", Some("ghost")),
            None,
            Some(&missing),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoRoom(_)), "{err}");
    assert!(store.get_container(&c.uuid).await.unwrap().is_none());
}

pub(crate) fn net(cidr: &str) -> Ipv4Net {
    cidr.parse().unwrap()
}

pub(crate) fn ip(addr: &str) -> Ipv4Addr {
    addr.parse().unwrap()
}

/// The pool and prefix of the network tests: /20s from 10.128.0.0/9.
pub(crate) const PREFIX: u8 = 20;

pub(crate) fn pool() -> Ipv4Net {
    net("10.128.0.0/9")
}

async fn networks_are_created_once_per_project_and_name(store: TestStore) {
    let first = store
        .ensure_network("p1", "default", pool(), PREFIX)
        .await
        .unwrap();
    assert_eq!(first.vni, 1, "vni 0 is never used");
    assert_eq!(first.cidr, net("10.128.16.0/20"));
    assert_eq!(first.gateway, ip("10.128.16.1"));
    assert_eq!(
        (first.project_id.as_str(), first.name.as_str()),
        ("p1", "default")
    );
    assert_ne!(first.uuid, first.subnet_uuid);
    let again = store
        .ensure_network("p1", "default", pool(), PREFIX)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        store.get_network(&first.uuid).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_network("nope").await.unwrap(), None);

    // Ten callers at once for another project's network: one row, which
    // every caller gets.
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.ensure_network("p2", "default", pool(), PREFIX).await
        }));
    }
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.unwrap().unwrap());
    }
    let other = got[0].clone();
    assert!(got.iter().all(|n| *n == other), "{got:?}");
    assert_eq!(other.vni, 2);
    assert_eq!(other.cidr, net("10.128.32.0/20"));
    assert_ne!(other.uuid, first.uuid);
    assert_ne!(other.subnet_uuid, first.subnet_uuid);

    // Another name in one project is a network of its own.
    let second = store
        .ensure_network("p1", "backend", pool(), PREFIX)
        .await
        .unwrap();
    assert_eq!(second.vni, 3);
    assert_eq!(
        store.list_networks(None).await.unwrap(),
        vec![first.clone(), other.clone(), second.clone()]
    );
    assert_eq!(
        store.list_networks(Some("p1")).await.unwrap(),
        vec![first, second]
    );
    assert_eq!(store.list_networks(Some("p2")).await.unwrap(), vec![other]);
    assert!(store.list_networks(Some("p3")).await.unwrap().is_empty());
}

async fn pools_run_out_of_subnets(store: TestStore) {
    // The /31s of a /30 have no room for a gateway.
    let err = store
        .ensure_network("p1", "default", net("10.0.0.0/30"), 31)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Exhausted(_)), "{err}");
    assert!(store.list_networks(None).await.unwrap().is_empty());
    // A /28 holds two /29s, and index 0 is never used: room for one.
    let small = net("10.0.0.0/28");
    let only = store
        .ensure_network("p1", "default", small, 29)
        .await
        .unwrap();
    assert_eq!(
        (only.vni, only.cidr, only.gateway),
        (1, net("10.0.0.8/29"), ip("10.0.0.9"))
    );
    let err = store
        .ensure_network("p2", "default", small, 29)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Exhausted(_)), "{err}");
    assert!(err.to_string().contains("10.0.0.0/28"), "{err}");
    // An existing network is found whatever the pool has left.
    assert_eq!(
        store
            .ensure_network("p1", "default", small, 29)
            .await
            .unwrap(),
        only
    );
    // Subnets wider than the pool: nothing to carve.
    let err = store
        .ensure_network("p3", "default", small, 27)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Exhausted(_)), "{err}");
    assert_eq!(store.list_networks(None).await.unwrap(), vec![only]);
}

async fn ports_take_the_lowest_free_address(store: TestStore) {
    let network = store
        .ensure_network("p1", "default", pool(), PREFIX)
        .await
        .unwrap();
    let mut ports = Vec::new();
    for name in ["c-a", "c-b", "c-c"] {
        ports.push(
            store
                .allocate_port(&network, name, "p1", Some("h1"), None)
                .await
                .unwrap(),
        );
    }
    let ips: Vec<Ipv4Addr> = ports.iter().map(|p| p.ip).collect();
    assert_eq!(
        ips,
        [ip("10.128.16.2"), ip("10.128.16.3"), ip("10.128.16.4")]
    );
    let a = ports[0].clone();
    assert_eq!(a.network_uuid, network.uuid);
    assert_eq!(a.container_uuid, "c-a");
    assert_eq!(a.project_id, "p1");
    assert_eq!(a.host.as_deref(), Some("h1"));
    assert_eq!(a.mac, mac_for(a.ip));
    // Idempotent per container and network: the same port comes back.
    let again = store
        .allocate_port(&network, "c-a", "p1", Some("h2"), None)
        .await
        .unwrap();
    assert_eq!(again, a);
    assert_eq!(
        store.ports_of_container("c-a").await.unwrap(),
        vec![a.clone()]
    );

    // A released address is the next one handed out; then the lowest
    // never used.
    assert_eq!(store.release_ports("c-b").await.unwrap(), 1);
    assert_eq!(store.release_ports("c-b").await.unwrap(), 0);
    let d = store
        .allocate_port(&network, "c-d", "p1", None, None)
        .await
        .unwrap();
    assert_eq!(d.ip, ip("10.128.16.3"));
    assert_eq!(d.host, None);
    let e = store
        .allocate_port(&network, "c-e", "p1", None, None)
        .await
        .unwrap();
    assert_eq!(e.ip, ip("10.128.16.5"));

    // The same container on a second network: a port there too, counted
    // in that network's subnet.
    let backend = store
        .ensure_network("p1", "backend", pool(), PREFIX)
        .await
        .unwrap();
    let a2 = store
        .allocate_port(&backend, "c-a", "p1", Some("h1"), None)
        .await
        .unwrap();
    assert_eq!(a2.ip, ip("10.128.32.2"));
    assert_eq!(store.ports_of_container("c-a").await.unwrap(), vec![a, a2]);

    // A network the store does not have.
    let ghost = NetworkRecord {
        uuid: "ghost".into(),
        ..network.clone()
    };
    let err = store
        .allocate_port(&ghost, "c-f", "p1", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

async fn fixed_addresses_are_checked(store: TestStore) {
    let network = store
        .ensure_network("p1", "default", pool(), PREFIX)
        .await
        .unwrap();
    let a = store
        .allocate_port(&network, "c-a", "p1", None, Some(ip("10.128.20.7")))
        .await
        .unwrap();
    assert_eq!(a.ip, ip("10.128.20.7"));
    let err = store
        .allocate_port(&network, "c-b", "p1", None, Some(ip("10.128.20.7")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Rejected(e) if e.status == 409),
        "{err}"
    );
    // The network address, the gateway, the broadcast address, and an
    // address of another subnet.
    for bad in ["10.128.16.0", "10.128.16.1", "10.128.31.255", "10.128.32.2"] {
        let err = store
            .allocate_port(&network, "c-b", "p1", None, Some(ip(bad)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Rejected(e) if e.status == 400),
            "{bad}: {err}"
        );
    }
    assert!(store.ports_of_container("c-b").await.unwrap().is_empty());
    // Fixed addresses are skipped by the next free one.
    let b = store
        .allocate_port(&network, "c-b", "p1", None, Some(ip("10.128.16.2")))
        .await
        .unwrap();
    assert_eq!(b.ip, ip("10.128.16.2"));
    let c = store
        .allocate_port(&network, "c-c", "p1", None, None)
        .await
        .unwrap();
    assert_eq!(c.ip, ip("10.128.16.3"));
}

async fn a_subnet_runs_out_of_addresses(store: TestStore) {
    // vni 1 of /29s in 10.3.0.0/24 is 10.3.0.8/29: .10 to .14 assignable.
    let network = store
        .ensure_network("p1", "default", net("10.3.0.0/24"), 29)
        .await
        .unwrap();
    assert_eq!(network.cidr, net("10.3.0.8/29"));
    for i in 0..5 {
        let port = store
            .allocate_port(&network, &format!("c-{i}"), "p1", None, None)
            .await
            .unwrap();
        assert_eq!(port.ip, Ipv4Addr::new(10, 3, 0, 10 + i));
    }
    let err = store
        .allocate_port(&network, "c-5", "p1", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Exhausted(_)), "{err}");
    assert!(store.ports_of_container("c-5").await.unwrap().is_empty());
    assert_eq!(store.release_ports("c-2").await.unwrap(), 1);
    let port = store
        .allocate_port(&network, "c-5", "p1", None, None)
        .await
        .unwrap();
    assert_eq!(port.ip, ip("10.3.0.12"));
}

async fn concurrent_allocations_never_share_an_address(store: TestStore) {
    let network = store
        .ensure_network("p1", "default", pool(), PREFIX)
        .await
        .unwrap();
    // Twenty containers at once, and five calls for one more container.
    let barrier = Arc::new(tokio::sync::Barrier::new(25));
    let mut tasks = Vec::new();
    for i in 0..25 {
        let (store, barrier, network) = (store.clone(), barrier.clone(), network.clone());
        tasks.push(tokio::spawn(async move {
            let container = if i < 20 {
                format!("c-{i}")
            } else {
                "c-same".to_owned()
            };
            barrier.wait().await;
            store
                .allocate_port(&network, &container, "p1", Some("h1"), None)
                .await
        }));
    }
    let mut ports = Vec::new();
    for task in tasks {
        ports.push(task.await.unwrap().unwrap());
    }
    let same = &ports[20..];
    assert!(same.iter().all(|p| *p == same[0]), "{same:?}");
    let ips: HashSet<Ipv4Addr> = ports.iter().map(|p| p.ip).collect();
    assert_eq!(ips.len(), 21, "every container its own address");
    let expected: HashSet<Ipv4Addr> = (2..=22).map(|d| Ipv4Addr::new(10, 128, 16, d)).collect();
    assert_eq!(ips, expected, "the lowest 21, no gaps");
    assert_eq!(store.ports_on_host("h1").await.unwrap().len(), 21);
}

async fn deleting_a_container_releases_its_ports(store: TestStore) {
    let network = store
        .ensure_network("p1", "default", pool(), PREFIX)
        .await
        .unwrap();
    let backend = store
        .ensure_network("p1", "backend", pool(), PREFIX)
        .await
        .unwrap();
    let c = container(1, "p1");
    store
        .insert_container(&c, &new_action("create", c.host.as_deref()), None)
        .await
        .unwrap();
    let first = store
        .allocate_port(&network, &c.uuid, "p1", c.host.as_deref(), None)
        .await
        .unwrap();
    store
        .allocate_port(&backend, &c.uuid, "p1", c.host.as_deref(), None)
        .await
        .unwrap();
    let other = store
        .allocate_port(&network, "c-other", "p1", None, None)
        .await
        .unwrap();
    assert!(store.delete_container(&c.uuid).await.unwrap());
    assert!(store.ports_of_container(&c.uuid).await.unwrap().is_empty());
    assert_eq!(
        store.ports_of_container("c-other").await.unwrap(),
        vec![other]
    );
    // The address is free again.
    let next = store
        .allocate_port(&network, "c-next", "p1", None, None)
        .await
        .unwrap();
    assert_eq!(next.ip, first.ip);
    // Deleting a container that is gone still clears ports left for it.
    store
        .allocate_port(&backend, &c.uuid, "p1", None, None)
        .await
        .unwrap();
    assert!(!store.delete_container(&c.uuid).await.unwrap());
    assert!(store.ports_of_container(&c.uuid).await.unwrap().is_empty());
}

async fn ports_on_host_and_release(store: TestStore) {
    let one = store
        .ensure_network("p1", "default", pool(), PREFIX)
        .await
        .unwrap();
    let two = store
        .ensure_network("p2", "default", pool(), PREFIX)
        .await
        .unwrap();
    let a = store
        .allocate_port(&one, "c-a", "p1", Some("h1"), None)
        .await
        .unwrap();
    let b = store
        .allocate_port(&two, "c-b", "p2", Some("h1"), None)
        .await
        .unwrap();
    let c = store
        .allocate_port(&one, "c-c", "p1", Some("h2"), None)
        .await
        .unwrap();
    store
        .allocate_port(&one, "c-d", "p1", None, None)
        .await
        .unwrap();
    assert_eq!(
        store.ports_on_host("h1").await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(store.ports_on_host("h2").await.unwrap(), vec![c]);
    assert!(store.ports_on_host("h3").await.unwrap().is_empty());
    let a2 = store
        .allocate_port(&two, "c-a", "p1", Some("h1"), None)
        .await
        .unwrap();
    assert_eq!(
        store.ports_on_host("h1").await.unwrap(),
        vec![a, b.clone(), a2]
    );
    assert_eq!(store.release_ports("c-a").await.unwrap(), 2);
    assert_eq!(store.ports_on_host("h1").await.unwrap(), vec![b]);
    assert_eq!(store.release_ports("c-a").await.unwrap(), 0);
}

async fn networks_in_use_cannot_be_deleted_and_ports_detach_one_by_one(store: TestStore) {
    let one = store
        .ensure_network("p1", "default", pool(), PREFIX)
        .await
        .unwrap();
    let two = store
        .ensure_network("p1", "backend", pool(), PREFIX)
        .await
        .unwrap();
    store
        .allocate_port(&one, "c-a", "p1", Some("h1"), None)
        .await
        .unwrap();
    store
        .allocate_port(&two, "c-a", "p1", Some("h1"), None)
        .await
        .unwrap();
    // Found by uuid or name, in its own project only.
    assert_eq!(
        store.find_network("p1", &two.uuid).await.unwrap(),
        Some(two.clone())
    );
    assert_eq!(
        store.find_network("p1", "backend").await.unwrap(),
        Some(two.clone())
    );
    assert_eq!(store.find_network("p2", &two.uuid).await.unwrap(), None);
    assert_eq!(store.find_network("p2", "backend").await.unwrap(), None);
    match store.delete_network(&two.uuid).await {
        Err(StoreError::Rejected(err)) => assert_eq!(err.status, 409),
        other => panic!("deleted a network in use: {other:?}"),
    }
    assert!(store.release_port("c-a", &two.uuid).await.unwrap());
    assert!(!store.release_port("c-a", &two.uuid).await.unwrap());
    assert_eq!(store.ports_of_container("c-a").await.unwrap().len(), 1);
    assert!(store.delete_network(&two.uuid).await.unwrap());
    assert!(!store.delete_network(&two.uuid).await.unwrap());
    assert_eq!(store.list_networks(Some("p1")).await.unwrap(), vec![one]);
}

async fn network_members_name_the_containers_on_it(store: TestStore) {
    let net = store
        .ensure_network("p1", "default", pool(), PREFIX)
        .await
        .unwrap();
    let empty = store.ports_version().await.unwrap();
    assert_eq!(empty, (0, 0));
    let a = container(1, "p1");
    store
        .insert_container(&a, &new_action("create", None), None)
        .await
        .unwrap();
    let port = store
        .allocate_port(&net, &a.uuid, "p1", Some("h1"), None)
        .await
        .unwrap();
    // A port whose container is not stored is nobody's.
    store
        .allocate_port(&net, "ghost", "p1", Some("h1"), None)
        .await
        .unwrap();
    assert_eq!(
        store.network_members(&net.uuid).await.unwrap(),
        vec![(a.name.clone(), port.ip)]
    );
    let two = store.ports_version().await.unwrap();
    assert_eq!(two.0, 2);
    store.delete_container(&a.uuid).await.unwrap();
    // A release changes the version too.
    assert_ne!(store.ports_version().await.unwrap(), two);
    assert!(store.network_members(&net.uuid).await.unwrap().is_empty());
}

fn group(project: &str, name: &str, container_uuid: Option<&str>) -> SecurityGroupRecord {
    SecurityGroupRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        project_id: project.into(),
        name: name.into(),
        description: String::new(),
        rules: zun_types::security_group::default_rules("self", || {
            uuid::Uuid::new_v4().to_string()
        }),
        container_uuid: container_uuid.map(str::to_owned),
        created_at: base_time(),
    }
}

fn with_volume(i: usize, host: &str, volume: VolumeRef) -> Container {
    Container {
        host: Some(host.into()),
        mounts: vec![Mount::Volume {
            destination: "/data".into(),
            read_only: false,
            volume,
        }],
        ..container(i, "p1")
    }
}

async fn volumes_serve_one_container_and_go_with_the_one_they_were_made_for(store: TestStore) {
    let named = VolumeRef {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: Some("data".into()),
        size_gib: 1,
        auto_remove: false,
        new: true,
        driver: "local".into(),
    };
    let sized = VolumeRef {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: None,
        size_gib: 2,
        auto_remove: true,
        new: true,
        driver: "local".into(),
    };
    let mut first = with_volume(1, "h1", named.clone());
    first.mounts.push(Mount::Volume {
        destination: "/scratch".into(),
        read_only: false,
        volume: sized.clone(),
    });
    let create = new_action("create", Some("h1"));
    store.insert_container(&first, &create, None).await.unwrap();
    let stored = store.get_volume(&named.uuid).await.unwrap().unwrap();
    assert_eq!(stored.host.as_deref(), Some("h1"));
    assert_eq!(stored.container_uuid.as_deref(), Some(first.uuid.as_str()));
    assert_eq!(
        store
            .find_volume("p1", "data")
            .await
            .unwrap()
            .map(|v| v.uuid),
        Some(named.uuid.clone())
    );
    assert_eq!(store.find_volume("p2", "data").await.unwrap(), None);
    // In use: a second container is refused, and nothing of it is written.
    let existing = stored.reference();
    let second = with_volume(2, "h1", existing.clone());
    match store.insert_container(&second, &create, None).await {
        Err(StoreError::Rejected(err)) => {
            assert_eq!((err.status, err.code), (400, "volume-in-use"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get_container(&second.uuid).await.unwrap(), None);
    // A second volume of one name in a project is refused.
    let twin = with_volume(
        3,
        "h1",
        VolumeRef {
            uuid: uuid::Uuid::new_v4().to_string(),
            ..named.clone()
        },
    );
    match store.insert_container(&twin, &create, None).await {
        Err(StoreError::Rejected(err)) => assert_eq!(err.status, 409),
        other => panic!("{other:?}"),
    }
    // The delete frees the named volume and removes the one made for it.
    store.delete_container(&first.uuid).await.unwrap();
    assert_eq!(store.get_volume(&sized.uuid).await.unwrap(), None);
    let freed = store.get_volume(&named.uuid).await.unwrap().unwrap();
    assert_eq!(freed.container_uuid, None);
    // Its data is on h1: a container on h2 cannot claim it.
    let elsewhere = with_volume(4, "h2", existing.clone());
    assert!(matches!(
        store.insert_container(&elsewhere, &create, None).await,
        Err(StoreError::Rejected(_))
    ));
    // Ten containers at once: one gets it.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        let c = with_volume(10 + i, "h1", existing.clone());
        let create = create.clone();
        tasks.push(tokio::spawn(async move {
            store.insert_container(&c, &create, None).await.is_ok()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1);
    assert_eq!(
        store
            .volumes_on_host("h1")
            .await
            .unwrap()
            .iter()
            .map(|v| v.uuid.as_str())
            .collect::<Vec<_>>(),
        [named.uuid.as_str()]
    );
    assert_eq!(store.list_volumes("p1").await.unwrap().len(), 1);
    assert!(store.list_volumes("p2").await.unwrap().is_empty());
    // Deleted only once no container holds it.
    match store.delete_volume(&named.uuid).await {
        Err(StoreError::Rejected(err)) => assert_eq!(err.code, "volume-in-use"),
        other => panic!("{other:?}"),
    }
    let holder = store.get_volume(&named.uuid).await.unwrap().unwrap();
    store
        .delete_container(holder.container_uuid.as_deref().unwrap())
        .await
        .unwrap();
    assert!(store.delete_volume(&named.uuid).await.unwrap());
    assert!(!store.delete_volume(&named.uuid).await.unwrap());
    assert_eq!(store.get_volume(&named.uuid).await.unwrap(), None);
}

async fn security_groups_are_unique_per_project_and_go_with_their_container(store: TestStore) {
    let web = group("p1", "web", None);
    store.insert_security_group(&web).await.unwrap();
    assert_eq!(
        store.get_security_group(&web.uuid).await.unwrap(),
        Some(web.clone())
    );
    match store.insert_security_group(&group("p1", "web", None)).await {
        Err(StoreError::Rejected(err)) => assert_eq!(err.status, 409),
        other => panic!("{other:?}"),
    }
    // The same name in another project is another group.
    store
        .insert_security_group(&group("p2", "web", None))
        .await
        .unwrap();
    // Ten callers at once ensure one default group.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .ensure_security_group(&group("p1", "default", None))
                .await
        }));
    }
    let mut uuids = HashSet::new();
    for task in tasks {
        uuids.insert(task.await.unwrap().unwrap().uuid);
    }
    assert_eq!(uuids.len(), 1);
    let listed = store.list_security_groups(Some("p1")).await.unwrap();
    assert_eq!(
        listed.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["web", "default"]
    );
    assert_eq!(store.list_security_groups(None).await.unwrap().len(), 3);
    assert_eq!(
        store
            .find_security_group("p1", "web")
            .await
            .unwrap()
            .map(|g| g.uuid),
        Some(web.uuid.clone())
    );
    assert_eq!(
        store.find_security_group("p2", &web.uuid).await.unwrap(),
        None
    );
    // A container's exposed-ports group goes with its row.
    let c = container(1, "p1");
    store
        .insert_container(&c, &new_action("create", None), None)
        .await
        .unwrap();
    let exposed = group("p1", "zun-x", Some(&c.uuid));
    store.insert_security_group(&exposed).await.unwrap();
    store.delete_container(&c.uuid).await.unwrap();
    assert_eq!(store.get_security_group(&exposed.uuid).await.unwrap(), None);
    assert!(store.delete_security_group(&web.uuid).await.unwrap());
    assert!(!store.delete_security_group(&web.uuid).await.unwrap());
}

async fn capsules_go_in_and_out_with_their_members_and_count_once(store: TestStore) {
    store.upsert_compute_node(&node("h1", 4.0)).await.unwrap();
    store
        .report_service("h1", COMPUTE_BINARY, None)
        .await
        .unwrap();
    let capsule = Container {
        kind: RecordKind::Capsule,
        host: Some("h1".into()),
        cpu: Some(1.5),
        memory: Some("300".into()),
        disk: 0,
        status: ContainerStatus::Creating,
        ..container(1, "p1")
    };
    let members: Vec<Container> = (0..3)
        .map(|i| Container {
            kind: RecordKind::Member,
            host: Some("h1".into()),
            cpu: Some(0.5),
            memory: Some("100".into()),
            disk: 0,
            status: ContainerStatus::Creating,
            capsule: Some(CapsuleMember {
                capsule_uuid: capsule.uuid.clone(),
                init: i == 0,
                index: 0,
                template_name: Some(format!("m{i}")),
            }),
            ..container(10 + i, "p1")
        })
        .collect();
    let plain = Container {
        host: Some("h1".into()),
        cpu: Some(1.0),
        memory: Some("64".into()),
        disk: 0,
        status: ContainerStatus::Running,
        ..container(20, "p1")
    };
    store
        .insert_placed_group(
            &capsule,
            &members,
            &new_action("create", Some("h1")),
            None,
            None,
        )
        .await
        .unwrap();
    store
        .insert_container(&plain, &new_action("create", Some("h1")), None)
        .await
        .unwrap();

    let found = store.capsule_members(&capsule.uuid).await.unwrap();
    assert_eq!(
        found.iter().map(|m| m.uuid.as_str()).collect::<Vec<_>>(),
        members.iter().map(|m| m.uuid.as_str()).collect::<Vec<_>>(),
        "in insert order"
    );
    assert_eq!(found[0].capsule, members[0].capsule);

    // Lists are per kind: members are seen only through their capsule.
    let mut containers = query(Some("p1"), "id", SortDir::Asc);
    let listed = store.list_containers(&containers).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].uuid, plain.uuid);
    containers.kind = RecordKind::Capsule;
    let capsules = store.list_containers(&containers).await.unwrap();
    assert_eq!(capsules.len(), 1);
    assert_eq!(capsules[0].uuid, capsule.uuid);

    // Quotas count the plain container only (upstream: capsules are not
    // quota-checked); the host holds the capsule's sum once.
    let usage = store.usage("p1").await.unwrap();
    assert_eq!(usage.containers, 1);
    assert_eq!(usage.cpu, 1.0);
    let view = store.get_host("h1").await.unwrap().unwrap();
    assert_eq!(view.usage.cpu_used, 2.5);
    assert_eq!(view.usage.mem_used, 364);
    assert_eq!(view.usage.total_containers, 2);

    assert!(store.delete_container(&capsule.uuid).await.unwrap());
    assert!(
        store
            .capsule_members(&capsule.uuid)
            .await
            .unwrap()
            .is_empty()
    );
    for member in &members {
        assert!(store.get_container(&member.uuid).await.unwrap().is_none());
    }
    assert!(store.get_container(&plain.uuid).await.unwrap().is_some());
}
