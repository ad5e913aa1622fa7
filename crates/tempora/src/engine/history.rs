//! A run's history as memory keeps it: every event protobuf-encoded, as the store holds it
//! (about a tenth of a decoded `HistoryEvent`, whose `Attributes` enum alone is over a
//! kilobyte), decoded when it is read. The run cache's byte budget counts these bytes, so it
//! is a measure of what the cache holds, not an estimate.
//!
//! The first event's attributes are also kept decoded: every transition reads them (a closing
//! run's cron schedule and retry policy).

use std::ops::{Bound, RangeBounds};

use prost::Message;
use temporalio_protos::temporal::api::history::v1::{
    history_event::Attributes, HistoryEvent, WorkflowExecutionStartedEventAttributes,
};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    events: Vec<Box<[u8]>>,
    started: Option<Box<WorkflowExecutionStartedEventAttributes>>,
    /// Heap bytes the encoded events hold.
    bytes: usize,
}

/// Memory one encoded event costs beyond its bytes (its box in the vector, the allocator's
/// header).
const EVENT_OVERHEAD_BYTES: usize = 32;

impl History {
    /// A history of these events.
    pub fn of(events: &[HistoryEvent]) -> History {
        let mut history = History::default();
        history.extend(events);
        history
    }

    /// A history of events as the store holds them; an event that does not decode is an error
    /// (each is decoded once here, so a later read cannot fail).
    pub fn decode(events: Vec<Vec<u8>>) -> Result<History, prost::DecodeError> {
        let mut history = History::default();
        for bytes in events {
            let event = HistoryEvent::decode(bytes.as_slice())?;
            history.push_encoded(&event, bytes.into_boxed_slice());
        }
        Ok(history)
    }

    /// Appends events.
    pub fn extend(&mut self, events: &[HistoryEvent]) {
        for event in events {
            self.push_encoded(event, event.encode_to_vec().into_boxed_slice());
        }
    }

    fn push_encoded(&mut self, event: &HistoryEvent, bytes: Box<[u8]>) {
        if self.events.is_empty() {
            if let Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) = &event.attributes {
                self.started = Some(Box::new(a.clone()));
            }
        }
        self.bytes += bytes.len() + EVENT_OVERHEAD_BYTES;
        self.events.push(bytes);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The event at `index` (event id − 1).
    pub fn get(&self, index: usize) -> Option<HistoryEvent> {
        self.events.get(index).map(|bytes| decoded(bytes))
    }

    pub fn first(&self) -> Option<HistoryEvent> {
        self.get(0)
    }

    pub fn last(&self) -> Option<HistoryEvent> {
        self.events.last().map(|bytes| decoded(bytes))
    }

    /// The events in a range of indexes (clamped to the history).
    pub fn range(&self, range: impl RangeBounds<usize>) -> Vec<HistoryEvent> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i + 1,
            Bound::Excluded(&i) => i,
            Bound::Unbounded => self.events.len(),
        };
        let end = end.min(self.events.len());
        let start = start.min(end);
        self.events[start..end].iter().map(|bytes| decoded(bytes)).collect()
    }

    /// Every event, decoded one at a time.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = HistoryEvent> + ExactSizeIterator + '_ {
        self.events.iter().map(|bytes| decoded(bytes))
    }

    /// Every event, decoded.
    pub fn to_vec(&self) -> Vec<HistoryEvent> {
        self.iter().collect()
    }

    /// The first event's attributes (a run's history always starts with them).
    pub fn started(&self) -> Option<&WorkflowExecutionStartedEventAttributes> {
        self.started.as_deref()
    }

    /// Memory the history holds: the encoded events, and the first event's attributes.
    pub fn bytes(&self) -> usize {
        let started = self.started.as_ref().map_or(0, |a| std::mem::size_of_val(&**a) + a.encoded_len());
        self.bytes + self.events.capacity() * std::mem::size_of::<Box<[u8]>>() + started
    }
}

/// Events are checked when they enter (`decode`) or encoded here (`extend`): decoding them
/// again cannot fail.
fn decoded(bytes: &[u8]) -> HistoryEvent {
    let event = HistoryEvent::decode(bytes);
    debug_assert!(event.is_ok(), "an event kept in memory no longer decodes");
    event.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, attributes: Attributes) -> HistoryEvent {
        HistoryEvent { event_id: id, attributes: Some(attributes), ..Default::default() }
    }

    #[test]
    fn events_read_back_as_written_and_the_first_ones_attributes_are_at_hand() {
        let started = WorkflowExecutionStartedEventAttributes { cron_schedule: "@hourly".into(), ..Default::default() };
        let events = vec![
            event(1, Attributes::WorkflowExecutionStartedEventAttributes(started.clone())),
            event(2, Attributes::WorkflowTaskScheduledEventAttributes(Default::default())),
            event(3, Attributes::WorkflowTaskStartedEventAttributes(Default::default())),
        ];
        let history = History::of(&events);
        assert_eq!(history.len(), 3);
        assert_eq!(history.to_vec(), events);
        assert_eq!(history.get(1), Some(events[1].clone()));
        assert_eq!(history.get(3), None);
        assert_eq!(history.last(), Some(events[2].clone()));
        assert_eq!(history.range(1..), events[1..].to_vec());
        assert_eq!(history.range(5..), Vec::new());
        assert_eq!(history.iter().rev().map(|e| e.event_id).collect::<Vec<_>>(), vec![3, 2, 1]);
        assert_eq!(history.started(), Some(&started));
        let stored: Vec<Vec<u8>> = events.iter().map(|e| e.encode_to_vec()).collect();
        assert_eq!(History::decode(stored).unwrap(), history);
        assert!(History::decode(vec![vec![0xff, 0xff]]).is_err());
        // What the budget counts is the encoded size, a small share of the decoded one.
        assert!(history.bytes() < 3 * std::mem::size_of::<HistoryEvent>(), "{} bytes", history.bytes());
    }
}
