//! Visibility: one row per run that List/Count/Scan read, and the requests they make.
//!
//! The row is derived from a run's mutable state (`Row::of`) and written by the store in the
//! same transaction as the state itself, so a list right after a start, an upsert or a close
//! already shows it. It is rewritten only when something a query can see changes
//! (`needs_write`): status, times, memo, search attributes — so, as in Temporal, the counters
//! (history length, size, transitions) of a running workflow are those of its last visible
//! change, and exact once it closes.
//!
//! Queries are parsed by `query` into an AST and compiled to SQL by each SQL backend. Pure: no
//! I/O here.

pub mod attributes;
pub mod query;

use prost::Message;
use temporalio_protos::temporal::api::common::v1::{SearchAttributes, WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::workflow::v1::WorkflowExecutionInfo;

use crate::clock::proto;
use crate::engine::state::MutableState;
use crate::error::{Error, Result};

/// Sort key of a running workflow: after every close time, so running ones list first.
pub const RUNNING_SORT_TIME: i64 = i64::MAX;
/// Temporal's largest (and default) page.
pub const PAGE_SIZE_MAX: usize = 1000;

/// One value row of a custom or predefined attribute (a KeywordList has one per element, a
/// Text one per token, an attribute with no element one with no value).
#[derive(Clone, Debug, PartialEq)]
pub struct AttributeRow {
    pub name: String,
    pub text: Option<String>,
    pub int: Option<i64>,
    pub double: Option<f64>,
}

/// A run as visibility stores it. Times are Unix nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub namespace: String,
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_type: String,
    pub status: i32,
    pub task_queue: String,
    pub start_time: i64,
    pub execution_time: i64,
    pub close_time: Option<i64>,
    pub execution_duration: Option<i64>,
    pub history_length: i64,
    pub history_size_bytes: i64,
    pub state_transition_count: i64,
    pub parent_workflow_id: Option<String>,
    pub parent_run_id: Option<String>,
    pub root_workflow_id: String,
    pub root_run_id: String,
    pub namespace_division: Option<String>,
    /// `WorkflowExecutionInfo` as List returns it.
    pub info: Vec<u8>,
    pub attributes: Vec<AttributeRow>,
    /// The stored attribute rows are already these (the run's search attributes did not
    /// change): the writer leaves them, saving a delete and re-insert in four indexes.
    pub attributes_unchanged: bool,
}

fn ns(ms: i64) -> i64 {
    ms.saturating_mul(1_000_000)
}

impl Row {
    pub fn of(state: &MutableState) -> Row {
        // What Temporal's visibility holds: no first run id, and the counters only once the
        // run has closed (they would be stale: a running run's row is not rewritten per event).
        let mut info = execution_info(state);
        info.first_run_id = String::new();
        if state.close_time_ms == 0 {
            info.history_length = 0;
            info.history_size_bytes = 0;
            info.state_transition_count = 0;
        }
        let close_time = (state.close_time_ms > 0).then(|| ns(state.close_time_ms));
        let execution_time = ns(execution_time_ms(state));
        let (root_workflow_id, root_run_id) = state.root_execution();
        let search_attributes: SearchAttributes =
            state.search_attributes.as_ref().map(|e| e.decode()).unwrap_or_default();
        Row {
            namespace: state.key.namespace.to_string(),
            run_id: state.key.run_id.to_string(),
            workflow_id: state.key.workflow_id.to_string(),
            workflow_type: state.workflow_type.clone(),
            status: state.status.number(),
            task_queue: state.task_queue.clone(),
            start_time: ns(state.start_time_ms),
            execution_time,
            close_time,
            execution_duration: close_time.map(|c| (c - execution_time).max(0)),
            history_length: info.history_length,
            history_size_bytes: info.history_size_bytes,
            state_transition_count: info.state_transition_count,
            parent_workflow_id: state.parent.as_ref().map(|p| p.workflow_id.clone()),
            parent_run_id: state.parent.as_ref().map(|p| p.run_id.clone()),
            root_workflow_id,
            root_run_id,
            namespace_division: None,
            info: info.encode_to_vec(),
            attributes: attribute_rows(&search_attributes),
            attributes_unchanged: false,
        }
    }

    /// The row of `state` when it was last written as `before`.
    pub fn of_transition(before: &MutableState, state: &MutableState) -> Row {
        Row { attributes_unchanged: before.search_attributes == state.search_attributes, ..Row::of(state) }
    }

    /// The key List orders by: close time (running last-most), start time, run id.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            sort_time: self.close_time.unwrap_or(RUNNING_SORT_TIME),
            start_time: self.start_time,
            run_id: self.run_id.clone(),
        }
    }
}

/// Whether a transition from `before` to `after` changes what visibility shows.
pub fn needs_write(before: &MutableState, after: &MutableState) -> bool {
    before.status != after.status
        || before.close_time_ms != after.close_time_ms
        || before.execution_time_ms != after.execution_time_ms
        || before.search_attributes != after.search_attributes
        || before.memo != after.memo
        || before.task_queue != after.task_queue
}

fn execution_time_ms(state: &MutableState) -> i64 {
    if state.execution_time_ms > 0 {
        state.execution_time_ms
    } else {
        state.start_time_ms
    }
}

/// What Describe and List show of a run (Describe adds what only history knows).
pub fn execution_info(s: &MutableState) -> WorkflowExecutionInfo {
    let (workflow_id, run_id) = s.root_execution();
    WorkflowExecutionInfo {
        execution: Some(WorkflowExecution {
            workflow_id: s.key.workflow_id.to_string(),
            run_id: s.key.run_id.to_string(),
        }),
        r#type: Some(WorkflowType { name: s.workflow_type.clone() }),
        start_time: Some(proto::timestamp(s.start_time_ms)),
        close_time: (s.close_time_ms > 0).then(|| proto::timestamp(s.close_time_ms)),
        status: s.status.number(),
        history_length: s.next_event_id - 1,
        execution_time: Some(proto::timestamp(execution_time_ms(s))),
        memo: s.memo.as_ref().map(|m| m.decode()),
        search_attributes: s.search_attributes.as_ref().map(|m| m.decode()),
        parent_namespace_id: s.parent.as_ref().map(|p| p.namespace.clone()).unwrap_or_default(),
        parent_execution: s
            .parent
            .as_ref()
            .map(|p| WorkflowExecution { workflow_id: p.workflow_id.clone(), run_id: p.run_id.clone() }),
        task_queue: s.task_queue.clone(),
        state_transition_count: s.transitions as i64,
        history_size_bytes: s.history_size_bytes,
        execution_duration: (s.close_time_ms > 0)
            .then(|| proto::duration((s.close_time_ms - execution_time_ms(s)).max(0))),
        first_run_id: s.first_execution_run_id.clone(),
        root_execution: Some(WorkflowExecution { workflow_id, run_id }),
        ..Default::default()
    }
}

/// The value rows of a run's custom and predefined attributes (stored typed by `validate`).
pub fn attribute_rows(sa: &SearchAttributes) -> Vec<AttributeRow> {
    use attributes::Value;
    let mut rows = Vec::new();
    for (name, payload) in &sa.indexed_fields {
        let Some(value) = attributes::stored_value(payload) else { continue };
        let row = |text: Option<String>, int: Option<i64>, double: Option<f64>| AttributeRow {
            name: name.clone(),
            text,
            int,
            double,
        };
        let before = rows.len();
        match value {
            Value::Keyword(s) => rows.push(row(Some(s), None, None)),
            Value::Text(s) => rows.extend(query::text_tokens(&s).into_iter().map(|t| row(Some(t), None, None))),
            Value::KeywordList(items) => rows.extend(items.into_iter().map(|t| row(Some(t), None, None))),
            Value::Int(n) | Value::Datetime(n) => rows.push(row(None, Some(n), None)),
            Value::Bool(b) => rows.push(row(None, Some(b as i64), None)),
            Value::Double(f) => rows.push(row(None, None, Some(f))),
        }
        if rows.len() == before {
            rows.push(row(None, None, None));
        }
    }
    rows
}

/// Where a page of List ends: the last row's sort key. The next page starts after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    pub sort_time: i64,
    pub start_time: i64,
    pub run_id: String,
}

impl Cursor {
    pub fn token(&self) -> Vec<u8> {
        serde_json::to_vec(&(self.sort_time, self.start_time, &self.run_id)).expect("cursor serialises")
    }

    pub fn from_token(token: &[u8]) -> Result<Cursor> {
        let (sort_time, start_time, run_id): (i64, i64, String) =
            serde_json::from_slice(token).map_err(|_| Error::invalid("invalid next page token"))?;
        Ok(Cursor { sort_time, start_time, run_id })
    }
}

/// A List (or Scan) request, checked: `filter` already parsed against the namespace.
#[derive(Clone, Debug)]
pub struct ListRequest {
    pub namespace: String,
    pub filter: Option<query::Expr>,
    /// Add `TemporalNamespaceDivision IS NULL` (unless the query names the division), hiding
    /// internal workflows (schedulers, batch jobs) from ordinary lists.
    pub hide_divisions: bool,
    pub page_size: usize,
    pub after: Option<Cursor>,
    /// Order by run id alone (a key no change moves), for jobs that page through a query
    /// while they change what it matches (batch operations, retention).
    pub by_run_id: bool,
}

/// A Count request; `group_by` is a system column (ExecutionStatus or the division).
#[derive(Clone, Debug)]
pub struct CountRequest {
    pub namespace: String,
    pub filter: Option<query::Expr>,
    pub hide_divisions: bool,
    pub group_by: Option<query::Attribute>,
}

/// One listed run: its sort key and `WorkflowExecutionInfo` bytes.
pub type Listed = (Cursor, Vec<u8>);

/// Count's answer: the total, and per group value (a Keyword or an Int column) its count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counted {
    pub total: i64,
    pub groups: Vec<(GroupValue, i64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum GroupValue {
    Text(Option<String>),
    Int(Option<i64>),
}

/// Builds the WHERE clause of a List/Count for a SQL dialect: namespace, division, filter and
/// (for List) the keyset condition. Values go to `params`, never into the text.
pub fn where_clause(
    namespace: &str,
    filter: Option<&query::Expr>,
    hide_divisions: bool,
    after: Option<&Cursor>,
    dialect: query::Dialect,
    params: &mut Vec<query::SqlValue>,
) -> String {
    use query::SqlValue;
    let p = |v: SqlValue, params: &mut Vec<SqlValue>| {
        params.push(v);
        match dialect {
            query::Dialect::Sqlite => format!("?{}", params.len()),
            query::Dialect::Postgres => format!("${}", params.len()),
        }
    };
    let mut clause = format!("v.namespace = {}", p(SqlValue::Text(namespace.to_string()), params));
    if hide_divisions {
        clause.push_str(" AND v.namespace_division IS NULL");
    }
    if let Some(filter) = filter {
        let sql = query::to_sql(filter, namespace, dialect, params);
        clause.push_str(&format!(" AND ({sql})"));
    }
    if let Some(c) = after {
        let t = p(SqlValue::Int(c.sort_time), params);
        let s = p(SqlValue::Int(c.start_time), params);
        let r = p(SqlValue::Text(c.run_id.clone()), params);
        clause.push_str(&format!(
            " AND (v.sort_time < {t} OR (v.sort_time = {t} AND (v.start_time < {s} OR (v.start_time = {s} AND v.run_id > {r}))))"
        ));
    }
    clause
}

/// The ORDER BY of List: running first, then latest closed, latest started; run id breaks ties.
pub const ORDER_BY: &str = "ORDER BY v.sort_time DESC, v.start_time DESC, v.run_id ASC";

/// The columns of the `visibility` table, in the order `Row::values` gives them.
const COLUMNS: [&str; 20] = [
    "run_id",
    "namespace",
    "workflow_id",
    "workflow_type",
    "status",
    "task_queue",
    "start_time",
    "execution_time",
    "close_time",
    "sort_time",
    "execution_duration",
    "history_length",
    "history_size_bytes",
    "state_transition_count",
    "parent_workflow_id",
    "parent_run_id",
    "root_workflow_id",
    "root_run_id",
    "namespace_division",
    "info",
];

/// A value bound to a statement that writes a row (a `query::SqlValue`, NULL or bytes).
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
    Double(Option<f64>),
    Bytes(Vec<u8>),
}

fn placeholder(dialect: query::Dialect, n: usize) -> String {
    match dialect {
        query::Dialect::Sqlite => format!("?{n}"),
        query::Dialect::Postgres => format!("${n}"),
    }
}

/// Inserts or replaces a run's row (`Row::values` binds it).
pub fn upsert_sql(dialect: query::Dialect) -> String {
    let values: Vec<String> = (1..=COLUMNS.len()).map(|n| placeholder(dialect, n)).collect();
    let updates: Vec<String> = COLUMNS[1..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO visibility ({}) VALUES ({}) ON CONFLICT (run_id) DO UPDATE SET {}",
        COLUMNS.join(", "),
        values.join(", "),
        updates.join(", ")
    )
}

/// Inserts one attribute value row: run id, namespace, name, text, int, double.
pub fn attribute_insert_sql(dialect: query::Dialect) -> String {
    let values: Vec<String> = (1..=6).map(|n| placeholder(dialect, n)).collect();
    format!(
        "INSERT INTO visibility_attributes (run_id, namespace, name, value_text, value_int, value_double) VALUES ({})",
        values.join(", ")
    )
}

impl Row {
    /// The values of `COLUMNS`, in order.
    pub fn values(&self) -> Vec<Bind> {
        let text = |s: &str| Bind::Text(Some(s.to_string()));
        let opt_text = |s: &Option<String>| Bind::Text(s.clone());
        let opt_int = Bind::Int;
        let int = |n: i64| Bind::Int(Some(n));
        vec![
            text(&self.run_id),
            text(&self.namespace),
            text(&self.workflow_id),
            text(&self.workflow_type),
            int(self.status as i64),
            text(&self.task_queue),
            int(self.start_time),
            int(self.execution_time),
            opt_int(self.close_time),
            int(self.close_time.unwrap_or(RUNNING_SORT_TIME)),
            opt_int(self.execution_duration),
            int(self.history_length),
            int(self.history_size_bytes),
            int(self.state_transition_count),
            opt_text(&self.parent_workflow_id),
            opt_text(&self.parent_run_id),
            text(&self.root_workflow_id),
            text(&self.root_run_id),
            opt_text(&self.namespace_division),
            Bind::Bytes(self.info.clone()),
        ]
    }

    /// The values of each attribute row, for `attribute_insert_sql`.
    pub fn attribute_values(&self) -> Vec<Vec<Bind>> {
        self.attributes
            .iter()
            .map(|a| {
                vec![
                    Bind::Text(Some(self.run_id.clone())),
                    Bind::Text(Some(self.namespace.clone())),
                    Bind::Text(Some(a.name.clone())),
                    Bind::Text(a.text.clone()),
                    Bind::Int(a.int),
                    Bind::Double(a.double),
                ]
            })
            .collect()
    }
}

/// A page of List: selects sort time, start time, run id and info.
pub fn list_sql(request: &ListRequest, dialect: query::Dialect) -> (String, Vec<query::SqlValue>) {
    let mut params = Vec::new();
    let keyset = if request.by_run_id { None } else { request.after.as_ref() };
    let mut clause =
        where_clause(&request.namespace, request.filter.as_ref(), request.hide_divisions, keyset, dialect, &mut params);
    let order = if request.by_run_id {
        if let Some(after) = &request.after {
            params.push(query::SqlValue::Text(after.run_id.clone()));
            clause.push_str(&format!(" AND v.run_id > {}", placeholder(dialect, params.len())));
        }
        "ORDER BY v.run_id ASC"
    } else {
        ORDER_BY
    };
    let limit = request.page_size.clamp(1, PAGE_SIZE_MAX);
    let sql = format!(
        "SELECT v.sort_time, v.start_time, v.run_id, v.info FROM visibility v WHERE {clause} {order} LIMIT {limit}"
    );
    (sql, params)
}

/// Count, or count per group: selects (group value, count) rows, the group value NULL when
/// there is no group (or the status, when counts come from the per-status counters; the
/// caller sums them). The flag says whether that first column holds integers (a status)
/// rather than text, decided here with the SQL so the two cannot disagree.
pub fn count_sql(request: &CountRequest, dialect: query::Dialect) -> (String, Vec<query::SqlValue>, bool) {
    let mut params = Vec::new();
    let by_status =
        matches!(request.group_by.as_ref().map(|a| &a.column), None | Some(query::Column::System("status")));
    if request.filter.is_none() && request.hide_divisions && by_status {
        // Kept by triggers (migration 0005): no scan.
        params.push(query::SqlValue::Text(request.namespace.clone()));
        let p = placeholder(dialect, 1);
        return (format!("SELECT status, n FROM visibility_counts WHERE namespace = {p} AND n > 0"), params, true);
    }
    let clause =
        where_clause(&request.namespace, request.filter.as_ref(), request.hide_divisions, None, dialect, &mut params);
    match request.group_by.as_ref().map(|a| &a.column) {
        Some(query::Column::System(column)) => {
            let sql = format!("SELECT v.{column}, COUNT(*) FROM visibility v WHERE {clause} GROUP BY v.{column}");
            (sql, params, *column == "status")
        }
        _ => (format!("SELECT NULL, COUNT(*) FROM visibility v WHERE {clause}"), params, false),
    }
}
