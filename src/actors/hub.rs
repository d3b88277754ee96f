//! WebSocket fan-out.
//!
//! Machine actors publish here with a plain method call: a read lock, a map lookup and a
//! short mutex per subscribed client, never a queue that could grow. Each client has a
//! [`Subscriber`] holding, per machine, only the latest update not yet sent (coalescing), plus
//! a small bounded queue for messages that must not be merged. The client's own writer task
//! drains it at whatever pace its socket allows, so a slow client never slows an actor or
//! another client; one that cannot even keep up with coalesced updates is disconnected by its
//! writer with a close reason.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

/// Most non-coalescable messages a client may have waiting before it counts as too slow.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// Which machines of one makerspace a subscriber watches: `None` means all of them.
pub type MachineFilter = Option<HashSet<String>>;

/// What a subscriber has waiting.
#[derive(Default)]
struct Pending {
    /// Latest unsent update per machine id.
    machines: HashMap<Arc<str>, Arc<str>>,
    events: VecDeque<Arc<str>>,
    /// Set when `events` overflowed: the client is too slow and must go.
    overflowed: bool,
}

/// One WebSocket client's mailbox; one per connection, whatever it subscribes to.
pub struct Subscriber {
    pub id: u64,
    /// Per makerspace, which machines this client watches.
    filters: RwLock<HashMap<String, MachineFilter>>,
    pending: Mutex<Pending>,
    notify: Notify,
}

/// Messages taken from a subscriber for sending.
pub enum Drained {
    Messages(Vec<Arc<str>>),
    /// The client fell too far behind; close it.
    TooSlow,
}

impl Subscriber {
    /// Waits until something is pending.
    pub async fn ready(&self) {
        self.notify.notified().await
    }

    /// Takes everything pending: queued events first (they are older), then the latest state
    /// of each machine.
    pub fn drain(&self) -> Drained {
        let mut pending = self.lock();
        if pending.overflowed {
            return Drained::TooSlow;
        }
        let mut out: Vec<Arc<str>> = pending.events.drain(..).collect();
        out.extend(pending.machines.drain().map(|(_, msg)| msg));
        Drained::Messages(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave `Pending` half-updated in a way that
        // matters (each field is valid on its own), so a poisoned lock is used as is.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wants(&self, makerspace_id: &str, equipment_id: &str) -> bool {
        let filters = self.filters.read().unwrap_or_else(|p| p.into_inner());
        filters.get(makerspace_id).is_some_and(|f| f.as_ref().is_none_or(|ids| ids.contains(equipment_id)))
    }

    /// Makerspaces this subscriber watches.
    pub fn makerspaces(&self) -> Vec<String> {
        self.filters.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    fn offer_machine(&self, equipment_id: &Arc<str>, message: &Arc<str>) {
        self.lock().machines.insert(equipment_id.clone(), message.clone());
        self.notify.notify_one();
    }

    fn offer_event(&self, message: &Arc<str>, supersedes: Option<&str>) {
        {
            let mut pending = self.lock();
            if let Some(equipment_id) = supersedes {
                pending.machines.remove(equipment_id);
            }
            if pending.events.len() >= MAX_QUEUED_EVENTS {
                pending.overflowed = true;
            } else {
                pending.events.push_back(message.clone());
            }
        }
        self.notify.notify_one();
    }
}

/// The registry of subscribers, indexed by makerspace.
#[derive(Default)]
pub struct Hub {
    by_space: RwLock<HashMap<String, Vec<Arc<Subscriber>>>>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A mailbox for a new client, watching nothing yet.
    pub fn subscriber(&self) -> Arc<Subscriber> {
        Arc::new(Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            filters: RwLock::new(HashMap::new()),
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
        })
    }

    /// Makes `subscriber` watch machines of a makerspace (replacing an earlier filter for it).
    pub fn subscribe(&self, subscriber: &Arc<Subscriber>, makerspace_id: &str, machines: MachineFilter) {
        let fresh = subscriber
            .filters
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(makerspace_id.to_string(), machines)
            .is_none();
        if fresh {
            self.write().entry(makerspace_id.to_string()).or_default().push(subscriber.clone());
            metrics::gauge!(crate::metrics::WS_SUBSCRIPTIONS).increment(1.0);
        }
    }

    /// Stops `subscriber` watching a makerspace.
    pub fn unsubscribe(&self, subscriber: &Subscriber, makerspace_id: &str) {
        let removed = subscriber.filters.write().unwrap_or_else(|p| p.into_inner()).remove(makerspace_id).is_some();
        if !removed {
            return;
        }
        metrics::gauge!(crate::metrics::WS_SUBSCRIPTIONS).decrement(1.0);
        let mut by_space = self.write();
        if let Some(list) = by_space.get_mut(makerspace_id) {
            list.retain(|s| s.id != subscriber.id);
            if list.is_empty() {
                by_space.remove(makerspace_id);
            }
        }
    }

    /// Removes a departing client from everything it watched.
    pub fn unsubscribe_all(&self, subscriber: &Subscriber) {
        for space in subscriber.makerspaces() {
            self.unsubscribe(subscriber, &space);
        }
    }

    /// Offers a machine's latest state to every subscriber that watches it. `message` is the
    /// complete, already serialized WebSocket message (serialized once, shared by all).
    pub fn publish_machine(&self, makerspace_id: &str, equipment_id: &Arc<str>, message: &Arc<str>) {
        let by_space = self.read();
        if let Some(list) = by_space.get(makerspace_id) {
            for subscriber in list.iter().filter(|s| s.wants(makerspace_id, equipment_id)) {
                subscriber.offer_machine(equipment_id, message);
            }
        }
    }

    /// Queues a message that must reach every subscriber of the makerspace unmerged.
    pub fn publish_event(&self, makerspace_id: &str, message: &Arc<str>) {
        let by_space = self.read();
        if let Some(list) = by_space.get(makerspace_id) {
            for subscriber in list {
                subscriber.offer_event(message, None);
            }
        }
    }

    /// Tells subscribers a machine is gone; an update of it not yet sent is dropped, so the
    /// removal is the last they hear of it.
    pub fn publish_removal(&self, makerspace_id: &str, equipment_id: &str, message: &Arc<str>) {
        let by_space = self.read();
        if let Some(list) = by_space.get(makerspace_id) {
            for subscriber in list.iter().filter(|s| s.wants(makerspace_id, equipment_id)) {
                subscriber.offer_event(message, Some(equipment_id));
            }
        }
    }

    /// Number of live subscriptions (for tests and health output).
    pub fn subscriber_count(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<Arc<Subscriber>>>> {
        // The map is only ever modified by push/retain/remove, each leaving it consistent.
        self.by_space.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<Arc<Subscriber>>>> {
        self.by_space.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(hub: &Hub, space: &str, ids: Option<&[&str]>) -> Arc<Subscriber> {
        let s = hub.subscriber();
        hub.subscribe(&s, space, ids.map(|ids| ids.iter().map(|s| s.to_string()).collect()));
        s
    }

    fn messages(d: Drained) -> Vec<String> {
        match d {
            Drained::Messages(m) => {
                let mut v: Vec<String> = m.iter().map(|s| s.to_string()).collect();
                v.sort();
                v
            }
            Drained::TooSlow => panic!("unexpectedly too slow"),
        }
    }

    #[test]
    fn updates_are_coalesced_to_the_latest_per_machine() {
        let hub = Hub::new();
        let s = sub(&hub, "a", None);
        let (m1, m2): (Arc<str>, Arc<str>) = ("m1".into(), "m2".into());
        for i in 0..1000 {
            hub.publish_machine("a", &m1, &Arc::from(format!("m1-{i}")));
        }
        hub.publish_machine("a", &m2, &Arc::from("m2-0"));
        assert_eq!(messages(s.drain()), vec!["m1-999", "m2-0"]);
        assert!(messages(s.drain()).is_empty());
    }

    #[test]
    fn subscribers_get_only_their_space_and_machines() {
        let hub = Hub::new();
        let all_a = sub(&hub, "a", None);
        let only_m2 = sub(&hub, "a", Some(&["m2"]));
        let b = sub(&hub, "b", None);
        hub.publish_machine("a", &Arc::from("m1"), &Arc::from("x"));
        hub.publish_machine("a", &Arc::from("m2"), &Arc::from("y"));
        assert_eq!(messages(all_a.drain()), vec!["x", "y"]);
        assert_eq!(messages(only_m2.drain()), vec!["y"]);
        assert!(messages(b.drain()).is_empty());
        hub.unsubscribe_all(&all_a);
        assert_eq!(hub.subscriber_count(), 2);
        // One client may watch several makerspaces.
        hub.subscribe(&b, "a", Some(["m1".to_string()].into_iter().collect()));
        hub.publish_machine("a", &Arc::from("m1"), &Arc::from("z"));
        assert_eq!(messages(b.drain()), vec!["z"]);
        assert_eq!(hub.subscriber_count(), 3);
    }

    #[test]
    fn a_removal_drops_the_unsent_update() {
        let hub = Hub::new();
        let s = sub(&hub, "a", None);
        hub.publish_machine("a", &Arc::from("m1"), &Arc::from("update"));
        hub.publish_removal("a", "m1", &Arc::from("removed"));
        assert_eq!(messages(s.drain()), vec!["removed"]);
    }

    #[test]
    fn an_event_flood_marks_the_client_too_slow() {
        let hub = Hub::new();
        let s = sub(&hub, "a", None);
        for i in 0..=MAX_QUEUED_EVENTS {
            hub.publish_event("a", &Arc::from(format!("e{i}")));
        }
        assert!(matches!(s.drain(), Drained::TooSlow));
    }
}
