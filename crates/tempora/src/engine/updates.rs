//! Workflow updates, from the engine's side: the protocol messages a worker sends back with a
//! workflow task completion (acceptance, rejection, response) become history events.
//!
//! An update request is not part of history until it is accepted: the service keeps admitted
//! requests in memory (as Temporal's update registry does) and hands them to the worker with a
//! workflow task. Once accepted, the update and (later) its outcome are in mutable state, so
//! a retried request with the same update id finds them, across restarts.

use std::collections::HashMap;

use prost::Message as _;
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1 as history;
use temporalio_protos::temporal::api::protocol::v1::Message;
use temporalio_protos::temporal::api::update::v1::{outcome, Acceptance, Outcome, Rejection, Request, Response};

use super::state::Encoded;
use super::{Effect, Tx};

const REQUEST_TYPE: &str = "temporal.api.update.v1.Request";
const ACCEPTANCE_TYPE: &str = "temporal.api.update.v1.Acceptance";
const REJECTION_TYPE: &str = "temporal.api.update.v1.Rejection";
const RESPONSE_TYPE: &str = "temporal.api.update.v1.Response";

/// How far an update has come, as the service reports it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum UpdateProgress {
    Accepted,
    /// Completed, or rejected (then the outcome is its failure).
    Completed(Box<Outcome>),
}

/// The message that carries an admitted update's request to the worker.
pub fn request_message(request: &Request, sequencing_event_id: i64) -> Message {
    let update_id = request.meta.as_ref().map(|m| m.update_id.clone()).unwrap_or_default();
    Message {
        id: format!("{update_id}/request"),
        protocol_instance_id: update_id,
        body: Some(prost_types::Any {
            type_url: format!("type.googleapis.com/{REQUEST_TYPE}"),
            value: request.encode_to_vec(),
        }),
        sequencing_id: Some(temporalio_protos::temporal::api::protocol::v1::message::SequencingId::EventId(
            sequencing_event_id,
        )),
    }
}

/// A message body the worker sent, decoded.
enum Body {
    Acceptance(Acceptance),
    Rejection(Rejection),
    Response(Response),
}

fn decode(message: &Message) -> Result<Body, String> {
    let any = message.body.as_ref().ok_or_else(|| format!("protocol message {} has no body", message.id))?;
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let bad = |e: prost::DecodeError| format!("protocol message {} does not decode: {e}", message.id);
    match name {
        ACCEPTANCE_TYPE => Acceptance::decode(any.value.as_slice()).map(Body::Acceptance).map_err(bad),
        REJECTION_TYPE => Rejection::decode(any.value.as_slice()).map(Body::Rejection).map_err(bad),
        RESPONSE_TYPE => Response::decode(any.value.as_slice()).map(Body::Response).map_err(bad),
        other => Err(format!("protocol message {} has an unknown body type {other}", message.id)),
    }
}

/// True if every message is a rejection (or there are none).
pub fn only_rejections(messages: &[Message]) -> bool {
    messages.iter().all(|m| matches!(decode(m), Ok(Body::Rejection(_))))
}

/// The messages of one completion, consumed as commands reference them.
#[derive(Default)]
pub struct Messages {
    by_id: HashMap<String, Message>,
    /// In the order the worker sent them.
    order: Vec<String>,
    /// The requests the service handed out with this task, by update id (to fill an acceptance
    /// that does not repeat its request).
    requests: HashMap<String, Request>,
}

impl Messages {
    pub fn new(messages: Vec<Message>, requests: HashMap<String, Request>) -> Self {
        let order = messages.iter().map(|m| m.id.clone()).collect();
        let by_id = messages.into_iter().map(|m| (m.id.clone(), m)).collect();
        Messages { by_id, order, requests }
    }
}

impl Tx<'_> {
    /// A `ProtocolMessage` command: the message it names is applied at this point of history.
    pub(crate) fn protocol_message_command(
        &mut self,
        message_id: &str,
        messages: &mut Messages,
        completed_id: i64,
    ) -> Result<(), String> {
        let message = messages
            .by_id
            .remove(message_id)
            .ok_or_else(|| format!("ProtocolMessageCommand names an unknown message {message_id}"))?;
        self.apply_message(&message, &messages.requests, completed_id)
    }

    /// Messages no command referenced (rejections, and any others), applied after the commands.
    pub(crate) fn remaining_messages(&mut self, messages: &mut Messages, completed_id: i64) -> Result<(), String> {
        for id in std::mem::take(&mut messages.order) {
            if let Some(message) = messages.by_id.remove(&id) {
                self.apply_message(&message, &messages.requests, completed_id)?;
            }
        }
        Ok(())
    }

    fn apply_message(
        &mut self,
        message: &Message,
        requests: &HashMap<String, Request>,
        _completed_id: i64,
    ) -> Result<(), String> {
        let update_id = message.protocol_instance_id.clone();
        match decode(message)? {
            Body::Acceptance(a) => {
                if self.state.updates.contains_key(&update_id) {
                    return Err(format!("update {update_id} was already accepted"));
                }
                if self.state.updates.len() >= self.limits.updates_max {
                    return Err(format!("the run has reached its limit of {} updates", self.limits.updates_max));
                }
                let request = a.accepted_request.clone().or_else(|| requests.get(&update_id).cloned());
                let accepted_event_id = self.append(history::WorkflowExecutionUpdateAcceptedEventAttributes {
                    protocol_instance_id: update_id.clone(),
                    accepted_request_message_id: a.accepted_request_message_id,
                    accepted_request_sequencing_event_id: a.accepted_request_sequencing_event_id,
                    accepted_request: request,
                });
                debug_assert!(self
                    .state
                    .updates
                    .get(&update_id)
                    .is_some_and(|u| u.accepted_event_id == accepted_event_id));
                self.effects.push(Effect::UpdateProgress { update_id, progress: UpdateProgress::Accepted });
            }
            Body::Response(r) => {
                let accepted_event_id = match self.state.updates.get(&update_id) {
                    Some(u) if u.outcome.is_none() => u.accepted_event_id,
                    Some(_) => return Err(format!("update {update_id} was already completed")),
                    None => return Err(format!("update {update_id} was completed before it was accepted")),
                };
                let outcome = r.outcome.unwrap_or_default();
                self.append(history::WorkflowExecutionUpdateCompletedEventAttributes {
                    meta: r.meta,
                    accepted_event_id,
                    outcome: Some(outcome.clone()),
                });
                if let Some(u) = self.state.updates.get_mut(&update_id) {
                    u.outcome = Some(Encoded::of(&outcome));
                }
                self.effects
                    .push(Effect::UpdateProgress { update_id, progress: UpdateProgress::Completed(Box::new(outcome)) });
            }
            Body::Rejection(r) => {
                let failure = r
                    .failure
                    .unwrap_or_else(|| Failure { message: "the update was rejected".into(), ..Default::default() });
                let outcome = Outcome { value: Some(outcome::Value::Failure(failure)) };
                self.effects
                    .push(Effect::UpdateProgress { update_id, progress: UpdateProgress::Completed(Box::new(outcome)) });
            }
        }
        Ok(())
    }
}
