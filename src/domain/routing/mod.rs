//! The job router's decisions, pure and deterministic: which queued job goes to which machine,
//! and why a job still waits. The router actor keeps one [`RoutingState`], tells it what
//! changed (a job queued or removed, a machine's facts, a job over on a machine) and asks it
//! for assignments with the current time; it never reads a clock or does I/O itself.
//!
//! - [`fit`]: the chain a job is matched against a machine in (DESIGN.md "Jobs"), and the first
//!   reason a machine does not fit ([`Misfit`]).
//! - [`fairness`]: round robin between owners within a priority level.
//! - [`stagger`]: at most N starts within M seconds per makerspace.
//! - [`index`]: per machine, the queued jobs it could make, in the order they would be served.
//! - [`queue`]: [`RoutingState`], the incremental router state built from the above.
//! - [`wait`]: "why is my job waiting", as `GET .../jobs/{id}` shows it.

pub mod fairness;
pub mod fit;
mod index;
pub mod queue;
pub mod stagger;
pub mod wait;

#[cfg(test)]
mod properties;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::equipment::EquipmentType;
use super::machine::{MachineState, Tray};
use super::spools::LoadedSpool;

pub use fit::Misfit;
pub use queue::RoutingState;
pub use stagger::StaggerRule;
pub use wait::WaitReasons;

/// What a job needs of a machine, as the job's `spec` states it or its file's analysis found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobNeeds {
    pub equipment_type: EquipmentType,
    /// `PLA`, `PETG`, ... compared without regard to case.
    #[serde(default)]
    pub material: Option<String>,
    /// `#RRGGBB` (alpha, as Bambu writes it, is ignored); compared without regard to case. A
    /// colour that is not one matches no loaded filament.
    #[serde(default)]
    pub color: Option<String>,
    /// Equal to the machine's within 0.01 mm.
    #[serde(default)]
    pub nozzle_mm: Option<f64>,
    /// The part's bounding box `[x, y, z]` in mm; it may be turned 90° on the bed.
    #[serde(default)]
    pub bounding_box_mm: Option<[f64; 3]>,
    /// Every one must be on the machine (compared without regard to case).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Which machines a job may go to at all. Machines outside it are not considered and not
/// listed in the job's wait reasons (a member of one makerspace never sees another's machines).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobScope {
    /// The makerspace the job was submitted to.
    Makerspace(String),
    /// Any makerspace in service-provider mode (a service order from the store).
    Providers,
}

/// A job waiting in the queue. Each copy of a job is its own queued job, so copies spread
/// over free machines like any other jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    pub job_id: String,
    pub owner_id: String,
    /// Higher goes first.
    pub priority: i32,
    /// The order the job was queued in (the store's monotonic sequence): first come, first
    /// served within an owner, and every tie broken the same way on every run.
    pub sequence: u64,
    pub scope: JobScope,
    pub needs: JobNeeds,
    /// The job's estimated window is `[now, now + estimated_duration_s)`: no machine booked in
    /// it is chosen. The caller gives a default when the analysis found no estimate.
    pub estimated_duration_s: u32,
    /// The one machine the job may go to (`equipment_id` in the job's spec).
    pub pinned_machine: Option<String>,
    /// Machines the job must not go to: it failed there before.
    pub avoid_machines: Vec<String>,
    /// Makerspaces (providers) that refused the job or let the time to answer pass.
    pub refused_by: Vec<String>,
}

/// Filament (or other material) loaded in one slot of a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedMaterial {
    pub slot: String,
    /// `None`: the slot is empty.
    pub material: Option<String>,
    /// `#RRGGBB` or `RRGGBBAA`; `None`: unknown, which matches no colour a job asks for.
    pub color: Option<String>,
}

impl LoadedMaterial {
    /// What makrcave registered in the slot.
    pub fn from_spool(spool: &LoadedSpool) -> Self {
        Self { slot: spool.slot.clone(), material: spool.material.clone(), color: spool.color.clone() }
    }

    /// What the printer reports in the slot (a Bambu AMS tray).
    pub fn from_tray(tray: &Tray) -> Self {
        Self { slot: tray.slot.clone(), material: tray.material.clone(), color: tray.color.clone() }
    }

    /// A printer's loaded material: what it reports where it reports trays (that is what is
    /// physically there, even if someone swapped a spool without telling makrcave), and the
    /// registered spools in the other slots.
    pub fn merged(spools: &[LoadedSpool], trays: &[Tray]) -> Vec<LoadedMaterial> {
        let reported = trays.iter().map(Self::from_tray);
        let registered_elsewhere =
            spools.iter().filter(|spool| !trays.iter().any(|tray| tray.slot == spool.slot)).map(Self::from_spool);
        reported.chain(registered_elsewhere).collect()
    }
}

/// A booking of a machine, half-open `[start, end)` as everywhere in makrcave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booking {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What the router knows of a machine: its identity, live state and capabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineFacts {
    pub machine_id: String,
    pub makerspace_id: String,
    /// The machine's makerspace is in service-provider mode: it takes `JobScope::Providers` jobs.
    pub provider: bool,
    pub equipment_type: EquipmentType,
    /// Only `Idle` is free.
    pub state: MachineState,
    /// False while the machine waits for a person to confirm the bed is clear after a job.
    pub bed_clear: bool,
    pub loaded: Vec<LoadedMaterial>,
    /// `None`: not recorded, which refuses no job (G-code names its nozzle; most machines'
    /// records do not).
    pub nozzle_mm: Option<f64>,
    /// `[x, y, z]` mm; `None`: unknown, which refuses no job.
    pub build_volume_mm: Option<[f64; 3]>,
    pub tags: Vec<String>,
    /// Bookings near now (those that end in the past are ignored).
    pub bookings: Vec<Booking>,
}

/// A decision: start this job on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Assignment {
    pub job_id: String,
    pub machine_id: String,
}

/// `at + duration`, or the last representable time: a far-fetched duration never panics.
fn saturating_add(at: DateTime<Utc>, duration: chrono::Duration) -> DateTime<Utc> {
    at.checked_add_signed(duration).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Jobs and machines for tests: a capable, free 3D printer with PLA in red, and a job it fits.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// `seconds` after a fixed instant.
    pub fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    pub fn job(id: &str) -> QueuedJob {
        QueuedJob {
            job_id: id.into(),
            owner_id: "alice".into(),
            priority: 0,
            sequence: 0,
            scope: JobScope::Makerspace("space-1".into()),
            needs: JobNeeds {
                equipment_type: EquipmentType::Printer3d,
                material: None,
                color: None,
                nozzle_mm: Some(0.4),
                bounding_box_mm: Some([100.0, 100.0, 100.0]),
                tags: vec![],
            },
            estimated_duration_s: 600,
            pinned_machine: None,
            avoid_machines: vec![],
            refused_by: vec![],
        }
    }

    pub fn machine(id: &str) -> MachineFacts {
        MachineFacts {
            machine_id: id.into(),
            makerspace_id: "space-1".into(),
            provider: false,
            equipment_type: EquipmentType::Printer3d,
            state: MachineState::Idle,
            bed_clear: true,
            loaded: vec![LoadedMaterial {
                slot: "main".into(),
                material: Some("PLA".into()),
                color: Some("#FF0000".into()),
            }],
            nozzle_mm: Some(0.4),
            build_volume_mm: Some([256.0, 256.0, 256.0]),
            tags: vec![],
            bookings: vec![],
        }
    }
}
