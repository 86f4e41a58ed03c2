//! What only the PostgreSQL backend has: several processes on one database
//! (each `PgStore` here has its own pool and listening connection, as a
//! separate process would).

use super::*;
use crate::{HostStore, NetworkStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_starting_together_migrate_once() {
    let db = TestDb::create().await;
    let (a, b, c) = tokio::join!(db.store(), db.store(), db.store());
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(a.pool())
        .await
        .unwrap();
    // Each migration recorded once, whoever ran it.
    let expected = i64::try_from(crate::postgres::MIGRATOR.iter().count()).unwrap();
    assert_eq!(migrations, expected);
    assert!(expected >= 7);
    for store in [a, b, c] {
        store.close().await;
    }
    db.drop_database().await;
}

/// Starts a waiter on `store`; resolves to how long it waited.
fn waiter(store: &PgStore, timeout: Duration) -> tokio::task::JoinHandle<Duration> {
    let store = store.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        store.wait_for_work("h", timeout).await;
        started.elapsed()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn work_written_by_one_process_wakes_another_on_commit_only() {
    let db = TestDb::create().await;
    let (api, agent) = (db.store().await, db.store().await);

    // An insert refused by its quota rolls back: its NOTIFY is never sent.
    let idle = waiter(&agent, Duration::from_millis(700));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = api
        .insert_container(
            &container(1, "p1"),
            &new_action("create", Some("h")),
            Some(&QuotaLimits {
                containers: 0,
                ..QuotaLimits::UNLIMITED
            }),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Rejected(_))),
        "{refused:?}"
    );
    assert!(idle.await.unwrap() >= Duration::from_millis(650));

    // A committed action wakes the other process at once.
    let woken = waiter(&agent, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = container(2, "p1");
    api.insert_container(&c, &new_action("create", Some("h")), None)
        .await
        .unwrap();
    assert!(woken.await.unwrap() < Duration::from_secs(5));

    // So does an update with an action, and an image task.
    let woken = waiter(&agent, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.update_container(
        &c.uuid,
        &|_: &mut Container| Ok(()),
        Some(&new_action("stop", Some("h"))),
    )
    .await
    .unwrap();
    assert!(woken.await.unwrap() < Duration::from_secs(5));
    let woken = waiter(&agent, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.insert_image(&image(1, "h", Some(ImageTask::Pulling)))
        .await
        .unwrap();
    assert!(woken.await.unwrap() < Duration::from_secs(5));

    api.close().await;
    agent.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_listener_comes_back_after_its_connection_is_killed() {
    let db = TestDb::create().await;
    let (api, agent) = (db.store().await, db.store().await);
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(api.pool())
    .await
    .unwrap();
    assert_eq!(killed, vec![true, true], "one listener per store");
    // Give the relays time to notice and listen again (a wake-up on the
    // way is expected: notifications may have been lost).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let woken = waiter(&agent, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.insert_container(&container(1, "p1"), &new_action("create", Some("h")), None)
        .await
        .unwrap();
    assert!(woken.await.unwrap() < Duration::from_secs(5));

    api.close().await;
    agent.close().await;
    db.drop_database().await;
}

/// Two API processes (two stores, two pools) placing on one host with room
/// for 10: the host's advisory lock serialises them across connections, so
/// exactly 10 land. Each insert also checks its project's quota, so the
/// host lock and the project lock are taken together throughout, and a
/// concurrent resize of those projects' containers takes the project lock
/// alone: neither deadlocks nor over-commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_never_over_commit_a_host() {
    let db = TestDb::create().await;
    let (first, second) = (db.store().await, db.store().await);
    first.upsert_compute_node(&node("h1", 10.0)).await.unwrap();
    second
        .report_service("h1", COMPUTE_BINARY, None)
        .await
        .unwrap();
    let quota = QuotaLimits {
        containers: 1000,
        ..QuotaLimits::UNLIMITED
    };
    // Already on another host, resized while the placements run.
    let elsewhere = one_cpu_on(1000, "p0", "h2");
    first
        .insert_container(&elsewhere, &new_action("create", Some("h2")), None)
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(41));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let c = one_cpu_on(i, ["p0", "p1", "p2"][i % 3], "h1");
            let placement = Placement {
                down_after: Duration::from_secs(60),
                fits: &fits_one_cpu,
            };
            barrier.wait().await;
            store
                .insert_placed_container(
                    &c,
                    &new_action("create", Some("h1")),
                    Some(&quota),
                    Some(&placement),
                )
                .await
        }));
    }
    let resizes = {
        let (store, barrier, uuid) = (second.clone(), barrier.clone(), elsewhere.uuid.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            for n in 0..20 {
                store
                    .update_container_checked(
                        &uuid,
                        &|c: &mut Container| {
                            c.memory = Some("64".into());
                            Ok(())
                        },
                        None,
                        Some(&quota),
                    )
                    .await
                    .unwrap_or_else(|err| panic!("resize {n}: {err}"));
            }
        })
    };
    let mut placed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => placed += 1,
            Err(StoreError::NoRoom(reason)) => assert_eq!(reason, "h1 is full"),
            Err(other) => panic!("{other}"),
        }
    }
    resizes.await.unwrap();
    assert_eq!(placed, 10);
    for store in [&first, &second] {
        let view = store.get_host("h1").await.unwrap().unwrap();
        assert_eq!(view.usage.cpu_used, 10.0);
        assert_eq!(view.usage.total_containers, 10);
        assert_eq!(store.containers_on_host("h1").await.unwrap().len(), 10);
    }
    first.close().await;
    second.close().await;
    db.drop_database().await;
}

/// Two API processes (two stores, two pools) creating one network and
/// allocating on it at once: the advisory locks serialise them across
/// connections, so there is one network and no address twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_a_network_and_never_an_address() {
    let db = TestDb::create().await;
    let (first, second) = (db.store().await, db.store().await);
    let barrier = Arc::new(tokio::sync::Barrier::new(30));
    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let network = store
                .ensure_network("p1", "default", pool(), PREFIX)
                .await
                .unwrap();
            let port = store
                .allocate_port(&network, &format!("c-{i}"), "p1", None, None)
                .await
                .unwrap();
            (network, port)
        }));
    }
    let mut networks = HashSet::new();
    let mut ips = HashSet::new();
    for task in tasks {
        let (network, port) = task.await.unwrap();
        networks.insert(network.uuid);
        ips.insert(port.ip);
    }
    assert_eq!(networks.len(), 1);
    assert_eq!(ips.len(), 30);
    assert_eq!(second.list_networks(None).await.unwrap().len(), 1);
    first.close().await;
    second.close().await;
    db.drop_database().await;
}
