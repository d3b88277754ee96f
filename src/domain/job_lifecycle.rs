//! A job in makrcave's queue (issue 12): what it needs of a machine, and the statuses it moves
//! through. `queued -> assigned -> sending -> printing (<-> paused) -> done | failed |
//! cancelled`; a failed job goes back to `queued` once, for another machine. A service order's
//! job starts `offered` to a provider makerspace, which accepts it (`queued`) or refuses it
//! (`refused`, also when it lets the time to answer pass).
//!
//! (The commands a machine takes and the events it reports are `super::jobs`: that is one
//! machine's job; this is the queue's.)

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::equipment::EquipmentType;
use super::inventory::normalize_color;
use super::validate::{check_chars, Lines};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// A service order's job, offered to a provider makerspace that has not answered yet: the
    /// router leaves it alone until the provider accepts it.
    Offered,
    /// Waiting for a capable, free, cleared machine.
    Queued,
    /// The router chose a machine; the file is about to be sent (or a provider is asked).
    Assigned,
    /// The file is on its way to the machine.
    Sending,
    /// The machine makes it.
    Printing,
    Paused,
    Done,
    Failed,
    Cancelled,
    /// The provider it was offered to refused it, or did not answer in time; the service
    /// order goes on to the next provider with new jobs.
    Refused,
}

impl JobStatus {
    pub const ALL: [JobStatus; 10] = [
        Self::Offered,
        Self::Queued,
        Self::Assigned,
        Self::Sending,
        Self::Printing,
        Self::Paused,
        Self::Done,
        Self::Failed,
        Self::Cancelled,
        Self::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Queued => "queued",
            Self::Assigned => "assigned",
            Self::Sending => "sending",
            Self::Printing => "printing",
            Self::Paused => "paused",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// The job ended (a failed job may still be queued once more for another machine).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled | Self::Refused)
    }

    /// A machine holds the job: it must not take another.
    pub fn holds_machine(self) -> bool {
        matches!(self, Self::Assigned | Self::Sending | Self::Printing | Self::Paused)
    }
}

/// Whether a job may go from `from` to `to`.
pub fn may_move(from: JobStatus, to: JobStatus) -> bool {
    use JobStatus::*;
    match (from, to) {
        (_, Cancelled) => !from.is_final(),
        // A provider accepts an offer (it joins the queue) or refuses it.
        (Offered, Queued | Refused) => true,
        (Queued, Assigned) => true,
        // Back to the queue: a refused assignment, a machine that went away, a failed send,
        // or the one retry of a failed print (its failure is logged first, against the machine).
        (Assigned | Sending | Printing | Paused | Failed, Queued) => true,
        (Assigned, Sending) => true,
        // A machine may report the start before the upload's answer comes back.
        (Assigned | Sending, Printing) => true,
        (Printing, Paused) | (Paused, Printing) => true,
        (Assigned | Sending | Printing | Paused, Failed) => true,
        (Printing | Paused, Done) => true,
        _ => false,
    }
}

/// What a job needs of a machine, besides its type and the room for its bounding box (both
/// read from the file).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// `PLA`, `PETG`, ... (compared without regard to case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 40, pattern = r"^[^\x00-\x1F\x7F]*$")]
    pub material: Option<String>,
    /// `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#?[0-9A-Fa-f]{6}$")]
    pub color: Option<String>,
    /// Nozzle diameter in millimetres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.1, maximum = 3.0)]
    pub nozzle_mm: Option<f64>,
    /// Every tag must be on the machine (`enclosure`, `hardened-nozzle`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 16)]
    pub tags: Vec<String>,
}

/// Largest number of copies one submission makes.
pub const MAX_COPIES: u32 = 100;
/// Priorities run from `-MAX_PRIORITY` to `MAX_PRIORITY`; higher goes first; 0 is normal.
pub const MAX_PRIORITY: i32 = 10;
const MAX_TAGS: usize = 16;
const MAX_TAG_LEN: usize = 40;

/// Why a job's spec is refused (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Invalid(String),
}

impl Requirements {
    /// Checks and normalises: material trimmed, colour as `#RRGGBB` in capitals, tags
    /// trimmed, lowercased and de-duplicated.
    pub fn normalized(mut self) -> Result<Requirements, SpecError> {
        let invalid = |message: String| Err(SpecError::Invalid(message));
        if let Some(material) = self.material.take() {
            let material = material.trim().to_string();
            if material.is_empty() || material.len() > 40 {
                return invalid("material must be 1 to 40 characters".into());
            }
            check_chars("material", &material, Lines::One).map_err(|e| SpecError::Invalid(e.to_string()))?;
            self.material = Some(material);
        }
        if let Some(color) = self.color.take() {
            match normalize_color(&color) {
                Some(rgb) => self.color = Some(format!("#{rgb}")),
                None => return invalid(format!("color {color:?} is not #RRGGBB")),
            }
        }
        if let Some(nozzle) = self.nozzle_mm {
            if !(0.1..=3.0).contains(&nozzle) {
                return invalid("nozzle_mm must be between 0.1 and 3.0".into());
            }
        }
        if self.tags.len() > MAX_TAGS {
            return invalid(format!("at most {MAX_TAGS} tags"));
        }
        let mut tags: Vec<String> = Vec::with_capacity(self.tags.len());
        for tag in &self.tags {
            let tag = tag.trim().to_lowercase();
            if tag.is_empty() || tag.len() > MAX_TAG_LEN {
                return invalid(format!("tags must be 1 to {MAX_TAG_LEN} characters"));
            }
            check_chars("tag", &tag, Lines::One).map_err(|e| SpecError::Invalid(e.to_string()))?;
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        self.tags = tags;
        Ok(self)
    }
}

/// The machine type a file is made on when the submitter does not say: a drawing is cut,
/// anything else is printed.
pub fn default_equipment_type(kind: super::job_files::FileKind) -> EquipmentType {
    match kind {
        super::job_files::FileKind::Svg => EquipmentType::LaserCutter,
        _ => EquipmentType::Printer3d,
    }
}

/// Whether a file of `kind` can be made on a machine of type `equipment`.
pub fn file_fits_type(kind: super::job_files::FileKind, equipment: EquipmentType) -> bool {
    use super::job_files::FileKind::*;
    match equipment {
        EquipmentType::Printer3d => matches!(kind, Gcode | StlBinary | StlAscii | ThreeMf),
        EquipmentType::SlaPrinter => matches!(kind, StlBinary | StlAscii | ThreeMf),
        EquipmentType::LaserCutter => matches!(kind, Svg | Gcode),
        EquipmentType::CncMachine => matches!(kind, Gcode | Svg),
        EquipmentType::Workstation | EquipmentType::Tool => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job_files::FileKind;

    #[test]
    fn the_life_of_a_job() {
        use JobStatus::*;
        let path = [Queued, Assigned, Sending, Printing, Paused, Printing, Done];
        for pair in path.windows(2) {
            assert!(may_move(pair[0], pair[1]), "{:?} -> {:?}", pair[0], pair[1]);
        }
        assert!(may_move(Printing, Queued), "a failed print's one retry");
        assert!(may_move(Assigned, Queued), "a refused assignment");
        for status in JobStatus::ALL {
            assert_eq!(may_move(status, Cancelled), !status.is_final());
            assert!(!may_move(Done, status));
            assert_eq!(may_move(Failed, status), status == Queued, "a failure is retried, nothing else");
            assert!(!may_move(Cancelled, status));
        }
        assert!(may_move(Offered, Queued), "an accepted offer");
        assert!(may_move(Offered, Refused), "a refused offer");
        assert!(!may_move(Offered, Assigned), "nothing is routed before its provider accepts it");
        for status in JobStatus::ALL {
            assert_eq!(may_move(status, Refused), status == Offered, "only an offer is refused");
            assert!(!may_move(status, Offered), "nothing goes back to being offered");
        }
        assert!(!may_move(Queued, Printing), "nothing prints that was not sent");
        assert!(!may_move(Queued, Done));
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn requirements_are_normalised() {
        let spec = Requirements {
            material: Some(" PETG ".into()),
            color: Some("ff8800".into()),
            nozzle_mm: Some(0.4),
            tags: vec![" Enclosure".into(), "enclosure".into(), "hardened".into()],
        };
        let spec = spec.normalized().unwrap();
        assert_eq!(spec.material.as_deref(), Some("PETG"));
        assert_eq!(spec.color.as_deref(), Some("#FF8800"));
        assert_eq!(spec.tags, vec!["enclosure", "hardened"]);
        let bad = |r: Requirements| r.normalized().is_err();
        assert!(bad(Requirements { color: Some("orange".into()), ..Default::default() }));
        assert!(bad(Requirements { nozzle_mm: Some(0.0), ..Default::default() }));
        assert!(bad(Requirements { material: Some("PLA\u{7}".into()), ..Default::default() }));
        assert!(bad(Requirements { tags: vec![String::new()], ..Default::default() }));
    }

    #[test]
    fn files_and_machine_types() {
        assert_eq!(default_equipment_type(FileKind::Svg), EquipmentType::LaserCutter);
        assert_eq!(default_equipment_type(FileKind::StlBinary), EquipmentType::Printer3d);
        assert!(file_fits_type(FileKind::ThreeMf, EquipmentType::Printer3d));
        assert!(!file_fits_type(FileKind::Svg, EquipmentType::Printer3d));
        assert!(!file_fits_type(FileKind::StlAscii, EquipmentType::LaserCutter));
    }
}
