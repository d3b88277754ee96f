//! Job routing: the router's pure state (`makrcave::domain::routing::RoutingState`) with
//! 10,000 queued jobs and 2,000 machines, as the router actor drives it.
//!
//! The fleet: four makerspaces (one with staggered starts, 4 within 60 s); 3D printers (70 %,
//! four materials in eight colours, a quarter with a four-slot AMS, two nozzles, three build
//! volumes), laser cutters, SLA printers and CNC machines; a fifth carry an "enclosure" tag,
//! one in ten has a booking in the next hours, and most are busy printing. The queue: 300
//! owners, three priorities, mixed types, materials and colours; about 3 % need what no
//! machine has (unroutable).
//!
//! Phase 1 (rebuild): every machine's facts, then every job, then one decision, as after a
//! restart. Phase 2 (latency): BENCH_EVENTS events (20,000 by default), alternately a busy
//! machine finishing (released, its bed cleared at once or after another event) and a job
//! arriving, the clock advancing a second each; each event is followed by a decision and the
//! pair is timed alone: p50, p99, max. Phase 3: the time of a spool change (capabilities
//! change: the machine's index is rebuilt). Phase 4: criterion's throughput of the same
//! events.
//!
//! Run with `scripts/bench routing` (= `cargo bench --bench routing`). Settings by environment:
//! BENCH_JOBS (10000), BENCH_MACHINES (2000), BENCH_EVENTS (20000).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::Criterion;
use makrcave::domain::equipment::EquipmentType;
use makrcave::domain::machine::MachineState;
use makrcave::domain::routing::{
    Booking, JobNeeds, JobScope, LoadedMaterial, MachineFacts, QueuedJob, RoutingState, StaggerRule,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const SPACES: [&str; 4] = ["farm", "north", "south", "lab"];
const MATERIALS: [&str; 4] = ["PLA", "PETG", "ABS", "TPU"];
const COLORS: [&str; 8] = ["#000000", "#FFFFFF", "#FF0000", "#00AE42", "#0A2989", "#F4EE2A", "#FF6A13", "#8E9089"];
const VOLUMES: [[f64; 3]; 3] = [[256.0, 256.0, 256.0], [220.0, 220.0, 250.0], [350.0, 350.0, 400.0]];

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("a valid instant")
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn equipment_type(rng: &mut StdRng) -> EquipmentType {
    match rng.random_range(0..100) {
        0..70 => EquipmentType::Printer3d,
        70..85 => EquipmentType::LaserCutter,
        85..95 => EquipmentType::SlaPrinter,
        _ => EquipmentType::CncMachine,
    }
}

fn machine(rng: &mut StdRng, i: usize) -> MachineFacts {
    let equipment_type = equipment_type(rng);
    let loaded = if equipment_type == EquipmentType::Printer3d {
        let slots = if rng.random_bool(0.25) { 4 } else { 1 };
        (0..slots)
            .map(|slot| LoadedMaterial {
                slot: format!("0-{slot}"),
                material: Some(pick(rng, &MATERIALS).to_string()),
                // As a Bambu printer reports it, with alpha.
                color: Some(format!("{}FF", &pick(rng, &COLORS)[1..])),
            })
            .collect()
    } else {
        Vec::new()
    };
    let bookings = if rng.random_bool(0.1) {
        let start = t0() + chrono::Duration::minutes(rng.random_range(0..240));
        vec![Booking { start, end: start + chrono::Duration::minutes(rng.random_range(60..120)) }]
    } else {
        Vec::new()
    };
    MachineFacts {
        machine_id: format!("eq-{i:05}"),
        makerspace_id: SPACES[i % SPACES.len()].to_string(),
        provider: false,
        equipment_type,
        state: if rng.random_bool(0.9) { MachineState::Running } else { MachineState::Idle },
        bed_clear: rng.random_bool(0.95),
        loaded,
        nozzle_mm: Some(if rng.random_bool(0.8) { 0.4 } else { 0.6 }),
        build_volume_mm: Some(pick(rng, &VOLUMES)),
        tags: if rng.random_bool(0.2) { vec!["enclosure".into()] } else { Vec::new() },
        bookings,
    }
}

fn job(rng: &mut StdRng, sequence: u64) -> QueuedJob {
    let equipment_type = equipment_type(rng);
    let printer = equipment_type == EquipmentType::Printer3d;
    let unroutable = rng.random_bool(0.03);
    QueuedJob {
        job_id: format!("job-{sequence}"),
        owner_id: format!("member-{}", rng.random_range(0..300)),
        priority: match rng.random_range(0..10) {
            0..7 => 0,
            7..9 => 1,
            _ => 2,
        },
        sequence,
        scope: JobScope::Makerspace(pick(rng, &SPACES).to_string()),
        needs: JobNeeds {
            equipment_type,
            material: if unroutable {
                Some("PEEK".into())
            } else if printer && rng.random_bool(0.8) {
                Some(pick(rng, &MATERIALS).to_string())
            } else {
                None
            },
            color: (printer && rng.random_bool(0.3)).then(|| pick(rng, &COLORS).to_string()),
            nozzle_mm: printer.then(|| if rng.random_bool(0.9) { 0.4 } else { 0.6 }),
            bounding_box_mm: Some([
                rng.random_range(10.0..300.0),
                rng.random_range(10.0..200.0),
                rng.random_range(5.0..300.0),
            ]),
            tags: if rng.random_bool(0.1) { vec!["enclosure".into()] } else { Vec::new() },
        },
        estimated_duration_s: rng.random_range(600..6 * 3600),
        pinned_machine: None,
        avoid_machines: Vec::new(),
        refused_by: Vec::new(),
    }
}

/// The bench's world: the state, the facts it was told, and what runs where.
struct World {
    rng: StdRng,
    state: RoutingState,
    machines: Vec<MachineFacts>,
    /// Machines printing: given a job by the router, or busy when the bench started.
    busy: Vec<usize>,
    /// Machines that finished and wait for their bed to be cleared.
    uncleared: Vec<usize>,
    next_sequence: u64,
    now: DateTime<Utc>,
    assigned: u64,
    /// Jobs arrive only while fewer are queued, so the queue stays at its size throughout.
    queue_size: usize,
}

impl World {
    fn new(jobs: u64, machines: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(12);
        let machines: Vec<MachineFacts> = (0..machines).map(|i| machine(&mut rng, i)).collect();
        let busy = (0..machines.len()).filter(|i| machines[*i].state == MachineState::Running).collect();
        let mut state = RoutingState::new();
        state.set_stagger("farm", Some(StaggerRule::new(4, 60).expect("a valid rule")));
        for facts in &machines {
            state.machine_changed(facts.clone());
        }
        for sequence in 0..jobs {
            state.job_queued(job(&mut rng, sequence));
        }
        let queue_size = jobs as usize;
        Self {
            rng,
            state,
            machines,
            busy,
            uncleared: Vec::new(),
            next_sequence: jobs,
            now: t0(),
            assigned: 0,
            queue_size,
        }
    }

    fn decide(&mut self) {
        for assignment in self.state.decide(self.now) {
            self.assigned += 1;
            let i = self.index_of(&assignment.machine_id);
            self.machines[i].state = MachineState::Running;
            self.busy.push(i);
        }
    }

    fn index_of(&self, machine_id: &str) -> usize {
        machine_id.trim_start_matches("eq-").parse().expect("the bench's own id")
    }

    /// One event and the decision after it. True if the event was a job arriving.
    fn step(&mut self, event: u64) -> bool {
        self.now += chrono::Duration::seconds(1);
        let arrival = event % 2 == 1 && self.state.queued_jobs() < self.queue_size;
        if !arrival {
            self.machine_finishes();
        } else {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            let job = job(&mut self.rng, sequence);
            self.state.job_queued(job);
        }
        self.decide();
        arrival
    }

    /// A busy machine finishes its job; one in five waits for a person to clear its bed, which
    /// happens at a later finish. Either is one event.
    fn machine_finishes(&mut self) {
        if !self.uncleared.is_empty() && self.rng.random_bool(0.2) {
            let i = self.uncleared.swap_remove(self.rng.random_range(0..self.uncleared.len()));
            self.machines[i].bed_clear = true;
            self.state.machine_changed(self.machines[i].clone());
            return;
        }
        if self.busy.is_empty() {
            return;
        }
        let i = self.busy.swap_remove(self.rng.random_range(0..self.busy.len()));
        let facts = &mut self.machines[i];
        facts.state = MachineState::Idle;
        facts.bed_clear = !self.rng.random_bool(0.2);
        if !facts.bed_clear {
            self.uncleared.push(i);
        }
        let (machine_id, facts) = (facts.machine_id.clone(), facts.clone());
        self.state.release_machine(&machine_id);
        self.state.machine_changed(facts);
    }

    /// A spool change on a random 3D printer: its capabilities change, so its index is rebuilt.
    fn spool_change(&mut self) {
        let printers: Vec<usize> =
            (0..self.machines.len()).filter(|i| self.machines[*i].equipment_type == EquipmentType::Printer3d).collect();
        let i = printers[self.rng.random_range(0..printers.len())];
        let material = pick(&mut self.rng, &MATERIALS).to_string();
        if let Some(slot) = self.machines[i].loaded.first_mut() {
            slot.material = Some(material);
        }
        self.state.machine_changed(self.machines[i].clone());
        self.decide();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

fn report(name: &str, mut latencies: Vec<Duration>) {
    latencies.sort_unstable();
    let total: Duration = latencies.iter().sum();
    println!(
        "{name}: {} decisions, {:.0} decisions/s, latency p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        latencies.len(),
        latencies.len() as f64 / total.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e6),
    );
}

fn main() {
    let jobs = env_or("BENCH_JOBS", 10_000);
    let machines = env_or("BENCH_MACHINES", 2_000) as usize;
    let events = env_or("BENCH_EVENTS", 20_000);

    let started = Instant::now();
    let mut world = World::new(jobs, machines);
    let built = started.elapsed();
    world.decide();
    println!(
        "rebuild: {machines} machines and {jobs} jobs told in {:.0} ms, first decision {:.0} ms ({} assigned); {} (machine, job) pairs fit statically",
        built.as_secs_f64() * 1e3,
        (started.elapsed() - built).as_secs_f64() * 1e3,
        world.assigned,
        world.state.index_entries(),
    );

    let assigned_before = world.assigned;
    let mut latencies = Vec::with_capacity(events as usize);
    let (mut arrivals, mut finishes) = (Vec::new(), Vec::new());
    for event in 0..events {
        let started = Instant::now();
        let arrival = world.step(event);
        let latency = started.elapsed();
        latencies.push(latency);
        if arrival {
            arrivals.push(latency)
        } else {
            finishes.push(latency)
        }
    }
    println!(
        "after {events} events: {} queued, {} assigned during them, {} machines busy, {} awaiting a bed clear",
        world.state.queued_jobs(),
        world.assigned - assigned_before,
        world.busy.len(),
        world.uncleared.len(),
    );
    report("all events + decision", latencies);
    report("  a machine finishes or its bed is cleared + decision", finishes);
    report("  a job arrives + decision", arrivals);

    let mut spool_changes = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let started = Instant::now();
        world.spool_change();
        spool_changes.push(started.elapsed());
    }
    report("spool changes (index rebuilt) + decision", spool_changes);

    let mut criterion = Criterion::default().configure_from_args();
    let mut event = 0;
    criterion.bench_function("routing event + decision (10,000 jobs, 2,000 machines)", |b| {
        b.iter(|| {
            world.step(event);
            event += 1;
        })
    });
    criterion.final_summary();
    println!("after criterion's {event} events: {} queued", world.state.queued_jobs());
}
