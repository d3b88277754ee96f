//! Today's bookings of the demo floor, around the hour the demo starts: some done, one in
//! progress, some to come, two awaiting approval (the CNC requires it), and a waitlist entry
//! for a taken slot. Seeded once per day: the ids carry the date.

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::{existing_is_fine, DEMO_SPACE};
use crate::domain::booking::{BookingRules, ReservationKind, ReservationStatus};
use crate::store::reservations::{ReservationFilter, ReservationRecord, WaitlistRecord};
use crate::store::{Store, StoreError};

use ReservationStatus::{CheckedIn, Completed, Confirmed, NoShow, Pending};

/// One booking: machine, whose, start in minutes from the current hour, length in minutes,
/// status, purpose.
type Booking = (&'static str, &'static str, i64, i64, ReservationStatus, &'static str);

const DAY: [Booking; 13] = [
    ("demo-cnc-1", "keiko", -240, 120, Completed, "Guitar body roughing"),
    ("demo-laser-1", "dev", -180, 60, Completed, "Acrylic signs for the front desk"),
    ("demo-prusa-2", "jonas", -240, 60, NoShow, "Cable clips"),
    ("demo-prusa-2", "dev", -120, 90, Completed, "Drone frame parts"),
    ("demo-prusa-1", "ada", -150, 120, Completed, "Camera mount"),
    // In progress: the Bambu prints Chloe's helmet (checked in).
    ("demo-bambu-1", "chloe", -60, 180, CheckedIn, "Cosplay helmet, four colours"),
    ("demo-prusa-1", "keiko", 60, 120, Confirmed, "Enclosure brackets"),
    ("demo-prusa-2", "ada", 180, 60, Confirmed, "Replacement knobs"),
    ("demo-form-1", "grace", 120, 180, Confirmed, "Jewellery masters"),
    ("demo-laser-1", "ines", 180, 60, Confirmed, "Birch plywood box"),
    ("demo-bambu-1", "jonas", 180, 120, Confirmed, "Planter pots"),
    // The CNC requires approval: these wait for an admin.
    ("demo-cnc-1", "elena", 120, 120, Pending, "Aluminium plate pocketing"),
    ("demo-cnc-1", "keiko", 300, 60, Pending, "Engraving test"),
];

/// The waitlist entry: Farid waits for the slot Keiko holds on Prusa #1.
const WAITLIST: (&str, &str, i64, i64) = ("demo-prusa-1", "farid", 60, 120);

pub(super) async fn seed(store: &Store, now: DateTime<Utc>) -> Result<(), StoreError> {
    let hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    let day = now.format("%Y%m%d");
    let rules = match store.get_makerspace(DEMO_SPACE).await? {
        Some(space) => BookingRules::from_settings(&space.settings).unwrap_or_default(),
        None => BookingRules::default(),
    };
    for (n, (equipment, user, from, minutes, status, purpose)) in DAY.into_iter().enumerate() {
        let start = hour + Duration::minutes(from);
        let end = start + Duration::minutes(minutes);
        let id = format!("demo-{day}-{n:02}");
        book(store, &rules, record(&id, equipment, user, (start, end), status, purpose, now)).await?;
    }
    // A restart later in the day: a booking is in progress on the Bambu again, if it is free.
    let bambu_busy = store
        .list_reservations(
            DEMO_SPACE,
            &ReservationFilter {
                equipment_id: Some("demo-bambu-1".into()),
                from: Some(now),
                to: Some(now + Duration::seconds(1)),
                limit: 10,
                ..Default::default()
            },
        )
        .await?
        .iter()
        .any(|r| r.status.holds_slot());
    if !bambu_busy {
        let id = format!("demo-{}-now", now.format("%Y%m%d%H"));
        let window = (hour - Duration::minutes(30), hour + Duration::minutes(150));
        let r = record(&id, "demo-bambu-1", "chloe", window, CheckedIn, "Cosplay helmet, four colours", now);
        book(store, &rules, r).await?;
    }

    let (equipment, user, from, minutes) = WAITLIST;
    let id = format!("demo-{day}-wait");
    if store.get_waitlist(DEMO_SPACE, &id).await?.is_none() {
        let start = hour + Duration::minutes(from);
        let entry = WaitlistRecord {
            id,
            makerspace_id: DEMO_SPACE.into(),
            equipment_id: equipment.into(),
            user_id: user.into(),
            start_at: start,
            end_at: start + Duration::minutes(minutes),
            status: "waiting".into(),
            offered_at: None,
            created_at: now,
        };
        // Err: Farid already waits for that slot.
        let _ = store.join_waitlist(&entry).await?;
    }
    Ok(())
}

fn record(
    id: &str,
    equipment: &str,
    user: &str,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    status: ReservationStatus,
    purpose: &str,
    now: DateTime<Utc>,
) -> ReservationRecord {
    ReservationRecord {
        id: id.into(),
        makerspace_id: DEMO_SPACE.into(),
        equipment_id: equipment.into(),
        user_id: user.into(),
        kind: ReservationKind::Booking,
        status,
        start_at: start,
        end_at: end,
        purpose: Some(purpose.into()),
        created_by: user.into(),
        decided_by: None,
        reason: None,
        checked_in_at: matches!(status, CheckedIn | Completed).then_some(start),
        created_at: now,
        updated_at: now,
    }
}

/// Stores a booking unless it exists; one that would overlap a holding booking is left out.
async fn book(store: &Store, rules: &BookingRules, r: ReservationRecord) -> Result<(), StoreError> {
    if store.get_reservation(DEMO_SPACE, &r.id).await?.is_some() {
        return Ok(());
    }
    match store.create_reservation(&r, rules.guarded(r.start_at, r.end_at)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(in_the_way)) => {
            tracing::debug!(booking = %r.id, others = in_the_way.len(), "demo booking left out: the slot is taken");
            Ok(())
        }
        Err(e) => existing_is_fine(Err(e)),
    }
}
