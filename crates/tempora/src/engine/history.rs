//! A run's history as memory keeps it: every event protobuf-encoded, as the store holds it
//! (about a tenth of a decoded `HistoryEvent`, whose `Attributes` enum alone is over a
//! kilobyte), decoded when it is read. The events lie end to end in one buffer (one
//! allocation per run rather than one per event: thousands of cached runs would otherwise
//! scatter small blocks over the heap). The run cache's byte budget counts these buffers'
//! capacity, so it is a measure of what the cache holds, not an estimate.
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
    /// Every event's encoding, end to end.
    data: Vec<u8>,
    /// Where each event's encoding ends in `data`.
    ends: Vec<u32>,
    started: Option<Box<WorkflowExecutionStartedEventAttributes>>,
}

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
        history.data.reserve_exact(events.iter().map(Vec::len).sum());
        history.ends.reserve_exact(events.len());
        for bytes in events {
            let event = HistoryEvent::decode(bytes.as_slice())?;
            history.push(&event, |data| data.extend_from_slice(&bytes));
        }
        Ok(history)
    }

    /// Appends events.
    pub fn extend(&mut self, events: &[HistoryEvent]) {
        for event in events {
            self.push(event, |data| event.encode(data).expect("a vector grows as needed"));
        }
    }

    /// Appends `event`, whose encoding `encode` writes at the end of the buffer.
    fn push(&mut self, event: &HistoryEvent, encode: impl FnOnce(&mut Vec<u8>)) {
        if self.ends.is_empty() {
            if let Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) = &event.attributes {
                self.started = Some(Box::new(a.clone()));
            }
        }
        encode(&mut self.data);
        // An event is at most a few MiB (the payload limits), a run's history far below 4 GiB.
        self.ends.push(u32::try_from(self.data.len()).expect("a history under 4 GiB"));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoding of the event at `index`.
    fn encoded(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)? as usize;
        let start = if index == 0 { 0 } else { self.ends[index - 1] as usize };
        Some(&self.data[start..end])
    }

    /// The event at `index` (event id − 1).
    pub fn get(&self, index: usize) -> Option<HistoryEvent> {
        self.encoded(index).map(decoded)
    }

    pub fn first(&self) -> Option<HistoryEvent> {
        self.get(0)
    }

    pub fn last(&self) -> Option<HistoryEvent> {
        self.get(self.len().checked_sub(1)?)
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
            Bound::Unbounded => self.len(),
        };
        let end = end.min(self.len());
        let start = start.min(end);
        (start..end).filter_map(|i| self.get(i)).collect()
    }

    /// Every event, decoded one at a time.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = HistoryEvent> + ExactSizeIterator + '_ {
        (0..self.len()).map(|i| self.encoded(i).map(decoded).unwrap_or_default())
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
        self.data.capacity() + self.ends.capacity() * std::mem::size_of::<u32>() + started
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
