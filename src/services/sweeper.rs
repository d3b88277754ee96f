//! The timers that drive the booking workflows: the machines are told about the bookings
//! starting soon, no-shows are released, finished bookings completed, and waitlist offers
//! not taken in time expire; service orders whose provider did not answer in time go on to
//! the next provider; ended sessions are charged, and the monthly billing run is done when due.

use crate::logging::escaped;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{billing, billing_runs, bookings, service_orders, waitlist, Services};

/// How often the no-show and offer sweeps run.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often the machine actors are told again about the bookings starting soon. Bookings
/// are told to their machine when they change; this catches up with those made far ahead
/// (an actor keeps only its nearest ones) and is how actors learn the book at start.
const FEED_EVERY: Duration = Duration::from_secs(5 * 60);

/// Runs until `stop` is cancelled: tells the machines about the bookings starting soon (at
/// once, then every [`FEED_EVERY`]), and every [`SWEEP_EVERY`] runs the no-show sweep and
/// expires waitlist offers not taken in time.
pub fn spawn(svc: Services, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut fed_at: Option<std::time::Instant> = None;
        let mut run_looked_at: Option<std::time::Instant> = None;
        loop {
            if fed_at.is_none_or(|at| at.elapsed() >= FEED_EVERY) {
                match bookings::feed_fleet(&svc, Utc::now()).await {
                    Ok(_) => fed_at = Some(std::time::Instant::now()),
                    Err(e) => tracing::warn!(error = %escaped(&e), "bookings not told to the machines"),
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(SWEEP_EVERY) => {
                    if let Err(e) = bookings::sweep(&svc, Utc::now()).await {
                        tracing::warn!(error = %escaped(&e), "reservation sweep failed");
                    }
                    if let Err(e) = waitlist::expire_offers(&svc, Utc::now()).await {
                        tracing::warn!(error = %escaped(&e), "waitlist offer sweep failed");
                    }
                    if let Err(e) = service_orders::lapse_offers(&svc, Utc::now()).await {
                        tracing::warn!(error = %escaped(&e), "service order offer sweep failed");
                    }
                    if let Err(e) = billing::charge_ended_sessions(&svc).await {
                        tracing::warn!(error = %escaped(&e), "ended sessions not charged yet");
                    }
                    if run_looked_at.is_none_or(|at| at.elapsed() >= billing_runs::LOOK_EVERY) {
                        run_looked_at = Some(std::time::Instant::now());
                        if let Err(e) = billing_runs::run_due(&svc, Utc::now()).await {
                            tracing::warn!(error = %escaped(&e), "monthly billing run not done yet");
                        }
                    }
                }
            }
        }
    })
}
