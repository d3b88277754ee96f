//! A service order's life (issue 12, part 5): offered to one provider at a time until one
//! accepts it or none is left. `offered -> accepted`, `offered -> offered` (refused or lapsed,
//! offered to the next provider), `offered -> unroutable` (no provider left).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::job_files::FileKind;

/// Where a service order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceOrderStatus {
    /// Offered to a provider that has not answered yet.
    Offered,
    /// A provider accepted it: its jobs are in that provider's queue.
    Accepted,
    /// Every capable provider refused it or let the offer lapse.
    Unroutable,
}

impl ServiceOrderStatus {
    pub const ALL: [ServiceOrderStatus; 3] = [Self::Offered, Self::Accepted, Self::Unroutable];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Accepted => "accepted",
            Self::Unroutable => "unroutable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// One line of a service order's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderEvent {
    Offered,
    Accepted,
    /// The provider said no.
    Refused,
    /// The provider did not answer within its time.
    TimedOut,
    /// No provider is left to offer it to.
    Unroutable,
}

impl OrderEvent {
    pub const ALL: [OrderEvent; 5] = [Self::Offered, Self::Accepted, Self::Refused, Self::TimedOut, Self::Unroutable];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Accepted => "accepted",
            Self::Refused => "refused",
            Self::TimedOut => "timed_out",
            Self::Unroutable => "unroutable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == s)
    }
}

/// The name an order's jobs carry in the provider's queue: the order's id with the file's
/// usual extension (the Store's own file name never reaches makrcave).
pub fn job_file_name(service_order_id: &str, kind: FileKind) -> String {
    let extension = match kind {
        FileKind::Gcode => "gcode",
        FileKind::StlBinary | FileKind::StlAscii => "stl",
        FileKind::ThreeMf => "3mf",
        FileKind::Svg => "svg",
    };
    format!("{service_order_id}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for status in ServiceOrderStatus::ALL {
            assert_eq!(ServiceOrderStatus::parse(status.as_str()), Some(status));
        }
        for event in OrderEvent::ALL {
            assert_eq!(OrderEvent::parse(event.as_str()), Some(event));
            assert_eq!(serde_json::to_value(event).unwrap(), serde_json::json!(event.as_str()));
        }
        assert_eq!(ServiceOrderStatus::parse("cancelled"), None);
    }

    #[test]
    fn job_files_are_named_after_the_order() {
        assert_eq!(job_file_name("so-1", FileKind::StlBinary), "so-1.stl");
        assert_eq!(job_file_name("so-1", FileKind::ThreeMf), "so-1.3mf");
    }
}
