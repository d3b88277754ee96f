//! WebSocket fan-out.
//!
//! Machine actors publish here with a plain method call: a read lock, a map lookup and a
//! short mutex per subscribed client, never a queue that could grow. Each client has a
//! [`Subscriber`] holding, per machine, only the latest update not yet sent (coalescing), plus
//! a small bounded queue for messages that must not be merged. The client's own writer task
//! drains it at whatever pace its socket allows, so a slow client never slows an actor or
//! another client; one that cannot even keep up with coalesced updates is disconnected by its
//! writer with a close reason.
//!
//! Each subscriber knows whose connection it is (the principal's user id), so that a workflow
//! that takes a makerspace away from a person (a suspension, a removal, an ended membership)
//! can end that person's subscriptions to it at once ([`Hub::revoke`]), and each subscription
//! knows whether its person administers the space, so that some events reach admins only
//! ([`Hub::publish_admin_event`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

/// Most non-coalescable messages a client may have waiting before it counts as too slow.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// Which machines of one makerspace a subscriber watches: `None` means all of them.
pub type MachineFilter = Option<HashSet<String>>;

/// One subscription of a client: which machines of the space it watches, and whether its
/// person administers the space (admin-only events reach it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Watch {
    machines: MachineFilter,
    admin: bool,
}

/// What a subscriber has waiting.
#[derive(Default)]
struct Pending {
    /// Latest unsent update per machine id, with the machine's makerspace (so that ending a
    /// subscription can drop its unsent updates).
    machines: HashMap<Arc<str>, (Arc<str>, Arc<str>)>,
    events: VecDeque<Arc<str>>,
    /// Set when `events` overflowed: the client is too slow and must go.
    overflowed: bool,
}

/// One WebSocket client's mailbox; one per connection, whatever it subscribes to.
pub struct Subscriber {
    pub id: u64,
    /// Whose connection this is: the principal's user id.
    pub user_id: Arc<str>,
    /// The person reads every makerspace by a platform role (super_admin, admin): losing a
    /// membership does not take a space from them.
    pub sees_every_space: bool,
    /// Per makerspace, what this client watches.
    filters: RwLock<HashMap<String, Watch>>,
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
        out.extend(pending.machines.drain().map(|(_, (_, msg))| msg));
        Drained::Messages(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave `Pending` half-updated in a way that
        // matters (each field is valid on its own), so a poisoned lock is used as is.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wants(&self, makerspace_id: &str, equipment_id: &str) -> bool {
        let filters = self.filters.read().unwrap_or_else(|p| p.into_inner());
        filters.get(makerspace_id).is_some_and(|w| w.machines.as_ref().is_none_or(|ids| ids.contains(equipment_id)))
    }

    fn administers(&self, makerspace_id: &str) -> bool {
        let filters = self.filters.read().unwrap_or_else(|p| p.into_inner());
        filters.get(makerspace_id).is_some_and(|w| w.admin)
    }

    /// Whether this client watches the makerspace (as an admin of it: `Some(true)`).
    pub fn watching(&self, makerspace_id: &str) -> Option<bool> {
        self.filters.read().unwrap_or_else(|p| p.into_inner()).get(makerspace_id).map(|w| w.admin)
    }

    /// Makerspaces this subscriber watches.
    pub fn makerspaces(&self) -> Vec<String> {
        self.filters.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    fn offer_machine(&self, makerspace_id: &Arc<str>, equipment_id: &Arc<str>, message: &Arc<str>) {
        self.lock().machines.insert(equipment_id.clone(), (makerspace_id.clone(), message.clone()));
        self.notify.notify_one();
    }

    /// Drops the unsent updates of a makerspace's machines: after its subscription ends, the
    /// client hears nothing more of the space.
    fn forget_space(&self, makerspace_id: &str) {
        self.lock().machines.retain(|_, (space, _)| space.as_ref() != makerspace_id);
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

    /// A mailbox for a new client of `user_id`, watching nothing yet. `sees_every_space`: the
    /// person reads every makerspace by a platform role, whatever their memberships.
    pub fn subscriber(&self, user_id: &str, sees_every_space: bool) -> Arc<Subscriber> {
        Arc::new(Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            user_id: Arc::from(user_id),
            sees_every_space,
            filters: RwLock::new(HashMap::new()),
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
        })
    }

    /// Makes `subscriber` watch machines of a makerspace (replacing an earlier filter for it);
    /// `admin`: its person administers the space, and gets the space's admin-only events.
    pub fn subscribe(&self, subscriber: &Arc<Subscriber>, makerspace_id: &str, machines: MachineFilter, admin: bool) {
        let fresh = subscriber
            .filters
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(makerspace_id.to_string(), Watch { machines, admin })
            .is_none();
        if fresh {
            self.write().entry(makerspace_id.to_string()).or_default().push(subscriber.clone());
            metrics::gauge!(crate::metrics::WS_SUBSCRIPTIONS).increment(1.0);
        }
    }

    /// Changes whether a subscription's person administers the space (a role changed).
    pub fn set_admin(&self, subscriber: &Subscriber, makerspace_id: &str, admin: bool) {
        if let Some(watch) = subscriber.filters.write().unwrap_or_else(|p| p.into_inner()).get_mut(makerspace_id) {
            watch.admin = admin;
        }
    }

    /// Stops `subscriber` watching a makerspace; its unsent updates of that space are dropped.
    /// Returns whether it was watching.
    pub fn unsubscribe(&self, subscriber: &Subscriber, makerspace_id: &str) -> bool {
        let removed = subscriber.filters.write().unwrap_or_else(|p| p.into_inner()).remove(makerspace_id).is_some();
        if !removed {
            return false;
        }
        metrics::gauge!(crate::metrics::WS_SUBSCRIPTIONS).decrement(1.0);
        {
            let mut by_space = self.write();
            if let Some(list) = by_space.get_mut(makerspace_id) {
                list.retain(|s| s.id != subscriber.id);
                if list.is_empty() {
                    by_space.remove(makerspace_id);
                }
            }
        }
        subscriber.forget_space(makerspace_id);
        true
    }

    /// A person lost a makerspace (suspended, removed, membership ended): every subscription
    /// of theirs to it ends now, and each of their clients is told why with `message` (queued
    /// like any event, after what was sent before). A person who reads every space by a
    /// platform role keeps watching. Returns how many subscriptions ended.
    pub fn revoke(&self, makerspace_id: &str, user_id: &str, message: &Arc<str>) -> usize {
        let losing: Vec<Arc<Subscriber>> = self
            .read()
            .get(makerspace_id)
            .map(|list| list.iter().filter(|s| s.user_id.as_ref() == user_id && !s.sees_every_space).cloned().collect())
            .unwrap_or_default();
        let mut ended = 0;
        for subscriber in losing {
            if self.unsubscribe(&subscriber, makerspace_id) {
                subscriber.offer_event(message, None);
                ended += 1;
            }
        }
        ended
    }

    /// Removes a departing client from everything it watched.
    pub fn unsubscribe_all(&self, subscriber: &Subscriber) {
        for space in subscriber.makerspaces() {
            self.unsubscribe(subscriber, &space);
        }
    }

    /// Offers a machine's latest state to every subscriber that watches it. `message` makes
    /// the complete WebSocket message; it is called once, and only when someone watches the
    /// machine: a farm with no dashboard open serializes nothing.
    pub fn publish_machine(&self, makerspace_id: &str, equipment_id: &Arc<str>, message: impl FnOnce() -> Arc<str>) {
        let by_space = self.read();
        let Some(list) = by_space.get(makerspace_id) else {
            return;
        };
        let mut watchers = list.iter().filter(|s| s.wants(makerspace_id, equipment_id)).peekable();
        if watchers.peek().is_none() {
            return;
        }
        // One of each per publish, shared by the subscribers.
        let (space, message): (Arc<str>, Arc<str>) = (Arc::from(makerspace_id), message());
        for subscriber in watchers {
            subscriber.offer_machine(&space, equipment_id, &message);
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

    /// Queues a message for the subscribers of the makerspace whose person administers it
    /// (a kiosk alert): members watching the same space do not get it.
    pub fn publish_admin_event(&self, makerspace_id: &str, message: &Arc<str>) {
        let by_space = self.read();
        if let Some(list) = by_space.get(makerspace_id) {
            for subscriber in list.iter().filter(|s| s.administers(makerspace_id)) {
                subscriber.offer_event(message, None);
            }
        }
    }

    /// Queues a message about something of one person's (their job): it reaches the
    /// subscribers who administer the space, those who read every space, and the person's own
    /// clients; other members do not learn of it.
    pub fn publish_owned_event(&self, makerspace_id: &str, owner_id: &str, message: &Arc<str>) {
        let by_space = self.read();
        if let Some(list) = by_space.get(makerspace_id) {
            let concerned = |s: &&Arc<Subscriber>| {
                s.administers(makerspace_id) || s.sees_every_space || s.user_id.as_ref() == owner_id
            };
            for subscriber in list.iter().filter(concerned) {
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
        let s = hub.subscriber("u", false);
        hub.subscribe(&s, space, ids.map(|ids| ids.iter().map(|s| s.to_string()).collect()), false);
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
            hub.publish_machine("a", &m1, || Arc::from(format!("m1-{i}")));
        }
        hub.publish_machine("a", &m2, || Arc::from("m2-0"));
        assert_eq!(messages(s.drain()), vec!["m1-999", "m2-0"]);
        assert!(messages(s.drain()).is_empty());
    }

    #[test]
    fn subscribers_get_only_their_space_and_machines() {
        let hub = Hub::new();
        let all_a = sub(&hub, "a", None);
        let only_m2 = sub(&hub, "a", Some(&["m2"]));
        let b = sub(&hub, "b", None);
        hub.publish_machine("a", &Arc::from("m1"), || Arc::from("x"));
        hub.publish_machine("a", &Arc::from("m2"), || Arc::from("y"));
        assert_eq!(messages(all_a.drain()), vec!["x", "y"]);
        assert_eq!(messages(only_m2.drain()), vec!["y"]);
        assert!(messages(b.drain()).is_empty());
        hub.unsubscribe_all(&all_a);
        assert_eq!(hub.subscriber_count(), 2);
        // One client may watch several makerspaces.
        hub.subscribe(&b, "a", Some(["m1".to_string()].into_iter().collect()), false);
        hub.publish_machine("a", &Arc::from("m1"), || Arc::from("z"));
        assert_eq!(messages(b.drain()), vec!["z"]);
        assert_eq!(hub.subscriber_count(), 3);
    }

    #[test]
    fn a_message_is_made_only_for_a_machine_someone_watches() {
        let hub = Hub::new();
        hub.publish_machine("a", &Arc::from("m1"), || panic!("made with no subscriber"));
        let only_m2 = sub(&hub, "a", Some(&["m2"]));
        let _other_space = sub(&hub, "b", None);
        hub.publish_machine("a", &Arc::from("m1"), || panic!("made for a machine nobody watches"));
        let all_a = sub(&hub, "a", None);
        let mut made = 0;
        hub.publish_machine("a", &Arc::from("m2"), || {
            made += 1;
            Arc::from("m2 update")
        });
        assert_eq!(made, 1, "made once, shared by both subscribers");
        assert_eq!(messages(only_m2.drain()), vec!["m2 update"]);
        assert_eq!(messages(all_a.drain()), vec!["m2 update"]);
    }

    #[test]
    fn a_removal_drops_the_unsent_update() {
        let hub = Hub::new();
        let s = sub(&hub, "a", None);
        hub.publish_machine("a", &Arc::from("m1"), || Arc::from("update"));
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

    #[test]
    fn a_revocation_ends_only_that_persons_subscriptions_to_that_space() {
        let hub = Hub::new();
        let sam = hub.subscriber("sam", false);
        let sam_too = hub.subscriber("sam", false);
        let root = hub.subscriber("sam", true);
        let other = hub.subscriber("ola", false);
        for s in [&sam, &sam_too, &root, &other] {
            hub.subscribe(s, "a", None, false);
        }
        hub.subscribe(&sam, "b", None, false);
        // An update not yet sent when the subscription ends is never sent.
        hub.publish_machine("a", &Arc::from("m1"), || Arc::from("before"));
        assert_eq!(hub.revoke("a", "sam", &Arc::from("unsubscribed")), 2);
        assert_eq!(messages(sam.drain()), vec!["unsubscribed"]);
        assert_eq!(messages(sam_too.drain()), vec!["unsubscribed"]);
        assert_eq!(messages(root.drain()), vec!["before"], "a platform reader keeps the space");
        assert_eq!(messages(other.drain()), vec!["before"]);
        hub.publish_machine("a", &Arc::from("m1"), || Arc::from("after"));
        hub.publish_machine("b", &Arc::from("m9"), || Arc::from("b-update"));
        assert_eq!(messages(sam.drain()), vec!["b-update"], "other spaces stay");
        assert!(messages(sam_too.drain()).is_empty());
        assert_eq!(sam.watching("a"), None);
        assert_eq!(hub.revoke("a", "sam", &Arc::from("again")), 0, "nothing left to end");
    }

    #[test]
    fn admin_events_reach_only_the_spaces_admins() {
        let hub = Hub::new();
        let admin = hub.subscriber("boss", false);
        let member = hub.subscriber("max", false);
        let elsewhere = hub.subscriber("other-boss", false);
        hub.subscribe(&admin, "a", Some(["m1".to_string()].into_iter().collect()), true);
        hub.subscribe(&member, "a", None, false);
        hub.subscribe(&elsewhere, "b", None, true);
        hub.publish_admin_event("a", &Arc::from("alert"));
        assert_eq!(messages(admin.drain()), vec!["alert"]);
        assert!(messages(member.drain()).is_empty());
        assert!(messages(elsewhere.drain()).is_empty());
        // A demoted admin no longer gets them.
        hub.set_admin(&admin, "a", false);
        hub.publish_admin_event("a", &Arc::from("alert 2"));
        assert!(messages(admin.drain()).is_empty());
    }
}
