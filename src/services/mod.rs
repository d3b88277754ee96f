//! The shop floor's workflows, free of HTTP.
//!
//! Every entry point calls the same functions here: REST handlers (`crate::web`), MQTT events
//! from machines and bridges ([`events`]), the timers ([`sweeper`]), and what comes next (the
//! job router, the bridge). A service takes typed inputs (the caller, ids, validated
//! commands) and returns typed results, with one error enum per service; it knows nothing of
//! status codes. The way down is one way: web -> services -> (actors, store, protocols) ->
//! domain.
//!
//! - [`access`]: may this caller act in this makerspace (not found for outsiders, forbidden for a role
//!   that does not allow it), and what they may do in its reservation book.
//! - [`gate`]: the skill gate on the hot path, and certifications renewed on use.
//! - [`machines`]: machines added, edited and deleted, which their actors follow.
//! - [`kiosk`]: kiosk devices, the unlock decision and the floor's audit log, locks;
//!   [`kiosk_guard`]: kiosks slowed down after too many unknown cards, and the admins' alert.
//! - [`live`]: who may watch a makerspace's live feed, and taking it away from a person who
//!   lost the space.
//! - [`sessions`]: machine sessions ended from a dashboard, from a bridge, or because the
//!   person may no longer use the machine (suspension, removal, revoked skill) or the machine
//!   is gone.
//! - [`job_control`]: pause, resume and cancel a machine's job, for its admins and the member
//!   using it.
//! - [`job_intake`]: a job file from upload to storage, analysed on the way; [`jobs`]: the job
//!   queue (submissions, lists, cancels, every transition pushed and logged);
//!   [`bed_clear`]: a person confirms a machine's bed is clear after a job; [`production`]: an
//!   assigned job sent through its machine's command interface, and the machine's reports
//!   moving it (a finished job's grams charged to its spool).
//! - [`bookings`]: book, approve, reject, cancel, check in, no-shows, the space's rules.
//! - [`waitlist`]: queueing for a taken slot, and offers when it frees up.
//! - [`members`]: members' lifecycle (create, update, suspend, reactivate, remove, bulk) and
//!   its side effects; [`invites`]: joining by invitation; [`cards`]: members' cards.
//! - [`skills`]: certifications granted and revoked, requests and their decisions, and who
//!   sees which skill data.
//! - [`inventory`]: what a makerspace stocks; [`stock`]: its stock log (deducts, receipts,
//!   counts), idempotent by key, the level always the sum of the log; [`spools`]: filament
//!   spools as sub-accounts of their item, loaded on printers, weighed, charged jobs' grams;
//!   [`inventory_bulk`]: many items at once (bulk update, issue, retirement, all or nothing),
//!   imports and exports; [`bom`]: what a space has and lacks of a MakrX Store bill of
//!   materials.
//! - [`reorders`]: low-stock alerts (pushed and mailed); [`purchase_orders`] made from them
//!   and [`purchase_receipts`] taking deliveries into the log; [`makrx_store`]: the Store's
//!   quick-reorder payload and its optional send.
//! - [`pricing`]: a makerspace's price table and the quotes made with it (previews, and the
//!   quotes stored with each job at intake).
//! - [`providers`]: makerspaces in service-provider mode and what they can make now;
//!   [`service_orders`]: the MakrX Store's orders offered to them, accepted, refused or lapsed.
//! - [`broker_access`]: machines' MQTT credentials, the embedded broker's authentication, and
//!   an external Mosquitto's password and ACL files.
//! - [`billing`]: billing settings, machine prices, charges made from sessions and jobs,
//!   manual lines; [`billing_wallet`]: the credit wallet and prepaid mode at the kiosk;
//!   [`billing_invoices`]: drafts, finalizing and numbering; [`billing_settlement`]: payments,
//!   voiding, credit notes and the integrity chain; [`billing_exports`]: the accounting
//!   journal and revenue of a period; [`billing_pdf`]: an invoice as a PDF.
//! - [`events`] and [`sweeper`]: the MQTT events and the timers that drive the workflows.

pub mod access;
pub mod bed_clear;
pub mod billing;
pub mod billing_exports;
pub mod billing_gateways;
pub mod billing_invoices;
pub mod billing_pdf;
pub mod billing_runs;
pub mod billing_settlement;
pub mod billing_wallet;
pub mod bom;
pub mod bookings;
/// What makrcave-bridge needs: the signed offline allowlist, job files, offline taps.
pub mod bridges;
pub mod broker_access;
pub mod cards;
pub mod events;
pub mod gate;
pub mod inventory;
pub mod inventory_bulk;
pub mod invites;
pub mod job_control;
pub mod job_intake;
pub mod job_priority;
pub mod jobs;
pub mod kiosk;
pub mod kiosk_guard;
pub mod live;
pub mod machine_health;
pub mod machines;
pub mod makrx_store;
pub mod members;
pub mod pricing;
pub mod production;
pub mod providers;
pub mod purchase_orders;
pub mod purchase_receipts;
pub mod reorders;
pub mod service_orders;
pub mod sessions;
pub mod skills;
pub mod spools;
pub mod stock;
pub mod sweeper;
pub mod waitlist;

use std::sync::Arc;

use crate::actors::fleet::Fleet;
use crate::actors::hub::Hub;
use crate::actors::state_writer::StateSender;
use crate::config::{Secret, Settings};
use crate::domain::secrets::DataKey;
use crate::notify::email::Mailer;
use crate::store::Store;

/// What the workflows reach: storage, the machines' actors, the live feed, the journal and
/// the mail. Cheap to clone (every part is shared).
#[derive(Clone)]
pub struct Services {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub fleet: Arc<Fleet>,
    pub hub: Arc<Hub>,
    /// The state writer, which also stores the kiosk's audit rows (see `actors::state_writer`).
    pub journal: StateSender,
    /// Sends invitation and welcome emails (SMTP, or the outbox folder).
    pub mailer: Arc<Mailer>,
    /// Key of the card UID hashes.
    pub card_key: Secret,
    /// How credential changes reach the MQTT broker in use.
    pub broker_access: broker_access::BrokerAccess,
    /// Seals the secrets of machines' connections at rest; code that needs a clear secret
    /// passes it to `Connection::secret`.
    pub data_key: DataKey,
    /// Each kiosk's count of unknown cards, and its backoff.
    pub kiosk_guards: Arc<kiosk_guard::KioskGuards>,
    /// The smart plugs the MQTT link follows: told of every added, changed and removed
    /// machine, so that makrcave subscribes to exactly its plugs' topics.
    pub plug_routes: Arc<crate::protocols::plug_routes::PlugRoutes>,
    /// Where job files are stored (a folder, or S3).
    pub files: crate::store::files::FileStore,
    /// The job router's mailbox.
    pub router: crate::actors::router::RouterHandle,
}
