//! What the SQLite and PostgreSQL backends share: the statements, the row
//! types and their conversions, the fixed maps from sort keys and filters to
//! columns, the builders of list queries, and the time format.
//!
//! Statements are written once with `$N` placeholders: PostgreSQL's own
//! syntax, which sqlx-sqlite also binds by number. Both schemas use the same
//! column names and types (text times, BIGINT ids and counts), so one row
//! struct decodes from either.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::query::Query;
use sqlx::{Database, Encode, QueryBuilder, Type};
use zun_types::image::{Image, ImageTask, Registry};
use zun_types::network::{Ipv4Net, mac_for};
use zun_types::volume::{VolumeRecord, VolumeRef};
use zun_types::{ApiError, Container};

use crate::{
    ActionRecord, ComputeNode, EventRecord, HostView, ListQuery, NetworkRecord, NodeUsage,
    Placement, PortRecord, SecurityGroupRecord, ServiceRecord, SortDir, StoreError, round_cpu,
};

pub(crate) const INSERT_CONTAINER: &str = "INSERT INTO containers (uuid, revision, body, name, \
     project_id, user_id, image, status, task_state, host, memory, cpu, disk, auto_remove, \
     created_at, updated_at, registry_id, kind, capsule_uuid) \
     VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";

pub(crate) const UPDATE_CONTAINER: &str = "UPDATE containers SET revision = revision + 1, \
     body = $1, name = $2, project_id = $3, user_id = $4, image = $5, status = $6, \
     task_state = $7, host = $8, memory = $9, cpu = $10, disk = $11, auto_remove = $12, \
     created_at = $13, updated_at = $14, registry_id = $15 WHERE uuid = $16 AND revision = $17";

pub(crate) const SELECT_FOR_UPDATE: &str = "SELECT body, revision FROM containers WHERE uuid = $1";

pub(crate) const SELECT_BODY: &str = "SELECT body FROM containers WHERE uuid = $1";

pub(crate) const FIND_BY_NAME: &str = "SELECT body FROM containers WHERE name = $1 \
     AND ($2 IS NULL OR project_id = $2) ORDER BY id";

pub(crate) const ON_HOST: &str = "SELECT body FROM containers WHERE host = $1 ORDER BY id";

/// A capsule's members go with it.
pub(crate) const DELETE_CONTAINER: &str =
    "DELETE FROM containers WHERE uuid = $1 OR capsule_uuid = $1";

/// `$2`, a project, as in [`FIND_BY_NAME`] (always NULL here: the
/// capsule's own lookup was scoped).
pub(crate) const CAPSULE_MEMBERS: &str = "SELECT body FROM containers WHERE capsule_uuid = $1 \
     AND ($2 IS NULL OR project_id = $2) ORDER BY id";

const ACTION_COLUMNS: &str = "id, container_uuid, request_id, action, user_id, project_id, host, \
     params, start_time, finish_time, message";

pub(crate) const INSERT_ACTION: &str = "INSERT INTO container_actions \
     (container_uuid, request_id, action, user_id, project_id, host, params, start_time) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";

/// Newest first, as upstream lists them.
pub(crate) fn list_actions_sql() -> String {
    format!(
        "SELECT {ACTION_COLUMNS} FROM container_actions WHERE container_uuid = $1 \
         ORDER BY start_time DESC, id DESC"
    )
}

pub(crate) fn get_action_sql() -> String {
    format!(
        "SELECT {ACTION_COLUMNS} FROM container_actions \
         WHERE container_uuid = $1 AND request_id = $2 ORDER BY id DESC LIMIT 1"
    )
}

pub(crate) fn pending_actions_sql() -> String {
    format!(
        "SELECT {ACTION_COLUMNS} FROM container_actions \
         WHERE host = $1 AND finish_time IS NULL ORDER BY id"
    )
}

pub(crate) const LIST_EVENTS: &str = "SELECT event, start_time, finish_time, result, traceback \
     FROM action_events WHERE action_id = $1 ORDER BY start_time, id";

pub(crate) const OPEN_EVENT: &str = "SELECT id FROM action_events WHERE action_id = $1 \
     AND event = $2 AND finish_time IS NULL ORDER BY id DESC LIMIT 1";

pub(crate) const START_EVENT: &str =
    "INSERT INTO action_events (action_id, event, start_time) VALUES ($1, $2, $3)";

pub(crate) const LATEST_EVENT: &str =
    "SELECT id FROM action_events WHERE action_id = $1 AND event = $2 ORDER BY id DESC LIMIT 1";

pub(crate) const FINISH_EVENT: &str =
    "UPDATE action_events SET finish_time = $1, result = $2, traceback = $3 WHERE id = $4";

pub(crate) const INSERT_FINISHED_EVENT: &str = "INSERT INTO action_events \
     (action_id, event, start_time, finish_time, result, traceback) \
     VALUES ($1, $2, $3, $3, $4, $5)";

pub(crate) const FINISH_ACTION: &str =
    "UPDATE container_actions SET finish_time = $1, message = $2 WHERE id = $3";

pub(crate) const PROJECT_QUOTAS: &str =
    "SELECT resource, hard_limit FROM quotas WHERE project_id = $1";

pub(crate) const SET_PROJECT_QUOTA: &str = "INSERT INTO quotas (project_id, resource, hard_limit) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit";

pub(crate) const DELETE_PROJECT_QUOTAS: &str = "DELETE FROM quotas WHERE project_id = $1";

pub(crate) const QUOTA_CLASS: &str =
    "SELECT resource, hard_limit FROM quota_classes WHERE class_name = $1";

pub(crate) const SET_QUOTA_CLASS: &str = "INSERT INTO quota_classes \
     (class_name, resource, hard_limit) VALUES ($1, $2, $3) \
     ON CONFLICT (class_name, resource) DO UPDATE SET hard_limit = excluded.hard_limit";

/// The usage of project `$1`, leaving out container `$2` when it is not
/// NULL. `memory_mib` turns the text column `memory` into a BIGINT (each
/// backend has its own lenient cast); sums are cast back to BIGINT because
/// PostgreSQL widens `SUM(bigint)` to NUMERIC.
pub(crate) fn usage_sql(memory_mib: &str) -> String {
    format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(cpu), 0) AS DOUBLE PRECISION), \
         CAST(COALESCE(SUM({memory_mib}), 0) AS BIGINT), CAST(COALESCE(SUM(disk), 0) AS BIGINT) \
         FROM containers WHERE project_id = $1 AND ($2 IS NULL OR uuid <> $2) \
         AND kind = 'container'"
    )
}

pub(crate) const PURGE_GRANTS: &str = "DELETE FROM websocket_grants WHERE expires_at < $1";

pub(crate) const INSERT_GRANT: &str = "INSERT INTO websocket_grants \
     (token_sha256, container_uuid, project_id, exec_id, expires_at) VALUES ($1, $2, $3, $4, $5)";

/// Single use: the row is gone once read.
pub(crate) const TAKE_GRANT: &str = "DELETE FROM websocket_grants WHERE token_sha256 = $1 \
     RETURNING container_uuid, project_id, exec_id, expires_at";

const REGISTRY_COLUMNS: &str = "uuid, name, domain, username, password_sealed, project_id, \
     user_id, created_at, updated_at";

const IMAGE_COLUMNS: &str = "uuid, image_id, repo, tag, size, host, project_id, user_id, task, \
     created_at, updated_at";

pub(crate) fn insert_registry_sql() -> String {
    format!(
        "INSERT INTO registries ({REGISTRY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
}

pub(crate) fn get_registry_sql() -> String {
    format!("SELECT {REGISTRY_COLUMNS} FROM registries WHERE uuid = $1")
}

pub(crate) fn find_registries_sql() -> String {
    format!(
        "SELECT {REGISTRY_COLUMNS} FROM registries WHERE name = $1 \
         AND ($2 IS NULL OR project_id = $2) ORDER BY id"
    )
}

pub(crate) const UPDATE_REGISTRY: &str = "UPDATE registries SET name = $1, domain = $2, \
     username = $3, password_sealed = $4, updated_at = $5 WHERE uuid = $6";

pub(crate) const REGISTRY_IN_USE: &str =
    "SELECT CAST(1 AS BIGINT) FROM containers WHERE registry_id = $1 LIMIT 1";

pub(crate) const DELETE_REGISTRY: &str = "DELETE FROM registries WHERE uuid = $1";

pub(crate) fn insert_image_sql() -> String {
    format!(
        "INSERT INTO images ({IMAGE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    )
}

pub(crate) fn get_image_sql() -> String {
    format!("SELECT {IMAGE_COLUMNS} FROM images WHERE uuid = $1")
}

pub(crate) fn image_tasks_sql() -> String {
    format!("SELECT {IMAGE_COLUMNS} FROM images WHERE host = $1 AND task IS NOT NULL ORDER BY id")
}

/// Written only while the stored task is still the expected one (NULL
/// included: `IS NOT DISTINCT FROM` is SQL's null-safe equality, which
/// SQLite supports too).
pub(crate) const UPDATE_IMAGE_IF: &str = "UPDATE images SET image_id = $1, repo = $2, tag = $3, \
     size = $4, task = $5, updated_at = $6 WHERE uuid = $7 AND task IS NOT DISTINCT FROM $8";

pub(crate) const DELETE_IMAGE: &str = "DELETE FROM images WHERE uuid = $1";

/// The row id of a list's marker, in the caller's project when `$2` is set.
pub(crate) fn marker_sql(table: &str) -> String {
    format!("SELECT id FROM {table} WHERE uuid = $1 AND ($2 IS NULL OR project_id = $2)")
}

/// Binds `body` and the extracted columns, in the order both
/// [`INSERT_CONTAINER`] (after the uuid) and [`UPDATE_CONTAINER`] list them.
pub(crate) fn bind_columns<'q, DB: Database>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    c: &Container,
    body: String,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(body)
        .bind(c.name.clone())
        .bind(c.project_id.clone())
        .bind(c.user_id.clone())
        .bind(c.image.clone())
        .bind(c.status.as_str().to_owned())
        .bind(c.task_state.map(|t| t.as_str().to_owned()))
        .bind(c.host.clone())
        .bind(c.memory.clone())
        .bind(c.cpu)
        .bind(c.disk)
        .bind(c.auto_remove)
        .bind(format_time(&c.created_at))
        .bind(c.updated_at.as_ref().map(format_time))
        .bind(c.registry_id.clone())
}

/// [`INSERT_CONTAINER`] of `c`, every parameter bound.
pub(crate) fn insert_container<'q, DB: Database>(
    c: &Container,
    body: String,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    bind_columns(sqlx::query(INSERT_CONTAINER).bind(c.uuid.clone()), c, body)
        .bind(c.kind.as_str().to_owned())
        .bind(c.capsule.as_ref().map(|m| m.capsule_uuid.clone()))
}

/// The page of `query` as a query returning container bodies, after the
/// row `marker_id` when given.
pub(crate) fn container_page<'a, DB: Database>(
    query: &'a ListQuery,
    marker_id: Option<i64>,
) -> Result<QueryBuilder<'a, DB>, StoreError>
where
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    bool: Encode<'a, DB> + Type<DB>,
{
    let column =
        sort_expression(&query.sort_key).ok_or_else(|| invalid_sort_key(&query.sort_key))?;
    let mut sql = QueryBuilder::new("SELECT c.body FROM containers c WHERE c.kind = ");
    sql.push_bind(query.kind.as_str());
    if let Some(project_id) = &query.project_id {
        sql.push(" AND c.project_id = ")
            .push_bind(project_id.as_str());
    }
    for (key, value) in &query.filters {
        match filter_column(key) {
            Some(Filter::Text(column)) => {
                sql.push(" AND ")
                    .push(column)
                    .push(" = ")
                    .push_bind(value.as_str());
            }
            Some(Filter::Bool(column)) => match parse_bool(value) {
                Some(flag) => {
                    sql.push(" AND ").push(column).push(" = ").push_bind(flag);
                }
                // Not a boolean: nothing can match.
                None => {
                    sql.push(" AND 1 = 0");
                }
            },
            None => {
                return Err(StoreError::Rejected(ApiError::invalid(format!(
                    "Invalid filter: {key}"
                ))));
            }
        }
    }
    push_page(
        &mut sql,
        "containers",
        column,
        marker_id,
        query.sort_dir,
        query.limit,
    );
    Ok(sql)
}

/// Appends the keyset condition (rows strictly after the marker row in
/// (sort column, id) order), the ordering and the limit. `column` is over
/// alias `c`; the marker row is read from `table` as alias `m`.
pub(crate) fn push_page<'a, DB: Database>(
    sql: &mut QueryBuilder<'a, DB>,
    table: &str,
    column: &str,
    marker_id: Option<i64>,
    dir: SortDir,
    limit: u32,
) where
    i64: Encode<'a, DB> + Type<DB>,
{
    let (cmp, order) = match dir {
        SortDir::Asc => (" > ", " ASC"),
        SortDir::Desc => (" < ", " DESC"),
    };
    if let Some(marker_id) = marker_id {
        let of_marker = column.replace("c.", "m.");
        let marker_value = format!("(SELECT {of_marker} FROM {table} m WHERE m.id = ");
        sql.push(" AND (")
            .push(column)
            .push(cmp)
            .push(&marker_value)
            .push_bind(marker_id)
            .push(") OR (")
            .push(column)
            .push(" = ")
            .push(&marker_value)
            .push_bind(marker_id)
            .push(") AND c.id")
            .push(cmp)
            .push_bind(marker_id)
            .push("))");
    }
    sql.push(" ORDER BY ")
        .push(column)
        .push(order)
        .push(", c.id")
        .push(order)
        .push(" LIMIT ")
        .push_bind(i64::from(limit));
}

/// The page of a registry list as a query returning [`RegistryRow`]s.
pub(crate) fn registry_page<'a, DB: Database>(
    query: &'a crate::RegistryListQuery,
    marker_id: Option<i64>,
) -> Result<QueryBuilder<'a, DB>, StoreError>
where
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let column = sort_column(
        &query.sort_key,
        crate::REGISTRY_SORT_KEYS,
        &["name", "username", "updated_at"],
    )
    .ok_or_else(|| invalid_sort_key(&query.sort_key))?;
    let columns = REGISTRY_COLUMNS.replace(", ", ", c.");
    let mut sql = QueryBuilder::new(format!("SELECT c.{columns} FROM registries c WHERE 1 = 1"));
    if let Some(project_id) = &query.project_id {
        sql.push(" AND c.project_id = ")
            .push_bind(project_id.as_str());
    }
    for (key, value) in &query.filters {
        if !crate::REGISTRY_FILTER_KEYS.contains(&key.as_str()) {
            return Err(StoreError::Rejected(ApiError::invalid(format!(
                "Invalid filter: {key}"
            ))));
        }
        // The key is one of the fixed column names checked above.
        sql.push(format!(" AND c.{key} = "))
            .push_bind(value.as_str());
    }
    push_page(
        &mut sql,
        "registries",
        &column,
        marker_id,
        query.sort_dir,
        query.limit,
    );
    Ok(sql)
}

/// The page of an image list as a query returning [`ImageRow`]s.
pub(crate) fn image_page<'a, DB: Database>(
    query: &crate::ImageListQuery,
    marker_id: Option<i64>,
) -> Result<QueryBuilder<'a, DB>, StoreError>
where
    i64: Encode<'a, DB> + Type<DB>,
{
    let column = sort_column(
        &query.sort_key,
        crate::IMAGE_SORT_KEYS,
        &["image_id", "size", "updated_at"],
    )
    .ok_or_else(|| invalid_sort_key(&query.sort_key))?;
    let columns = IMAGE_COLUMNS.replace(", ", ", c.");
    let mut sql = QueryBuilder::new(format!("SELECT c.{columns} FROM images c WHERE 1 = 1"));
    push_page(
        &mut sql,
        "images",
        &column,
        marker_id,
        query.sort_dir,
        query.limit,
    );
    Ok(sql)
}

fn invalid_sort_key(key: &str) -> StoreError {
    StoreError::Rejected(ApiError::invalid(format!("Invalid sort key: {key}")))
}

/// The sort expression of a container list for `key`, over alias `c`.
/// NULLs become a sentinel below every real value so that the keyset
/// comparison is total.
pub(crate) fn sort_expression(key: &str) -> Option<&'static str> {
    Some(match key {
        "id" => "c.id",
        "uuid" => "c.uuid",
        "name" => "c.name",
        "project_id" => "c.project_id",
        "user_id" => "c.user_id",
        "image" => "c.image",
        "status" => "c.status",
        "task_state" => "COALESCE(c.task_state, '')",
        "host" => "COALESCE(c.host, '')",
        "memory" => "COALESCE(c.memory, '')",
        "cpu" => "COALESCE(c.cpu, -1.0)",
        "disk" => "c.disk",
        "auto_remove" => "c.auto_remove",
        "created_at" => "c.created_at",
        "updated_at" => "COALESCE(c.updated_at, '')",
        _ => return None,
    })
}

/// A sortable column of a catalog table, as an expression over the page's
/// alias `c`; nullable columns read as '' so the keyset comparison is total.
fn sort_column(key: &str, allowed: &[&str], nullable: &[&str]) -> Option<String> {
    allowed.contains(&key).then(|| {
        if nullable.contains(&key) {
            format!("COALESCE(c.{key}, '')")
        } else {
            format!("c.{key}")
        }
    })
}

pub(crate) enum Filter {
    Text(&'static str),
    Bool(&'static str),
}

pub(crate) fn filter_column(key: &str) -> Option<Filter> {
    Some(match key {
        "name" => Filter::Text("c.name"),
        "image" => Filter::Text("c.image"),
        "project_id" => Filter::Text("c.project_id"),
        "user_id" => Filter::Text("c.user_id"),
        "memory" => Filter::Text("c.memory"),
        "host" => Filter::Text("c.host"),
        "task_state" => Filter::Text("c.task_state"),
        "status" => Filter::Text("c.status"),
        "auto_remove" => Filter::Bool("c.auto_remove"),
        _ => return None,
    })
}

pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Now, at the precision the database keeps.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Fixed-width RFC 3339 in UTC with microseconds, so text order is time
/// order (under byte-wise collation; PostgreSQL's columns are `COLLATE "C"`).
pub(crate) fn format_time(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(decode_error)
}

pub(crate) fn decode_all(bodies: &[String]) -> Result<Vec<Container>, StoreError> {
    bodies
        .iter()
        .map(|body| Ok(serde_json::from_str(body)?))
        .collect()
}

pub(crate) fn convert<R, T: TryFrom<R, Error = StoreError>>(
    rows: Vec<R>,
) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}

/// A grant row as [`TAKE_GRANT`] returns it.
pub(crate) type GrantRow = (String, String, Option<String>, i64);

pub(crate) fn grant_from_row(
    (container_uuid, project_id, exec_id, expires_at): GrantRow,
) -> crate::WebsocketGrant {
    crate::WebsocketGrant {
        container_uuid,
        project_id,
        exec_id,
        // An out-of-range stamp reads as already expired.
        expires_at: DateTime::from_timestamp(expires_at, 0).unwrap_or(DateTime::UNIX_EPOCH),
    }
}

/// What a new action row is, once inserted with id `id` at `start_time`.
pub(crate) fn action_record(
    id: i64,
    container_uuid: &str,
    action: &crate::NewAction,
    start_time: DateTime<Utc>,
) -> ActionRecord {
    ActionRecord {
        id,
        container_uuid: container_uuid.to_owned(),
        request_id: action.request_id.clone(),
        action: action.action.clone(),
        user_id: action.user_id.clone(),
        project_id: action.project_id.clone(),
        host: action.host.clone(),
        params: action.params.clone(),
        start_time,
        finish_time: None,
        message: None,
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ActionRow {
    pub(crate) id: i64,
    container_uuid: String,
    request_id: String,
    action: String,
    user_id: String,
    project_id: String,
    host: Option<String>,
    params: String,
    start_time: String,
    finish_time: Option<String>,
    message: Option<String>,
}

impl TryFrom<ActionRow> for ActionRecord {
    type Error = StoreError;

    fn try_from(row: ActionRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            container_uuid: row.container_uuid,
            request_id: row.request_id,
            action: row.action,
            user_id: row.user_id,
            project_id: row.project_id,
            host: row.host,
            params: serde_json::from_str(&row.params)?,
            start_time: parse_time(&row.start_time)?,
            finish_time: row.finish_time.as_deref().map(parse_time).transpose()?,
            message: row.message,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    event: String,
    start_time: String,
    finish_time: Option<String>,
    result: Option<String>,
    traceback: Option<String>,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(Self {
            event: row.event,
            start_time: parse_time(&row.start_time)?,
            finish_time: row.finish_time.as_deref().map(parse_time).transpose()?,
            result: row.result,
            traceback: row.traceback,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RegistryRow {
    uuid: String,
    name: Option<String>,
    domain: String,
    username: Option<String>,
    password_sealed: Option<String>,
    project_id: String,
    user_id: String,
    created_at: String,
    updated_at: Option<String>,
}

impl TryFrom<RegistryRow> for Registry {
    type Error = StoreError;

    fn try_from(row: RegistryRow) -> Result<Self, StoreError> {
        Ok(Self {
            uuid: row.uuid,
            name: row.name,
            domain: row.domain,
            username: row.username,
            password_sealed: row.password_sealed,
            project_id: row.project_id,
            user_id: row.user_id,
            created_at: parse_time(&row.created_at)?,
            updated_at: row.updated_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ImageRow {
    uuid: String,
    image_id: Option<String>,
    repo: String,
    tag: String,
    size: Option<String>,
    host: String,
    project_id: String,
    user_id: String,
    task: Option<String>,
    created_at: String,
    updated_at: Option<String>,
}

impl TryFrom<ImageRow> for Image {
    type Error = StoreError;

    fn try_from(row: ImageRow) -> Result<Self, StoreError> {
        Ok(Self {
            uuid: row.uuid,
            image_id: row.image_id,
            repo: row.repo,
            tag: row.tag,
            size: row.size,
            host: row.host,
            project_id: row.project_id,
            user_id: row.user_id,
            task: row.task.as_deref().and_then(ImageTask::parse),
            created_at: parse_time(&row.created_at)?,
            updated_at: row.updated_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

// Compute services and nodes (`HostStore`).

const SERVICE_COLUMNS: &str = "id, host, binary_name, disabled, disabled_reason, forced_down, \
     report_count, availability_zone, last_seen_up, created_at, updated_at";

pub(crate) fn service_sql() -> String {
    format!("SELECT {SERVICE_COLUMNS} FROM services WHERE host = $1 AND binary_name = $2")
}

pub(crate) fn list_services_sql() -> String {
    format!("SELECT {SERVICE_COLUMNS} FROM services ORDER BY id")
}

/// The services of one binary (the compute services of the nodes).
pub(crate) fn services_of_binary_sql() -> String {
    format!("SELECT {SERVICE_COLUMNS} FROM services WHERE binary_name = $1")
}

/// A heartbeat: the row on first report, then one more report counted.
/// (`services.` qualifies the existing row: PostgreSQL would find a bare
/// `report_count` ambiguous with `excluded`'s.)
pub(crate) const REPORT_SERVICE: &str = "INSERT INTO services (host, binary_name, disabled, \
     forced_down, report_count, availability_zone, last_seen_up, created_at) \
     VALUES ($1, $2, FALSE, FALSE, 1, $3, $4, $4) \
     ON CONFLICT (host, binary_name) DO UPDATE SET report_count = services.report_count + 1, \
     availability_zone = excluded.availability_zone, last_seen_up = excluded.last_seen_up, \
     updated_at = excluded.last_seen_up";

pub(crate) const SET_SERVICE_DISABLED: &str = "UPDATE services SET disabled = $1, \
     disabled_reason = $2, updated_at = $3 WHERE host = $4 AND binary_name = $5";

pub(crate) const SET_SERVICE_FORCED_DOWN: &str = "UPDATE services SET forced_down = $1, \
     updated_at = $2 WHERE host = $3 AND binary_name = $4";

pub(crate) const DELETE_SERVICE: &str = "DELETE FROM services WHERE host = $1 AND binary_name = $2";

pub(crate) const DELETE_NODE: &str = "DELETE FROM compute_nodes WHERE hostname = $1";

pub(crate) const NODE_UUID: &str = "SELECT uuid FROM compute_nodes WHERE hostname = $1";

pub(crate) const UPDATE_NODE: &str =
    "UPDATE compute_nodes SET body = $1, updated_at = $2 WHERE uuid = $3";

pub(crate) const INSERT_NODE: &str =
    "INSERT INTO compute_nodes (uuid, hostname, body, created_at) VALUES ($1, $2, $3, $4)";

/// One node by uuid or hostname.
pub(crate) const NODE_BODY: &str =
    "SELECT body FROM compute_nodes WHERE uuid = $1 OR hostname = $1";

pub(crate) const NODE_BODIES: &str = "SELECT body FROM compute_nodes ORDER BY hostname";

/// What the containers on each host hold, one row per host; with
/// `one_host`, only host `$1`'s. Containers in `Error` hold nothing (the
/// engine has no container for them); a capsule holds what its members ask
/// for (its own row carries the sum). `memory_mib` as in [`usage_sql`];
/// the casts make both backends return the same types.
pub(crate) fn host_usage_sql(memory_mib: &str, one_host: bool) -> String {
    let which = if one_host {
        "host = $1"
    } else {
        "host IS NOT NULL"
    };
    format!(
        "SELECT host, CAST(COALESCE(SUM(cpu), 0) AS DOUBLE PRECISION), \
         CAST(COALESCE(SUM({memory_mib}), 0) AS BIGINT), CAST(COALESCE(SUM(disk), 0) AS BIGINT), \
         COUNT(*) FROM containers WHERE {which} AND status <> 'Error' AND kind <> 'member' \
         GROUP BY host"
    )
}

/// A row of [`host_usage_sql`]: host, cpu, memory (MiB), disk (GiB), count.
pub(crate) type UsageRow = (String, f64, i64, i64, i64);

pub(crate) fn node_usage(row: &UsageRow) -> NodeUsage {
    NodeUsage {
        cpu_used: round_cpu(row.1),
        mem_used: row.2,
        disk_used: row.3,
        total_containers: row.4,
    }
}

/// One host from its node's body, its usage row (none: nothing placed) and
/// its compute service row (none: deleted).
pub(crate) fn host_view(
    body: &str,
    usage: Option<UsageRow>,
    service: Option<ServiceRow>,
) -> Result<HostView, StoreError> {
    Ok(HostView {
        node: serde_json::from_str(body)?,
        usage: usage.as_ref().map(node_usage).unwrap_or_default(),
        service: service.map(ServiceRecord::try_from).transpose()?,
    })
}

/// Every host, in the order of `bodies`, with the usage and compute
/// service rows read in the same snapshot.
pub(crate) fn host_views(
    bodies: &[String],
    usage: Vec<UsageRow>,
    services: Vec<ServiceRow>,
) -> Result<Vec<HostView>, StoreError> {
    let mut usage: HashMap<String, NodeUsage> = usage
        .iter()
        .map(|row| (row.0.clone(), node_usage(row)))
        .collect();
    let mut services: HashMap<String, ServiceRecord> = services
        .into_iter()
        .map(|row| ServiceRecord::try_from(row).map(|s| (s.host.clone(), s)))
        .collect::<Result<_, _>>()?;
    bodies
        .iter()
        .map(|body| {
            let node: ComputeNode = serde_json::from_str(body)?;
            Ok(HostView {
                usage: usage.remove(&node.hostname).unwrap_or_default(),
                service: services.remove(&node.hostname),
                node,
            })
        })
        .collect()
}

/// A placed insert's check of its host `host` as it is inside the insert's
/// transaction (`view`; none when the host has no compute node).
pub(crate) fn check_placement(
    placement: &Placement<'_>,
    host: &str,
    view: Option<HostView>,
) -> Result<(), StoreError> {
    let view =
        view.ok_or_else(|| StoreError::NoRoom(format!("host {host} has no compute node")))?;
    (placement.fits)(&view.state(Utc::now(), placement.down_after)).map_err(StoreError::NoRoom)
}

/// The node as an upsert leaves it: with the uuid it already has, if any.
pub(crate) fn keep_uuid(node: &ComputeNode, existing: Option<String>) -> ComputeNode {
    let mut node = node.clone();
    if let Some(uuid) = existing {
        node.uuid = uuid;
    }
    node
}

#[derive(sqlx::FromRow)]
pub(crate) struct ServiceRow {
    id: i64,
    host: String,
    #[sqlx(rename = "binary_name")]
    binary: String,
    disabled: bool,
    disabled_reason: Option<String>,
    forced_down: bool,
    report_count: i64,
    availability_zone: Option<String>,
    last_seen_up: Option<String>,
    created_at: String,
    updated_at: Option<String>,
}

impl TryFrom<ServiceRow> for ServiceRecord {
    type Error = StoreError;

    fn try_from(row: ServiceRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            host: row.host,
            binary: row.binary,
            disabled: row.disabled,
            disabled_reason: row.disabled_reason,
            forced_down: row.forced_down,
            report_count: row.report_count,
            availability_zone: row.availability_zone,
            last_seen_up: row.last_seen_up.as_deref().map(parse_time).transpose()?,
            created_at: parse_time(&row.created_at)?,
            updated_at: row.updated_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

// Built-in networks and their ports (`NetworkStore`).

const NETWORK_COLUMNS: &str = "uuid, name, project_id, subnet_uuid, cidr, gateway, vni, created_at";

const PORT_COLUMNS: &str = "uuid, network_uuid, container_uuid, project_id, host, ip_address, \
     mac_address, created_at";

pub(crate) fn network_sql() -> String {
    format!("SELECT {NETWORK_COLUMNS} FROM networks WHERE uuid = $1")
}

pub(crate) fn network_by_name_sql() -> String {
    format!("SELECT {NETWORK_COLUMNS} FROM networks WHERE project_id = $1 AND name = $2")
}

pub(crate) fn list_networks_sql() -> String {
    format!(
        "SELECT {NETWORK_COLUMNS} FROM networks WHERE ($1 IS NULL OR project_id = $1) ORDER BY vni"
    )
}

/// Every vni taken, whatever pool its network came from: vnis are unique
/// across all networks.
pub(crate) const NETWORK_VNIS: &str = "SELECT vni FROM networks ORDER BY vni";

pub(crate) fn insert_network_sql() -> String {
    format!("INSERT INTO networks ({NETWORK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
}

/// Binds a network in [`NETWORK_COLUMNS`] order.
pub(crate) fn bind_network<'q, DB: Database>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    n: &NetworkRecord,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(n.uuid.clone())
        .bind(n.name.clone())
        .bind(n.project_id.clone())
        .bind(n.subnet_uuid.clone())
        .bind(n.cidr.to_string())
        .bind(n.gateway.to_string())
        .bind(n.vni)
        .bind(format_time(&n.created_at))
}

pub(crate) fn port_sql() -> String {
    format!(
        "SELECT {PORT_COLUMNS} FROM network_ports WHERE container_uuid = $1 AND network_uuid = $2"
    )
}

pub(crate) fn ports_of_container_sql() -> String {
    format!("SELECT {PORT_COLUMNS} FROM network_ports WHERE container_uuid = $1 ORDER BY id")
}

pub(crate) fn ports_on_host_sql() -> String {
    format!("SELECT {PORT_COLUMNS} FROM network_ports WHERE host = $1 ORDER BY id")
}

pub(crate) const PORT_ADDRESSES: &str =
    "SELECT ip_address FROM network_ports WHERE network_uuid = $1";

pub(crate) fn insert_port_sql() -> String {
    format!("INSERT INTO network_ports ({PORT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
}

/// Binds a port in [`PORT_COLUMNS`] order.
pub(crate) fn bind_port<'q, DB: Database>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    p: &PortRecord,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(p.uuid.clone())
        .bind(p.network_uuid.clone())
        .bind(p.container_uuid.clone())
        .bind(p.project_id.clone())
        .bind(p.host.clone())
        .bind(p.ip.to_string())
        .bind(p.mac.clone())
        .bind(format_time(&p.created_at))
}

pub(crate) const RELEASE_PORTS: &str = "DELETE FROM network_ports WHERE container_uuid = $1";
pub(crate) const NETWORK_MEMBERS: &str = "SELECT c.name, p.ip_address FROM network_ports p \
     JOIN containers c ON c.uuid = p.container_uuid WHERE p.network_uuid = $1 ORDER BY p.id";

/// Rows of [`NETWORK_MEMBERS`].
pub(crate) fn members(rows: Vec<(String, String)>) -> Result<Vec<(String, Ipv4Addr)>, StoreError> {
    rows.into_iter()
        .map(|(name, ip)| ip.parse().map(|ip| (name, ip)).map_err(decode_error))
        .collect()
}

pub(crate) const RELEASE_PORT: &str =
    "DELETE FROM network_ports WHERE container_uuid = $1 AND network_uuid = $2";
pub(crate) const PORTS_ON_NETWORK: &str =
    "SELECT COUNT(*) FROM network_ports WHERE network_uuid = $1";
pub(crate) const DELETE_NETWORK: &str = "DELETE FROM networks WHERE uuid = $1";

/// The refusal of deleting a network containers are on.
pub(crate) fn network_in_use(uuid: &str, ports: i64) -> StoreError {
    StoreError::Rejected(zun_types::ApiError::conflict(format!(
        "Network {uuid} is in use by {ports} container(s); detach them first."
    )))
}

/// The network `name` of `project_id` would be, given the vnis already
/// taken (ascending): the lowest free vni >= 1 (0 is never used), the
/// subnet of that index in `pool`, its gateway, fresh uuids.
pub(crate) fn new_network(
    project_id: &str,
    name: &str,
    pool: Ipv4Net,
    prefix: u8,
    taken: &[i64],
) -> Result<NetworkRecord, StoreError> {
    let mut vni: i64 = 1;
    for &used in taken {
        if used == vni {
            vni = vni.saturating_add(1);
        } else if used > vni {
            break;
        }
    }
    // Subnets exist for indexes below a bound: if this one has none, no
    // higher free index has either.
    let cidr = u64::try_from(vni)
        .ok()
        .and_then(|index| pool.subnet(prefix, index))
        .ok_or_else(|| StoreError::Exhausted(format!("no /{prefix} subnet left in pool {pool}")))?;
    let gateway = cidr.gateway().ok_or_else(|| {
        StoreError::Exhausted(format!(
            "subnet {cidr} of pool {pool} has no room for a gateway"
        ))
    })?;
    Ok(NetworkRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        project_id: project_id.to_owned(),
        subnet_uuid: uuid::Uuid::new_v4().to_string(),
        cidr,
        gateway,
        vni,
        created_at: now(),
    })
}

/// The addresses of [`PORT_ADDRESSES`].
pub(crate) fn parse_addresses(rows: &[String]) -> Result<BTreeSet<Ipv4Addr>, StoreError> {
    rows.iter()
        .map(|ip| ip.parse().map_err(decode_error))
        .collect()
}

/// The address a new port on `network` takes, given the addresses `used`
/// there: `fixed` when it may, else the lowest free one.
pub(crate) fn choose_address(
    network: &NetworkRecord,
    fixed: Option<Ipv4Addr>,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, StoreError> {
    let cidr = network.cidr;
    match fixed {
        Some(ip) if !cidr.is_assignable(ip) => Err(StoreError::Rejected(ApiError::invalid(
            format!("IP address {ip} is not assignable in subnet {cidr}"),
        ))),
        Some(ip) if used.contains(&ip) => Err(StoreError::Rejected(ApiError::conflict(format!(
            "IP address {ip} is already allocated in subnet {cidr}"
        )))),
        Some(ip) => Ok(ip),
        None => cidr.first_free(used).ok_or_else(|| {
            StoreError::Exhausted(format!(
                "no free IP address left in subnet {cidr} of network {}",
                network.uuid
            ))
        }),
    }
}

/// A new port of `container_uuid` holding `ip` on `network`.
pub(crate) fn new_port(
    network: &NetworkRecord,
    container_uuid: &str,
    project_id: &str,
    host: Option<&str>,
    ip: Ipv4Addr,
) -> PortRecord {
    PortRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        network_uuid: network.uuid.clone(),
        container_uuid: container_uuid.to_owned(),
        project_id: project_id.to_owned(),
        host: host.map(str::to_owned),
        ip,
        mac: mac_for(ip),
        created_at: now(),
    }
}

fn decode_error(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(Box::new(err)))
}

#[derive(sqlx::FromRow)]
pub(crate) struct NetworkRow {
    uuid: String,
    name: String,
    project_id: String,
    subnet_uuid: String,
    cidr: String,
    gateway: String,
    vni: i64,
    created_at: String,
}

impl TryFrom<NetworkRow> for NetworkRecord {
    type Error = StoreError;

    fn try_from(row: NetworkRow) -> Result<Self, StoreError> {
        Ok(Self {
            uuid: row.uuid,
            name: row.name,
            project_id: row.project_id,
            subnet_uuid: row.subnet_uuid,
            cidr: row.cidr.parse().map_err(decode_error)?,
            gateway: row.gateway.parse().map_err(decode_error)?,
            vni: row.vni,
            created_at: parse_time(&row.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PortRow {
    uuid: String,
    network_uuid: String,
    container_uuid: String,
    project_id: String,
    host: Option<String>,
    ip_address: String,
    mac_address: String,
    created_at: String,
}

impl TryFrom<PortRow> for PortRecord {
    type Error = StoreError;

    fn try_from(row: PortRow) -> Result<Self, StoreError> {
        Ok(Self {
            uuid: row.uuid,
            network_uuid: row.network_uuid,
            container_uuid: row.container_uuid,
            project_id: row.project_id,
            host: row.host,
            ip: row.ip_address.parse().map_err(decode_error)?,
            mac: row.mac_address,
            created_at: parse_time(&row.created_at)?,
        })
    }
}

// Security groups (`NetworkStore`).

const SECURITY_GROUP_COLUMNS: &str =
    "uuid, project_id, name, description, rules, container_uuid, created_at";

pub(crate) fn security_group_sql() -> String {
    format!("SELECT {SECURITY_GROUP_COLUMNS} FROM security_groups WHERE uuid = $1")
}

pub(crate) fn list_security_groups_sql() -> String {
    format!(
        "SELECT {SECURITY_GROUP_COLUMNS} FROM security_groups \
         WHERE ($1 IS NULL OR project_id = $1) ORDER BY id"
    )
}

/// Inserts nothing when the project has a group of that name.
pub(crate) fn insert_security_group_sql() -> String {
    format!(
        "INSERT INTO security_groups ({SECURITY_GROUP_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project_id, name) DO NOTHING"
    )
}

pub(crate) const DELETE_SECURITY_GROUP: &str = "DELETE FROM security_groups WHERE uuid = $1";
pub(crate) const DELETE_CONTAINER_SECURITY_GROUPS: &str =
    "DELETE FROM security_groups WHERE container_uuid = $1";

pub(crate) const PORTS_VERSION: &str = "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM network_ports";

pub(crate) fn ports_of_project_sql() -> String {
    format!("SELECT {PORT_COLUMNS} FROM network_ports WHERE project_id = $1 ORDER BY id")
}

/// Binds a group in [`SECURITY_GROUP_COLUMNS`] order.
pub(crate) fn bind_security_group<'q, DB: Database>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    g: &SecurityGroupRecord,
) -> Result<Query<'q, DB, <DB as Database>::Arguments<'q>>, StoreError>
where
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
{
    let rules = serde_json::to_string(&g.rules).map_err(decode_error)?;
    Ok(query
        .bind(g.uuid.clone())
        .bind(g.project_id.clone())
        .bind(g.name.clone())
        .bind(g.description.clone())
        .bind(rules)
        .bind(g.container_uuid.clone())
        .bind(format_time(&g.created_at)))
}

/// The refusal of a second group of one name in a project.
pub(crate) fn security_group_exists(name: &str) -> StoreError {
    StoreError::Rejected(ApiError::conflict(format!(
        "Security group {name} already exists."
    )))
}

#[derive(sqlx::FromRow)]
pub(crate) struct SecurityGroupRow {
    uuid: String,
    project_id: String,
    name: String,
    description: String,
    rules: String,
    container_uuid: Option<String>,
    created_at: String,
}

impl TryFrom<SecurityGroupRow> for SecurityGroupRecord {
    type Error = StoreError;

    fn try_from(row: SecurityGroupRow) -> Result<Self, StoreError> {
        Ok(Self {
            uuid: row.uuid,
            project_id: row.project_id,
            name: row.name,
            description: row.description,
            rules: serde_json::from_str(&row.rules).map_err(decode_error)?,
            container_uuid: row.container_uuid,
            created_at: parse_time(&row.created_at)?,
        })
    }
}

// Volumes (`VolumeStore`).

const VOLUME_COLUMNS: &str = "uuid, name, project_id, user_id, driver, host, size_gib, \
     auto_remove, container_uuid, created_at";

pub(crate) fn volume_sql() -> String {
    format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE uuid = $1")
}

pub(crate) fn volume_by_name_sql() -> String {
    format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE project_id = $1 AND name = $2")
}

pub(crate) fn volumes_of_project_sql() -> String {
    format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE project_id = $1 ORDER BY id")
}

/// Deletes a volume only while no container holds it.
pub(crate) const DELETE_FREE_VOLUME: &str =
    "DELETE FROM volumes WHERE uuid = $1 AND container_uuid IS NULL";

pub(crate) fn volumes_on_host_sql() -> String {
    format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE host = $1 ORDER BY id")
}

/// Inserts nothing when the project has a volume of that name.
pub(crate) fn insert_volume_sql() -> String {
    format!(
        "INSERT INTO volumes ({VOLUME_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (project_id, name) DO NOTHING"
    )
}

/// Claims a free volume of the container's project for container `$1`, on
/// the container's host `$4` (a local volume with data on another host is
/// not free for it; a Cinder volume has no host).
pub(crate) const CLAIM_VOLUME: &str = "UPDATE volumes SET container_uuid = $1 \
     WHERE uuid = $2 AND project_id = $3 \
     AND container_uuid IS NULL AND (host IS NULL OR host = $4)";

pub(crate) const DELETE_CONTAINER_VOLUMES: &str =
    "DELETE FROM volumes WHERE container_uuid = $1 AND auto_remove";

pub(crate) const RELEASE_VOLUMES: &str =
    "UPDATE volumes SET container_uuid = NULL WHERE container_uuid = $1";

/// Binds a volume in [`VOLUME_COLUMNS`] order.
pub(crate) fn bind_volume<'q, DB: Database>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    v: &VolumeRecord,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(v.uuid.clone())
        .bind(v.name.clone())
        .bind(v.project_id.clone())
        .bind(v.user_id.clone())
        .bind(v.driver.clone())
        .bind(v.host.clone())
        .bind(v.size_gib)
        .bind(v.auto_remove)
        .bind(v.container_uuid.clone())
        .bind(format_time(&v.created_at))
}

/// A create's volume that could not be claimed: in use by another
/// container (or a name taken by a concurrent create).
pub(crate) fn volume_unavailable(volume: &VolumeRef) -> StoreError {
    StoreError::Rejected(if volume.new {
        ApiError::conflict(format!(
            "A volume named {} already exists.",
            volume.name.as_deref().unwrap_or(&volume.uuid)
        ))
    } else {
        zun_types::volume::volume_in_use(&volume.uuid)
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct VolumeRow {
    uuid: String,
    name: Option<String>,
    project_id: String,
    user_id: String,
    driver: String,
    host: Option<String>,
    size_gib: i64,
    auto_remove: bool,
    container_uuid: Option<String>,
    created_at: String,
}

impl TryFrom<VolumeRow> for VolumeRecord {
    type Error = StoreError;

    fn try_from(row: VolumeRow) -> Result<Self, StoreError> {
        Ok(Self {
            uuid: row.uuid,
            name: row.name,
            project_id: row.project_id,
            user_id: row.user_id,
            driver: row.driver,
            host: row.host,
            size_gib: row.size_gib,
            auto_remove: row.auto_remove,
            container_uuid: row.container_uuid,
            created_at: parse_time(&row.created_at)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::{FILTER_KEYS, SORT_KEYS};

    #[test]
    fn times_are_fixed_width_and_round_trip() {
        let early = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let late = early + chrono::Duration::microseconds(6);
        let later = early + chrono::Duration::seconds(30);
        assert_eq!(format_time(&early), "2024-01-02T03:04:05.000000Z");
        assert_eq!(format_time(&late), "2024-01-02T03:04:05.000006Z");
        assert!(format_time(&early) < format_time(&late));
        assert!(format_time(&late) < format_time(&later));
        assert_eq!(parse_time(&format_time(&late)).unwrap(), late);
        assert!(parse_time("yesterday").is_err());
        let n = now();
        assert_eq!(parse_time(&format_time(&n)).unwrap(), n);
    }

    #[test]
    fn new_networks_take_the_lowest_free_vni_above_zero() {
        let pool: Ipv4Net = "10.0.0.0/16".parse().unwrap();
        let vni = |taken: &[i64]| new_network("p", "n", pool, 24, taken).unwrap().vni;
        assert_eq!(vni(&[]), 1);
        assert_eq!(vni(&[1, 2, 4]), 3);
        assert_eq!(vni(&[2, 3]), 1);
        assert_eq!(vni(&[1, 2, 3]), 4);
        let network = new_network("p", "n", pool, 24, &[1, 2]).unwrap();
        assert_eq!(network.cidr, "10.0.3.0/24".parse().unwrap());
        assert_eq!(network.gateway, Ipv4Addr::new(10, 0, 3, 1));
        let taken: Vec<i64> = (1..256).collect();
        assert!(matches!(
            new_network("p", "n", pool, 24, &taken),
            Err(StoreError::Exhausted(_))
        ));
    }

    #[test]
    fn booleans() {
        for v in ["true", "True", "TRUE", "1"] {
            assert_eq!(parse_bool(v), Some(true), "{v}");
        }
        for v in ["false", "False", "0"] {
            assert_eq!(parse_bool(v), Some(false), "{v}");
        }
        assert_eq!(parse_bool("yes please"), None);
    }

    #[test]
    fn every_sort_and_filter_key_maps_to_a_column() {
        for key in SORT_KEYS {
            assert!(sort_expression(key).is_some(), "{key}");
        }
        for key in FILTER_KEYS {
            assert!(filter_column(key).is_some(), "{key}");
        }
        assert!(sort_expression("body").is_none());
        assert!(filter_column("revision").is_none());
    }
}
