//! How each service's errors answer over HTTP: the status, the stable `error_type` and the
//! fields that help a client. One `From` per service error, so that handlers just use `?`.

use serde_json::json;

use crate::domain::pricing::QuoteError;
use crate::services::access::AccessError;
use crate::services::bed_clear::BedClearError;
use crate::services::bookings::BookingError;
use crate::services::broker_access::BrokerAccessError;
use crate::services::cards::CardError;
use crate::services::gate::GateError;
use crate::services::inventory::InventoryError;
use crate::services::invites::{InviteError, Unusable};
use crate::services::job_control::JobControlError;
use crate::services::job_intake::IntakeError;
use crate::services::job_priority::PriorityError;
use crate::services::jobs::JobError;
use crate::services::kiosk::KioskError;
use crate::services::machines::MachineError;
use crate::services::members::MemberError;
use crate::services::pricing::PricingError;
use crate::services::providers::ProviderError;
use crate::services::reorders::ReorderError;
use crate::services::service_orders::ServiceOrderError;
use crate::services::sessions::SessionError;
use crate::services::skills::SkillError;
use crate::services::spools::SpoolError;
use crate::services::stock::StockError;
use crate::services::waitlist::{WaitlistError, WaitlistResponse};
use crate::web::error::ApiError;

impl From<AccessError> for ApiError {
    fn from(err: AccessError) -> ApiError {
        match err {
            AccessError::NotFound(what) => ApiError::not_found(what),
            AccessError::Forbidden(why) => ApiError::Forbidden(why),
            AccessError::Store(e) => e.into(),
        }
    }
}

impl From<GateError> for ApiError {
    fn from(err: GateError) -> ApiError {
        match err {
            GateError::Refused { detail, error_type, missing_skills } => {
                ApiError::refused_with(403, detail, error_type, json!({ "missing_skills": missing_skills }))
            }
            GateError::UnknownEquipment => ApiError::not_found("equipment"),
            GateError::Store(e) => e.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> ApiError {
        let detail = err.to_string();
        match err {
            SessionError::Access(e) => e.into(),
            SessionError::UnknownEquipment => ApiError::not_found("equipment"),
            SessionError::NotYours => ApiError::Forbidden(detail),
            SessionError::NotInUse | SessionError::EndedMeanwhile => {
                ApiError::Conflict { detail, error_type: "not_in_use" }
            }
        }
    }
}

impl From<KioskError> for ApiError {
    fn from(err: KioskError) -> ApiError {
        let detail = err.to_string();
        match err {
            KioskError::Access(e) => e.into(),
            KioskError::Unauthenticated(why) => ApiError::Unauthorized(why.into()),
            KioskError::UnknownEquipment => ApiError::not_found("equipment"),
            KioskError::UnknownKiosk => ApiError::not_found("kiosk"),
            KioskError::UnknownJob => ApiError::not_found("job"),
            KioskError::NotServed => ApiError::Forbidden(detail),
            KioskError::Invalid(e) => e.into(),
            KioskError::AuditUnavailable => ApiError::Unavailable(detail),
            KioskError::SlowedDown { retry_after } => ApiError::Throttled {
                detail,
                error_type: "kiosk_slowed_down",
                // Whole seconds, rounded up: a client that waits this long is let in.
                retry_after_s: retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
            },
            KioskError::Store(e) => e.into(),
        }
    }
}

impl From<BookingError> for ApiError {
    fn from(err: BookingError) -> ApiError {
        let detail = err.to_string();
        match err {
            BookingError::Access(e) => e.into(),
            BookingError::Forbidden(_) => ApiError::Forbidden(detail),
            BookingError::NotFound(what) => ApiError::not_found(what),
            BookingError::Invalid(e) => e.into(),
            BookingError::Conflict(conflicts) => {
                let list: Vec<serde_json::Value> = conflicts
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "equipment_id": c.equipment_id, "kind": c.kind, "status": c.status,
                               "start": c.start_at, "end": c.end_at})
                    })
                    .collect();
                ApiError::conflict_with(detail, "reservation_conflict", json!({ "conflicting_reservations": list }))
            }
            BookingError::InvalidStatus(_) => ApiError::Conflict { detail, error_type: "invalid_status" },
            BookingError::EquipmentUnavailable => ApiError::Conflict { detail, error_type: "equipment_unavailable" },
            BookingError::OutsideCheckInWindow { opens, closes } => ApiError::conflict_with(
                detail,
                "outside_check_in_window",
                json!({ "check_in_opens_at": opens, "check_in_closes_at": closes }),
            ),
            BookingError::Gate(e) => e.into(),
            BookingError::Store(e) => e.into(),
        }
    }
}

impl From<WaitlistError> for ApiError {
    fn from(err: WaitlistError) -> ApiError {
        let detail = err.to_string();
        match err {
            WaitlistError::Access(e) => e.into(),
            WaitlistError::Booking(e) => e.into(),
            WaitlistError::Forbidden(_) => ApiError::Forbidden(detail),
            WaitlistError::NotFound(what) => ApiError::not_found(what),
            WaitlistError::Invalid(e) => e.into(),
            WaitlistError::SlotAvailable => ApiError::Conflict { detail, error_type: "slot_available" },
            WaitlistError::Duplicate(existing) => ApiError::conflict_with(
                detail,
                "waitlist_duplicate",
                json!({ "existing_entry_id": existing.id, "existing_entry": WaitlistResponse::from(*existing) }),
            ),
            WaitlistError::InvalidStatus(_) => ApiError::Conflict { detail, error_type: "invalid_status" },
            WaitlistError::Store(e) => e.into(),
        }
    }
}

impl From<MemberError> for ApiError {
    fn from(err: MemberError) -> ApiError {
        let detail = err.to_string();
        match err {
            MemberError::Access(e) => e.into(),
            MemberError::NotFound => ApiError::not_found("member"),
            MemberError::Invalid(e) => e.into(),
            MemberError::Duplicate { existing_member_id } => {
                ApiError::conflict_with(detail, "duplicate_member", json!({ "existing_member_id": existing_member_id }))
            }
            MemberError::InvalidStatus(_) => ApiError::Conflict { detail, error_type: "invalid_status" },
            MemberError::Store(e) => e.into(),
        }
    }
}

impl From<SkillError> for ApiError {
    fn from(err: SkillError) -> ApiError {
        let detail = err.to_string();
        match err {
            SkillError::SkillNotFound => ApiError::Refused { status: 404, detail, error_type: "skill_not_found" },
            SkillError::NotFound(what) => ApiError::not_found(what),
            SkillError::Forbidden => ApiError::Forbidden(detail),
            SkillError::Invalid(e) => e.into(),
            SkillError::MissingPrerequisites { names, ids } => ApiError::conflict_with(
                detail,
                "missing_prerequisites",
                json!({"missing_prerequisites": names, "missing_prerequisite_ids": ids}),
            ),
            SkillError::AlreadyRevoked => ApiError::Conflict { detail, error_type: "already_revoked" },
            SkillError::AlreadyCertified => ApiError::Conflict { detail, error_type: "already_certified" },
            SkillError::RequestConflict { existing_request_id } => ApiError::conflict_with(
                detail,
                "request_conflict",
                json!({ "existing_request_id": existing_request_id }),
            ),
            SkillError::RequestNotPending => ApiError::Conflict { detail, error_type: "request_not_pending" },
            SkillError::Vanished(what) => {
                tracing::error!(what, "a record just written could not be read back");
                ApiError::Internal
            }
            SkillError::Store(e) => e.into(),
        }
    }
}

impl From<InviteError> for ApiError {
    fn from(err: InviteError) -> ApiError {
        let detail = err.to_string();
        match err {
            InviteError::Access(e) => e.into(),
            InviteError::Member(e) => e.into(),
            InviteError::NotFound => ApiError::not_found("invitation"),
            InviteError::UnknownToken => ApiError::NotFound(detail),
            InviteError::Invalid(e) => e.into(),
            InviteError::EmailIsMember { existing_member_id } | InviteError::AlreadyMember { existing_member_id } => {
                ApiError::conflict_with(detail, "already_member", json!({ "existing_member_id": existing_member_id }))
            }
            InviteError::Pending { existing_invite_id } => {
                ApiError::conflict_with(detail, "invite_pending", json!({ "existing_invite_id": existing_invite_id }))
            }
            InviteError::Unusable(why) => {
                let error_type = match why {
                    Unusable::Used => "invite_used",
                    Unusable::Cancelled => "invite_cancelled",
                    Unusable::Expired => "invite_expired",
                    Unusable::NotPendingToResend | Unusable::NotPendingToCancel => "invite_not_pending",
                };
                ApiError::Conflict { detail, error_type }
            }
            InviteError::Store(e) => e.into(),
        }
    }
}

impl From<MachineError> for ApiError {
    fn from(err: MachineError) -> ApiError {
        let detail = err.to_string();
        match err {
            MachineError::Access(e) => e.into(),
            MachineError::NotFound => ApiError::not_found("equipment"),
            MachineError::AlreadyExists(_) => ApiError::Conflict { detail, error_type: "already_exists" },
            MachineError::Invalid(e) => e.into(),
            MachineError::Store(e) => e.into(),
        }
    }
}

impl From<BrokerAccessError> for ApiError {
    fn from(err: BrokerAccessError) -> ApiError {
        let detail = err.to_string();
        match err {
            BrokerAccessError::Access(e) => e.into(),
            BrokerAccessError::Machine(e) => e.into(),
            BrokerAccessError::NotAnMqttDevice(_) => ApiError::Conflict { detail, error_type: "not_an_mqtt_device" },
            BrokerAccessError::Store(e) => e.into(),
        }
    }
}

impl From<JobControlError> for ApiError {
    fn from(err: JobControlError) -> ApiError {
        let detail = err.to_string();
        match err {
            JobControlError::Access(e) => e.into(),
            JobControlError::UnknownEquipment => ApiError::not_found("equipment"),
            JobControlError::NotYours => ApiError::Forbidden(detail),
            JobControlError::Refused(refusal) => ApiError::Conflict { detail, error_type: refusal.code() },
        }
    }
}

impl From<CardError> for ApiError {
    fn from(err: CardError) -> ApiError {
        let detail = err.to_string();
        match err {
            CardError::Access(e) => e.into(),
            CardError::Member(e) => e.into(),
            CardError::NotFound => ApiError::not_found("card"),
            CardError::Invalid(e) => e.into(),
            CardError::AlreadyEnrolled => ApiError::Conflict { detail, error_type: "card_already_enrolled" },
            CardError::Store(e) => e.into(),
        }
    }
}

impl From<InventoryError> for ApiError {
    fn from(err: InventoryError) -> ApiError {
        let detail = err.to_string();
        match err {
            InventoryError::Access(e) => e.into(),
            InventoryError::NotFound => ApiError::not_found("inventory item"),
            InventoryError::Invalid(e) => e.into(),
            InventoryError::Duplicate => ApiError::Conflict { detail, error_type: "duplicate_item" },
            InventoryError::Store(e) => e.into(),
        }
    }
}

impl From<StockError> for ApiError {
    fn from(err: StockError) -> ApiError {
        let detail = err.to_string();
        match err {
            StockError::Inventory(e) => e.into(),
            // 400, as the product documents' deduct answers it.
            StockError::Insufficient { level, requested } => ApiError::refused_with(
                400,
                detail,
                "insufficient_stock",
                json!({ "current_stock": level.as_units(), "requested": requested.as_units() }),
            ),
            StockError::SpoolNotFound => ApiError::not_found("spool"),
        }
    }
}

impl From<SpoolError> for ApiError {
    fn from(err: SpoolError) -> ApiError {
        let detail = err.to_string();
        match err {
            SpoolError::Stock(e) => e.into(),
            SpoolError::NotFound => ApiError::not_found("spool"),
            SpoolError::UnknownEquipment => ApiError::not_found("equipment"),
            SpoolError::Invalid(e) => e.into(),
            SpoolError::Duplicate => ApiError::Conflict { detail, error_type: "duplicate_spool" },
            SpoolError::NotAPrinter(_) => ApiError::Conflict { detail, error_type: "not_a_printer" },
            SpoolError::LoadedElsewhere { equipment_id, slot } => ApiError::conflict_with(
                detail,
                "spool_loaded_elsewhere",
                json!({ "equipment_id": equipment_id, "slot": slot }),
            ),
            SpoolError::SlotTaken { slot, spool_id } => {
                ApiError::conflict_with(detail, "slot_taken", json!({ "slot": slot, "spool_id": spool_id }))
            }
            SpoolError::NotLoaded => ApiError::NotFound(detail),
            SpoolError::NoSpoolLoaded { .. } => ApiError::Conflict { detail, error_type: "no_spool_loaded" },
            SpoolError::AmbiguousSpool { slots } => {
                ApiError::conflict_with(detail, "ambiguous_spool", json!({ "slots": slots }))
            }
        }
    }
}

impl From<ReorderError> for ApiError {
    fn from(err: ReorderError) -> ApiError {
        let detail = err.to_string();
        match err {
            ReorderError::Access(e) => e.into(),
            ReorderError::NotFound => ApiError::not_found("purchase order"),
            ReorderError::Invalid(e) => e.into(),
            ReorderError::Duplicate => ApiError::Conflict { detail, error_type: "duplicate_purchase_order" },
            ReorderError::AlertNotOpen { alert_id } => {
                ApiError::conflict_with(detail, "alert_not_open", json!({ "alert_id": alert_id }))
            }
            ReorderError::InvalidStatus(t) => ApiError::conflict_with(
                detail,
                "invalid_status",
                json!({ "status": t.status.as_str(), "action": t.action.as_str() }),
            ),
            ReorderError::OverReceipt { line_id, outstanding, .. } => ApiError::conflict_with(
                detail,
                "over_receipt",
                json!({ "line_id": line_id, "outstanding": outstanding.as_units() }),
            ),
            ReorderError::Busy => ApiError::Conflict { detail, error_type: "purchase_order_busy" },
            ReorderError::Stock(e) => e.into(),
            ReorderError::Store(e) => e.into(),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(err: IntakeError) -> ApiError {
        let detail = err.to_string();
        match err {
            IntakeError::TooLarge { limit } => {
                ApiError::refused_with(413, detail, "file_too_large", json!({ "max_bytes": limit }))
            }
            IntakeError::Empty => ApiError::refused_with(422, detail, "invalid_file", json!({})),
            IntakeError::UnsupportedType => ApiError::refused_with(415, detail, "unsupported_file_type", json!({})),
            IntakeError::Malformed { kind, .. } => {
                ApiError::refused_with(422, detail, "invalid_file", json!({ "file_kind": kind }))
            }
            IntakeError::Store(e) => e.into(),
            IntakeError::Io(e) => {
                tracing::error!(error = %e, "cannot keep an upload");
                ApiError::Internal
            }
            IntakeError::Files(e) => {
                tracing::error!(error = %e, "cannot store a job file");
                ApiError::Unavailable("the file storage is unavailable; try again".into())
            }
        }
    }
}

impl From<JobError> for ApiError {
    fn from(err: JobError) -> ApiError {
        let detail = err.to_string();
        match err {
            JobError::Access(e) => e.into(),
            JobError::Intake(e) => e.into(),
            JobError::NotFound => ApiError::not_found("job"),
            JobError::InvalidSpec(_) => ApiError::Validation(detail),
            JobError::UnknownEquipment => ApiError::refused_with(422, detail, "unknown_equipment", json!({})),
            JobError::Finished(status) => ApiError::conflict_with(detail, "job_finished", json!({ "status": status })),
            JobError::Offered => ApiError::Conflict { detail, error_type: "job_offered" },
            JobError::Machine(refusal) => ApiError::Conflict { detail, error_type: refusal.code() },
            JobError::Store(e) => e.into(),
        }
    }
}

impl From<PriorityError> for ApiError {
    fn from(err: PriorityError) -> ApiError {
        let detail = err.to_string();
        match err {
            PriorityError::Access(e) => e.into(),
            PriorityError::NotFound => ApiError::not_found("job"),
            PriorityError::OutOfRange => ApiError::Validation(detail),
            PriorityError::NotQueued(status) => {
                ApiError::conflict_with(detail, "job_not_queued", json!({ "status": status }))
            }
            PriorityError::Store(e) => e.into(),
        }
    }
}

impl From<BedClearError> for ApiError {
    fn from(err: BedClearError) -> ApiError {
        let detail = err.to_string();
        match err {
            BedClearError::Access(e) => e.into(),
            BedClearError::UnknownEquipment => ApiError::not_found("equipment"),
            BedClearError::NotWaiting => ApiError::Conflict { detail, error_type: "not_awaiting_clear" },
            BedClearError::Store(e) => e.into(),
        }
    }
}

impl From<PricingError> for ApiError {
    fn from(err: PricingError) -> ApiError {
        let detail = err.to_string();
        match err {
            PricingError::Access(e) => e.into(),
            PricingError::Invalid(e) => e.into(),
            PricingError::Unpriceable(why) => {
                let error_type = match why {
                    QuoteError::NotPriced(_) => "not_priced",
                    QuoteError::NoMaterial(_) => "no_material",
                    QuoteError::Missing(_) => "missing_figures",
                    QuoteError::Invalid(_) | QuoteError::TooLarge => "validation_error",
                };
                ApiError::Refused { status: 422, detail, error_type }
            }
            PricingError::Store(e) => e.into(),
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(err: ProviderError) -> ApiError {
        match err {
            ProviderError::Forbidden(why) => ApiError::Forbidden(why.into()),
            ProviderError::Store(e) => e.into(),
        }
    }
}

impl From<ServiceOrderError> for ApiError {
    fn from(err: ServiceOrderError) -> ApiError {
        let detail = err.to_string();
        match err {
            ServiceOrderError::Access(e) => e.into(),
            ServiceOrderError::Forbidden(why) => ApiError::Forbidden(why.into()),
            ServiceOrderError::NotFound => ApiError::not_found("service order"),
            ServiceOrderError::JobNotFound => ApiError::not_found("job"),
            ServiceOrderError::Invalid(_) => ApiError::Validation(detail),
            ServiceOrderError::UnknownFile(_) => ApiError::refused_with(422, detail, "unknown_file", json!({})),
            ServiceOrderError::Conflict(_) => ApiError::Conflict { detail, error_type: "conflict" },
            ServiceOrderError::NoProvider(providers) => {
                ApiError::refused_with(422, detail, "no_provider", json!({ "providers": providers }))
            }
            ServiceOrderError::NotOffered(status) => {
                ApiError::conflict_with(detail, "not_offered", json!({ "status": status }))
            }
            ServiceOrderError::Store(e) => e.into(),
        }
    }
}

impl From<crate::services::billing::BillingError> for ApiError {
    fn from(err: crate::services::billing::BillingError) -> ApiError {
        use crate::services::billing::BillingError;
        let detail = err.to_string();
        match err {
            BillingError::Access(e) => e.into(),
            BillingError::Invalid(e) => e.into(),
            BillingError::NotFound(what) => ApiError::not_found(what),
            BillingError::KeyReused => ApiError::Conflict { detail, error_type: "idempotency_key_reused" },
            BillingError::InsufficientCredit { balance, needed } => ApiError::refused_with(
                409,
                detail,
                "insufficient_credit",
                json!({"balance_minor": balance, "needed_minor": needed}),
            ),
            BillingError::NotPayable => ApiError::Conflict { detail, error_type: "charge_not_payable" },
            BillingError::TooLarge => ApiError::Validation(detail),
            BillingError::Refused { error_type, detail } => ApiError::Conflict { detail, error_type },
            BillingError::Webhook { error_type, detail } => ApiError::refused_with(400, detail, error_type, json!({})),
            BillingError::Gateway { error_type, detail } => ApiError::refused_with(502, detail, error_type, json!({})),
            BillingError::Store(e) => e.into(),
        }
    }
}
