//! [`RoutingState`]: the router's state, updated by events and asked for decisions.
//!
//! The router actor keeps one of these. It tells it what changed (`job_queued`, `job_removed`,
//! `machine_changed`, `machine_removed`, `release_machine`, `set_stagger`) and calls
//! [`RoutingState::decide`] with the current time, which assigns as many jobs as can start now
//! and marks their machines taken until the actor releases them. [`RoutingState::next_wakeup`]
//! says when time alone could allow another start (a staggered start, a booking's end), so the
//! actor sets a timer instead of polling.
//!
//! How a decision stays cheap with 10,000 jobs and 2,000 machines:
//! - Jobs meet only machines of their scope and type (a bucket), and each machine keeps an index
//!   of the jobs that fit it statically ([`super::index`]), in serving order. A job's static fit
//!   is computed once when it is queued, and again only for the machines whose capabilities
//!   change: an unroutable job is not re-checked on every event.
//! - After a decision no queued job fits an available machine (free, not booked in the job's
//!   window, its makerspace allowing a start). Only what an event touched can change that: the
//!   machines it frees, the machines a new job fits, the machines of a makerspace whose stagger
//!   window reopened, a machine whose booking ended. Those are marked dirty, and a decision looks
//!   at them alone: for each, the first job its index serves.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::fairness::{OwnerRank, Owners, Rotation, ServeKey};
use super::fit::{booked_in_window, first_misfit, fits_statically, JobProfile, MachineProfile};
use super::index::{Entry, JobKey, MachineIndex};
use super::stagger::{StaggerRule, StartLog};
use super::wait::WaitReasons;
use super::{Assignment, JobScope, MachineFacts, Misfit, QueuedJob};
use crate::domain::equipment::EquipmentType;

/// The router's own key for a machine.
type MachineKey = u64;

/// Jobs and machines that can meet at all: one scope, one type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bucket {
    Makerspace(String, EquipmentType),
    Providers(EquipmentType),
}

impl Bucket {
    fn of_scope(scope: &JobScope, equipment_type: EquipmentType) -> Self {
        match scope {
            JobScope::Makerspace(space) => Self::Makerspace(space.clone(), equipment_type),
            JobScope::Providers => Self::Providers(equipment_type),
        }
    }

    /// A provider's machine takes its own makerspace's jobs and service orders.
    fn of_machine(machine: &MachineProfile) -> Vec<Self> {
        let own = Self::Makerspace(machine.makerspace_id().to_string(), machine.equipment_type());
        if machine.provider() {
            vec![own, Self::Providers(machine.equipment_type())]
        } else {
            vec![own]
        }
    }
}

struct QueuedEntry {
    job: QueuedJob,
    profile: JobProfile,
    owner: OwnerRank,
    /// The machines whose index holds the job.
    candidates: Vec<MachineKey>,
}

impl QueuedEntry {
    fn entry(&self, key: JobKey) -> Entry {
        Entry {
            priority: std::cmp::Reverse(self.job.priority),
            owner: self.owner,
            sequence: self.job.sequence,
            job: key,
        }
    }
}

struct MachineEntry {
    profile: MachineProfile,
    /// The router gave the machine a job that is not over yet: whatever its state says (the
    /// machine may report idle until the job starts), it takes no other.
    claimed: bool,
    index: MachineIndex,
}

impl MachineEntry {
    fn is_free(&self) -> bool {
        self.profile.is_free() && !self.claimed
    }
}

/// Something time alone changes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Wakeup {
    /// A booking of the machine ends: longer jobs may fit it.
    BookingEnds(MachineKey),
    /// The makerspace's staggered starts allow the next start.
    StartAllowed(String),
}

/// Whether a makerspace's staggered starts allow a start now.
enum Hold {
    Open,
    Until(DateTime<Utc>),
    /// The rule allows no start at all.
    Closed,
}

/// The router's state: the queue, the machines, the fairness cursors and the recent starts.
#[derive(Default)]
pub struct RoutingState {
    jobs: HashMap<JobKey, QueuedEntry>,
    job_keys: HashMap<String, JobKey>,
    next_job_key: JobKey,
    machines: HashMap<MachineKey, MachineEntry>,
    machine_keys: HashMap<String, MachineKey>,
    next_machine_key: MachineKey,
    jobs_by_bucket: HashMap<Bucket, BTreeSet<JobKey>>,
    machines_by_bucket: HashMap<Bucket, BTreeSet<MachineKey>>,
    /// Machine ids given a job not over yet; kept by id so that a claim made while rebuilding,
    /// before the machine's facts arrive, holds.
    claims: HashSet<String>,
    /// Free machines per makerspace: those to look at again when its stagger window reopens.
    free_by_space: HashMap<String, BTreeSet<MachineKey>>,
    owners: Owners,
    rotation: Rotation,
    stagger_rules: HashMap<String, StaggerRule>,
    start_logs: HashMap<String, StartLog>,
    /// Machines that may take a job since the last decision.
    dirty: BTreeSet<MachineKey>,
    /// Makerspaces whose staggered starts were found holding starts, until when. Their
    /// machines are not marked dirty meanwhile: when the hold ends, the `StartAllowed` wake-up
    /// marks all their free machines at once (a farm on one circuit may have hundreds idle
    /// while it waits, and every job that arrives fits many of them).
    held: HashMap<String, DateTime<Utc>>,
    wakeups: BTreeSet<(DateTime<Utc>, Wakeup)>,
}

impl RoutingState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn queued_jobs(&self) -> usize {
        self.jobs.len()
    }

    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }

    /// How many (machine, job) pairs fit statically: the size of the indexes, for figures.
    pub fn index_entries(&self) -> usize {
        self.machines.values().map(|machine| machine.index.len()).sum()
    }

    /// Queues a job, or replaces the queued job of the same id (reprioritised, re-queued after
    /// a refusal or a failure with more machines to avoid). Sequences are unique; were two
    /// equal, the one queued first here goes first.
    pub fn job_queued(&mut self, job: QueuedJob) {
        self.job_removed(&job.job_id);
        let key = self.next_job_key;
        self.next_job_key += 1;
        let owner = self.owners.rank(&job.owner_id);
        let profile = JobProfile::new(&job);
        let bucket = Bucket::of_scope(&profile.scope, profile.equipment_type());
        let mut queued = QueuedEntry { job, profile, owner, candidates: Vec::new() };
        let entry = queued.entry(key);
        for machine_key in self.machines_by_bucket.get(&bucket).into_iter().flatten() {
            let Some(machine) = self.machines.get_mut(machine_key) else { continue };
            if fits_statically(&queued.profile, &machine.profile) {
                machine.index.insert(entry);
                queued.candidates.push(*machine_key);
                if machine.is_free() && !self.held.contains_key(machine.profile.makerspace_id()) {
                    self.dirty.insert(*machine_key);
                }
            }
        }
        self.jobs_by_bucket.entry(bucket).or_default().insert(key);
        self.job_keys.insert(queued.job.job_id.clone(), key);
        self.jobs.insert(key, queued);
    }

    /// Gives a queued job another priority; it keeps its place among the jobs of its new
    /// level (its sequence) and everything the router learnt of it (machines that refused it).
    /// False if it is not queued here: the router handed it out already, and a job on its way
    /// to a machine is not put back.
    pub fn reprioritise(&mut self, job_id: &str, priority: i32) -> bool {
        let Some(queued) = self.job_keys.get(job_id).and_then(|key| self.jobs.get(key)) else { return false };
        let mut job = queued.job.clone();
        job.priority = priority;
        self.job_queued(job);
        true
    }

    /// Takes a job out of the queue (cancelled, or assigned by other means). False if it was
    /// not queued.
    pub fn job_removed(&mut self, job_id: &str) -> bool {
        match self.job_keys.get(job_id) {
            Some(&key) => self.detach_job(key).is_some(),
            None => false,
        }
    }

    /// A machine's facts, new or changed.
    pub fn machine_changed(&mut self, facts: MachineFacts) {
        let profile = MachineProfile::new(&facts);
        let claimed = self.claims.contains(&facts.machine_id);
        let key = match self.machine_keys.get(&facts.machine_id) {
            Some(&key) => key,
            None => {
                let key = self.next_machine_key;
                self.next_machine_key += 1;
                self.machine_keys.insert(facts.machine_id.clone(), key);
                key
            }
        };
        for booking in profile.bookings() {
            self.wakeups.insert((booking.end, Wakeup::BookingEnds(key)));
        }
        match self.machines.get_mut(&key) {
            Some(machine) if machine.profile.capabilities == profile.capabilities => {
                machine.profile = profile;
                machine.claimed = claimed;
            }
            _ => {
                self.detach_machine(key);
                self.machines.insert(key, MachineEntry { profile, claimed, index: MachineIndex::default() });
                self.attach_machine(key);
            }
        }
        self.refresh_free(key);
    }

    /// A machine left the fleet. False if it was not known.
    pub fn machine_removed(&mut self, machine_id: &str) -> bool {
        self.claims.remove(machine_id);
        match self.machine_keys.remove(machine_id) {
            Some(key) => self.detach_machine(key).is_some(),
            None => false,
        }
    }

    /// The machine has a job the router did not just assign (rebuilding after a restart: a
    /// job is assigned, sending or printing there). It takes no job until released.
    pub fn claim_machine(&mut self, machine_id: &str) {
        self.claims.insert(machine_id.to_string());
        self.set_claimed(machine_id, true);
    }

    /// The job given to the machine is over (done, failed, cancelled, or it could not be
    /// sent). The machine takes jobs again as soon as its facts say it is free.
    pub fn release_machine(&mut self, machine_id: &str) {
        self.claims.remove(machine_id);
        self.set_claimed(machine_id, false);
    }

    /// A makerspace's staggered starts (`None`: no limit). A new or changed rule counts the
    /// starts made from then on (the same rule again changes nothing).
    pub fn set_stagger(&mut self, makerspace_id: &str, rule: Option<StaggerRule>) {
        if self.stagger_rules.get(makerspace_id).copied() == rule {
            return;
        }
        match rule {
            Some(rule) => self.stagger_rules.insert(makerspace_id.to_string(), rule),
            None => self.stagger_rules.remove(makerspace_id),
        };
        self.start_logs.remove(makerspace_id);
        self.held.remove(makerspace_id);
        if let Some(free) = self.free_by_space.get(makerspace_id) {
            self.dirty.extend(free.iter().copied());
        }
    }

    /// Assigns as many jobs as can start at `now`: each to a free, cleared, capable machine not
    /// booked in the job's window, in serving order (priority, owners' turns, first come),
    /// within each makerspace's staggered starts. Each machine is then taken until released.
    pub fn decide(&mut self, now: DateTime<Utc>) -> Vec<Assignment> {
        self.wake_up(now);
        let mut assignments = Vec::new();
        while let Some((job, machine)) = self.next_pair(now) {
            // Both come from the state's own indexes, so both exist; were one missing, stop
            // rather than find the same pair again.
            let Some(assignment) = self.assign(job, machine, now) else { break };
            assignments.push(assignment);
        }
        assignments
    }

    /// When time alone may allow a start the last decision could not make: call `decide` then.
    /// It may be in the past (then decide now) and may find nothing to do.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        self.wakeups.first().map(|(at, _)| *at)
    }

    /// When the makerspace's staggered starts allow the next start: `now` if they allow one
    /// now, `None` if the rule allows none at all.
    pub fn next_start_allowed(&self, makerspace_id: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.hold(makerspace_id, now) {
            Hold::Open => Some(now),
            Hold::Until(at) => Some(at),
            Hold::Closed => None,
        }
    }

    /// Why a queued job waits at `now`; `None` if it is not queued.
    pub fn why_waiting(&self, job_id: &str, now: DateTime<Utc>) -> Option<WaitReasons> {
        let queued = self.jobs.get(self.job_keys.get(job_id)?)?;
        let verdicts = EquipmentType::ALL
            .into_iter()
            .filter_map(|equipment_type| {
                self.machines_by_bucket.get(&Bucket::of_scope(&queued.profile.scope, equipment_type))
            })
            .flatten()
            .filter_map(|key| self.machines.get(key))
            .map(|machine| {
                let misfit = first_misfit(&queued.profile, &machine.profile, machine.claimed, now);
                let verdict = misfit.map(|misfit| (misfit, None)).or_else(|| {
                    match self.hold(machine.profile.makerspace_id(), now) {
                        Hold::Open => None,
                        Hold::Until(at) => Some((Misfit::Staggered, Some(at))),
                        Hold::Closed => Some((Misfit::Staggered, None)),
                    }
                });
                (machine.profile.machine_id.clone(), verdict)
            })
            .collect();
        Some(WaitReasons::new(job_id, verdicts))
    }

    /// The next job to start and its machine: of the jobs the dirty machines would each serve
    /// first, the first in serving order, on the available machine with the smallest id.
    fn next_pair(&mut self, now: DateTime<Utc>) -> Option<(JobKey, MachineKey)> {
        let mut best: Option<(ServeKey, JobKey, MachineKey)> = None;
        for machine_key in self.dirty.iter().copied().collect::<Vec<_>>() {
            match self.first_job_for(machine_key, now) {
                Some((serve, job)) => {
                    if best.is_none_or(|(best_serve, best_job, _)| (serve, job) < (best_serve, best_job)) {
                        best = Some((serve, job, machine_key));
                    }
                }
                // Nothing that happens within this decision makes a job fit it.
                None => {
                    self.dirty.remove(&machine_key);
                }
            }
        }
        let (_, job, found_on) = best?;
        Some((job, self.first_machine_for(job, now).unwrap_or(found_on)))
    }

    /// The first job the machine's index serves that fits it now.
    fn first_job_for(&mut self, machine_key: MachineKey, now: DateTime<Utc>) -> Option<(ServeKey, JobKey)> {
        let machine = self.machines.get(&machine_key).filter(|machine| machine.is_free())?;
        let space = machine.profile.makerspace_id();
        match self.hold(space, now) {
            Hold::Open => {}
            Hold::Until(at) => {
                self.wakeups.insert((at, Wakeup::StartAllowed(space.to_string())));
                self.held.insert(space.to_string(), at);
                return None;
            }
            Hold::Closed => {
                self.held.insert(space.to_string(), DateTime::<Utc>::MAX_UTC);
                return None;
            }
        }
        let unbooked = machine.profile.bookings().is_empty();
        let entry = machine.index.first_served(&self.rotation, |entry| {
            unbooked
                || self.jobs.get(&entry.job).is_some_and(|job| !booked_in_window(&job.profile, &machine.profile, now))
        })?;
        Some((self.rotation.serve_key(entry.priority.0, entry.owner, entry.sequence), entry.job))
    }

    /// The available machine with the smallest id that fits the job now. After a decision no
    /// job fits a machine that is not dirty, so only dirty machines are looked at (through the
    /// job's candidates or the dirty set, whichever is smaller).
    fn first_machine_for(&self, job_key: JobKey, now: DateTime<Utc>) -> Option<MachineKey> {
        let queued = self.jobs.get(&job_key)?;
        let entry = queued.entry(job_key);
        let pool: Vec<MachineKey> = if queued.candidates.len() <= self.dirty.len() {
            queued.candidates.iter().copied().filter(|key| self.dirty.contains(key)).collect()
        } else {
            self.dirty.iter().copied().collect()
        };
        pool.into_iter()
            .filter_map(|key| Some((key, self.machines.get(&key)?)))
            .filter(|(_, machine)| {
                machine.is_free()
                    && machine.index.contains(&entry)
                    && matches!(self.hold(machine.profile.makerspace_id(), now), Hold::Open)
                    && !booked_in_window(&queued.profile, &machine.profile, now)
            })
            .min_by(|(_, a), (_, b)| a.profile.machine_id.cmp(&b.profile.machine_id))
            .map(|(key, _)| key)
    }

    fn assign(&mut self, job_key: JobKey, machine_key: MachineKey, now: DateTime<Utc>) -> Option<Assignment> {
        let machine = self.machines.get_mut(&machine_key)?;
        machine.claimed = true;
        let machine_id = machine.profile.machine_id.clone();
        let space = machine.profile.makerspace_id().to_string();
        self.claims.insert(machine_id.clone());
        self.refresh_free(machine_key);
        if let Some(rule) = self.stagger_rules.get(&space).copied() {
            let log = self.start_logs.entry(space).or_default();
            log.prune(Some(rule), now);
            log.record(now);
        }
        let queued = self.detach_job(job_key)?;
        self.rotation.served(queued.job.priority, queued.owner);
        Some(Assignment { job_id: queued.job.job_id, machine_id })
    }

    fn hold(&self, makerspace_id: &str, now: DateTime<Utc>) -> Hold {
        let Some(rule) = self.stagger_rules.get(makerspace_id).copied() else { return Hold::Open };
        let allowed = match self.start_logs.get(makerspace_id) {
            Some(log) => log.next_allowed(Some(rule), now),
            None => StartLog::default().next_allowed(Some(rule), now),
        };
        match allowed {
            Some(at) if at <= now => Hold::Open,
            Some(at) => Hold::Until(at),
            None => Hold::Closed,
        }
    }

    /// Marks dirty what the passing of time up to `now` may have made available.
    fn wake_up(&mut self, now: DateTime<Utc>) {
        while self.wakeups.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, wakeup)) = self.wakeups.pop_first() else { break };
            match wakeup {
                Wakeup::BookingEnds(key) => {
                    let free = self.machines.get(&key).filter(|machine| machine.is_free());
                    if free.is_some_and(|machine| !self.held.contains_key(machine.profile.makerspace_id())) {
                        self.dirty.insert(key);
                    }
                }
                Wakeup::StartAllowed(space) => {
                    self.held.remove(&space);
                    if let Some(free) = self.free_by_space.get(&space) {
                        self.dirty.extend(free.iter().copied());
                    }
                }
            }
        }
    }

    fn set_claimed(&mut self, machine_id: &str, claimed: bool) {
        let Some(&key) = self.machine_keys.get(machine_id) else { return };
        if let Some(machine) = self.machines.get_mut(&key) {
            machine.claimed = claimed;
        }
        self.refresh_free(key);
    }

    /// Keeps the free sets in step with the machine's facts and claim; a free machine is dirty.
    fn refresh_free(&mut self, key: MachineKey) {
        let Some(machine) = self.machines.get(&key) else { return };
        let space = machine.profile.makerspace_id();
        let free = self.free_by_space.entry(space.to_string()).or_default();
        if machine.is_free() {
            free.insert(key);
            if !self.held.contains_key(space) {
                self.dirty.insert(key);
            }
        } else {
            free.remove(&key);
            self.dirty.remove(&key);
        }
    }

    fn detach_job(&mut self, key: JobKey) -> Option<QueuedEntry> {
        let queued = self.jobs.remove(&key)?;
        self.job_keys.remove(&queued.job.job_id);
        let entry = queued.entry(key);
        for machine_key in &queued.candidates {
            if let Some(machine) = self.machines.get_mut(machine_key) {
                machine.index.remove(&entry);
            }
        }
        let bucket = Bucket::of_scope(&queued.profile.scope, queued.profile.equipment_type());
        if let Some(jobs) = self.jobs_by_bucket.get_mut(&bucket) {
            jobs.remove(&key);
            if jobs.is_empty() {
                self.jobs_by_bucket.remove(&bucket);
            }
        }
        Some(queued)
    }

    /// Indexes the machine's jobs: those of its buckets that fit it statically.
    fn attach_machine(&mut self, key: MachineKey) {
        let Some(machine) = self.machines.get_mut(&key) else { return };
        for bucket in Bucket::of_machine(&machine.profile) {
            for job_key in self.jobs_by_bucket.get(&bucket).into_iter().flatten() {
                let Some(queued) = self.jobs.get_mut(job_key) else { continue };
                if fits_statically(&queued.profile, &machine.profile) {
                    machine.index.insert(queued.entry(*job_key));
                    queued.candidates.push(key);
                }
            }
            self.machines_by_bucket.entry(bucket).or_default().insert(key);
        }
    }

    fn detach_machine(&mut self, key: MachineKey) -> Option<MachineEntry> {
        let mut machine = self.machines.remove(&key)?;
        for entry in machine.index.take() {
            if let Some(queued) = self.jobs.get_mut(&entry.job) {
                queued.candidates.retain(|candidate| *candidate != key);
            }
        }
        for bucket in Bucket::of_machine(&machine.profile) {
            if let Some(machines) = self.machines_by_bucket.get_mut(&bucket) {
                machines.remove(&key);
                if machines.is_empty() {
                    self.machines_by_bucket.remove(&bucket);
                }
            }
        }
        if let Some(free) = self.free_by_space.get_mut(machine.profile.makerspace_id()) {
            free.remove(&key);
        }
        self.dirty.remove(&key);
        Some(machine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::machine::MachineState;
    use crate::domain::routing::test_support::{at, job, machine};
    use crate::domain::routing::{Booking, LoadedMaterial};

    fn pairs(assignments: Vec<Assignment>) -> Vec<(String, String)> {
        assignments.into_iter().map(|a| (a.job_id, a.machine_id)).collect()
    }

    fn pair(job: &str, machine: &str) -> (String, String) {
        (job.to_string(), machine.to_string())
    }

    fn copy(id: &str, sequence: u64) -> QueuedJob {
        let mut j = job(id);
        j.sequence = sequence;
        j
    }

    #[test]
    fn copies_spread_over_free_machines() {
        let mut state = RoutingState::new();
        state.machine_changed(machine("m2"));
        state.machine_changed(machine("m1"));
        for (i, id) in ["copy-1", "copy-2", "copy-3"].into_iter().enumerate() {
            state.job_queued(copy(id, i as u64));
        }
        assert_eq!(pairs(state.decide(at(0))), [pair("copy-1", "m1"), pair("copy-2", "m2")]);
        assert_eq!(state.decide(at(1)), [], "both machines are taken");
        state.release_machine("m2");
        assert_eq!(pairs(state.decide(at(2))), [pair("copy-3", "m2")]);
    }

    #[test]
    fn a_machine_given_a_job_takes_no_other_until_released() {
        let mut state = RoutingState::new();
        state.machine_changed(machine("m1"));
        state.job_queued(copy("a", 1));
        assert_eq!(pairs(state.decide(at(0))), [pair("a", "m1")]);
        state.machine_changed(machine("m1")); // still reports idle: the job has not started
        state.job_queued(copy("b", 2));
        assert_eq!(state.decide(at(1)), []);
        assert_eq!(state.why_waiting("b", at(1)).unwrap().machines[0].reason, Misfit::Busy);
        let mut finished = machine("m1");
        finished.bed_clear = false;
        state.machine_changed(finished);
        state.release_machine("m1");
        assert_eq!(state.decide(at(2)), [], "the bed is not cleared yet");
        state.machine_changed(machine("m1"));
        assert_eq!(pairs(state.decide(at(3))), [pair("b", "m1")]);
    }

    #[test]
    fn a_claim_made_while_rebuilding_holds_before_the_facts_arrive() {
        let mut state = RoutingState::new();
        state.claim_machine("m1");
        state.machine_changed(machine("m1"));
        state.job_queued(copy("a", 1));
        assert_eq!(state.decide(at(0)), []);
        state.release_machine("m1");
        assert_eq!(pairs(state.decide(at(0))), [pair("a", "m1")]);
    }

    #[test]
    fn a_reprioritised_job_goes_first_and_a_job_handed_out_is_not_put_back() {
        let mut state = RoutingState::new();
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            state.job_queued(copy(id, i as u64));
        }
        assert!(state.reprioritise("c", 5));
        state.machine_changed(machine("m1"));
        assert_eq!(pairs(state.decide(at(0))), [pair("c", "m1")]);
        assert!(!state.reprioritise("c", 9), "c is on its machine");
        assert!(!state.reprioritise("nope", 1));
        state.release_machine("m1");
        assert_eq!(pairs(state.decide(at(1))), [pair("a", "m1")], "a, b keep their order");
        assert_eq!(state.queued_jobs(), 1);
    }

    #[test]
    fn a_higher_priority_goes_first_then_owners_take_turns() {
        let mut state = RoutingState::new();
        for (i, (owner, priority)) in [("ann", 0), ("ann", 0), ("ann", 0), ("bo", 0), ("cy", 1)].into_iter().enumerate()
        {
            let mut j = copy(&format!("{owner}-{i}"), i as u64);
            j.owner_id = owner.into();
            j.priority = priority;
            state.job_queued(j);
        }
        let mut order = Vec::new();
        state.machine_changed(machine("m1"));
        for second in 0..5 {
            order.extend(state.decide(at(second)).into_iter().map(|a| a.job_id));
            state.release_machine("m1");
        }
        assert_eq!(order, ["cy-4", "ann-0", "bo-3", "ann-1", "ann-2"]);
    }

    #[test]
    fn why_waiting_names_each_machine_in_scope_and_counts_reasons() {
        let mut state = RoutingState::new();
        let mut busy = machine("m1");
        busy.state = MachineState::Running;
        let mut petg = machine("m2");
        petg.loaded = vec![LoadedMaterial { slot: "main".into(), material: Some("PETG".into()), color: None }];
        let mut elsewhere = machine("m9");
        elsewhere.makerspace_id = "space-2".into();
        for m in [busy, petg, elsewhere] {
            state.machine_changed(m);
        }
        let mut pla = copy("pla", 1);
        pla.needs.material = Some("pla".into());
        state.job_queued(pla);
        assert_eq!(state.decide(at(0)), []);
        let reasons = state.why_waiting("pla", at(0)).unwrap();
        let listed: Vec<(&str, Misfit)> = reasons.machines.iter().map(|w| (w.machine_id.as_str(), w.reason)).collect();
        assert_eq!(listed, [("m1", Misfit::Busy), ("m2", Misfit::Material)], "not another makerspace's machine");
        assert_eq!(reasons.summary.len(), 2);
        assert!(reasons.fitting.is_empty());
        assert_eq!(state.why_waiting("nope", at(0)), None);
    }

    #[test]
    fn staggered_starts_wait_for_the_window_and_say_when() {
        let mut state = RoutingState::new();
        state.set_stagger("space-1", Some(StaggerRule::new(1, 60).unwrap()));
        state.machine_changed(machine("m1"));
        state.machine_changed(machine("m2"));
        state.job_queued(copy("a", 1));
        state.job_queued(copy("b", 2));
        assert_eq!(pairs(state.decide(at(0))), [pair("a", "m1")]);
        assert_eq!(state.next_wakeup(), Some(at(60)));
        assert_eq!(state.next_start_allowed("space-1", at(0)), Some(at(60)));
        let reasons = state.why_waiting("b", at(0)).unwrap();
        assert_eq!(reasons.machines[1].reason, Misfit::Staggered);
        assert_eq!(reasons.machines[1].next_start_at, Some(at(60)));
        assert_eq!(state.decide(at(59)), []);
        assert_eq!(pairs(state.decide(at(60))), [pair("b", "m2")]);
        assert_eq!(state.next_start_allowed("space-2", at(60)), Some(at(60)), "another makerspace is not held");
    }

    #[test]
    fn a_machine_booked_in_the_window_waits_for_the_booking_to_end() {
        let mut state = RoutingState::new();
        let mut booked = machine("m1");
        booked.bookings = vec![Booking { start: at(300), end: at(900) }];
        state.machine_changed(booked);
        let mut long = copy("long", 1);
        long.estimated_duration_s = 3600;
        state.job_queued(long);
        let mut short = copy("short", 2);
        short.estimated_duration_s = 300;
        state.job_queued(short);
        assert_eq!(pairs(state.decide(at(0))), [pair("short", "m1")], "the short one ends before the booking");
        state.release_machine("m1");
        assert_eq!(state.decide(at(1)), []);
        assert_eq!(state.next_wakeup(), Some(at(900)));
        assert_eq!(pairs(state.decide(at(900))), [pair("long", "m1")]);
    }

    #[test]
    fn a_failed_job_requeued_avoids_the_machine_it_failed_on() {
        let mut state = RoutingState::new();
        state.machine_changed(machine("m1"));
        state.machine_changed(machine("m2"));
        state.job_queued(copy("a", 1));
        assert_eq!(pairs(state.decide(at(0))), [pair("a", "m1")]);
        state.release_machine("m1");
        let mut again = copy("a", 1);
        again.avoid_machines = vec!["m1".into()];
        state.job_queued(again.clone());
        state.job_queued(again);
        assert_eq!(state.queued_jobs(), 1, "queueing the same id again replaces it");
        assert_eq!(pairs(state.decide(at(1))), [pair("a", "m2")]);
    }

    #[test]
    fn a_spool_change_lets_a_waiting_job_go() {
        let mut state = RoutingState::new();
        state.machine_changed(machine("m1"));
        let mut petg = copy("petg", 1);
        petg.needs.material = Some("PETG".into());
        state.job_queued(petg);
        assert_eq!(state.decide(at(0)), []);
        let mut reloaded = machine("m1");
        reloaded.loaded = vec![LoadedMaterial { slot: "main".into(), material: Some("petg".into()), color: None }];
        state.machine_changed(reloaded);
        assert_eq!(state.index_entries(), 1);
        assert_eq!(pairs(state.decide(at(1))), [pair("petg", "m1")]);
        assert_eq!(state.index_entries(), 0);
    }

    #[test]
    fn service_orders_go_to_providers_that_did_not_refuse() {
        let mut state = RoutingState::new();
        let mut provider_a = machine("a1");
        provider_a.makerspace_id = "space-a".into();
        provider_a.provider = true;
        let mut provider_b = provider_a.clone();
        provider_b.machine_id = "b1".into();
        provider_b.makerspace_id = "space-b".into();
        state.machine_changed(machine("local"));
        state.machine_changed(provider_a);
        state.machine_changed(provider_b);
        let mut order = copy("order", 1);
        order.scope = JobScope::Providers;
        order.refused_by = vec!["space-a".into()];
        state.job_queued(order);
        assert_eq!(pairs(state.decide(at(0))), [pair("order", "b1")]);
    }

    #[test]
    fn removed_jobs_and_machines_are_forgotten() {
        let mut state = RoutingState::new();
        state.machine_changed(machine("m1"));
        let mut other_type = copy("laser", 1);
        other_type.needs.equipment_type = EquipmentType::LaserCutter;
        state.job_queued(other_type);
        state.job_queued(copy("a", 2));
        assert!(state.job_removed("a"));
        assert!(!state.job_removed("a"));
        assert!(state.machine_removed("m1"));
        assert!(!state.machine_removed("m1"));
        assert_eq!(state.machine_count(), 0);
        assert_eq!(state.decide(at(0)), []);
        state.machine_changed(machine("m1"));
        assert_eq!(state.decide(at(0)), [], "the laser job does not fit a printer");
    }
}
