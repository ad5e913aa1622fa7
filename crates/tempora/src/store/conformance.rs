//! The `Store` contract as tests, written once and run on every backend (STYLE.md §5): the
//! in-memory store, SQLite in memory and in a file, and PostgreSQL when
//! `TEMPORA_TEST_POSTGRES_URL` names a server (a fresh database per test).
//!
//! Each case works on a `Fixture` and calls `reopen` where a restart could happen: a backend
//! with durable storage (a SQLite file, PostgreSQL) is then closed and opened again, so every
//! case also checks that what it committed survives; for the in-memory backends it is a no-op.

use prost::Message;
use temporalio_protos::temporal::api::enums::v1::EventType;
use temporalio_protos::temporal::api::history::v1::HistoryEvent;

use super::memory::MemoryStore;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{Error, NamespaceRecord, Record, RecordKind, Store, Write};
use crate::engine::state::{MutableState, RunKey, RunStatus, UserTimer};

/// A store under test, and how to open it again on the same data.
pub struct Fixture {
    store: Option<Box<dyn Store>>,
    reopen: Option<Box<dyn FnMut() -> Box<dyn Store>>>,
    /// Dropped last: the temp directory, or the PostgreSQL database's cleanup.
    _guard: Option<Box<dyn std::any::Any>>,
}

impl Fixture {
    fn store(&mut self) -> &mut dyn Store {
        self.store.as_deref_mut().expect("store is open")
    }

    /// Closes the store and opens it again (durable backends only).
    fn reopen(&mut self) {
        if let Some(open) = self.reopen.as_mut() {
            // Closed first: the SQLite file stays locked while its store is open.
            self.store = None;
            self.store = Some(open());
        }
    }
}

pub fn memory() -> Option<Fixture> {
    Some(Fixture { store: Some(Box::new(MemoryStore::new())), reopen: None, _guard: None })
}

pub fn sqlite_memory() -> Option<Fixture> {
    let store = SqliteStore::open(":memory:").expect("open SQLite in memory");
    Some(Fixture { store: Some(Box::new(store)), reopen: None, _guard: None })
}

pub fn sqlite_file() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("conformance.db").to_str().expect("utf-8 temp path").to_string();
    let open = move || Box::new(SqliteStore::open(&path).expect("open SQLite file")) as Box<dyn Store>;
    Some(Fixture { store: Some(open()), reopen: Some(Box::new(open)), _guard: Some(Box::new(dir)) })
}

/// A fresh database `tempora_conf_<random>` on the server `TEMPORA_TEST_POSTGRES_URL` names,
/// dropped when the test ends; `None` (after a notice) when the variable is unset.
pub fn postgres() -> Option<Fixture> {
    let Ok(base) = std::env::var("TEMPORA_TEST_POSTGRES_URL") else {
        eprintln!("TEMPORA_TEST_POSTGRES_URL is unset: PostgreSQL conformance case skipped");
        return None;
    };
    let name = format!("tempora_conf_{}", uuid::Uuid::new_v4().simple());
    let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls).expect("connect to the test PostgreSQL");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
    let url = crate::testing::with_database(&base, &name);
    let open = move || Box::new(PostgresStore::open(&url).expect("open PostgreSQL store")) as Box<dyn Store>;
    let guard = DropDatabase { admin, name };
    Some(Fixture { store: Some(open()), reopen: Some(Box::new(open)), _guard: Some(Box::new(guard)) })
}

struct DropDatabase {
    admin: ::postgres::Client,
    name: String,
}

impl Drop for DropDatabase {
    /// Best effort: FORCE, because the store's read pool closes its connections on its own
    /// thread; CI also drops every `tempora_%` database before its PostgreSQL pass.
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

// ---- values to store ----

const RUNNING: RunStatus = RunStatus::Running;
const COMPLETED: RunStatus = RunStatus::Completed;
const CONTINUED_AS_NEW: RunStatus = RunStatus::ContinuedAsNew;

fn state(namespace: &str, workflow_id: &str, run_id: &str, status: RunStatus, transitions: u64) -> MutableState {
    let key = RunKey { namespace: namespace.into(), workflow_id: workflow_id.into(), run_id: run_id.into() };
    MutableState { key, workflow_type: "conformance".into(), status, transitions, ..Default::default() }
}

fn events(ids: std::ops::RangeInclusive<i64>) -> Vec<HistoryEvent> {
    ids.map(|event_id| HistoryEvent {
        event_id,
        event_type: EventType::WorkflowExecutionSignaled as i32,
        ..Default::default()
    })
    .collect()
}

fn namespace(name: &str, id: &str, description: &str) -> NamespaceRecord {
    NamespaceRecord {
        name: name.into(),
        id: id.into(),
        description: description.into(),
        owner_email: "owner@example.com".into(),
        retention_ms: 86_400_000,
        search_attributes: Default::default(),
        data: Default::default(),
        deleted: false,
    }
}

/// A new run of `default/<workflow_id>`: its row, events 1..=`last_event`, its current pointer.
fn new_run(workflow_id: &str, run_id: &str, last_event: i64) -> Vec<Write> {
    let s = state("default", workflow_id, run_id, RUNNING, 1);
    vec![Write::execution(&s, &events(1..=last_event), None), current("default", workflow_id, run_id)]
}

/// The run's next transition: version `transitions`, read at `transitions - 1`.
fn transition(
    workflow_id: &str,
    run_id: &str,
    status: RunStatus,
    transitions: u64,
    new_events: &[HistoryEvent],
) -> Write {
    Write::execution(&state("default", workflow_id, run_id, status, transitions), new_events, Some(transitions - 1))
}

fn current(namespace: &str, workflow_id: &str, run_id: &str) -> Write {
    Write::Current { namespace: namespace.into(), workflow_id: workflow_id.into(), run_id: run_id.into() }
}

fn delete(workflow_id: &str, run_id: &str) -> Write {
    Write::DeleteExecution { namespace: "default".into(), workflow_id: workflow_id.into(), run_id: run_id.into() }
}

// ---- reading back ----

/// (transitions, status, event ids) of a stored run, `None` if it is not stored.
fn stored(store: &mut dyn Store, run_id: &str) -> Option<(u64, RunStatus, Vec<i64>)> {
    let record = store.load_execution(run_id).expect("load execution")?;
    Some((record.state.transitions, record.state.status, record.history.iter().map(|e| e.event_id).collect()))
}

fn current_run(store: &mut dyn Store, workflow_id: &str) -> Option<String> {
    store.load_current_run("default", workflow_id).expect("load current run")
}

/// A running state of `default/wf/run-1` at version `transitions`, waiting on user timers
/// firing at the given times.
fn waiting(transitions: u64, fire_times_ms: &[i64]) -> MutableState {
    let mut s = state("default", "wf", "run-1", RUNNING, transitions);
    for (i, fire_time_ms) in fire_times_ms.iter().enumerate() {
        let timer_id = format!("t{i}");
        let timer =
            UserTimer { timer_id: timer_id.clone(), started_event_id: 5 + i as i64, fire_time_ms: *fire_time_ms };
        s.timers.insert(timer_id, timer);
    }
    s
}

/// (run id, due) of the work index entries due in `[from, to)`, in due order.
fn due(store: &mut dyn Store, from_ms: i64, to_ms: i64) -> Vec<(String, i64)> {
    let rows = store.load_work(from_ms, to_ms).expect("load work");
    rows.into_iter().map(|row| (row.run_id, row.due_ms)).collect()
}

// ---- the cases ----

pub fn namespaces_round_trip(fx: &mut Fixture) {
    assert_eq!(fx.store().load_namespaces().unwrap(), vec![]);
    let (b, a) = (namespace("b", "id-b", "second"), namespace("a", "id-a", "first"));
    fx.store().commit(&[Write::Namespace(b.clone()), Write::Namespace(a.clone())]).unwrap();
    fx.reopen();
    assert_eq!(fx.store().load_namespaces().unwrap(), vec![a.clone(), b.clone()], "ordered by name");

    // Registering a name again replaces its record.
    let a2 = namespace("a", "id-a", "updated");
    fx.store().commit(&[Write::Namespace(a2.clone())]).unwrap();
    fx.reopen();
    assert_eq!(fx.store().load_namespaces().unwrap(), vec![a2, b]);
}

/// Records are kept per (kind, scope, id): a write replaces, a delete removes only its own.
pub fn records_round_trip_replace_and_delete(fx: &mut Fixture) {
    let record = |kind, scope: &str, id: &str, data: &str| Record {
        kind,
        scope: scope.into(),
        id: id.into(),
        data: data.into(),
    };
    let sorted = |mut v: Vec<Record>| {
        v.sort_by(|a, b| (a.kind.as_str(), &a.scope, &a.id).cmp(&(b.kind.as_str(), &b.scope, &b.id)));
        v
    };
    assert_eq!(fx.store().load_records().unwrap(), vec![]);
    let endpoint = record(RecordKind::NexusEndpoint, "", "e1", "{}");
    let schedule = record(RecordKind::Schedule, "default", "s1", r#"{"v":1}"#);
    let same_id = record(RecordKind::Schedule, "other", "s1", r#"{"v":2}"#);
    let writes: Vec<Write> = [&endpoint, &schedule, &same_id].map(|r| Write::Record(r.clone())).into();
    fx.store().commit(&writes).unwrap();
    fx.reopen();
    assert_eq!(sorted(fx.store().load_records().unwrap()), vec![endpoint.clone(), schedule, same_id]);

    let schedule2 = record(RecordKind::Schedule, "default", "s1", r#"{"v":3}"#);
    let delete = Write::DeleteRecord { kind: RecordKind::Schedule, scope: "other".into(), id: "s1".into() };
    fx.store().commit(&[Write::Record(schedule2.clone()), delete]).unwrap();
    fx.reopen();
    assert_eq!(sorted(fx.store().load_records().unwrap()), vec![endpoint, schedule2]);
}

pub fn namespace_id_taken_by_another_name_is_refused(fx: &mut Fixture) {
    fx.store().commit(&[Write::Namespace(namespace("a", "same-id", ""))]).unwrap();
    let err = fx.store().commit(&[Write::Namespace(namespace("b", "same-id", ""))]).unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "unique id: {err:?}");
    let names: Vec<String> = fx.store().load_namespaces().unwrap().into_iter().map(|n| n.name).collect();
    assert_eq!(names, vec!["a".to_string()]);
}

pub fn new_run_round_trips(fx: &mut Fixture) {
    let mut s = state("default", "wf", "run-1", RUNNING, 1);
    s.task_queue = "queue".into();
    s.next_event_id = 4;
    fx.store().commit(&[Write::execution(&s, &events(1..=3), None), current("default", "wf", "run-1")]).unwrap();
    fx.reopen();

    let record = fx.store().load_execution("run-1").unwrap().expect("run stored");
    assert_eq!(serde_json::to_value(&record.state).unwrap(), serde_json::to_value(&s).unwrap());
    assert_eq!(record.history.to_vec(), events(1..=3), "events decode as written");
    assert_eq!(current_run(fx.store(), "wf").as_deref(), Some("run-1"));
    assert!(fx.store().load_execution("no-such-run").unwrap().is_none());
    assert_eq!(current_run(fx.store(), "no-such-workflow"), None);
    assert_eq!(fx.store().load_current_run("other-namespace", "wf").unwrap(), None);
}

pub fn appended_events_keep_their_order(fx: &mut Fixture) {
    fx.store().commit(&new_run("wf", "run-1", 2)).unwrap();
    fx.store().commit(&[transition("wf", "run-1", RUNNING, 2, &events(3..=4))]).unwrap();
    fx.reopen();
    // Out of order within a write: reads still come back in event-id order.
    let mut late = events(5..=7);
    late.reverse();
    fx.store().commit(&[transition("wf", "run-1", RUNNING, 3, &late)]).unwrap();
    fx.reopen();
    assert_eq!(stored(fx.store(), "run-1"), Some((3, RUNNING, (1..=7).collect())));
}

/// Group commit puts consecutive transitions of one run into one batch: each write must see
/// the version the one before it wrote.
pub fn consecutive_transitions_in_one_batch(fx: &mut Fixture) {
    let mut batch = new_run("wf", "run-1", 1);
    batch.push(transition("wf", "run-1", RUNNING, 2, &events(2..=2)));
    batch.push(transition("wf", "run-1", COMPLETED, 3, &events(3..=3)));
    fx.store().commit(&batch).unwrap();
    fx.reopen();
    assert_eq!(stored(fx.store(), "run-1"), Some((3, COMPLETED, vec![1, 2, 3])));
}

pub fn stale_version_is_a_conflict(fx: &mut Fixture) {
    fx.store().commit(&new_run("wf", "run-1", 1)).unwrap();
    fx.store().commit(&[transition("wf", "run-1", RUNNING, 2, &events(2..=2))]).unwrap();

    // A second writer that also read version 1.
    let stale = transition("wf", "run-1", COMPLETED, 2, &events(3..=3));
    match fx.store().commit(&[stale]) {
        Err(Error::Conflict(run_id)) => assert_eq!(run_id, "run-1"),
        other => panic!("expected Conflict(run-1), got {other:?}"),
    }
    // A version from the future, and an update of a run that was never stored.
    let ahead = transition("wf", "run-1", RUNNING, 9, &[]);
    assert!(matches!(fx.store().commit(&[ahead]), Err(Error::Conflict(r)) if r == "run-1"));
    let missing = transition("wf", "ghost", RUNNING, 2, &events(2..=2));
    assert!(matches!(fx.store().commit(&[missing]), Err(Error::Conflict(r)) if r == "ghost"));
    fx.reopen();
    assert_eq!(stored(fx.store(), "run-1"), Some((2, RUNNING, vec![1, 2])));
    assert_eq!(stored(fx.store(), "ghost"), None);
}

/// One conflicting write fails its whole batch: the good writes before and after it, of every
/// kind, are not applied either.
pub fn a_conflict_applies_nothing_of_its_batch(fx: &mut Fixture) {
    fx.store().commit(&new_run("wf", "run-1", 1)).unwrap();
    fx.store().commit(&new_run("other", "other-1", 1)).unwrap();

    let mut batch = vec![Write::Namespace(namespace("ns", "id-ns", ""))];
    batch.extend(new_run("fresh", "fresh-1", 2));
    batch.push(transition("wf", "run-1", COMPLETED, 2, &events(2..=2)));
    batch.push(current("default", "wf", "fresh-1"));
    batch.push(delete("other", "other-1"));
    batch.push(Write::execution(&state("default", "wf", "run-1", RUNNING, 3), &[], Some(1))); // stale: now at 2
    batch.push(current("default", "later", "fresh-1"));
    assert!(matches!(fx.store().commit(&batch), Err(Error::Conflict(r)) if r == "run-1"));
    fx.reopen();

    assert_eq!(fx.store().load_namespaces().unwrap(), vec![]);
    assert_eq!(stored(fx.store(), "fresh-1"), None);
    assert_eq!(stored(fx.store(), "run-1"), Some((1, RUNNING, vec![1])));
    assert_eq!(stored(fx.store(), "other-1"), Some((1, RUNNING, vec![1])));
    assert_eq!(current_run(fx.store(), "other").as_deref(), Some("other-1"));
    assert_eq!(current_run(fx.store(), "wf").as_deref(), Some("run-1"));
    assert_eq!(current_run(fx.store(), "later"), None);
    // The run the failed batch created can still be created (its events were not kept).
    fx.store().commit(&new_run("fresh", "fresh-1", 2)).unwrap();
    assert_eq!(stored(fx.store(), "fresh-1"), Some((1, RUNNING, vec![1, 2])));
}

/// A new-run write for a run id that is stored breaks the primary key: both SQL backends
/// report a backend error (not `Conflict`), and nothing of the batch is applied.
pub fn a_second_new_run_with_the_same_id_is_refused(fx: &mut Fixture) {
    fx.store().commit(&new_run("wf", "run-1", 2)).unwrap();
    let mut batch = new_run("good", "good-1", 1);
    batch.push(Write::execution(&state("default", "wf", "run-1", COMPLETED, 1), &events(3..=3), None));
    let err = fx.store().commit(&batch).unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "duplicate run id: {err:?}");
    fx.reopen();
    assert_eq!(stored(fx.store(), "run-1"), Some((1, RUNNING, vec![1, 2])));
    assert_eq!(stored(fx.store(), "good-1"), None);
    assert_eq!(current_run(fx.store(), "good"), None);
}

/// History is append-only: writing an event id again fails the batch.
pub fn an_event_id_is_written_once(fx: &mut Fixture) {
    fx.store().commit(&new_run("wf", "run-1", 2)).unwrap();
    let again = transition("wf", "run-1", RUNNING, 2, &events(2..=3));
    let err = fx.store().commit(&[again]).unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "duplicate event id: {err:?}");
    fx.reopen();
    assert_eq!(stored(fx.store(), "run-1"), Some((1, RUNNING, vec![1, 2])));
}

/// The work index is what the run's last written state waits on: written whole with a new
/// run, by difference with a transition, emptied when the run closes or is deleted, and only
/// committed with its transaction.
pub fn the_work_index_follows_each_runs_state(fx: &mut Fixture) {
    let first = waiting(1, &[3_000, 1_000]);
    fx.store().commit(&[Write::execution(&first, &events(1..=2), None)]).unwrap();
    fx.reopen();
    assert_eq!(due(fx.store(), 0, 10_000), vec![("run-1".into(), 1_000), ("run-1".into(), 3_000)]);
    assert_eq!(due(fx.store(), 1_000, 3_000), vec![("run-1".into(), 1_000)], "from inclusive, to exclusive");
    let item = |s: &MutableState, i: usize| super::work_key(&crate::engine::workflow::recover(s)[i]);
    assert!(fx.store().has_work("run-1", &item(&first, 0)).unwrap());

    // A transition: the timer at 1 s fired, one at 5 s was started.
    let second = waiting(2, &[3_000, 5_000]);
    fx.store().commit(&[Write::transition(&second, &events(3..=3), &first)]).unwrap();
    fx.reopen();
    assert_eq!(due(fx.store(), 0, 10_000), vec![("run-1".into(), 3_000), ("run-1".into(), 5_000)]);

    // A batch that fails writes none of its index change.
    let stale = Write::transition(&waiting(3, &[]), &[], &waiting(1, &[]));
    assert!(matches!(fx.store().commit(&[stale]), Err(Error::Conflict(_))));
    assert_eq!(due(fx.store(), 0, 10_000).len(), 2);

    // Another run's entries are its own; closing a run empties its index, deleting it too.
    let other = waiting(1, &[4_000]);
    let other = MutableState { key: RunKey::new("default", "other", "run-2"), ..other };
    fx.store().commit(&[Write::execution(&other, &events(1..=1), None)]).unwrap();
    let closed = MutableState { status: COMPLETED, ..waiting(3, &[]) };
    fx.store().commit(&[Write::transition(&closed, &events(4..=4), &second)]).unwrap();
    fx.reopen();
    assert_eq!(due(fx.store(), i64::MIN, i64::MAX), vec![("run-2".into(), 4_000)]);
    assert!(!fx.store().has_work("run-1", &item(&first, 0)).unwrap());
    fx.store().commit(&[delete("other", "run-2")]).unwrap();
    fx.reopen();
    assert_eq!(due(fx.store(), i64::MIN, i64::MAX), vec![]);
}

/// Continue-as-new: the old run closes, the new one is created and the pointer moves, in one
/// batch.
pub fn continue_as_new_moves_the_pointer(fx: &mut Fixture) {
    fx.store().commit(&new_run("wf", "run-1", 1)).unwrap();
    let closed = state("default", "wf", "run-1", CONTINUED_AS_NEW, 2);
    let next = state("default", "wf", "run-2", RUNNING, 1);
    fx.store()
        .commit(&[
            Write::execution(&closed, &events(2..=2), Some(1)),
            Write::execution(&next, &events(1..=1), None),
            current("default", "wf", "run-2"),
        ])
        .unwrap();
    fx.reopen();
    assert_eq!(current_run(fx.store(), "wf").as_deref(), Some("run-2"));
    assert_eq!(stored(fx.store(), "run-1"), Some((2, CONTINUED_AS_NEW, vec![1, 2])));
    assert_eq!(stored(fx.store(), "run-2"), Some((1, RUNNING, vec![1])));
}

/// One pointer per (namespace, workflow id): the same workflow id in two namespaces is two.
pub fn current_runs_per_namespace_and_workflow(fx: &mut Fixture) {
    assert_eq!(fx.store().load_current_run("default", "wf").unwrap(), None);
    fx.store()
        .commit(&[current("default", "wf", "r1"), current("other", "wf", "r2"), current("default", "wf2", "r3")])
        .unwrap();
    fx.store().commit(&[current("default", "wf2", "r4")]).unwrap();
    fx.reopen();
    assert_eq!(fx.store().load_current_run("default", "wf").unwrap().as_deref(), Some("r1"));
    assert_eq!(fx.store().load_current_run("other", "wf").unwrap().as_deref(), Some("r2"));
    assert_eq!(fx.store().load_current_run("default", "wf2").unwrap().as_deref(), Some("r4"));
    assert_eq!(fx.store().load_current_run("other", "wf2").unwrap(), None);
}

/// Delete removes the run's row and history; the pointer only when it names that run (in that
/// namespace and workflow id).
pub fn delete_removes_the_run_and_only_its_pointer(fx: &mut Fixture) {
    fx.store().commit(&new_run("wf", "run-1", 2)).unwrap();
    let closed = state("default", "wf", "run-1", CONTINUED_AS_NEW, 2);
    let mut batch = vec![Write::execution(&closed, &events(3..=3), Some(1))];
    batch.extend(new_run("wf", "run-2", 1));
    fx.store().commit(&batch).unwrap();

    fx.store().commit(&[delete("wf", "run-1")]).unwrap();
    fx.reopen();
    assert_eq!(stored(fx.store(), "run-1"), None);
    assert_eq!(current_run(fx.store(), "wf").as_deref(), Some("run-2"), "pointer names a later run");
    // Its history went too: the run id can be written again from event 1.
    fx.store()
        .commit(&[Write::execution(&state("default", "wf", "run-1", COMPLETED, 1), &events(1..=1), None)])
        .unwrap();
    assert_eq!(stored(fx.store(), "run-1"), Some((1, COMPLETED, vec![1])));

    // A delete naming another namespace or workflow id leaves the pointer.
    let elsewhere =
        Write::DeleteExecution { namespace: "other".into(), workflow_id: "wf".into(), run_id: "run-2".into() };
    fx.store().commit(&[elsewhere, current("other", "wf", "run-2")]).unwrap();
    fx.store().commit(&[delete("wf", "run-2")]).unwrap();
    fx.store().commit(&[delete("never-stored", "nothing")]).unwrap();
    fx.reopen();
    assert_eq!(stored(fx.store(), "run-2"), None);
    assert_eq!(current_run(fx.store(), "wf"), None);
    assert_eq!(fx.store().load_current_run("other", "wf").unwrap().as_deref(), Some("run-2"));
}

/// A backend's reader (PostgreSQL's pool) sees what the writer committed.
pub fn reader_sees_committed_data(fx: &mut Fixture) {
    let Some(reader) = fx.store().reader() else {
        return; // Reads go through the writer on this backend.
    };
    assert!(reader.load_execution("run-1").unwrap().is_none());
    fx.store().commit(&new_run("wf", "run-1", 2)).unwrap();
    let record = reader.load_execution("run-1").unwrap().expect("committed run");
    assert_eq!(record.history.iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(reader.load_current_run("default", "wf").unwrap().as_deref(), Some("run-1"));

    fx.store().commit(&[transition("wf", "run-1", COMPLETED, 2, &events(3..=3))]).unwrap();
    let record = reader.load_execution("run-1").unwrap().expect("committed run");
    assert_eq!((record.state.transitions, record.history.len()), (2, 3));
    // Encoded as the writer stored it.
    assert_eq!(record.history.get(2).map(|e| e.encode_to_vec()), Some(events(3..=3)[0].encode_to_vec()));

    let waits = MutableState { key: RunKey::new("default", "wf2", "run-2"), ..waiting(1, &[7_000]) };
    fx.store().commit(&[Write::execution(&waits, &events(1..=1), None)]).unwrap();
    let rows = reader.load_work(0, 10_000).unwrap();
    assert_eq!(rows.iter().map(|r| (r.run_id.as_str(), r.due_ms)).collect::<Vec<_>>(), vec![("run-2", 7_000)]);
    assert!(reader.has_work("run-2", &rows[0].item).unwrap());
    assert!(!reader.has_work("run-1", &rows[0].item).unwrap());
}

/// One `#[test]` per case for one backend, in a module named after it.
macro_rules! store_suite {
    ($backend:ident) => {
        mod $backend {
            store_suite!(@cases $backend;
                namespaces_round_trip,
                records_round_trip_replace_and_delete,
                namespace_id_taken_by_another_name_is_refused,
                new_run_round_trips,
                appended_events_keep_their_order,
                consecutive_transitions_in_one_batch,
                stale_version_is_a_conflict,
                a_conflict_applies_nothing_of_its_batch,
                a_second_new_run_with_the_same_id_is_refused,
                an_event_id_is_written_once,
                the_work_index_follows_each_runs_state,
                continue_as_new_moves_the_pointer,
                current_runs_per_namespace_and_workflow,
                delete_removes_the_run_and_only_its_pointer,
                reader_sees_committed_data,
            );
        }
    };
    (@cases $backend:ident; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if let Some(mut fixture) = super::$backend() {
                    super::$case(&mut fixture);
                }
            }
        )*
    };
}

store_suite!(memory);
store_suite!(sqlite_memory);
store_suite!(sqlite_file);
store_suite!(postgres);

/// The writer's group commit: a conflict of one run fails only that run's transition; the
/// others of its group are committed.
#[test]
fn a_conflict_in_a_group_commit_fails_only_its_own_transition() {
    let mut store = MemoryStore::new();
    store.commit(&new_run("wf", "run-1", 1)).unwrap();
    let stale = vec![Write::execution(&state("default", "wf", "run-1", RUNNING, 3), &[], Some(7))];
    let mut group = Vec::new();
    let mut replies = Vec::new();
    for writes in [new_run("a", "run-a", 1), stale, new_run("b", "run-b", 1)] {
        let (tx, rx) = tokio::sync::oneshot::channel();
        group.push((writes, tx));
        replies.push(rx);
    }
    super::commit_group(&mut store, &mut group);
    let results: Vec<super::Result<()>> = replies.into_iter().map(|mut rx| rx.try_recv().expect("replied")).collect();
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(matches!(&results[1], Err(Error::Conflict(r)) if r == "run-1"), "{results:?}");
    assert!(stored(&mut store, "run-a").is_some() && stored(&mut store, "run-b").is_some());
}

/// A cluster node's writes: committed while it holds the shard's lease at the database's
/// epoch; refused (`Fenced`) once another node took the shard over (the epoch moved) or when
/// its lease lapsed locally; and in a group, a fenced transition fails alone.
#[test]
fn a_cluster_node_commits_only_under_the_epoch_it_holds() {
    use crate::cluster::{Fence, Lease};
    use crate::shard::ShardId;
    let Ok(base) = std::env::var("TEMPORA_TEST_POSTGRES_URL") else {
        eprintln!("TEMPORA_TEST_POSTGRES_URL is unset: PostgreSQL fencing test skipped");
        return;
    };
    let name = format!("tempora_fence_{}", uuid::Uuid::new_v4().simple());
    let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls).expect("connect to the test PostgreSQL");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
    let url = crate::testing::with_database(&base, &name);
    let fence = std::sync::Arc::new(Fence::new("node-a:1".into()));
    let mut store = super::postgres::PostgresStore::open_cluster(&url, fence.clone()).expect("open");
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let (a, b) = (ShardId::of_workflow("default", "wf-a"), ShardId::of_workflow("default", "wf-b"));
    assert_ne!(a, b, "the test needs two shards");
    let lease = |epoch| Lease { epoch, valid_until: std::time::Instant::now() + std::time::Duration::from_secs(60) };
    for shard in [a, b] {
        db.execute("UPDATE shard_leases SET owner = 'node-a:1', epoch = 3 WHERE shard = $1", &[&(shard.0 as i32)])
            .unwrap();
    }
    fence.set([(a.0, lease(3)), (b.0, lease(3))].into());
    store.commit(&new_run("wf-a", "run-a", 1)).expect("held: committed");
    store.commit(&new_run("wf-b", "run-b", 1)).expect("held: committed");
    // Another node takes shard a over: this node's next write there is refused.
    db.execute("UPDATE shard_leases SET owner = 'node-b:2', epoch = 4 WHERE shard = $1", &[&(a.0 as i32)]).unwrap();
    let stale = vec![transition("wf-a", "run-a", RUNNING, 2, &events(2..=2))];
    assert!(matches!(store.commit(&stale), Err(Error::Fenced(_))));
    assert_eq!(stored(&mut store, "run-a").map(|s| s.0), Some(1), "nothing written under the old epoch");
    // In a group, only the fenced transition fails.
    let mut group = Vec::new();
    let mut replies = Vec::new();
    for writes in [stale.clone(), vec![transition("wf-b", "run-b", RUNNING, 2, &events(2..=2))]] {
        let (tx, rx) = tokio::sync::oneshot::channel();
        group.push((writes, tx));
        replies.push(rx);
    }
    super::commit_group(&mut store, &mut group);
    let results: Vec<super::Result<()>> = replies.into_iter().map(|mut rx| rx.try_recv().expect("replied")).collect();
    assert!(matches!(&results[0], Err(Error::Fenced(_))), "{results:?}");
    assert!(results[1].is_ok(), "{results:?}");
    // A lease that lapsed on this node's clock is not used, whatever the database says.
    fence.set([(b.0, Lease { epoch: 3, valid_until: std::time::Instant::now() })].into());
    let next = vec![transition("wf-b", "run-b", RUNNING, 3, &events(3..=3))];
    assert!(matches!(store.commit(&next), Err(Error::Fenced(_))));
    drop(store);
    drop(db);
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
