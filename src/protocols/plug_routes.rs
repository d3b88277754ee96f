//! Which machine each smart plug belongs to, and the MQTT subscriptions that follow from it.
//!
//! makrcave subscribes to exactly the topics its plug machines need (see
//! [`Device::topics`]), not to every Tasmota or Shelly on the broker: a makerspace's broker
//! may carry a house's worth of plugs that are none of ours. The services layer tells the
//! routes when a machine is added, changed or removed ([`PlugRoutes::follow`],
//! [`PlugRoutes::forget`]); the link subscribes to all of them again after every reconnect
//! ([`PlugRoutes::topics`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use rumqttc::{AsyncClient, QoS, SubscribeFilter};

use crate::domain::equipment::Connection;
use crate::logging::escaped;
use crate::protocols::plugs::Device;

/// A machine a plug message goes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub makerspace_id: String,
    pub equipment_id: String,
}

/// The plug of every plug machine, both ways. Pure bookkeeping: each change says which topics
/// became needed and which are needed no more.
#[derive(Debug, Default)]
struct Table {
    by_machine: HashMap<String, (String, Device)>,
    /// Two machines may share a plug (a laser and its extractor on one power strip).
    by_device: HashMap<Device, BTreeSet<Route>>,
}

/// Topics to subscribe to and to unsubscribe from after a change.
#[derive(Debug, Default, PartialEq, Eq)]
struct Change {
    subscribe: Vec<String>,
    unsubscribe: Vec<String>,
}

impl Table {
    /// Sets (or, with `None`, removes) the plug of a machine.
    fn set(&mut self, equipment_id: &str, makerspace_id: &str, device: Option<Device>) -> Change {
        let mut change = Change::default();
        let wanted = device.map(|d| (makerspace_id.to_string(), d));
        if self.by_machine.get(equipment_id) == wanted.as_ref() {
            return change;
        }
        if let Some((space, old)) = self.by_machine.remove(equipment_id) {
            let route = Route { makerspace_id: space, equipment_id: equipment_id.to_string() };
            if let Some(routes) = self.by_device.get_mut(&old) {
                routes.remove(&route);
                if routes.is_empty() {
                    self.by_device.remove(&old);
                    change.unsubscribe = old.topics();
                }
            }
        }
        if let Some((space, new)) = wanted {
            let route = Route { makerspace_id: space.clone(), equipment_id: equipment_id.to_string() };
            let routes = self.by_device.entry(new.clone()).or_default();
            if routes.is_empty() {
                change.subscribe = new.topics();
            }
            routes.insert(route);
            self.by_machine.insert(equipment_id.to_string(), (space, new));
        }
        // A machine moved between two plugs' topics keeps any it still needs.
        change.unsubscribe.retain(|t| !change.subscribe.contains(t));
        change
    }
}

/// The routes of the MQTT link, shared with the services that change machines.
pub struct PlugRoutes {
    table: RwLock<Table>,
    client: AsyncClient,
}

impl PlugRoutes {
    /// Routes whose subscriptions go through the link's `client`.
    pub fn new(client: AsyncClient) -> PlugRoutes {
        PlugRoutes { table: RwLock::new(Table::default()), client }
    }

    /// Follows a machine's plug (a new machine, or a changed connection); a machine that is
    /// no plug (any more) is forgotten.
    pub fn follow(&self, equipment_id: &str, makerspace_id: &str, connection: &Connection) {
        let change = self.write().set(equipment_id, makerspace_id, Device::of(connection));
        self.apply(change);
    }

    /// Forgets a deleted machine.
    pub fn forget(&self, equipment_id: &str) {
        let change = self.write().set(equipment_id, "", None);
        self.apply(change);
    }

    /// The machines behind a plug (none: a plug makrcave does not know).
    pub fn machines(&self, device: &Device) -> Vec<Route> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        table.by_device.get(device).map(|routes| routes.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every topic the plug machines need (to subscribe again after a reconnect).
    pub fn topics(&self) -> Vec<String> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        let mut topics: Vec<String> = table.by_device.keys().flat_map(Device::topics).collect();
        topics.sort();
        topics
    }

    /// The subscriptions for `topics`, as the link sends them.
    pub fn filters(topics: Vec<String>) -> Vec<SubscribeFilter> {
        topics.into_iter().map(|t| SubscribeFilter::new(t, QoS::AtLeastOnce)).collect()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the (un)subscriptions without waiting. While the link is down they wait in the
    /// client's queue; the reconnect subscribes to everything anyway. Unsubscriptions go
    /// first: once a message on a new topic arrives, the old topics are no longer read.
    fn apply(&self, change: Change) {
        for topic in change.unsubscribe {
            if let Err(err) = self.client.try_unsubscribe(topic.clone()) {
                tracing::warn!(error = %escaped(&err), topic = ?topic, "could not queue a plug unsubscription");
            }
        }
        if !change.subscribe.is_empty() {
            if let Err(err) = self.client.try_subscribe_many(Self::filters(change.subscribe)) {
                tracing::error!(error = %escaped(&err), "could not queue plug subscriptions; they follow at the next reconnect");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(space: &str, id: &str) -> Route {
        Route { makerspace_id: space.into(), equipment_id: id.into() }
    }

    #[test]
    fn a_plug_is_subscribed_once_and_unsubscribed_when_its_last_machine_goes() {
        let mut table = Table::default();
        let plug = Device::Tasmota("laser1".into());
        let change = table.set("laser", "s", Some(plug.clone()));
        assert_eq!(change, Change { subscribe: plug.topics(), unsubscribe: vec![] });
        assert_eq!(table.set("laser", "s", Some(plug.clone())), Change::default(), "nothing changed");
        assert_eq!(table.set("extractor", "s", Some(plug.clone())), Change::default(), "already subscribed");
        assert_eq!(
            table.by_device[&plug].iter().cloned().collect::<Vec<_>>(),
            vec![route("s", "extractor"), route("s", "laser")]
        );
        assert_eq!(table.set("laser", "", None), Change::default(), "the extractor still needs it");
        assert_eq!(table.set("extractor", "", None), Change { subscribe: vec![], unsubscribe: plug.topics() });
        assert!(table.by_device.is_empty() && table.by_machine.is_empty());
        assert_eq!(table.set("unknown", "", None), Change::default());
    }

    #[test]
    fn a_changed_connection_moves_the_subscriptions() {
        let mut table = Table::default();
        let old = Device::ShellyGen1("shellyplug-s-1".into());
        let new = Device::ShellyGen2("shellyplusplugs-1".into());
        table.set("m", "s", Some(old.clone()));
        assert_eq!(
            table.set("m", "s", Some(new.clone())),
            Change { subscribe: new.topics(), unsubscribe: old.topics() }
        );
        assert_eq!(table.by_device.get(&old), None);
        assert_eq!(table.set("m", "s", None), Change { subscribe: vec![], unsubscribe: new.topics() });
    }
}
