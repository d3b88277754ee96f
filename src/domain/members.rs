//! Membership rules: statuses, roles in a makerspace, plans, and member input checks.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Role;

/// A membership's status. `expired` is also derived: an active membership past its end date
/// is expired, whatever is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Pending,
    Suspended,
    Expired,
}

impl MemberStatus {
    pub const ALL: [MemberStatus; 4] = [Self::Active, Self::Pending, Self::Suspended, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Suspended => "suspended",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The status that counts on `today`: an active membership whose end date has passed is
/// expired. Suspension wins over expiry (it says more).
pub fn effective_status(stored: MemberStatus, end_date: Option<NaiveDate>, today: NaiveDate) -> MemberStatus {
    match stored {
        MemberStatus::Active if end_date.is_some_and(|end| end < today) => MemberStatus::Expired,
        other => other,
    }
}

/// Whether a membership lets its person in (read the space, use machines).
pub fn grants_access(effective: MemberStatus) -> bool {
    effective == MemberStatus::Active
}

/// A person's role inside one makerspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// The documents also say `maker` or `user`.
    #[serde(alias = "maker", alias = "user")]
    Member,
    ServiceProvider,
    MakerspaceAdmin,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::ServiceProvider => "service_provider",
            Self::MakerspaceAdmin => "makerspace_admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" | "maker" | "user" => Some(Self::Member),
            "service_provider" => Some(Self::ServiceProvider),
            "makerspace_admin" => Some(Self::MakerspaceAdmin),
            _ => None,
        }
    }

    /// The access role this membership gives inside its makerspace.
    pub fn access_role(self) -> Role {
        match self {
            Self::Member => Role::Member,
            Self::ServiceProvider => Role::ServiceProvider,
            Self::MakerspaceAdmin => Role::MakerspaceAdmin,
        }
    }
}

/// How often a plan is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingPeriod {
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
    OneTime,
}

impl BillingPeriod {
    pub const ALL: [BillingPeriod; 6] =
        [Self::Daily, Self::Weekly, Self::Monthly, Self::Quarterly, Self::Yearly, Self::OneTime];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Quarterly => "quarterly",
            Self::Yearly => "yearly",
            Self::OneTime => "one_time",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A plan every new makerspace starts with.
pub struct PlanTemplate {
    pub name: &'static str,
    pub description: &'static str,
    pub price: f64,
    pub period: BillingPeriod,
    /// `None`: no daily limit.
    pub access_hours_per_day: Option<u32>,
    pub access_24_7: bool,
    pub features: &'static [&'static str],
}

/// The five default plans of the member management document.
pub const DEFAULT_PLANS: [PlanTemplate; 5] = [
    PlanTemplate {
        name: "Basic Maker",
        description: "8 hours a day, basic equipment and the workshop space",
        price: 29.99,
        period: BillingPeriod::Monthly,
        access_hours_per_day: Some(8),
        access_24_7: false,
        features: &["basic_equipment", "workshop_space"],
    },
    PlanTemplate {
        name: "Pro Maker",
        description: "Unlimited daily access, advanced equipment and priority support",
        price: 99.99,
        period: BillingPeriod::Monthly,
        access_hours_per_day: None,
        access_24_7: false,
        features: &["advanced_equipment", "priority_support", "unlimited_daily_access"],
    },
    PlanTemplate {
        name: "Premium",
        description: "Around the clock, all equipment and personal storage",
        price: 999.99,
        period: BillingPeriod::Yearly,
        access_hours_per_day: None,
        access_24_7: true,
        features: &["all_equipment", "personal_storage", "access_24_7"],
    },
    PlanTemplate {
        name: "Student",
        description: "6 hours a day, educational workshops at a student rate",
        price: 19.99,
        period: BillingPeriod::Monthly,
        access_hours_per_day: Some(6),
        access_24_7: false,
        features: &["educational_workshops", "discounted_rate"],
    },
    PlanTemplate {
        name: "Service Provider",
        description: "Commercial licence, priority booking and a client meeting space",
        price: 1999.99,
        period: BillingPeriod::Yearly,
        access_hours_per_day: None,
        access_24_7: true,
        features: &["commercial_license", "priority_booking", "client_meeting_space"],
    },
];

/// Checks and normalizes an email address (trimmed, lowercase). Deliberately simple: one
/// `@`, a non-empty local part, a domain with a dot, no spaces or control characters.
pub fn normalize_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_ascii_lowercase();
    let invalid = || Err(format!("{raw:?} is not a valid email address"));
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid();
    };
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return invalid();
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("a date")
    }

    #[test]
    fn active_past_the_end_date_is_expired() {
        let today = day("2026-11-21");
        assert_eq!(effective_status(MemberStatus::Active, Some(day("2026-11-20")), today), MemberStatus::Expired);
        assert_eq!(effective_status(MemberStatus::Active, Some(day("2026-11-21")), today), MemberStatus::Active);
        assert_eq!(effective_status(MemberStatus::Active, None, today), MemberStatus::Active);
        assert_eq!(effective_status(MemberStatus::Suspended, Some(day("2020-01-01")), today), MemberStatus::Suspended);
        assert!(grants_access(MemberStatus::Active));
        assert!(!grants_access(MemberStatus::Suspended) && !grants_access(MemberStatus::Expired));
    }

    #[test]
    fn emails() {
        assert_eq!(normalize_email(" Ada@Example.ORG "), Ok("ada@example.org".into()));
        for bad in
            ["", "ada", "ada@", "@example.org", "ada@example", "a b@example.org", "ada@@example.org", "ada@ex..org"]
        {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn five_default_plans_with_distinct_names() {
        let names: std::collections::HashSet<_> = DEFAULT_PLANS.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), 5);
    }

    proptest! {
        #[test]
        fn normalized_emails_are_stable(raw in "\\PC{0,40}") {
            if let Ok(email) = normalize_email(&raw) {
                prop_assert_eq!(normalize_email(&email), Ok(email.clone()));
                prop_assert!(!email.contains(' '));
            }
        }
    }
}
