//! Revenue of a period, grouped by month, machine or material: the lines of finalized
//! invoices less the lines of credit notes (negative already), each counted in the month of
//! its document.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How revenue is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevenueBy {
    /// The document's month, UTC (`2026-11`).
    Month,
    /// The machine the line's charge was made on.
    Machine,
    /// The material of the line's job.
    Material,
}

/// A document's line as revenue counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevenueLine {
    pub document_id: String,
    /// The invoice's finalization, the credit note's issue.
    pub at: DateTime<Utc>,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    /// `(id, name)` of the machine, when the line's charge names one.
    pub machine: Option<(String, String)>,
    /// The job's material, when the line's charge was a job that named one.
    pub material: Option<String>,
}

/// One group: `key` null and `label` `unknown` for lines without a machine or material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RevenueRow {
    pub key: Option<String>,
    pub label: String,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    /// How many documents (invoices and credit notes) have lines in the group.
    pub documents: i64,
}

/// Sums lines per group, in key order (the unknown group last).
pub fn revenue(lines: &[RevenueLine], by: RevenueBy) -> Vec<RevenueRow> {
    // (is unknown, key) orders known keys first.
    let mut groups: BTreeMap<(bool, String), (RevenueRow, Vec<&str>)> = BTreeMap::new();
    for line in lines {
        let (key, label) = match by {
            RevenueBy::Month => {
                let month = line.at.format("%Y-%m").to_string();
                (Some(month.clone()), month)
            }
            RevenueBy::Machine => match &line.machine {
                Some((id, name)) => (Some(id.clone()), name.clone()),
                None => (None, "unknown".to_string()),
            },
            RevenueBy::Material => match &line.material {
                Some(m) => (Some(m.clone()), m.clone()),
                None => (None, "unknown".to_string()),
            },
        };
        let slot = (key.is_none(), key.clone().unwrap_or_default());
        let (row, docs) = groups.entry(slot).or_insert_with(|| {
            (RevenueRow { key, label, net_minor: 0, tax_minor: 0, total_minor: 0, documents: 0 }, Vec::new())
        });
        row.net_minor += line.net_minor;
        row.tax_minor += line.tax_minor;
        row.total_minor += line.total_minor;
        if !docs.contains(&line.document_id.as_str()) {
            docs.push(&line.document_id);
            row.documents += 1;
        }
    }
    groups.into_values().map(|(row, _)| row).collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn line(doc: &str, month: u32, net: i64, machine: Option<&str>, material: Option<&str>) -> RevenueLine {
        RevenueLine {
            document_id: doc.into(),
            at: Utc.with_ymd_and_hms(2026, month, 15, 12, 0, 0).unwrap(),
            net_minor: net,
            tax_minor: net / 5,
            total_minor: net + net / 5,
            machine: machine.map(|m| (m.to_string(), format!("Machine {m}"))),
            material: material.map(str::to_string),
        }
    }

    #[test]
    fn lines_are_grouped_by_month_machine_and_material() {
        let lines = [
            line("inv-1", 10, 1000, Some("laser"), None),
            line("inv-1", 10, 500, Some("mk4"), Some("PLA")),
            line("inv-2", 11, 200, None, None),
            line("cn-1", 11, -500, Some("mk4"), Some("PLA")),
        ];
        let by_month = revenue(&lines, RevenueBy::Month);
        assert_eq!(by_month.len(), 2);
        assert_eq!(
            (by_month[0].key.as_deref(), by_month[0].net_minor, by_month[0].documents),
            (Some("2026-10"), 1500, 1)
        );
        assert_eq!((by_month[1].net_minor, by_month[1].tax_minor, by_month[1].documents), (-300, -60, 2));

        let by_machine = revenue(&lines, RevenueBy::Machine);
        let keys: Vec<_> = by_machine.iter().map(|r| (r.key.as_deref(), r.label.as_str(), r.net_minor)).collect();
        assert_eq!(
            keys,
            vec![(Some("laser"), "Machine laser", 1000), (Some("mk4"), "Machine mk4", 0), (None, "unknown", 200)]
        );

        let by_material = revenue(&lines, RevenueBy::Material);
        assert_eq!(by_material[0].key.as_deref(), Some("PLA"));
        assert_eq!((by_material[1].label.as_str(), by_material[1].net_minor), ("unknown", 1200));
        for by in [RevenueBy::Month, RevenueBy::Machine, RevenueBy::Material] {
            let total: i64 = revenue(&lines, by).iter().map(|r| r.total_minor).sum();
            assert_eq!(total, lines.iter().map(|l| l.total_minor).sum::<i64>(), "{by:?}");
        }
    }
}
