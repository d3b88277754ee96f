//! "Why is my job waiting": for each machine the job could be sent to, the first reason it does
//! not take the job, and how many machines each reason holds back. `GET .../jobs/{id}` shows
//! it as it is.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Misfit;

/// What a machine says of a job: `None` when it takes the job now; otherwise the first reason
/// it does not, and for `staggered` when its makerspace allows the next start.
pub type Verdict = Option<(Misfit, Option<DateTime<Utc>>)>;

/// One machine and the first reason it does not take the job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MachineWait {
    pub machine_id: String,
    pub reason: Misfit,
    /// The reason as a sentence.
    pub detail: &'static str,
    /// For `staggered`: when the machine's makerspace allows the next start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_start_at: Option<DateTime<Utc>>,
}

/// How many machines one reason holds back.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReasonCount {
    pub reason: Misfit,
    pub detail: &'static str,
    pub count: usize,
}

/// Why a queued job waits.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WaitReasons {
    pub job_id: String,
    /// Machines that would take the job now: it goes to one of them at the router's next
    /// decision (unless a job ahead of it in the queue takes the machine first).
    pub fitting: Vec<String>,
    /// Every other machine in the job's scope, by machine id.
    pub machines: Vec<MachineWait>,
    /// Per reason, in the order of the chain.
    pub summary: Vec<ReasonCount>,
}

impl WaitReasons {
    /// From each machine's verdict (`None`: it fits), in any order.
    pub fn new(job_id: &str, verdicts: Vec<(String, Verdict)>) -> Self {
        let mut fitting = Vec::new();
        let mut machines = Vec::new();
        for (machine_id, verdict) in verdicts {
            match verdict {
                None => fitting.push(machine_id),
                Some((reason, next_start_at)) => {
                    machines.push(MachineWait { machine_id, reason, detail: reason.sentence(), next_start_at })
                }
            }
        }
        fitting.sort_unstable();
        machines.sort_unstable_by(|a, b| a.machine_id.cmp(&b.machine_id));
        let mut counts: BTreeMap<Misfit, usize> = BTreeMap::new();
        for wait in &machines {
            *counts.entry(wait.reason).or_default() += 1;
        }
        let summary = counts
            .into_iter()
            .map(|(reason, count)| ReasonCount { reason, detail: reason.sentence(), count })
            .collect();
        Self { job_id: job_id.to_string(), fitting, machines, summary }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::routing::test_support::at;

    #[test]
    fn lists_machines_by_id_and_counts_reasons_in_chain_order() {
        let reasons = WaitReasons::new(
            "job-1",
            vec![
                ("m3".into(), Some((Misfit::Material, None))),
                ("m1".into(), Some((Misfit::Busy, None))),
                ("m2".into(), Some((Misfit::Material, None))),
                ("m4".into(), None),
                ("m5".into(), Some((Misfit::Staggered, Some(at(60))))),
            ],
        );
        let json = serde_json::to_value(&reasons).unwrap();
        assert_eq!(json["fitting"], serde_json::json!(["m4"]));
        assert_eq!(
            json["machines"][0],
            serde_json::json!({"machine_id": "m1", "reason": "busy", "detail": "the machine is busy"})
        );
        assert_eq!(json["machines"][3]["next_start_at"], serde_json::json!(at(60)));
        let summary: Vec<(String, u64)> = json["summary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["reason"].as_str().unwrap().to_string(), r["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(summary, [("busy".into(), 1), ("material".into(), 2), ("staggered".into(), 1)]);
    }
}
