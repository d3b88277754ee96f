//! Property tests of the router's state against random queues, fleets and event sequences:
//! every assignment fits (the chain, bookings, a cleared bed), no machine or job is used twice,
//! owners take turns, staggered starts hold, and the incremental state decides exactly what a
//! naive recomputation over every job and machine decides.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use super::fit::{booked_in_window, first_misfit, JobProfile, MachineProfile};
use super::test_support::{at, job, machine};
use super::*;

const MATERIALS: [&str; 2] = ["PLA", "petg"];
const COLORS: [&str; 2] = ["#FF0000", "00ff00ff"];
const TYPES: [EquipmentType; 2] = [EquipmentType::Printer3d, EquipmentType::LaserCutter];

/// A job that fits a machine: its place in the serving order, its id, the machine's id.
type Candidate = ((Reverse<i32>, bool, u32, u64), String, String);

/// The naive router: at each step, every queued job against every machine.
#[derive(Default)]
struct Reference {
    jobs: BTreeMap<String, QueuedJob>,
    machines: BTreeMap<String, MachineFacts>,
    claims: BTreeSet<String>,
    owners: HashMap<String, u32>,
    last_served: HashMap<i32, u32>,
    rules: HashMap<String, StaggerRule>,
    starts: HashMap<String, Vec<DateTime<Utc>>>,
}

impl Reference {
    fn queue(&mut self, job: QueuedJob) {
        let next = self.owners.len() as u32;
        self.owners.entry(job.owner_id.clone()).or_insert(next);
        self.jobs.insert(job.job_id.clone(), job);
    }

    fn stagger_allows(&self, space: &str, now: DateTime<Utc>) -> bool {
        let Some(rule) = self.rules.get(space) else { return true };
        let window = Duration::seconds(i64::from(rule.window_s));
        let counting = self.starts.get(space).map_or(0, |s| s.iter().filter(|t| **t + window > now).count());
        counting < rule.max_starts as usize
    }

    fn fits(&self, job: &JobProfile, facts: &MachineFacts, now: DateTime<Utc>) -> bool {
        let machine = MachineProfile::new(facts);
        machine.in_scope(&job.scope)
            && first_misfit(job, &machine, self.claims.contains(&facts.machine_id), now).is_none()
            && self.stagger_allows(&facts.makerspace_id, now)
    }

    fn decide(&mut self, now: DateTime<Utc>) -> Vec<Assignment> {
        let mut out = Vec::new();
        loop {
            let mut best: Option<Candidate> = None;
            for job in self.jobs.values() {
                let profile = JobProfile::new(job);
                let Some(facts) = self.machines.values().find(|m| self.fits(&profile, m, now)) else { continue };
                let owner = self.owners[&job.owner_id];
                let wrapped = self.last_served.get(&job.priority).is_some_and(|last| owner <= *last);
                let key = (Reverse(job.priority), wrapped, owner, job.sequence);
                if best.as_ref().is_none_or(|(best_key, _, _)| key < *best_key) {
                    best = Some((key, job.job_id.clone(), facts.machine_id.clone()));
                }
            }
            let Some(((_, _, owner, _), job_id, machine_id)) = best else { return out };
            let job = self.jobs.remove(&job_id).unwrap();
            self.last_served.insert(job.priority, owner);
            self.claims.insert(machine_id.clone());
            let space = self.machines[&machine_id].makerspace_id.clone();
            if self.rules.contains_key(&space) {
                self.starts.entry(space).or_default().push(now);
            }
            out.push(Assignment { job_id, machine_id });
        }
    }
}

#[derive(Debug, Clone)]
enum Event {
    /// A job, its sequence given when it is queued.
    Queue(QueuedJob),
    RemoveJob(u8),
    /// A machine's facts, its bookings' times counted from the time of the event.
    Machine(MachineFacts),
    RemoveMachine(u8),
    Release(u8),
    Stagger(u8, Option<(u32, u32)>),
    Decide(i64),
}

fn any_state() -> impl Strategy<Value = MachineState> {
    prop_oneof![6 => Just(MachineState::Idle), 1 => proptest::sample::select(MachineState::ALL.to_vec())]
}

fn space(index: u8) -> String {
    format!("space-{index}")
}

fn any_job() -> impl Strategy<Value = QueuedJob> {
    (
        (0u8..14, 0u8..4, 0i32..3, proptest::option::weighted(0.85, 0u8..2), 0u8..2),
        (proptest::option::of(0u8..2), proptest::option::of(0u8..2), prop_oneof![Just(60u32), Just(600), Just(7200)]),
        (
            proptest::option::weighted(0.1, 0u8..6),
            proptest::option::weighted(0.1, 0u8..6),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((id, owner, priority, scope, kind), (material, color, duration_s), (pinned, avoid, tag, large))| {
                let mut j = job(&format!("job-{id}"));
                j.owner_id = format!("owner-{owner}");
                j.priority = priority;
                j.scope = scope.map_or(JobScope::Providers, |s| JobScope::Makerspace(space(s)));
                j.needs.equipment_type = TYPES[usize::from(kind)];
                j.needs.material = material.map(|m| MATERIALS[usize::from(m)].to_string());
                j.needs.color = color.map(|c| COLORS[usize::from(c)].to_string());
                j.needs.tags = if tag { vec!["enclosure".into()] } else { vec![] };
                j.needs.bounding_box_mm = Some(if large { [250.0, 180.0, 100.0] } else { [50.0, 50.0, 50.0] });
                j.estimated_duration_s = duration_s;
                j.pinned_machine = pinned.map(|m| format!("m{m}"));
                j.avoid_machines = avoid.iter().map(|m| format!("m{m}")).collect();
                j
            },
        )
}

fn any_machine() -> impl Strategy<Value = MachineFacts> {
    let slots = proptest::collection::vec((proptest::option::of(0u8..2), proptest::option::of(0u8..2)), 0..3);
    let booking = proptest::option::weighted(0.3, (-600i64..3600, 1i64..3600));
    (
        (0u8..6, 0u8..2, any::<bool>(), 0u8..2),
        (any_state(), proptest::bool::weighted(0.85), slots),
        (any::<bool>(), any::<bool>(), booking),
    )
        .prop_map(|((id, s, provider, kind), (state, bed_clear, slots), (tag, small, booking))| {
            let mut m = machine(&format!("m{id}"));
            m.makerspace_id = space(s);
            m.provider = provider;
            m.equipment_type = TYPES[usize::from(kind)];
            m.state = state;
            m.bed_clear = bed_clear;
            m.loaded = slots
                .iter()
                .enumerate()
                .map(|(slot, (material, color))| LoadedMaterial {
                    slot: slot.to_string(),
                    material: material.map(|i| MATERIALS[usize::from(i)].to_ascii_uppercase()),
                    color: color.map(|i| COLORS[usize::from(i)].to_string()),
                })
                .collect();
            m.tags = if tag { vec!["Enclosure".into()] } else { vec![] };
            m.build_volume_mm = Some(if small { [200.0, 200.0, 200.0] } else { [300.0, 300.0, 300.0] });
            m.bookings = booking
                .iter()
                .map(|(offset, length)| Booking { start: at(*offset), end: at(offset + length) })
                .collect();
            m
        })
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => any_job().prop_map(Event::Queue),
        1 => (0u8..14).prop_map(Event::RemoveJob),
        5 => any_machine().prop_map(Event::Machine),
        1 => (0u8..6).prop_map(Event::RemoveMachine),
        3 => (0u8..6).prop_map(Event::Release),
        1 => (0u8..2, proptest::option::of((1u32..3, 1u32..120))).prop_map(|(space, rule)| Event::Stagger(space, rule)),
        4 => (0i64..90).prop_map(Event::Decide),
    ]
}

/// Checks one decision's assignments against the state before it: each job was queued and
/// fits its machine by the chain (so: not booked in its window, bed cleared), in its scope, the
/// machine was not taken, and no machine or job appears twice.
fn check_assignments(before: &Reference, assignments: &[Assignment], now: DateTime<Utc>) -> Result<(), TestCaseError> {
    let mut machines = BTreeSet::new();
    let mut jobs = BTreeSet::new();
    for assignment in assignments {
        prop_assert!(machines.insert(&assignment.machine_id), "machine {} twice", assignment.machine_id);
        prop_assert!(jobs.insert(&assignment.job_id), "job {} twice", assignment.job_id);
        let job = JobProfile::new(&before.jobs[&assignment.job_id]);
        let facts = &before.machines[&assignment.machine_id];
        let machine = MachineProfile::new(facts);
        prop_assert!(!before.claims.contains(&assignment.machine_id), "machine already taken");
        prop_assert!(machine.in_scope(&job.scope));
        prop_assert_eq!(first_misfit(&job, &machine, false, now), None);
        prop_assert!(!booked_in_window(&job, &machine, now), "booked in the window");
        prop_assert!(facts.bed_clear && facts.state == MachineState::Idle, "bed not clear or not idle");
    }
    Ok(())
}

/// Applies the events to the state and to the reference, comparing every decision.
fn run(events: &[Event]) -> Result<(), TestCaseError> {
    let mut state = RoutingState::new();
    let mut reference = Reference::default();
    let mut now = at(0);
    let mut sequence = 0;
    for event in events {
        match event {
            Event::Queue(job) => {
                sequence += 1;
                let job = QueuedJob { sequence, ..job.clone() };
                state.job_queued(job.clone());
                reference.queue(job);
            }
            Event::RemoveJob(id) => {
                let id = format!("job-{id}");
                prop_assert_eq!(state.job_removed(&id), reference.jobs.remove(&id).is_some());
            }
            Event::Machine(facts) => {
                let since_start = now - at(0);
                let mut facts = facts.clone();
                for booking in &mut facts.bookings {
                    *booking = Booking { start: booking.start + since_start, end: booking.end + since_start };
                }
                state.machine_changed(facts.clone());
                reference.machines.insert(facts.machine_id.clone(), facts);
            }
            Event::RemoveMachine(id) => {
                let id = format!("m{id}");
                prop_assert_eq!(state.machine_removed(&id), reference.machines.remove(&id).is_some());
                reference.claims.remove(&id);
            }
            Event::Release(id) => {
                let id = format!("m{id}");
                state.release_machine(&id);
                reference.claims.remove(&id);
            }
            Event::Stagger(s, rule) => {
                let rule = rule.map(|(max, window)| StaggerRule::new(max, window).unwrap());
                state.set_stagger(&space(*s), rule);
                if reference.rules.get(&space(*s)) != rule.as_ref() {
                    reference.starts.remove(&space(*s));
                }
                match rule {
                    Some(rule) => reference.rules.insert(space(*s), rule),
                    None => reference.rules.remove(&space(*s)),
                };
            }
            Event::Decide(advance) => {
                now += Duration::seconds(*advance);
                let decided = state.decide(now);
                let before = Reference {
                    jobs: reference.jobs.clone(),
                    machines: reference.machines.clone(),
                    claims: reference.claims.clone(),
                    ..Reference::default()
                };
                let expected = reference.decide(now);
                prop_assert_eq!(&decided, &expected, "at {}", now);
                check_assignments(&before, &decided, now)?;
            }
        }
        prop_assert_eq!(state.queued_jobs(), reference.jobs.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// (a)–(d) and (g): every decision is what the naive router decides, and every assignment fits.
    #[test]
    fn decisions_match_the_naive_router_and_always_fit(events in proptest::collection::vec(any_event(), 1..80)) {
        run(&events)?;
    }
}

fn owner_of(job_id: &str) -> String {
    job_id.split('/').next().unwrap_or_default().to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// (e) Within one priority level, with every machine fitting every job, two owners who both
    /// still have jobs queued never differ by more than one assignment.
    #[test]
    fn owners_take_turns(
        queue in proptest::collection::vec(0u8..5, 1..60),
        machines in 1usize..5,
        releases in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 5), 0..100),
    ) {
        let mut state = RoutingState::new();
        for i in 0..machines {
            state.machine_changed(machine(&format!("m{i}")));
        }
        let mut left: BTreeMap<String, i64> = BTreeMap::new();
        for (sequence, owner) in queue.iter().enumerate() {
            let mut j = job(&format!("owner-{owner}/{sequence}"));
            j.owner_id = format!("owner-{owner}");
            j.sequence = sequence as u64;
            *left.entry(j.owner_id.clone()).or_default() += 1;
            state.job_queued(j);
        }
        let mut assigned: BTreeMap<String, i64> = BTreeMap::new();
        let mut taken: Vec<String> = Vec::new();
        let mut releases = releases.into_iter();
        while state.queued_jobs() > 0 {
            let decided = state.decide(at(0));
            for assignment in &decided {
                let owner = owner_of(&assignment.job_id);
                *assigned.entry(owner.clone()).or_default() += 1;
                *left.get_mut(&owner).unwrap() -= 1;
                let waiting: Vec<i64> = left.iter().filter(|(_, n)| **n > 0).map(|(o, _)| assigned.get(o).copied().unwrap_or(0)).collect();
                let (min, max) = (waiting.iter().min(), waiting.iter().max());
                if let (Some(min), Some(max)) = (min, max) {
                    prop_assert!(max - min <= 1, "{:?} assigned, {:?} left", assigned, left);
                }
                taken.push(assignment.machine_id.clone());
            }
            // Free some of the machines (all when the plan runs out), as jobs finish.
            let plan = releases.next().unwrap_or_else(|| vec![true; 5]);
            let (free, keep): (Vec<_>, Vec<_>) = taken.drain(..).enumerate().partition(|(i, _)| plan[i % 5]);
            taken = keep.into_iter().map(|(_, m)| m).collect();
            for (_, m) in free {
                state.release_machine(&m);
            }
            if taken.len() == machines {
                let m = taken.remove(0);
                state.release_machine(&m);
            }
        }
    }

    /// (f) Never more than N starts within any M seconds in a makerspace, and the time the state
    /// gives for the next start is the earliest one.
    #[test]
    fn staggered_starts_hold_in_every_window(
        max_starts in 1u32..4,
        window_s in 5u32..120,
        machines in 1usize..8,
        jobs in 1usize..30,
        steps in proptest::collection::vec((0i64..60, any::<bool>(), any::<bool>()), 1..60),
    ) {
        let rule = StaggerRule::new(max_starts, window_s).unwrap();
        let mut state = RoutingState::new();
        state.set_stagger("space-1", Some(rule));
        for i in 0..machines {
            state.machine_changed(machine(&format!("m{i}")));
        }
        for i in 0..jobs {
            let mut j = job(&format!("j{i}"));
            j.sequence = i as u64;
            state.job_queued(j);
        }
        let mut now = at(0);
        let mut starts: Vec<DateTime<Utc>> = Vec::new();
        let mut taken: Vec<String> = Vec::new();
        for (advance, to_wakeup, release) in steps {
            now = match state.next_wakeup() {
                Some(wakeup) if to_wakeup && wakeup > now => wakeup,
                _ => now + Duration::seconds(advance),
            };
            let blocked_until = state.next_start_allowed("space-1", now).filter(|t| *t > now);
            let decided = state.decide(now);
            if blocked_until.is_some() {
                prop_assert!(decided.is_empty(), "a start before the time the state gave");
            }
            for assignment in decided {
                starts.push(now);
                taken.push(assignment.machine_id);
            }
            let could_start = state.queued_jobs() > 0 && taken.len() < machines;
            if could_start {
                // Something is held back by the rule alone: the state says when to come back,
                // and then a start is allowed.
                let next = state.next_start_allowed("space-1", now).unwrap();
                prop_assert!(next > now);
                prop_assert!(state.next_wakeup().is_some_and(|wakeup| wakeup <= next));
            }
            if release {
                for m in taken.drain(..) {
                    state.release_machine(&m);
                }
            }
        }
        let window = Duration::seconds(i64::from(window_s));
        for start in &starts {
            let within = starts.iter().filter(|s| **s >= *start && **s < *start + window).count();
            prop_assert!(within <= max_starts as usize, "{} starts from {}: {:?}", within, start, starts);
        }
    }
}
