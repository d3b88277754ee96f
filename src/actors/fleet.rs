//! The fleet: starts one supervised [`MachineActor`] per machine, finds it by id, and stops it
//! when the machine is deleted.
//!
//! Actors are spread over a small pool of arbiter threads so that a flood of telemetry uses
//! every core, and so that a busy machine never shares a queue with the HTTP workers.
//!
//! A machine that speaks its own protocol to makrcave (OctoPrint) also gets a client task, its
//! adapter, on its actor's arbiter: started with the actor, started anew when its connection
//! is edited, stopped with it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use actix::prelude::*;
use chrono::Utc;
use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

use crate::actors::machine::plug::Sense;
use crate::actors::machine::spools::ShowSpools;
use crate::actors::machine::{
    ClearBed, Configure, Control, GetView, InjectFault, Lock, LockRefusal, MachineActor, MachineDeps, MachineIdentity,
    MachineView, Report, Reserve, Retire, Unlock, UnlockRefusal, Unreserve, UseAdapter,
};
use crate::domain::equipment::{AdminStatus, Connection};
use crate::domain::jobs::{JobCommand, JobRefusal};
use crate::domain::machine::{Input, LiveState, ReservationHold, Session};
use crate::domain::plug::PlugReading;
use crate::domain::spools::LoadedSpool;
use crate::protocols::adapter::{self, AdapterSender};
use crate::protocols::{bambu, octoprint};
use crate::store::equipment::EquipmentRecord;
use crate::store::machine_states::EndedSession;

/// Why an input could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("no such machine in this makerspace")]
    UnknownMachine,
    #[error("the machine's actor is not running")]
    ActorGone,
}

/// How to reach one machine's actor.
#[derive(Clone)]
struct MachineHandle {
    addr: Addr<MachineActor>,
    makerspace_id: String,
    /// The arbiter the actor (and its adapter) run on.
    arbiter: ArbiterHandle,
    /// The connection its adapter was started for: an edit that changes it restarts it.
    connection: Connection,
    /// Stops the machine's adapter, if it has one.
    adapter: Option<CancellationToken>,
}

impl MachineHandle {
    fn stop_adapter(&self) {
        if let Some(cancel) = &self.adapter {
            cancel.cancel();
        }
    }
}

pub struct Fleet {
    machines: DashMap<String, MachineHandle>,
    arbiters: Mutex<Vec<Arbiter>>,
    next_arbiter: AtomicUsize,
    /// Orders the lists of loaded spools read from the store (see [`Fleet::spool_generation`]).
    spool_generation: AtomicU64,
    /// The HTTP client of the fleet's OctoPrint machines, built when the first one starts.
    octoprint_http: std::sync::OnceLock<Result<reqwest::Client, String>>,
    deps: MachineDeps,
}

impl Fleet {
    /// Must be called inside a running actix System (arbiters need one).
    pub fn new(threads: usize, deps: MachineDeps) -> Fleet {
        let arbiters = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        Fleet {
            machines: DashMap::new(),
            arbiters: Mutex::new(arbiters),
            next_arbiter: AtomicUsize::new(0),
            spool_generation: AtomicU64::new(0),
            octoprint_http: std::sync::OnceLock::new(),
            deps,
        }
    }

    /// Starts the actor of a machine, from its last persisted state if there is one.
    pub fn start(&self, record: &EquipmentRecord, restored: Option<LiveState>) {
        let maintenance = record.admin_status == AdminStatus::Maintenance;
        let live = match restored {
            Some(mut live) => {
                // The equipment record is the authority on maintenance.
                live.apply(&Input::Maintenance(maintenance), Utc::now());
                live
            }
            None => LiveState::new(maintenance, Utc::now()),
        };
        let identity = MachineIdentity::from_record(record);
        let deps = self.deps.clone();
        let arbiter = {
            let arbiters = self.arbiters.lock().unwrap_or_else(|p| p.into_inner());
            let i = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % arbiters.len();
            arbiters[i].handle()
        };
        let (commands, adapter_commands) = match record.connection {
            Connection::Octoprint { .. } | Connection::Bambu { .. } => {
                let (tx, rx) = adapter::channel();
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let addr = Supervisor::start_in_arbiter(&arbiter, move |_| {
            MachineActor::new(identity, live, deps).with_adapter(commands)
        });
        let adapter = adapter_commands.and_then(|rx| self.start_adapter(&arbiter, record, &addr, rx));
        let handle = MachineHandle {
            addr,
            makerspace_id: record.makerspace_id.clone(),
            arbiter,
            connection: record.connection.clone(),
            adapter,
        };
        if let Some(previous) = self.machines.insert(record.id.clone(), handle) {
            previous.stop_adapter();
            previous.addr.do_send(Retire { announce: false });
        } else {
            metrics::gauge!(crate::metrics::MACHINES).increment(1.0);
        }
    }

    /// Starts the client task that follows a machine in its own protocol, on its actor's
    /// arbiter; `None` when its connection has none.
    fn start_adapter(
        &self,
        arbiter: &ArbiterHandle,
        record: &EquipmentRecord,
        addr: &Addr<MachineActor>,
        commands: adapter::AdapterReceiver,
    ) -> Option<CancellationToken> {
        let cancel = CancellationToken::new();
        let (id, connection, key) = (&record.id, &record.connection, &self.deps.data_key);
        let actor = addr.clone().recipient();
        match connection {
            Connection::Octoprint { .. } => {
                let http = self.octoprint_http.get_or_init(octoprint::http_client).clone();
                arbiter.spawn(octoprint::follow(id, connection, key, http, actor, commands, cancel.clone())?);
            }
            Connection::Bambu { .. } => {
                arbiter.spawn(bambu::follow(id, connection, key, actor, commands, cancel.clone())?);
            }
            _ => return None,
        }
        Some(cancel)
    }

    /// Tells a machine's actor that its record changed; an edited connection restarts the
    /// machine's adapter (a new URL or key, `auto_connect`, another kind).
    pub fn configure(&self, record: &EquipmentRecord) {
        if let Some(mut handle) = self.machines.get_mut(&record.id) {
            if handle.connection != record.connection {
                handle.stop_adapter();
                let (sender, adapter) = match record.connection {
                    Connection::Octoprint { .. } | Connection::Bambu { .. } => {
                        let (tx, rx) = adapter::channel();
                        let adapter = self.start_adapter(&handle.arbiter, record, &handle.addr, rx);
                        (Some::<AdapterSender>(tx), adapter)
                    }
                    _ => (None, None),
                };
                handle.addr.do_send(UseAdapter(sender));
                handle.adapter = adapter;
                handle.connection = record.connection.clone();
            }
            // Configuration is rare and must not be lost: `do_send` ignores the mailbox bound
            // only for this one message.
            handle.addr.do_send(Configure(record.clone()));
        }
    }

    /// Stops a deleted machine's actor (and adapter) for good.
    pub fn stop(&self, equipment_id: &str) {
        if let Some((_, handle)) = self.machines.remove(equipment_id) {
            metrics::gauge!(crate::metrics::MACHINES).decrement(1.0);
            handle.stop_adapter();
            handle.addr.do_send(Retire { announce: true });
        }
    }

    /// Delivers a protocol input to a machine of a makerspace. Waits when the actor's mailbox
    /// is full, which slows the MQTT ingest down instead of growing a queue.
    pub async fn deliver(&self, makerspace_id: &str, equipment_id: &str, input: Input) -> Result<(), DeliveryError> {
        let addr = self.address(makerspace_id, equipment_id)?;
        match addr.try_send(Report(input)) {
            Ok(()) => Ok(()),
            Err(SendError::Full(report)) => addr.send(report).await.map_err(|_| DeliveryError::ActorGone),
            Err(SendError::Closed(_)) => Err(DeliveryError::ActorGone),
        }
    }

    /// Delivers what a machine's smart plug reported; waits like [`Fleet::deliver`].
    pub async fn sense(
        &self,
        makerspace_id: &str,
        equipment_id: &str,
        reading: PlugReading,
    ) -> Result<(), DeliveryError> {
        let addr = self.address(makerspace_id, equipment_id)?;
        match addr.try_send(Sense(reading)) {
            Ok(()) => Ok(()),
            Err(SendError::Full(sense)) => addr.send(sense).await.map_err(|_| DeliveryError::ActorGone),
            Err(SendError::Closed(_)) => Err(DeliveryError::ActorGone),
        }
    }

    /// The live state of a machine.
    pub async fn view(&self, makerspace_id: &str, equipment_id: &str) -> Result<MachineView, DeliveryError> {
        let addr = self.address(makerspace_id, equipment_id)?;
        addr.send(GetView).await.map_err(|_| DeliveryError::ActorGone)
    }

    /// The live state of every machine of a makerspace (or of the given ones).
    pub async fn views(
        &self,
        makerspace_id: &str,
        only: Option<&std::collections::HashSet<String>>,
    ) -> Vec<MachineView> {
        let addrs: Vec<Addr<MachineActor>> = self
            .machines
            .iter()
            .filter(|m| m.makerspace_id == makerspace_id && only.is_none_or(|ids| ids.contains(m.key())))
            .map(|m| m.addr.clone())
            .collect();
        let replies = futures_util::future::join_all(addrs.iter().map(|a| a.send(GetView))).await;
        let mut views: Vec<MachineView> = replies.into_iter().filter_map(Result::ok).collect();
        views.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.equipment_id.cmp(&b.equipment_id)));
        views
    }

    /// Unlocks a machine for a member's session (the caller has checked the gate and the
    /// reservation book; the actor checks the machine itself).
    pub async fn unlock(
        &self,
        makerspace_id: &str,
        equipment_id: &str,
        session: Session,
    ) -> Result<Session, UnlockRefusal> {
        let addr = self.address(makerspace_id, equipment_id).map_err(|_| UnlockRefusal::Gone)?;
        addr.send(Unlock(session)).await.map_err(|_| UnlockRefusal::Gone)?
    }

    /// Gives a machine a job command; the actor answers whether it was sent.
    pub async fn control(
        &self,
        makerspace_id: &str,
        equipment_id: &str,
        command: JobCommand,
    ) -> Result<Result<(), JobRefusal>, DeliveryError> {
        let addr = self.address(makerspace_id, equipment_id)?;
        addr.send(Control(command)).await.map_err(|_| DeliveryError::ActorGone)
    }

    /// Tells a machine a person confirmed its bed is clear; answers whether it was waiting
    /// for that.
    pub async fn clear_bed(&self, makerspace_id: &str, equipment_id: &str) -> Result<bool, DeliveryError> {
        let addr = self.address(makerspace_id, equipment_id)?;
        addr.send(ClearBed).await.map_err(|_| DeliveryError::ActorGone)
    }

    /// Ends a machine's session (the named one, if given).
    pub async fn lock(
        &self,
        makerspace_id: &str,
        equipment_id: &str,
        session_id: Option<String>,
        ended_by: &str,
        reason: &str,
    ) -> Result<EndedSession, LockRefusal> {
        let addr = self.address(makerspace_id, equipment_id).map_err(|_| LockRefusal::NotInUse)?;
        let lock = Lock { session_id, ended_by: ended_by.to_string(), reason: reason.to_string() };
        addr.send(lock).await.map_err(|_| LockRefusal::NotInUse)?
    }

    /// Tells a machine's actor about a holding booking (see [`Reserve`]). Bookings change a
    /// few times a day per machine and a lost one would show a wrong state until its end, so
    /// like `configure` this ignores the mailbox bound.
    pub fn reserve(&self, makerspace_id: &str, equipment_id: &str, hold: ReservationHold) {
        if let Ok(addr) = self.address(makerspace_id, equipment_id) {
            addr.do_send(Reserve(hold));
        }
    }

    /// Tells a machine's actor that a booking no longer holds it (see [`Unreserve`]).
    pub fn unreserve(&self, makerspace_id: &str, equipment_id: &str, reservation_id: &str, end: chrono::DateTime<Utc>) {
        if let Ok(addr) = self.address(makerspace_id, equipment_id) {
            addr.do_send(Unreserve { reservation_id: reservation_id.to_string(), end });
        }
    }

    /// A number to take before reading a machine's loaded spools, and to send with them to
    /// [`Fleet::show_spools`]: a list read after a later number saw every change committed
    /// before it, so an actor keeps the list of the highest number it got.
    pub fn spool_generation(&self) -> u64 {
        self.spool_generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Shows a machine's loaded spools on its live view (see [`ShowSpools`]). Spools change a
    /// few times a day per machine and a lost list would show stale grams until the next, so
    /// like `reserve` this ignores the mailbox bound.
    pub fn show_spools(&self, makerspace_id: &str, equipment_id: &str, generation: u64, spools: Vec<LoadedSpool>) {
        if let Ok(addr) = self.address(makerspace_id, equipment_id) {
            addr.do_send(ShowSpools { generation, spools });
        }
    }

    /// Makes a machine's actor fail (see [`InjectFault`]).
    pub fn inject_fault(&self, makerspace_id: &str, equipment_id: &str) -> Result<(), DeliveryError> {
        self.address(makerspace_id, equipment_id)?.do_send(InjectFault);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.machines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }

    /// Stops every actor and its threads (graceful shutdown).
    pub fn shutdown(&self) {
        for entry in self.machines.iter() {
            entry.stop_adapter();
            entry.addr.do_send(Retire { announce: false });
        }
        self.machines.clear();
        let arbiters = std::mem::take(&mut *self.arbiters.lock().unwrap_or_else(|p| p.into_inner()));
        for arbiter in arbiters {
            arbiter.stop();
            // Joining waits for the actors' last messages (and their state hand-over).
            let _ = arbiter.join();
        }
    }

    fn address(&self, makerspace_id: &str, equipment_id: &str) -> Result<Addr<MachineActor>, DeliveryError> {
        match self.machines.get(equipment_id) {
            Some(handle) if handle.makerspace_id == makerspace_id => Ok(handle.addr.clone()),
            _ => Err(DeliveryError::UnknownMachine),
        }
    }
}
