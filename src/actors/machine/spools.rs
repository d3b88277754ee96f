//! The filament spools loaded on a machine, as its live view shows them. The spools live in
//! the store (`crate::services::spools` loads, unloads, weighs and charges them); after each
//! change the service reads the machine's spools and hands the actor the whole list, which it
//! shows and matches against the trays the printer reports.
//!
//! Two changes of one machine's spools can be read back in one order and arrive in the other.
//! Each list therefore carries a generation taken before it was read (see
//! `Fleet::spool_generation`): a list read later has a higher one and saw every change before
//! it, so the actor keeps the highest and ignores an older list that arrives late.

use actix::prelude::*;

use super::MachineActor;
use crate::domain::spools::{match_trays, LoadedSpool, TrayMatch};

/// What the actor keeps of its spools. It is not part of the persisted live state: the store
/// is its authority, and it survives a restart of the actor (the supervisor keeps the actor's
/// fields) and is read again when makrcave starts.
#[derive(Debug, Default)]
pub(super) struct Spools {
    loaded: Vec<LoadedSpool>,
    generation: u64,
}

impl Spools {
    pub(super) fn loaded(&self) -> &[LoadedSpool] {
        &self.loaded
    }
}

/// The spools loaded on the machine now, read from the store after generation `generation`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShowSpools {
    pub generation: u64,
    pub spools: Vec<LoadedSpool>,
}

impl Handler<ShowSpools> for MachineActor {
    type Result = ();
    fn handle(&mut self, msg: ShowSpools, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, _| {
            if act.retired || msg.generation <= act.spools.generation {
                return;
            }
            act.spools.generation = msg.generation;
            if act.spools.loaded != msg.spools {
                act.spools.loaded = msg.spools;
                act.publish();
            }
        })
    }
}

impl MachineActor {
    /// The reported trays next to the spools registered in their slots (a printer that
    /// reports none: nothing).
    pub(super) fn tray_matches(&self) -> Vec<TrayMatch> {
        match &self.live.loadout {
            Some(loadout) => match_trays(&loadout.trays, &self.spools.loaded),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use actix::Supervisor;
    use chrono::Utc;

    use super::*;
    use crate::actors::machine::{GetView, InjectFault, MachineDeps, MachineIdentity, Report};
    use crate::domain::equipment::{Connection, EquipmentType};
    use crate::domain::inventory::Quantity;
    use crate::domain::machine::{Input, LiveState, Loadout, MachineState, TelemetryUpdate, Tray};
    use crate::domain::spools::TrayStatus;

    /// A supervised printer's actor with no network.
    fn printer() -> Addr<MachineActor> {
        let deps = MachineDeps::offline();
        let identity = MachineIdentity {
            equipment_id: Arc::from("x1c"),
            makerspace_id: "s".into(),
            name: "X1C".into(),
            kind: EquipmentType::Printer3d,
            heartbeat_timeout: Duration::from_secs(30),
            connection: Connection::Mqtt,
            hourly_rate: None,
            auto_clear: false,
        };
        let live = LiveState::new(false, Utc::now());
        Supervisor::start(move |_| MachineActor::new(identity, live, deps))
    }

    fn spool(id: &str, slot: &str, grams: i64) -> LoadedSpool {
        LoadedSpool {
            spool_id: id.into(),
            item_id: "pla-black".into(),
            slot: slot.into(),
            material: Some("PLA".into()),
            color: Some("#1A1A1A".into()),
            remaining_g: Quantity::from_units(grams),
        }
    }

    fn tray(slot: &str, material: &str, color: &str) -> Tray {
        Tray {
            slot: slot.into(),
            material: Some(material.into()),
            color: Some(color.into()),
            remain_percent: None,
            active: false,
        }
    }

    #[actix::test]
    async fn the_view_shows_the_spools_and_matches_the_reported_trays() {
        let machine = printer();
        let loadout = Loadout {
            nozzle_diameter_mm: Some(0.4),
            trays: vec![tray("0-0", "PLA", "1A1A1AFF"), tray("0-1", "PETG", "FFFFFFFF")],
        };
        let report = TelemetryUpdate { loadout: Some(Box::new(loadout)), ..TelemetryUpdate::default() };
        machine.send(Report(Input::Telemetry(report))).await.expect("delivered");
        machine.send(ShowSpools { generation: 2, spools: vec![spool("a", "0-0", 800)] }).await.expect("delivered");

        let view = machine.send(GetView).await.expect("the view");
        assert_eq!(view.spools, [spool("a", "0-0", 800)]);
        let statuses: Vec<_> = view.tray_matches.iter().map(|t| (t.slot.as_str(), t.status)).collect();
        assert_eq!(statuses, [("0-0", TrayStatus::Matched), ("0-1", TrayStatus::Unregistered)]);

        // A list read before the one shown arrives late: it is ignored.
        machine.send(ShowSpools { generation: 1, spools: vec![] }).await.expect("delivered");
        assert_eq!(machine.send(GetView).await.expect("the view").spools, [spool("a", "0-0", 800)]);

        // A failed handler restarts the actor (its half-done error state is discarded); its
        // spools stay shown, and later lists still count.
        machine.do_send(InjectFault);
        let view = machine.send(GetView).await.expect("the view after a restart");
        assert_ne!(view.state, MachineState::Error);
        assert_eq!(view.spools, [spool("a", "0-0", 800)]);
        machine.send(ShowSpools { generation: 3, spools: vec![spool("a", "0-0", 750)] }).await.expect("delivered");
        let view = machine.send(GetView).await.expect("the view");
        assert_eq!((view.spools[0].remaining_g, view.tray_matches.len()), (Quantity::from_units(750), 2));
    }
}
