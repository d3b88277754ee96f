//! Whether a job fits a machine: the chain of DESIGN.md "Jobs", checked in a fixed order so
//! that the reason a machine is refused is always the first one that applies.
//!
//! Jobs and machines are first put in a normalised form ([`JobProfile`], [`MachineProfile`]):
//! materials in upper case, colours as `RRGGBB`, tags in lower case. Matching then compares
//! plain values, and the router, which matches one job against many machines, normalises each
//! side once.
//!
//! The chain splits into what changes with the machine's live state or the clock (offline,
//! busy, bed, booked) and what does not ([`fits_statically`]: pinned, capabilities, refused,
//! failed there): the router indexes jobs by the latter and checks the former at decision time.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{saturating_add, Booking, JobScope, MachineFacts, QueuedJob};
use crate::domain::equipment::EquipmentType;
use crate::domain::inventory::normalize_color;
use crate::domain::machine::MachineState;

/// Two nozzles this close (mm) are the same nozzle.
const NOZZLE_TOLERANCE_MM: f64 = 0.01;
/// A little slack for the float arithmetic of a diameter or a bounding box (an STL's bounding
/// box of exactly 256 mm may be read as 256.0000001); far below any printer's resolution.
const FLOAT_SLACK_MM: f64 = 1e-6;

/// Why a machine does not take a job, in the order the chain checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Misfit {
    /// The job is pinned to another machine. First, since it says all there is to say about
    /// every machine but the pinned one.
    PinnedElsewhere,
    Offline,
    /// In maintenance (a state of its own, not "busy": it will not free up by itself).
    Maintenance,
    /// In an error state: someone has to look at it.
    MachineError,
    /// Running, paused, in use by a member, reserved, or already given a job.
    Busy,
    /// A job ended and nobody has confirmed the bed is clear yet.
    BedNotClear,
    EquipmentType,
    Material,
    Color,
    Nozzle,
    BuildVolume,
    Tags,
    /// Booked during the job's estimated window.
    Booked,
    /// The machine's makerspace (a provider) refused the job.
    ProviderRefused,
    /// The job failed on this machine before.
    FailedHere,
    /// Everything fits, but the makerspace's staggered starts hold further starts for now.
    Staggered,
}

impl Misfit {
    pub const ALL: [Misfit; 16] = [
        Self::PinnedElsewhere,
        Self::Offline,
        Self::Maintenance,
        Self::MachineError,
        Self::Busy,
        Self::BedNotClear,
        Self::EquipmentType,
        Self::Material,
        Self::Color,
        Self::Nozzle,
        Self::BuildVolume,
        Self::Tags,
        Self::Booked,
        Self::ProviderRefused,
        Self::FailedHere,
        Self::Staggered,
    ];

    /// The stable code clients read (as serde writes it).
    pub fn code(self) -> &'static str {
        match self {
            Self::PinnedElsewhere => "pinned_elsewhere",
            Self::Offline => "offline",
            Self::Maintenance => "maintenance",
            Self::MachineError => "machine_error",
            Self::Busy => "busy",
            Self::BedNotClear => "bed_not_clear",
            Self::EquipmentType => "equipment_type",
            Self::Material => "material",
            Self::Color => "color",
            Self::Nozzle => "nozzle",
            Self::BuildVolume => "build_volume",
            Self::Tags => "tags",
            Self::Booked => "booked",
            Self::ProviderRefused => "provider_refused",
            Self::FailedHere => "failed_here",
            Self::Staggered => "staggered",
        }
    }

    /// A sentence for a person wondering why their job waits.
    pub fn sentence(self) -> &'static str {
        match self {
            Self::PinnedElsewhere => "the job is pinned to another machine",
            Self::Offline => "the machine is offline",
            Self::Maintenance => "the machine is in maintenance",
            Self::MachineError => "the machine reports an error",
            Self::Busy => "the machine is busy",
            Self::BedNotClear => "the machine's bed has not been confirmed clear since its last job",
            Self::EquipmentType => "the machine is not of the type the job needs",
            Self::Material => "the machine has not the job's material loaded",
            Self::Color => "the machine has not the job's material in its colour loaded",
            Self::Nozzle => "the machine's nozzle is not the one the job was prepared for",
            Self::BuildVolume => "the part does not fit the machine's build volume",
            Self::Tags => "the machine lacks a tag the job requires",
            Self::Booked => "the machine is booked during the job's estimated time",
            Self::ProviderRefused => "the machine's makerspace refused the job",
            Self::FailedHere => "the job failed on this machine before",
            Self::Staggered => "the makerspace's staggered starts hold further starts for now",
        }
    }
}

/// The colour a job asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ColorNeed {
    Any,
    /// Canonical `RRGGBB`.
    Exactly(String),
    /// The job names something that is not a colour: no filament matches it.
    Unmatchable,
}

/// A job's needs, normalised for matching.
#[derive(Debug, Clone, PartialEq)]
pub struct JobProfile {
    pub scope: JobScope,
    equipment_type: EquipmentType,
    /// Upper case.
    material: Option<String>,
    color: ColorNeed,
    nozzle_mm: Option<f64>,
    bounding_box_mm: Option<[f64; 3]>,
    /// Lower case, without blanks.
    tags: Vec<String>,
    pinned_machine: Option<String>,
    avoid_machines: Vec<String>,
    refused_by: Vec<String>,
    duration: Duration,
}

impl JobProfile {
    pub fn new(job: &QueuedJob) -> Self {
        let needs = &job.needs;
        let color = match needs.color.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => ColorNeed::Any,
            Some(text) => normalize_color(text).map_or(ColorNeed::Unmatchable, ColorNeed::Exactly),
        };
        Self {
            scope: job.scope.clone(),
            equipment_type: needs.equipment_type,
            material: needs.material.as_deref().and_then(normalize_material),
            color,
            nozzle_mm: needs.nozzle_mm,
            bounding_box_mm: needs.bounding_box_mm,
            tags: normalize_tags(&needs.tags),
            pinned_machine: job.pinned_machine.clone(),
            avoid_machines: job.avoid_machines.clone(),
            refused_by: job.refused_by.clone(),
            duration: Duration::seconds(i64::from(job.estimated_duration_s)),
        }
    }

    pub fn equipment_type(&self) -> EquipmentType {
        self.equipment_type
    }
}

/// A loaded slot, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    material: Option<String>,
    color: Option<String>,
}

/// What decides whether a machine can make a job at all (not whether it is free now).
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    equipment_type: EquipmentType,
    makerspace_id: String,
    provider: bool,
    slots: Vec<Slot>,
    nozzle_mm: Option<f64>,
    build_volume_mm: Option<[f64; 3]>,
    /// Lower case, without blanks, sorted.
    tags: Vec<String>,
}

/// A machine's facts, normalised for matching.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineProfile {
    pub machine_id: String,
    pub capabilities: Capabilities,
    state: MachineState,
    bed_clear: bool,
    bookings: Vec<Booking>,
}

impl MachineProfile {
    pub fn new(facts: &MachineFacts) -> Self {
        let slots = facts
            .loaded
            .iter()
            .map(|slot| Slot {
                material: slot.material.as_deref().and_then(normalize_material),
                color: slot.color.as_deref().and_then(normalize_color),
            })
            .filter(|slot| slot.material.is_some() || slot.color.is_some())
            .collect();
        let mut tags = normalize_tags(&facts.tags);
        tags.sort_unstable();
        Self {
            machine_id: facts.machine_id.clone(),
            capabilities: Capabilities {
                equipment_type: facts.equipment_type,
                makerspace_id: facts.makerspace_id.clone(),
                provider: facts.provider,
                slots,
                nozzle_mm: facts.nozzle_mm,
                build_volume_mm: facts.build_volume_mm,
                tags,
            },
            state: facts.state,
            bed_clear: facts.bed_clear,
            bookings: facts.bookings.clone(),
        }
    }

    pub fn makerspace_id(&self) -> &str {
        &self.capabilities.makerspace_id
    }

    pub fn equipment_type(&self) -> EquipmentType {
        self.capabilities.equipment_type
    }

    pub fn provider(&self) -> bool {
        self.capabilities.provider
    }

    pub fn bookings(&self) -> &[Booking] {
        &self.bookings
    }

    /// Idle with a clear bed: free as far as its own state goes (the router also knows
    /// whether it has just given it a job).
    pub fn is_free(&self) -> bool {
        self.state == MachineState::Idle && self.bed_clear
    }

    /// Whether a job of this scope may be considered for the machine at all.
    pub fn in_scope(&self, scope: &JobScope) -> bool {
        match scope {
            JobScope::Makerspace(space) => *space == self.capabilities.makerspace_id,
            JobScope::Providers => self.capabilities.provider,
        }
    }
}

/// The chain: the first reason `machine` does not take `job` at `now`, or `None` when it does.
/// `claimed` says the router has already given the machine a job that is not over yet.
pub fn first_misfit(job: &JobProfile, machine: &MachineProfile, claimed: bool, now: DateTime<Utc>) -> Option<Misfit> {
    pinned_elsewhere(job, machine)
        .or_else(|| availability_misfit(machine, claimed))
        .or_else(|| capability_misfit(job, &machine.capabilities))
        .or_else(|| booked_in_window(job, machine, now).then_some(Misfit::Booked))
        .or_else(|| exclusion_misfit(job, machine))
}

/// Whether the machine could take the job were it free and unbooked: the parts of the chain
/// that change only when the job or the machine's capabilities change.
pub fn fits_statically(job: &JobProfile, machine: &MachineProfile) -> bool {
    pinned_elsewhere(job, machine).is_none()
        && capability_misfit(job, &machine.capabilities).is_none()
        && exclusion_misfit(job, machine).is_none()
}

/// Whether a booking of the machine overlaps the job's window `[now, now + duration)`.
pub fn booked_in_window(job: &JobProfile, machine: &MachineProfile, now: DateTime<Utc>) -> bool {
    let window_end = saturating_add(now, job.duration);
    machine.bookings.iter().any(|b| b.start < window_end && now < b.end)
}

fn pinned_elsewhere(job: &JobProfile, machine: &MachineProfile) -> Option<Misfit> {
    job.pinned_machine.as_ref().filter(|pinned| **pinned != machine.machine_id).map(|_| Misfit::PinnedElsewhere)
}

fn availability_misfit(machine: &MachineProfile, claimed: bool) -> Option<Misfit> {
    match machine.state {
        MachineState::Offline => Some(Misfit::Offline),
        MachineState::Maintenance => Some(Misfit::Maintenance),
        MachineState::Error => Some(Misfit::MachineError),
        MachineState::Running | MachineState::Paused | MachineState::InUse | MachineState::Reserved => {
            Some(Misfit::Busy)
        }
        MachineState::Idle | MachineState::AwaitingClear if claimed => Some(Misfit::Busy),
        MachineState::AwaitingClear => Some(Misfit::BedNotClear),
        MachineState::Idle if !machine.bed_clear => Some(Misfit::BedNotClear),
        MachineState::Idle => None,
    }
}

fn capability_misfit(job: &JobProfile, machine: &Capabilities) -> Option<Misfit> {
    if job.equipment_type != machine.equipment_type {
        return Some(Misfit::EquipmentType);
    }
    // The material and the colour must be those of one loaded slot.
    let material_slots = || machine.slots.iter().filter(|slot| job.material.is_none() || slot.material == job.material);
    if job.material.is_some() && material_slots().next().is_none() {
        return Some(Misfit::Material);
    }
    let color_ok = match &job.color {
        ColorNeed::Any => true,
        ColorNeed::Exactly(color) => material_slots().any(|slot| slot.color.as_ref() == Some(color)),
        ColorNeed::Unmatchable => false,
    };
    if !color_ok {
        return Some(Misfit::Color);
    }
    if let (Some(needed), Some(fitted)) = (job.nozzle_mm, machine.nozzle_mm) {
        // NaN on either side compares false: not the same nozzle.
        let same_nozzle = (needed - fitted).abs() <= NOZZLE_TOLERANCE_MM + FLOAT_SLACK_MM;
        if !same_nozzle {
            return Some(Misfit::Nozzle);
        }
    }
    if let (Some(part), Some(volume)) = (job.bounding_box_mm, machine.build_volume_mm) {
        if !fits_volume(part, volume) {
            return Some(Misfit::BuildVolume);
        }
    }
    if !job.tags.iter().all(|tag| machine.tags.binary_search(tag).is_ok()) {
        return Some(Misfit::Tags);
    }
    None
}

fn exclusion_misfit(job: &JobProfile, machine: &MachineProfile) -> Option<Misfit> {
    if job.refused_by.contains(&machine.capabilities.makerspace_id) {
        return Some(Misfit::ProviderRefused);
    }
    if job.avoid_machines.contains(&machine.machine_id) {
        return Some(Misfit::FailedHere);
    }
    None
}

/// A part fits if its height fits and its footprint fits as it is or turned 90°. A bounding
/// box with a negative or non-finite side is not a part: it fits nowhere.
fn fits_volume(part: [f64; 3], volume: [f64; 3]) -> bool {
    if !part.iter().all(|side| side.is_finite() && *side >= 0.0) {
        return false;
    }
    let within = |side: f64, limit: f64| side <= limit + FLOAT_SLACK_MM;
    let [x, y, z] = part;
    let [width, depth, height] = volume;
    within(z, height) && ((within(x, width) && within(y, depth)) || (within(y, width) && within(x, depth)))
}

/// `PLA`, ` pla ` and `Pla` are one material; a blank is none.
fn normalize_material(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_ascii_uppercase())
}

fn normalize_tags(tags: &[String]) -> Vec<String> {
    tags.iter().map(|tag| tag.trim().to_ascii_lowercase()).filter(|tag| !tag.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::routing::test_support::{at, job, machine};
    use crate::domain::routing::LoadedMaterial;

    fn misfit(job: &QueuedJob, machine: &MachineFacts) -> Option<Misfit> {
        first_misfit(&JobProfile::new(job), &MachineProfile::new(machine), false, at(0))
    }

    #[test]
    fn a_capable_free_machine_fits() {
        assert_eq!(misfit(&job("j"), &machine("m")), None);
    }

    #[test]
    fn a_job_pinned_elsewhere_is_refused_first() {
        let mut j = job("j");
        j.pinned_machine = Some("other".into());
        let mut m = machine("m");
        m.state = MachineState::Offline;
        assert_eq!(misfit(&j, &m), Some(Misfit::PinnedElsewhere));
        j.pinned_machine = Some("m".into());
        assert_eq!(misfit(&j, &machine("m")), None);
    }

    #[test]
    fn the_machine_state_comes_before_its_capabilities() {
        let mut j = job("j");
        j.needs.equipment_type = EquipmentType::LaserCutter;
        let cases = [
            (MachineState::Offline, Misfit::Offline),
            (MachineState::Maintenance, Misfit::Maintenance),
            (MachineState::Error, Misfit::MachineError),
            (MachineState::Running, Misfit::Busy),
            (MachineState::Paused, Misfit::Busy),
            (MachineState::InUse, Misfit::Busy),
            (MachineState::Reserved, Misfit::Busy),
        ];
        for (state, expected) in cases {
            let mut m = machine("m");
            m.state = state;
            assert_eq!(misfit(&j, &m), Some(expected), "{state:?}");
        }
        let claimed = first_misfit(&JobProfile::new(&job("j")), &MachineProfile::new(&machine("m")), true, at(0));
        assert_eq!(claimed, Some(Misfit::Busy), "a machine already given a job");
    }

    #[test]
    fn an_uncleared_bed_refuses_every_job() {
        let mut m = machine("m");
        m.bed_clear = false;
        assert_eq!(misfit(&job("j"), &m), Some(Misfit::BedNotClear));
    }

    #[test]
    fn the_type_must_match() {
        let mut m = machine("m");
        m.equipment_type = EquipmentType::SlaPrinter;
        assert_eq!(misfit(&job("j"), &m), Some(Misfit::EquipmentType));
    }

    #[test]
    fn the_material_is_compared_without_case() {
        let mut j = job("j");
        j.needs.material = Some("petg".into());
        assert_eq!(misfit(&j, &machine("m")), Some(Misfit::Material), "PLA is loaded");
        let mut m = machine("m");
        m.loaded.push(LoadedMaterial { slot: "0-1".into(), material: Some("PETG".into()), color: None });
        assert_eq!(misfit(&j, &m), None);
        m.loaded = vec![];
        assert_eq!(misfit(&j, &m), Some(Misfit::Material), "nothing loaded");
    }

    #[test]
    fn the_colour_must_be_on_a_slot_of_the_material() {
        let mut j = job("j");
        j.needs.material = Some("PLA".into());
        j.needs.color = Some("#00ff00".into());
        let mut m = machine("m");
        m.loaded = vec![
            LoadedMaterial { slot: "0-0".into(), material: Some("PLA".into()), color: Some("FF0000FF".into()) },
            LoadedMaterial { slot: "0-1".into(), material: Some("PETG".into()), color: Some("00FF00FF".into()) },
        ];
        assert_eq!(misfit(&j, &m), Some(Misfit::Color), "green is PETG here, not PLA");
        m.loaded[0].color = Some("00FF00FF".into());
        assert_eq!(misfit(&j, &m), None, "Bambu's RRGGBBAA against #rrggbb");
        j.needs.material = None;
        assert_eq!(misfit(&j, &m), None, "any material in green");
        j.needs.color = Some("green".into());
        assert_eq!(misfit(&j, &m), Some(Misfit::Color), "not a colour: matches nothing");
        j.needs.color = Some("00FF00".into());
        m.loaded[0].color = None;
        m.loaded[1].color = None;
        assert_eq!(misfit(&j, &m), Some(Misfit::Color), "an unknown colour is not green");
    }

    #[test]
    fn the_nozzle_is_equal_within_a_hundredth() {
        let mut j = job("j");
        j.needs.nozzle_mm = Some(0.41);
        assert_eq!(misfit(&j, &machine("m")), None, "0.4 and 0.41");
        j.needs.nozzle_mm = Some(0.6);
        assert_eq!(misfit(&j, &machine("m")), Some(Misfit::Nozzle));
        j.needs.nozzle_mm = Some(f64::NAN);
        assert_eq!(misfit(&j, &machine("m")), Some(Misfit::Nozzle));
        let mut m = machine("m");
        m.nozzle_mm = None;
        assert_eq!(misfit(&j, &m), None, "an unrecorded nozzle refuses nothing");
    }

    #[test]
    fn the_part_may_be_turned_on_the_bed() {
        let mut j = job("j");
        let mut m = machine("m");
        m.build_volume_mm = Some([300.0, 200.0, 100.0]);
        j.needs.bounding_box_mm = Some([190.0, 290.0, 100.0]);
        assert_eq!(misfit(&j, &m), None, "turned 90°");
        j.needs.bounding_box_mm = Some([300.0000001, 200.0, 100.0]);
        assert_eq!(misfit(&j, &m), None, "float noise of an exact fit");
        j.needs.bounding_box_mm = Some([190.0, 290.0, 101.0]);
        assert_eq!(misfit(&j, &m), Some(Misfit::BuildVolume), "too tall");
        j.needs.bounding_box_mm = Some([210.0, 210.0, 10.0]);
        assert_eq!(misfit(&j, &m), Some(Misfit::BuildVolume), "too wide either way");
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            j.needs.bounding_box_mm = Some([bad, 10.0, 10.0]);
            assert_eq!(misfit(&j, &m), Some(Misfit::BuildVolume), "{bad}");
        }
        m.build_volume_mm = None;
        j.needs.bounding_box_mm = Some([1000.0, 1000.0, 1000.0]);
        assert_eq!(misfit(&j, &m), None, "an unknown volume refuses nothing");
    }

    #[test]
    fn every_required_tag_must_be_on_the_machine() {
        let mut j = job("j");
        j.needs.tags = vec!["Enclosure".into(), " hardened-nozzle".into()];
        let mut m = machine("m");
        m.tags = vec!["enclosure".into()];
        assert_eq!(misfit(&j, &m), Some(Misfit::Tags));
        m.tags.push("HARDENED-NOZZLE".into());
        assert_eq!(misfit(&j, &m), None);
    }

    #[test]
    fn a_booking_in_the_window_refuses_the_machine() {
        let mut j = job("j");
        j.estimated_duration_s = 3600;
        let mut m = machine("m");
        m.bookings = vec![Booking { start: at(3600), end: at(7200) }];
        assert_eq!(misfit(&j, &m), None, "the booking starts as the job ends");
        j.estimated_duration_s = 3601;
        assert_eq!(misfit(&j, &m), Some(Misfit::Booked));
        m.bookings = vec![Booking { start: at(-7200), end: at(0) }];
        assert_eq!(misfit(&j, &m), None, "a booking that ended");
        j.estimated_duration_s = u32::MAX;
        m.bookings = vec![Booking { start: at(1_000_000_000), end: at(1_000_000_001) }];
        assert_eq!(misfit(&j, &m), Some(Misfit::Booked), "a long job reaches far bookings");
    }

    #[test]
    fn refusals_and_failures_come_last() {
        let mut j = job("j");
        j.refused_by = vec!["space-1".into()];
        j.avoid_machines = vec!["m".into()];
        assert_eq!(misfit(&j, &machine("m")), Some(Misfit::ProviderRefused));
        j.refused_by.clear();
        assert_eq!(misfit(&j, &machine("m")), Some(Misfit::FailedHere));
        assert_eq!(misfit(&j, &machine("other")), None);
        j.needs.equipment_type = EquipmentType::CncMachine;
        assert_eq!(misfit(&j, &machine("m")), Some(Misfit::EquipmentType), "the first reason only");
    }

    #[test]
    fn codes_are_what_serde_writes() {
        for misfit in Misfit::ALL {
            assert_eq!(serde_json::to_value(misfit).unwrap(), serde_json::json!(misfit.code()));
        }
        let mut sorted = Misfit::ALL.to_vec();
        sorted.sort();
        assert_eq!(sorted, Misfit::ALL.to_vec(), "ALL is in chain order");
    }
}
