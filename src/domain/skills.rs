//! Skills and the equipment gate: who may use a machine, at a given instant.
//!
//! The gate ([`check_access`]) is one pure function of the member's status, the person's
//! certifications, the machine's required skills and the prerequisite graph. It answers with
//! every missing skill (required skills and, transitively, their prerequisites), never just the
//! first one. Certifications are judged at the instant asked about: a certification past its
//! `expires_at` counts as missing, whatever is stored.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::members::MemberStatus;

/// Default validity of a certification, in days.
pub const DEFAULT_VALIDITY_DAYS: i64 = 365;
/// Longest configurable validity (ten years).
pub const MAX_VALIDITY_DAYS: i64 = 3650;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkillLevel {
    Beginner,
    Intermediate,
    Advanced,
    Expert,
}

impl SkillLevel {
    pub const ALL: [SkillLevel; 4] = [Self::Beginner, Self::Intermediate, Self::Advanced, Self::Expert];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Beginner => "beginner",
            Self::Intermediate => "intermediate",
            Self::Advanced => "advanced",
            Self::Expert => "expert",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Whether a skill is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkillStatus {
    Active,
    Inactive,
}

impl SkillStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Inactive].into_iter().find(|v| v.as_str() == s)
    }
}

/// The status of a person's skill (a certification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificationStatus {
    Pending,
    Certified,
    Expired,
    Revoked,
}

impl CertificationStatus {
    pub const ALL: [CertificationStatus; 4] = [Self::Pending, Self::Certified, Self::Expired, Self::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Certified => "certified",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The status of a certification request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Rejected,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Rejected].into_iter().find(|v| v.as_str() == s)
    }
}

/// A person's skill as the gate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certification {
    pub skill_id: String,
    pub status: CertificationStatus,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Certification {
    /// Certified and not expired at `at` (a certification is valid up to, not at, its expiry).
    pub fn valid_at(&self, at: DateTime<Utc>) -> bool {
        self.status == CertificationStatus::Certified && self.expires_at.is_none_or(|end| at < end)
    }
}

/// The status to show for a stored certification at `at`: certified past its expiry is expired.
pub fn effective_certification_status(
    stored: CertificationStatus,
    expires_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> CertificationStatus {
    match stored {
        CertificationStatus::Certified if expires_at.is_some_and(|end| at >= end) => CertificationStatus::Expired,
        other => other,
    }
}

/// When a certification granted (or renewed) at `at` expires.
pub fn expiry_from(at: DateTime<Utc>, validity_days: Option<i64>) -> Option<DateTime<Utc>> {
    validity_days.map(|days| at + Duration::days(days))
}

/// The prerequisite graph: skill id -> the skills it needs directly.
pub type Prerequisites = BTreeMap<String, BTreeSet<String>>;

/// Every skill that `roots` need, themselves included, following prerequisites transitively.
/// Terminates on any graph (cycles included).
pub fn with_prerequisites<'a>(roots: impl IntoIterator<Item = &'a String>, graph: &Prerequisites) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().cloned().collect();
    while let Some(skill) = todo.pop() {
        if seen.insert(skill.clone()) {
            if let Some(next) = graph.get(&skill) {
                todo.extend(next.iter().filter(|p| !seen.contains(*p)).cloned());
            }
        }
    }
    seen
}

/// Whether giving `skill` the prerequisites `new_prerequisites` (replacing its current ones)
/// would make a cycle. Returns the path of the cycle (`skill`, ..., `skill`) if so.
pub fn find_cycle(skill: &str, new_prerequisites: &BTreeSet<String>, graph: &Prerequisites) -> Option<Vec<String>> {
    let mut graph = graph.clone();
    graph.insert(skill.to_string(), new_prerequisites.clone());
    // Depth-first search from each new prerequisite back to `skill`, remembering parents.
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    let mut todo: Vec<String> = Vec::new();
    for p in new_prerequisites {
        if !parent.contains_key(p) {
            parent.insert(p.clone(), skill.to_string());
            todo.push(p.clone());
        }
    }
    while let Some(node) = todo.pop() {
        if node == skill {
            let mut path = vec![skill.to_string()];
            let mut at = parent.get(skill).cloned();
            while let Some(p) = at {
                path.push(p.clone());
                if p == skill {
                    break;
                }
                at = parent.get(&p).cloned();
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(&node).into_iter().flatten() {
            if !parent.contains_key(next) {
                parent.insert(next.clone(), node.clone());
                todo.push(next.clone());
            }
        }
    }
    None
}

/// Why the gate refuses a person whatever their skills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MembershipProblem {
    /// No membership in the machine's makerspace.
    NotAMember,
    /// A membership that does not grant access (pending, suspended, expired).
    Inactive(MemberStatus),
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    pub membership: Result<(), MembershipProblem>,
    /// Every skill needed and not certified-and-unexpired at the instant, sorted, no duplicates.
    pub missing: Vec<String>,
    /// The needed skills that are held.
    pub held: Vec<String>,
}

impl AccessDecision {
    pub fn allowed(&self) -> bool {
        self.membership.is_ok() && self.missing.is_empty()
    }
}

/// The equipment gate. `member` is the person's effective membership status in the
/// machine's makerspace (`None`: not a member); `required` the machine's skills; `graph` the
/// prerequisites of the space's skills; `at` the instant judged.
pub fn check_access(
    member: Option<MemberStatus>,
    certifications: &[Certification],
    required: &[String],
    graph: &Prerequisites,
    at: DateTime<Utc>,
) -> AccessDecision {
    let membership = match member {
        None => Err(MembershipProblem::NotAMember),
        Some(status) if crate::domain::members::grants_access(status) => Ok(()),
        Some(status) => Err(MembershipProblem::Inactive(status)),
    };
    let valid: BTreeSet<&str> = certifications.iter().filter(|c| c.valid_at(at)).map(|c| c.skill_id.as_str()).collect();
    let (held, missing): (Vec<String>, Vec<String>) =
        with_prerequisites(required, graph).into_iter().partition(|s| valid.contains(s.as_str()));
    AccessDecision { membership, missing, held }
}

/// The prerequisites (transitively) of `skill` that are not certified-and-unexpired at `at`,
/// sorted. Granting `skill` needs this to be empty, or an admin's override.
pub fn missing_prerequisites(
    skill: &str,
    certifications: &[Certification],
    graph: &Prerequisites,
    at: DateTime<Utc>,
) -> Vec<String> {
    let direct: Vec<String> = graph.get(skill).map(|s| s.iter().cloned().collect()).unwrap_or_default();
    let mut decision = check_access(Some(MemberStatus::Active), certifications, &direct, graph, at);
    decision.missing.retain(|s| s != skill);
    decision.missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().expect("a time")
    }

    fn cert(skill: &str, status: CertificationStatus, expires_in_days: Option<i64>) -> Certification {
        Certification { skill_id: skill.into(), status, expires_at: expires_in_days.map(|d| t0() + Duration::days(d)) }
    }

    fn graph(edges: &[(&str, &str)]) -> Prerequisites {
        let mut g = Prerequisites::new();
        for (s, p) in edges {
            g.entry(s.to_string()).or_default().insert(p.to_string());
        }
        g
    }

    #[test]
    fn every_missing_skill_is_named_with_prerequisites() {
        let g = graph(&[("cnc", "safety"), ("laser", "safety")]);
        let certs = [cert("laser", CertificationStatus::Certified, Some(10))];
        let d = check_access(Some(MemberStatus::Active), &certs, &["cnc".into(), "laser".into()], &g, t0());
        assert_eq!(d.missing, vec!["cnc".to_string(), "safety".to_string()]);
        assert_eq!(d.held, vec!["laser".to_string()]);
        assert!(!d.allowed());
    }

    #[test]
    fn expiry_revocation_and_membership_deny() {
        let g = Prerequisites::new();
        let req = ["laser".to_string()];
        let ok = [cert("laser", CertificationStatus::Certified, Some(1))];
        assert!(check_access(Some(MemberStatus::Active), &ok, &req, &g, t0()).allowed());
        assert!(!check_access(Some(MemberStatus::Active), &ok, &req, &g, t0() + Duration::days(1)).allowed());
        let revoked = [cert("laser", CertificationStatus::Revoked, None)];
        assert!(!check_access(Some(MemberStatus::Active), &revoked, &req, &g, t0()).allowed());
        let d = check_access(Some(MemberStatus::Suspended), &ok, &req, &g, t0());
        assert_eq!(d.membership, Err(MembershipProblem::Inactive(MemberStatus::Suspended)));
        assert!(d.missing.is_empty() && !d.allowed());
        assert_eq!(check_access(None, &ok, &req, &g, t0()).membership, Err(MembershipProblem::NotAMember));
    }

    #[test]
    fn cycles_are_found_with_their_path() {
        let g = graph(&[("b", "a"), ("c", "b")]);
        let cycle = find_cycle("a", &["c".to_string()].into(), &g).expect("a cycle");
        assert_eq!(cycle.first().map(String::as_str), Some("a"));
        assert_eq!(cycle.last().map(String::as_str), Some("a"));
        assert!(find_cycle("d", &["c".to_string()].into(), &g).is_none());
        assert!(find_cycle("a", &["a".to_string()].into(), &g).is_some());
    }

    #[test]
    fn missing_prerequisites_are_transitive() {
        let g = graph(&[("cnc", "mill"), ("mill", "safety")]);
        let certs = [cert("mill", CertificationStatus::Certified, None)];
        assert_eq!(missing_prerequisites("cnc", &certs, &g, t0()), vec!["safety".to_string()]);
        assert!(missing_prerequisites("safety", &certs, &g, t0()).is_empty());
    }

    fn skill_name() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]).prop_map(String::from)
    }

    fn certification() -> impl Strategy<Value = Certification> {
        (skill_name(), prop::sample::select(CertificationStatus::ALL.to_vec()), prop::option::of(-30i64..30))
            .prop_map(|(s, status, days)| cert(&s, status, days))
    }

    fn member_status() -> impl Strategy<Value = Option<MemberStatus>> {
        prop::option::of(prop::sample::select(MemberStatus::ALL.to_vec()))
    }

    proptest! {
        #[test]
        fn missing_is_exactly_what_is_needed_and_not_valid(
            member in member_status(),
            certs in prop::collection::vec(certification(), 0..8),
            required in prop::collection::vec(skill_name(), 0..6),
            edges in prop::collection::vec((skill_name(), skill_name()), 0..8),
            offset in -40i64..40,
        ) {
            let g = {
                let mut g = Prerequisites::new();
                for (s, p) in &edges { g.entry(s.clone()).or_default().insert(p.clone()); }
                g
            };
            let at = t0() + Duration::days(offset);
            let d = check_access(member, &certs, &required, &g, at);
            let needed = with_prerequisites(&required, &g);
            let expected: Vec<String> = needed
                .iter()
                .filter(|s| !certs.iter().any(|c| &c.skill_id == *s && c.valid_at(at)))
                .cloned()
                .collect();
            prop_assert_eq!(&d.missing, &expected);
            // Sorted and without duplicates; held and missing split the needed skills.
            prop_assert!(d.missing.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(d.missing.len() + d.held.len(), needed.len());
            // Allowed iff an access-granting membership and nothing missing.
            let member_ok = member.is_some_and(crate::domain::members::grants_access);
            prop_assert_eq!(d.allowed(), member_ok && expected.is_empty());
            // Order of the inputs does not matter.
            let mut rc = certs.clone(); rc.reverse();
            let mut rr = required.clone(); rr.reverse();
            prop_assert_eq!(check_access(member, &rc, &rr, &g, at), d);
        }

        #[test]
        fn inactive_members_are_always_denied(
            status in prop::sample::select(vec![MemberStatus::Suspended, MemberStatus::Expired, MemberStatus::Pending]),
            certs in prop::collection::vec(certification(), 0..8),
            required in prop::collection::vec(skill_name(), 0..4),
        ) {
            prop_assert!(!check_access(Some(status), &certs, &required, &Prerequisites::new(), t0()).allowed());
            prop_assert!(!check_access(None, &certs, &required, &Prerequisites::new(), t0()).allowed());
        }

        #[test]
        fn an_acyclic_graph_stays_acyclic_when_find_cycle_says_so(
            edges in prop::collection::vec((skill_name(), skill_name()), 0..10),
        ) {
            // Build the graph edge by edge, refusing edges that find_cycle flags; the result
            // must then have no skill that (transitively) needs itself.
            let mut g = Prerequisites::new();
            for (s, p) in edges {
                let mut next = g.get(&s).cloned().unwrap_or_default();
                next.insert(p.clone());
                if find_cycle(&s, &next, &g).is_none() {
                    g.insert(s, next);
                }
            }
            for (s, direct) in &g {
                let reach = with_prerequisites(direct, &g);
                prop_assert!(!reach.contains(s), "{} reaches itself in {:?}", s, g);
            }
        }
    }
}
