//! Makerspaces in service-provider mode, and which of them a service order (the MakrX Store's
//! fabrication order) is offered to: pure rules, no I/O.
//!
//! A provider is a makerspace whose settings say `{"provider": {"enabled": true,
//! "service_types": [...], "accept_timeout_s": 900}}` ([`ProviderSettings`]). An order goes to
//! the first provider that offers its service type, has a machine able to make it (the routing
//! chain's capability checks: type, material and colour loaded, nozzle, build volume, tags) and
//! has not been tried yet; preferred makerspaces first (in the order given), then those whose
//! location matches, then those with the most free capable machines ([`choose`]).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::equipment::EquipmentType;
use super::machine::MachineState;
use super::routing::fit::{first_misfit, JobProfile, MachineProfile};
use super::routing::{JobNeeds, JobScope, MachineFacts, Misfit, QueuedJob};

/// How long a provider has to answer an offer when its settings do not say [seconds].
pub const DEFAULT_ACCEPT_TIMEOUT_S: u64 = 900;
/// The shortest time to answer a provider may set: one second, so that a test can watch an
/// offer lapse without waiting long.
pub const MIN_ACCEPT_TIMEOUT_S: u64 = 1;
/// The longest: a week.
pub const MAX_ACCEPT_TIMEOUT_S: u64 = 604_800;

/// What a provider makes, as the MakrX Store names it; each is made on one machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub enum ServiceType {
    #[serde(rename = "3d_printing")]
    Printing3d,
    #[serde(rename = "resin_printing")]
    ResinPrinting,
    #[serde(rename = "laser_cutting")]
    LaserCutting,
    #[serde(rename = "cnc_machining")]
    CncMachining,
}

impl ServiceType {
    pub const ALL: [ServiceType; 4] = [Self::Printing3d, Self::ResinPrinting, Self::LaserCutting, Self::CncMachining];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Printing3d => "3d_printing",
            Self::ResinPrinting => "resin_printing",
            Self::LaserCutting => "laser_cutting",
            Self::CncMachining => "cnc_machining",
        }
    }

    /// The machines that make it.
    pub fn equipment_type(self) -> EquipmentType {
        match self {
            Self::Printing3d => EquipmentType::Printer3d,
            Self::ResinPrinting => EquipmentType::SlaPrinter,
            Self::LaserCutting => EquipmentType::LaserCutter,
            Self::CncMachining => EquipmentType::CncMachine,
        }
    }
}

/// A makerspace's provider mode, from `settings.provider`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderSettings {
    pub enabled: bool,
    /// Distinct, in the order the settings list them.
    pub service_types: Vec<ServiceType>,
    /// How long the space has to accept or refuse an offer before it counts as refused.
    pub accept_timeout_s: u64,
}

/// `settings.provider` as written; every field optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviderSettings {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    service_types: Vec<ServiceType>,
    /// Read as any number, so that a wrong one is refused with the field's name.
    #[serde(default)]
    accept_timeout_s: Option<serde_json::Number>,
}

impl ProviderSettings {
    /// Reads `settings.provider`: `None` when the section is absent (or null), a sentence for
    /// a section of the wrong shape (422 when an admin writes it).
    pub fn from_settings(settings: &serde_json::Value) -> Result<Option<ProviderSettings>, String> {
        let section = match settings.get("provider") {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(section) => section,
        };
        let raw: RawProviderSettings =
            serde_json::from_value(section.clone()).map_err(|e| format!("settings.provider: {e}"))?;
        let accept_timeout_s = match raw.accept_timeout_s {
            None => DEFAULT_ACCEPT_TIMEOUT_S,
            Some(n) => {
                n.as_u64().filter(|s| (MIN_ACCEPT_TIMEOUT_S..=MAX_ACCEPT_TIMEOUT_S).contains(s)).ok_or_else(|| {
                    format!(
                        "settings.provider.accept_timeout_s must be a whole number of seconds from \
                     {MIN_ACCEPT_TIMEOUT_S} to {MAX_ACCEPT_TIMEOUT_S}"
                    )
                })?
            }
        };
        let mut service_types = Vec::new();
        for service in raw.service_types {
            if !service_types.contains(&service) {
                service_types.push(service);
            }
        }
        if raw.enabled && service_types.is_empty() {
            return Err("settings.provider.service_types: a provider offers at least one service type".into());
        }
        Ok(Some(ProviderSettings { enabled: raw.enabled, service_types, accept_timeout_s }))
    }

    /// Whether the space takes orders of this service type now.
    pub fn offers(&self, service: ServiceType) -> bool {
        self.enabled && self.service_types.contains(&service)
    }
}

/// Whether a makerspace's location matches what a caller asked for: the asked text within the
/// location, whatever the case (`berlin` matches `Berlin, Kreuzberg`). A blank ask matches all.
pub fn location_matches(asked: &str, location: Option<&str>) -> bool {
    let asked = asked.trim().to_lowercase();
    asked.is_empty() || location.is_some_and(|l| l.to_lowercase().contains(&asked))
}

/// How many machines of one type a provider has, and how many of them could start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct Capacity {
    pub machines: usize,
    /// Not offline.
    pub online: usize,
    /// Idle with a clear bed: free to start a job now.
    pub idle: usize,
}

/// The capacity of the machines of `equipment_type` among `machines`.
pub fn capacity(machines: &[MachineFacts], equipment_type: EquipmentType) -> Capacity {
    let of_type = machines.iter().filter(|m| m.equipment_type == equipment_type);
    of_type.fold(Capacity::default(), |mut c, m| {
        c.machines += 1;
        c.online += usize::from(m.state != MachineState::Offline);
        c.idle += usize::from(is_free(m));
        c
    })
}

fn is_free(machine: &MachineFacts) -> bool {
    machine.state == MachineState::Idle && machine.bed_clear
}

/// The first reason `machine` cannot make a job with these needs at all, whatever its state
/// now: the routing chain run on the machine as if it were idle, cleared and unbooked.
pub fn capability_misfit(needs: &JobNeeds, machine: &MachineFacts) -> Option<Misfit> {
    let job = QueuedJob {
        job_id: String::new(),
        owner_id: String::new(),
        priority: 0,
        sequence: 0,
        scope: JobScope::Makerspace(machine.makerspace_id.clone()),
        needs: needs.clone(),
        estimated_duration_s: 1,
        pinned_machine: None,
        avoid_machines: Vec::new(),
        refused_by: Vec::new(),
    };
    let as_if_free =
        MachineFacts { state: MachineState::Idle, bed_clear: true, bookings: Vec::new(), ..machine.clone() };
    first_misfit(&JobProfile::new(&job), &MachineProfile::new(&as_if_free), false, DateTime::<Utc>::UNIX_EPOCH)
}

/// A provider makerspace as the choice sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub makerspace_id: String,
    pub location: Option<String>,
    pub settings: ProviderSettings,
    /// Its machines, with their live state.
    pub machines: Vec<MachineFacts>,
}

/// What the ordering takes from the caller's preferences.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Preferences {
    /// Tried first, in this order.
    pub makerspace_ids: Vec<String>,
    pub location: Option<String>,
}

/// Why a provider is not offered an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unfit {
    /// Its settings do not list the order's service type.
    ServiceNotOffered,
    /// It refused the order already, or let an offer of it lapse.
    AlreadyTried,
    NoMachineOfType,
    /// None of its machines of the type can make it; the reasons found (the routing chain's
    /// codes, such as `build_volume` or `material`).
    NoCapableMachine {
        misfits: Vec<Misfit>,
    },
}

/// A provider not offered the order, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProviderRefusal {
    pub makerspace_id: String,
    #[serde(flatten)]
    pub unfit: Unfit,
}

/// A provider able to make the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub makerspace_id: String,
    /// Machines able to make it.
    pub capable: usize,
    /// Of those, idle with a clear bed now.
    pub free: usize,
}

/// The providers able to make an order, best first, and why each other one is not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Choice {
    pub ranked: Vec<Ranked>,
    pub refusals: Vec<ProviderRefusal>,
    /// No provider had the material (or colour) loaded, so those were set aside: the provider
    /// that accepts loads them (its job waits in its queue for a machine that has them).
    pub material_set_aside: bool,
}

impl Choice {
    pub fn best(&self) -> Option<&Ranked> {
        self.ranked.first()
    }
}

/// Ranks the providers for an order of `service` with `needs`. A provider needs a machine able
/// to make it with the material and colour loaded; only when no provider has one are material
/// and colour set aside (a provider loads what an order needs once it accepts it, and a
/// requirement nobody meets right now would otherwise turn every order for it away).
pub fn choose(
    needs: &JobNeeds,
    service: ServiceType,
    candidates: &[Candidate],
    tried: &[String],
    preferences: &Preferences,
) -> Choice {
    let strict = rank(needs, service, candidates, tried, preferences);
    if !strict.ranked.is_empty() || (needs.material.is_none() && needs.color.is_none()) {
        return strict;
    }
    let without_material = JobNeeds { material: None, color: None, ..needs.clone() };
    let relaxed = rank(&without_material, service, candidates, tried, preferences);
    if relaxed.ranked.is_empty() {
        // Nobody can make it even so: the reasons with the material are the fuller answer.
        return strict;
    }
    Choice { material_set_aside: true, ..relaxed }
}

/// How a capable provider ranks: (its position among the preferred, its location does not
/// match, fewer free capable machines, its id); ascending is best first.
type RankKey = (usize, bool, std::cmp::Reverse<usize>, String);

fn rank(
    needs: &JobNeeds,
    service: ServiceType,
    candidates: &[Candidate],
    tried: &[String],
    preferences: &Preferences,
) -> Choice {
    let mut choice = Choice::default();
    let mut keyed: Vec<(RankKey, Ranked)> = Vec::new();
    for candidate in candidates {
        let refuse = |unfit| ProviderRefusal { makerspace_id: candidate.makerspace_id.clone(), unfit };
        if !candidate.settings.offers(service) {
            choice.refusals.push(refuse(Unfit::ServiceNotOffered));
            continue;
        }
        if tried.contains(&candidate.makerspace_id) {
            choice.refusals.push(refuse(Unfit::AlreadyTried));
            continue;
        }
        let of_type: Vec<&MachineFacts> =
            candidate.machines.iter().filter(|m| m.equipment_type == needs.equipment_type).collect();
        if of_type.is_empty() {
            choice.refusals.push(refuse(Unfit::NoMachineOfType));
            continue;
        }
        let mut misfits = BTreeSet::new();
        let mut capable = Vec::new();
        for machine in of_type {
            match capability_misfit(needs, machine) {
                None => capable.push(machine),
                Some(misfit) => {
                    misfits.insert(misfit);
                }
            }
        }
        if capable.is_empty() {
            choice.refusals.push(refuse(Unfit::NoCapableMachine { misfits: misfits.into_iter().collect() }));
            continue;
        }
        let free = capable.iter().filter(|m| is_free(m)).count();
        let preferred =
            preferences.makerspace_ids.iter().position(|id| *id == candidate.makerspace_id).unwrap_or(usize::MAX);
        let located =
            preferences.location.as_deref().is_none_or(|asked| location_matches(asked, candidate.location.as_deref()));
        let key = (preferred, !located, std::cmp::Reverse(free), candidate.makerspace_id.clone());
        keyed.push((key, Ranked { makerspace_id: candidate.makerspace_id.clone(), capable: capable.len(), free }));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    choice.ranked = keyed.into_iter().map(|(_, ranked)| ranked).collect();
    choice.refusals.sort_by(|a, b| a.makerspace_id.cmp(&b.makerspace_id));
    choice
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::routing::test_support::machine;
    use serde_json::json;

    fn settings(value: serde_json::Value) -> Result<Option<ProviderSettings>, String> {
        ProviderSettings::from_settings(&json!({ "provider": value }))
    }

    #[test]
    fn provider_settings_are_read_and_checked() {
        assert_eq!(ProviderSettings::from_settings(&json!({})), Ok(None));
        assert_eq!(ProviderSettings::from_settings(&json!({"provider": null})), Ok(None));
        let read = settings(json!({"enabled": true, "service_types": ["3d_printing", "laser_cutting", "3d_printing"]}))
            .unwrap()
            .unwrap();
        assert_eq!(read.service_types, [ServiceType::Printing3d, ServiceType::LaserCutting]);
        assert_eq!(read.accept_timeout_s, DEFAULT_ACCEPT_TIMEOUT_S);
        assert!(read.offers(ServiceType::LaserCutting));
        assert!(!read.offers(ServiceType::CncMachining));
        let off = settings(json!({"enabled": false, "service_types": ["cnc_machining"]})).unwrap().unwrap();
        assert!(!off.offers(ServiceType::CncMachining), "a provider switched off takes nothing");
        let quick = settings(json!({"enabled": true, "service_types": ["cnc_machining"], "accept_timeout_s": 1}));
        assert_eq!(quick.unwrap().unwrap().accept_timeout_s, 1);

        let bad = |value: serde_json::Value| settings(value).expect_err("refused");
        assert!(bad(json!("yes")).contains("settings.provider"));
        assert!(bad(json!({"enabled": true, "service_types": ["welding"]})).contains("welding"));
        assert!(bad(json!({"enabled": true, "service_types": ["3d_printing"], "accept_timeout_s": 0}))
            .contains("accept_timeout_s"));
        assert!(bad(json!({"enabled": true, "service_types": ["3d_printing"], "accept_timeout_s": 604_801}))
            .contains("accept_timeout_s"));
        assert!(bad(json!({"enabled": true, "service_types": ["3d_printing"], "accept_timeout_s": -5}))
            .contains("accept_timeout_s"));
        assert!(bad(json!({"enabled": true, "service_types": ["3d_printing"], "accept_timeout_s": 1.5}))
            .contains("accept_timeout_s"));
        assert!(bad(json!({"enabled": true})).contains("at least one"));
        assert!(bad(json!({"enabled": true, "service_types": ["3d_printing"], "colour": "red"})).contains("colour"));
    }

    #[test]
    fn service_types_name_their_machines() {
        for service in ServiceType::ALL {
            let written = serde_json::to_value(service).unwrap();
            assert_eq!(written, json!(service.as_str()));
        }
        assert_eq!(ServiceType::Printing3d.equipment_type(), EquipmentType::Printer3d);
        assert_eq!(ServiceType::LaserCutting.equipment_type(), EquipmentType::LaserCutter);
    }

    #[test]
    fn locations_match_by_part_whatever_the_case() {
        assert!(location_matches("berlin", Some("Berlin, Kreuzberg")));
        assert!(location_matches("  ", None));
        assert!(!location_matches("Hamburg", Some("Berlin")));
        assert!(!location_matches("Berlin", None));
    }

    fn provider(id: &str, location: &str, machines: Vec<MachineFacts>) -> Candidate {
        Candidate {
            makerspace_id: id.into(),
            location: Some(location.into()),
            settings: ProviderSettings {
                enabled: true,
                service_types: vec![ServiceType::Printing3d],
                accept_timeout_s: 900,
            },
            machines: machines.into_iter().map(|m| MachineFacts { makerspace_id: id.into(), ..m }).collect(),
        }
    }

    fn needs() -> JobNeeds {
        crate::domain::routing::test_support::job("j").needs
    }

    fn busy(id: &str) -> MachineFacts {
        MachineFacts { state: MachineState::Running, ..machine(id) }
    }

    fn order(choice: &Choice) -> Vec<&str> {
        choice.ranked.iter().map(|r| r.makerspace_id.as_str()).collect()
    }

    #[test]
    fn preferred_spaces_then_location_then_free_machines() {
        let spaces = [
            provider("a", "Hamburg", vec![busy("a1")]),
            provider("b", "Berlin", vec![busy("b1")]),
            provider("c", "Hamburg", vec![machine("c1"), machine("c2")]),
            provider("d", "Hamburg", vec![machine("d1"), busy("d2")]),
        ];
        let service = ServiceType::Printing3d;
        let none = Preferences::default();
        // Most free capable machines first; ties by id.
        assert_eq!(order(&choose(&needs(), service, &spaces, &[], &none)), ["c", "d", "a", "b"]);
        // A location match beats free machines.
        let berlin = Preferences { location: Some("berlin".into()), ..Default::default() };
        assert_eq!(order(&choose(&needs(), service, &spaces, &[], &berlin)), ["b", "c", "d", "a"]);
        // Preferred ids beat everything, in their order.
        let preferred = Preferences { makerspace_ids: vec!["a".into(), "d".into()], location: Some("berlin".into()) };
        assert_eq!(order(&choose(&needs(), service, &spaces, &[], &preferred)), ["a", "d", "b", "c"]);
        // Tried spaces are out, and said so.
        let choice = choose(&needs(), service, &spaces, &["a".into(), "c".into()], &preferred);
        assert_eq!(order(&choice), ["d", "b"]);
        let tried: Vec<&str> = choice
            .refusals
            .iter()
            .filter(|r| r.unfit == Unfit::AlreadyTried)
            .map(|r| r.makerspace_id.as_str())
            .collect();
        assert_eq!(tried, ["a", "c"]);
        let best = choice.best().unwrap();
        assert_eq!((best.capable, best.free), (2, 1));
    }

    #[test]
    fn spaces_that_cannot_make_it_say_why() {
        let mut small = machine("s1");
        small.build_volume_mm = Some([50.0, 50.0, 50.0]);
        let mut laser = machine("l1");
        laser.equipment_type = EquipmentType::LaserCutter;
        let mut cnc_only = provider("cnc", "", vec![machine("x1")]);
        cnc_only.settings.service_types = vec![ServiceType::CncMachining];
        let spaces = [provider("small", "", vec![small]), provider("lasers", "", vec![laser]), cnc_only];
        let choice = choose(&needs(), ServiceType::Printing3d, &spaces, &[], &Preferences::default());
        assert!(choice.ranked.is_empty());
        let reasons: Vec<(&str, &Unfit)> =
            choice.refusals.iter().map(|r| (r.makerspace_id.as_str(), &r.unfit)).collect();
        assert_eq!(
            reasons,
            [
                ("cnc", &Unfit::ServiceNotOffered),
                ("lasers", &Unfit::NoMachineOfType),
                ("small", &Unfit::NoCapableMachine { misfits: vec![Misfit::BuildVolume] }),
            ]
        );
        let written = serde_json::to_value(&choice.refusals[2]).unwrap();
        assert_eq!(
            written,
            json!({"makerspace_id": "small", "reason": "no_capable_machine", "misfits": ["build_volume"]})
        );
    }

    #[test]
    fn a_material_loaded_somewhere_is_required_and_one_loaded_nowhere_is_set_aside() {
        let mut petg = machine("p1");
        petg.loaded[0].material = Some("PETG".into());
        let spaces = [provider("pla", "", vec![machine("m1")]), provider("petg", "", vec![petg])];
        let petg_needs = JobNeeds { material: Some("petg".into()), ..needs() };
        let choice = choose(&petg_needs, ServiceType::Printing3d, &spaces, &[], &Preferences::default());
        assert_eq!((order(&choice), choice.material_set_aside), (vec!["petg"], false));
        assert_eq!(choice.refusals[0].unfit, Unfit::NoCapableMachine { misfits: vec![Misfit::Material] }, "{choice:?}");
        // Nobody has ASA loaded: every capable provider may take it, and loads it.
        let asa = JobNeeds { material: Some("ASA".into()), color: Some("#00FF00".into()), ..needs() };
        let choice = choose(&asa, ServiceType::Printing3d, &spaces, &[], &Preferences::default());
        assert_eq!((order(&choice), choice.material_set_aside), (vec!["petg", "pla"], true));
        // Capability checks other than material still hold then.
        let huge = JobNeeds { bounding_box_mm: Some([900.0, 900.0, 900.0]), ..asa };
        let choice = choose(&huge, ServiceType::Printing3d, &spaces, &[], &Preferences::default());
        assert!(choice.ranked.is_empty() && !choice.material_set_aside);
    }

    #[test]
    fn capacity_counts_machines_of_the_type() {
        let mut offline = machine("o");
        offline.state = MachineState::Offline;
        let mut uncleared = machine("u");
        uncleared.bed_clear = false;
        let mut laser = machine("l");
        laser.equipment_type = EquipmentType::LaserCutter;
        let machines = [machine("a"), busy("b"), offline, uncleared, laser];
        assert_eq!(capacity(&machines, EquipmentType::Printer3d), Capacity { machines: 4, online: 3, idle: 1 });
        assert_eq!(capacity(&machines, EquipmentType::CncMachine), Capacity::default());
    }
}
