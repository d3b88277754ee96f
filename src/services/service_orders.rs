//! Service orders (issue 12, part 5): the MakrX Store routes a fabrication order to makrcave's
//! providers. The order is offered to the best capable provider ([`crate::domain::providers`])
//! as `offered` jobs in its queue (one per copy), which the router leaves alone; the provider's
//! admins or service providers accept it (the jobs are queued and the router takes them) or
//! refuse it, and an offer not answered within the provider's `accept_timeout_s` counts as
//! refused ([`lapse_offers`], run by the sweeper). A refused order goes at once to the next
//! capable provider not tried yet, or becomes `unroutable`.
//!
//! Everything lives in the database (the order, its jobs, its history, the offer's deadline):
//! a restart loses nothing, and every decision is a compare-and-set on the order's round, so
//! an answer racing a timeout (or another node) is decided once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::{Decision, Principal};
use crate::domain::ids::{new_id, validate_id};
use crate::domain::job_files::facts::{kind_from_name, FileFacts};
use crate::domain::job_files::FileKind;
use crate::domain::job_lifecycle::{file_fits_type, JobStatus, Requirements, MAX_COPIES};
use crate::domain::pricing::Quality;
use crate::domain::providers::{choose, Candidate, Preferences, ProviderRefusal, ServiceType};
use crate::domain::routing::JobNeeds;
use crate::domain::service_orders::{job_file_name, OrderEvent, ServiceOrderStatus};
use crate::domain::validate::optional_text;
use crate::store::jobs::JobRecord;
use crate::store::service_orders::{Offer, OfferDecision, Outcome, ServiceOrderEventRecord, ServiceOrderRecord};
use crate::store::StoreError;

use super::access::{space_for, AccessError};
use super::jobs::{announce, quotes_for, JobView, NewBatch};
use super::Services;

/// Most makerspaces a request may prefer.
pub const MAX_PREFERRED: usize = 20;
/// Most lapsed offers handled in one sweep (the next sweep takes the rest).
const LAPSED_PER_SWEEP: i64 = 100;
/// Who moves an offer that nobody answered in time.
const TIMEOUT_ACTOR: &str = "timeout";

#[derive(Debug, thiserror::Error)]
pub enum ServiceOrderError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("service order not found")]
    NotFound,
    #[error("job not found")]
    JobNotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("no file with SHA-256 {0} was uploaded: upload it first (POST /api/v1/jobs/upload)")]
    UnknownFile(String),
    #[error("service order {0} exists already with another request")]
    Conflict(String),
    #[error("no provider can make this order now")]
    NoProvider(Vec<ProviderRefusal>),
    #[error("the job is {0}, not offered: there is no offer to accept or refuse")]
    NotOffered(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A fabrication order from the MakrX Store (`POST /api/v1/jobs/route-service-order`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceOrderRequest {
    /// The Store's id of the order; sending it again answers the same order.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub service_order_id: String,
    /// The file, as `POST /api/v1/jobs/upload` answered it.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub file_sha256: String,
    pub service_type: ServiceType,
    #[serde(default)]
    pub requirements: Requirements,
    /// Copies to make, each a job of its own [default: 1].
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub copies: Option<u32>,
    #[serde(default)]
    pub preferences: OrderPreferences,
}

/// What the Store would like, as far as it can be had.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPreferences {
    /// Providers to try first, in this order.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub makerspace_ids: Vec<String>,
    /// Providers whose location contains this text (whatever the case) come next.
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^\P{Cc}*$")]
    pub location: Option<String>,
    /// The quality of the quote kept with the jobs.
    #[serde(default)]
    pub quality: Option<Quality>,
    /// The material of the quote kept with the jobs (when the requirements name none).
    #[serde(default)]
    #[schema(max_length = 40, pattern = r"^\P{Cc}*$")]
    pub material: Option<String>,
}

impl ServiceOrderRequest {
    /// Checks and normalises, so that a resend is compared with what was understood.
    fn normalized(mut self) -> Result<ServiceOrderRequest, ServiceOrderError> {
        let invalid = |message: String| ServiceOrderError::Invalid(message);
        validate_id(&self.service_order_id).map_err(|e| invalid(format!("service_order_id: {e}")))?;
        self.file_sha256 = self.file_sha256.to_ascii_lowercase();
        if self.file_sha256.len() != 64 || !self.file_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("file_sha256 must be 64 hexadecimal digits".into()));
        }
        self.requirements = self.requirements.normalized().map_err(|e| invalid(e.to_string()))?;
        let copies = self.copies.unwrap_or(1);
        if !(1..=MAX_COPIES).contains(&copies) {
            return Err(invalid(format!("copies must be 1 to {MAX_COPIES}")));
        }
        self.copies = Some(copies);
        let preferences = &mut self.preferences;
        if preferences.makerspace_ids.len() > MAX_PREFERRED {
            return Err(invalid(format!("preferences.makerspace_ids: at most {MAX_PREFERRED}")));
        }
        preferences.location = one_line("preferences.location", preferences.location.take(), 500)?;
        preferences.material = one_line("preferences.material", preferences.material.take(), 40)?;
        Ok(self)
    }

    fn copies(&self) -> u32 {
        self.copies.unwrap_or(1)
    }
}

/// A trimmed one-line text of at most `max` characters; a blank one is none.
fn one_line(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ServiceOrderError> {
    let value = optional_text(field, value, max).map_err(|e| ServiceOrderError::Invalid(e.0))?;
    Ok(value.map(|v| v.trim().to_string()))
}

/// One of an order's jobs, as the Store follows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderJobView {
    pub id: String,
    pub copy_number: i32,
    pub status: JobStatus,
    pub progress: Option<f64>,
    pub failure_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One line of an order's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderEventView {
    /// The offer it concerns (1 for the first).
    pub round: i32,
    pub event: OrderEvent,
    pub makerspace_id: Option<String>,
    /// The service, a person of the provider, or `timeout`.
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<ServiceOrderEventRecord> for OrderEventView {
    fn from(e: ServiceOrderEventRecord) -> Self {
        OrderEventView {
            round: e.round,
            event: e.event,
            makerspace_id: e.makerspace_id,
            actor: e.actor,
            reason: e.reason,
            at: e.at,
        }
    }
}

/// A service order as its service follows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceOrderView {
    pub service_order_id: String,
    pub status: ServiceOrderStatus,
    pub service_type: ServiceType,
    pub file_sha256: String,
    pub copies: u32,
    /// The provider it is offered to or was accepted by.
    pub makerspace_id: Option<String>,
    pub job_ids: Vec<String>,
    pub jobs: Vec<OrderJobView>,
    /// The provider's price options for the file (its price table's).
    #[schema(value_type = Option<Object>)]
    pub quotes: Option<serde_json::Value>,
    /// The option matching the preferences' material and quality, if any.
    #[schema(value_type = Option<Object>)]
    pub chosen_quote: Option<serde_json::Value>,
    /// Providers that refused it or let the offer lapse.
    pub tried: Vec<String>,
    /// When the current offer counts as refused if not answered.
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub history: Vec<OrderEventView>,
}

/// What a provider's answer did: the order's status now, and the provider's jobs of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OfferAnswerView {
    pub service_order_id: String,
    pub status: ServiceOrderStatus,
    pub jobs: Vec<JobView>,
}

/// An order offered to a provider, as the provider sees it: what it is asked to make.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OfferView {
    pub service_order_id: String,
    pub service_type: ServiceType,
    pub copies: u32,
    /// Its jobs in the provider's queue, `offered`: accept or reject any one of them.
    pub jobs: Vec<JobView>,
    pub offered_at: Option<DateTime<Utc>>,
    /// When the offer counts as refused if not answered.
    pub offer_expires_at: Option<DateTime<Utc>>,
}

/// The order's file, read once.
struct OrderFile {
    kind: FileKind,
    facts: FileFacts,
}

async fn order_file(svc: &Services, sha256: &str) -> Result<OrderFile, ServiceOrderError> {
    let file = svc.store.get_job_file(sha256).await?.ok_or_else(|| ServiceOrderError::UnknownFile(sha256.into()))?;
    let kind =
        kind_from_name(&file.kind).ok_or_else(|| StoreError::Corrupt(format!("job_files.kind {:?}", file.kind)))?;
    let facts = serde_json::from_value(file.analysis).unwrap_or_default();
    Ok(OrderFile { kind, facts })
}

/// What the order needs of a machine: its requirements, and the file's bounding box and
/// nozzle (as the router reads them for a queued job).
fn needs_of(request: &ServiceOrderRequest, file: &OrderFile) -> JobNeeds {
    let requirements = &request.requirements;
    JobNeeds {
        equipment_type: request.service_type.equipment_type(),
        material: requirements.material.clone(),
        color: requirements.color.clone(),
        nozzle_mm: requirements.nozzle_mm.or(file.facts.nozzle_mm),
        bounding_box_mm: file.facts.size_mm,
        tags: requirements.tags.clone(),
    }
}

/// The best capable provider not tried yet, if any, and why each other one is not.
async fn best_provider(
    svc: &Services,
    request: &ServiceOrderRequest,
    file: &OrderFile,
    tried: &[String],
) -> Result<(Option<Candidate>, Vec<ProviderRefusal>), ServiceOrderError> {
    let candidates = super::providers::candidates(svc).await?;
    let preferences = Preferences {
        makerspace_ids: request.preferences.makerspace_ids.clone(),
        location: request.preferences.location.clone(),
    };
    let choice = choose(&needs_of(request, file), request.service_type, &candidates, tried, &preferences);
    if choice.material_set_aside {
        tracing::info!(service_order_id = %request.service_order_id,
            "no provider has the order's material loaded: offered regardless, the provider loads it");
    }
    let best = choice.best().and_then(|b| candidates.iter().find(|c| c.makerspace_id == b.makerspace_id)).cloned();
    Ok((best, choice.refusals))
}

/// The offer of an order to `provider`: its jobs there, `offered`, with the provider's quotes.
async fn offer_to(
    svc: &Services,
    caller_id: &str,
    request: &ServiceOrderRequest,
    file: &OrderFile,
    provider: &Candidate,
    now: DateTime<Utc>,
) -> Offer {
    let equipment_type = request.service_type.equipment_type();
    let quotes = quotes_for(svc, &provider.makerspace_id, equipment_type, &file.facts).await;
    let chosen_quote = request.preferences.quality.and_then(|quality| {
        let material = request.requirements.material.as_deref().or(request.preferences.material.as_deref());
        quotes.as_ref()?.option(material, quality).and_then(|o| serde_json::to_value(o).ok())
    });
    let batch = NewBatch {
        makerspace_id: provider.makerspace_id.clone(),
        owner_id: caller_id.to_string(),
        file_sha256: request.file_sha256.clone(),
        file_name: job_file_name(&request.service_order_id, file.kind),
        equipment_type,
        requirements: request.requirements.clone(),
        pinned_equipment_id: None,
        priority: 0,
        status: JobStatus::Offered,
        copies: request.copies(),
        facts: &file.facts,
        quotes: quotes.and_then(|q| serde_json::to_value(q).ok()),
        chosen_quote,
    };
    let batch_id = new_id();
    let timeout_s = provider.settings.accept_timeout_s.min(i64::MAX as u64) as i64;
    Offer {
        makerspace_id: provider.makerspace_id.clone(),
        jobs: batch.jobs(&batch_id, now),
        batch_id,
        timeout_s,
        expires_at: now + chrono::Duration::seconds(timeout_s),
    }
}

/// Checks that the caller may upload a service order's file (a service, or super_admin).
pub fn may_upload(caller: &Principal) -> Result<(), ServiceOrderError> {
    match caller.can_call_services() {
        Decision::Allow => Ok(()),
        _ => Err(ServiceOrderError::Forbidden("only services upload files for service orders")),
    }
}

/// Routes a service order: stores it and offers it to the best capable provider. `true` when
/// it was made now; a resend of the same request answers the stored order (`false`), another
/// request under the same id is a conflict. No capable provider: `NoProvider` with each
/// provider's reason, and nothing stored (the Store may try again later).
pub async fn route(
    svc: &Services,
    caller: &Principal,
    request: ServiceOrderRequest,
) -> Result<(ServiceOrderView, bool), ServiceOrderError> {
    may_upload(caller).map_err(|_| ServiceOrderError::Forbidden("only services route service orders"))?;
    let request = request.normalized()?;
    let understood = serde_json::to_value(&request).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(existing) = svc.store.get_service_order(&request.service_order_id).await? {
        return same_order(svc, caller, existing, &understood).await.map(|view| (view, false));
    }
    let file = order_file(svc, &request.file_sha256).await?;
    let equipment_type = request.service_type.equipment_type();
    if !file_fits_type(file.kind, equipment_type) {
        return Err(ServiceOrderError::Invalid(format!(
            "a {} file is not made by {}",
            file.facts.kind,
            request.service_type.as_str()
        )));
    }
    let (best, refusals) = best_provider(svc, &request, &file, &[]).await?;
    let provider = best.ok_or(ServiceOrderError::NoProvider(refusals))?;
    let now = Utc::now();
    let offer = offer_to(svc, &caller.user_id, &request, &file, &provider, now).await;
    let order = ServiceOrderRecord {
        id: request.service_order_id.clone(),
        caller_id: caller.user_id.clone(),
        request: understood.clone(),
        status: ServiceOrderStatus::Offered,
        makerspace_id: Some(offer.makerspace_id.clone()),
        batch_id: Some(offer.batch_id.clone()),
        job_ids: offer.jobs.iter().map(|j| j.id.clone()).collect(),
        tried: Vec::new(),
        round: 1,
        offered_at: Some(now),
        offer_timeout_s: Some(offer.timeout_s),
        offer_expires_at: Some(offer.expires_at),
        created_at: now,
        updated_at: now,
    };
    match svc.store.insert_service_order(&order, &offer).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            // The same id arrived twice at once: the first one stored is the order.
            let existing = svc.store.get_service_order(&order.id).await?.ok_or(ServiceOrderError::NotFound)?;
            return same_order(svc, caller, existing, &understood).await.map(|view| (view, false));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(service_order_id = %order.id, makerspace_id = %offer.makerspace_id, copies = request.copies(),
        caller = %caller.user_id, "service order offered");
    for job in &offer.jobs {
        announce(svc, job);
    }
    Ok((view(svc, order).await?, true))
}

/// A resend: the stored order if the request is the same (and from the same service).
async fn same_order(
    svc: &Services,
    caller: &Principal,
    existing: ServiceOrderRecord,
    understood: &serde_json::Value,
) -> Result<ServiceOrderView, ServiceOrderError> {
    if existing.caller_id != caller.user_id || existing.request != *understood {
        return Err(ServiceOrderError::Conflict(existing.id));
    }
    Ok(view(svc, existing).await?)
}

/// An order with its jobs' statuses and its history.
async fn view(svc: &Services, order: ServiceOrderRecord) -> Result<ServiceOrderView, StoreError> {
    let request: ServiceOrderRequest = serde_json::from_value(order.request.clone())
        .map_err(|e| StoreError::Corrupt(format!("service_orders.request: {e}")))?;
    let mut jobs = Vec::with_capacity(order.job_ids.len());
    let mut quotes = (None, None);
    if let Some(space) = &order.makerspace_id {
        for id in &order.job_ids {
            let Some(job) = svc.store.get_job(space, id).await? else { continue };
            if quotes.0.is_none() {
                quotes = (job.quotes.clone(), job.chosen_quote.clone());
            }
            jobs.push(OrderJobView {
                id: job.id,
                copy_number: job.copy_number,
                status: job.status,
                progress: job.progress,
                failure_reason: job.failure_reason,
                updated_at: job.updated_at,
            });
        }
    }
    let history = svc.store.service_order_events(&order.id).await?.into_iter().map(OrderEventView::from).collect();
    Ok(ServiceOrderView {
        service_order_id: order.id,
        status: order.status,
        service_type: request.service_type,
        copies: request.copies(),
        file_sha256: request.file_sha256,
        makerspace_id: order.makerspace_id,
        job_ids: order.job_ids,
        jobs,
        quotes: quotes.0,
        chosen_quote: quotes.1,
        tried: order.tried,
        offer_expires_at: order.offer_expires_at,
        created_at: order.created_at,
        updated_at: order.updated_at,
        history,
    })
}

/// A service order, for the service that sent it and the platform's admins (another service
/// gets "not found").
pub async fn get(svc: &Services, caller: &Principal, id: &str) -> Result<ServiceOrderView, ServiceOrderError> {
    if caller.can_read_services() != Decision::Allow {
        return Err(ServiceOrderError::Forbidden("only services and the platform's admins read service orders"));
    }
    let order = svc.store.get_service_order(id).await?.ok_or(ServiceOrderError::NotFound)?;
    if !caller.reads_every_space() && order.caller_id != caller.user_id {
        return Err(ServiceOrderError::NotFound);
    }
    Ok(view(svc, order).await?)
}

/// The orders offered to a makerspace now, for those who answer its offers and the
/// platform's admins.
pub async fn offers(svc: &Services, caller: &Principal, space_id: &str) -> Result<Vec<OfferView>, ServiceOrderError> {
    space_for(svc, caller.can_read_offers(space_id), space_id).await?;
    let mut offers = Vec::new();
    for order in svc.store.offers_to(space_id).await? {
        let request: ServiceOrderRequest = serde_json::from_value(order.request.clone())
            .map_err(|e| StoreError::Corrupt(format!("service_orders.request: {e}")))?;
        let mut jobs = Vec::with_capacity(order.job_ids.len());
        for id in &order.job_ids {
            jobs.extend(svc.store.get_job(space_id, id).await?.map(JobView::from));
        }
        offers.push(OfferView {
            service_order_id: order.id,
            service_type: request.service_type,
            copies: request.copies(),
            jobs,
            offered_at: order.offered_at,
            offer_expires_at: order.offer_expires_at,
        });
    }
    Ok(offers)
}

/// The open offer a provider's job belongs to, for a caller who may answer the space's offers.
async fn open_offer(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    job_id: &str,
) -> Result<(JobRecord, ServiceOrderRecord), ServiceOrderError> {
    space_for(svc, caller.can_answer_offers(space_id), space_id).await?;
    let job = svc.store.get_job(space_id, job_id).await?.ok_or(ServiceOrderError::JobNotFound)?;
    if job.status != JobStatus::Offered {
        return Err(ServiceOrderError::NotOffered(job.status.as_str()));
    }
    let order = svc.store.service_order_of_batch(space_id, &job.batch_id).await?;
    let order = order.filter(|o| o.status == ServiceOrderStatus::Offered);
    let order = order.ok_or(ServiceOrderError::NotOffered(job.status.as_str()))?;
    Ok((job, order))
}

/// When a decision found the offer decided meanwhile: what the job is now.
async fn decided_meanwhile(svc: &Services, job: &JobRecord) -> ServiceOrderError {
    match svc.store.get_job(&job.makerspace_id, &job.id).await {
        Ok(Some(now)) => ServiceOrderError::NotOffered(now.status.as_str()),
        Ok(None) => ServiceOrderError::JobNotFound,
        Err(e) => e.into(),
    }
}

/// A provider accepts an offer: every copy joins its queue, and the router takes them.
pub async fn accept(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    job_id: &str,
) -> Result<OfferAnswerView, ServiceOrderError> {
    let (job, order) = open_offer(svc, caller, space_id, job_id).await?;
    let decision = OfferDecision {
        order_id: order.id.clone(),
        round: order.round,
        outcome: Outcome::Accepted,
        actor: caller.user_id.clone(),
        reason: None,
        at: Utc::now(),
    };
    let Some((order, moved)) = svc.store.decide_offer(&decision).await? else {
        return Err(decided_meanwhile(svc, &job).await);
    };
    tracing::info!(service_order_id = %order.id, makerspace_id = %space_id, by = %caller.user_id, "service order accepted");
    for job in &moved {
        announce(svc, job);
        svc.router.job_queued(job.clone());
    }
    Ok(OfferAnswerView {
        service_order_id: order.id,
        status: order.status,
        jobs: moved.into_iter().map(JobView::from).collect(),
    })
}

/// A provider refuses an offer: its jobs are refused and the order goes at once to the next
/// capable provider (or becomes unroutable).
pub async fn reject(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    job_id: &str,
    reason: Option<String>,
) -> Result<OfferAnswerView, ServiceOrderError> {
    let reason = one_line("reason", reason, 500)?;
    let (job, order) = open_offer(svc, caller, space_id, job_id).await?;
    let passed = pass_on(svc, &order, OrderEvent::Refused, &caller.user_id, reason, Utc::now()).await?;
    let Some((order, moved)) = passed else {
        return Err(decided_meanwhile(svc, &job).await);
    };
    Ok(OfferAnswerView {
        service_order_id: order.id,
        status: order.status,
        jobs: moved.into_iter().map(JobView::from).collect(),
    })
}

/// Ends the order's current offer as `event` (refused, lapsed) and offers the order to the
/// next capable provider not tried yet. `None`: the offer was decided meanwhile.
async fn pass_on(
    svc: &Services,
    order: &ServiceOrderRecord,
    event: OrderEvent,
    actor: &str,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<(ServiceOrderRecord, Vec<JobRecord>)>, ServiceOrderError> {
    let request: ServiceOrderRequest = serde_json::from_value(order.request.clone())
        .map_err(|e| StoreError::Corrupt(format!("service_orders.request: {e}")))?;
    let mut tried = order.tried.clone();
    tried.extend(order.makerspace_id.clone());
    let next = match order_file(svc, &request.file_sha256).await {
        Ok(file) => match best_provider(svc, &request, &file, &tried).await?.0 {
            Some(provider) => Some(offer_to(svc, &order.caller_id, &request, &file, &provider, now).await),
            None => None,
        },
        // The file's record is gone (it never is today): nobody can make it.
        Err(ServiceOrderError::UnknownFile(_)) => None,
        Err(e) => return Err(e),
    };
    let decision = OfferDecision {
        order_id: order.id.clone(),
        round: order.round,
        outcome: Outcome::Passed { event, next: next.clone() },
        actor: actor.to_string(),
        reason,
        at: now,
    };
    let Some((now_order, moved)) = svc.store.decide_offer(&decision).await? else { return Ok(None) };
    tracing::info!(service_order_id = %order.id, from = ?order.makerspace_id, event = event.as_str(),
        to = ?now_order.makerspace_id, status = now_order.status.as_str(), "service order passed on");
    for job in moved.iter().chain(next.iter().flat_map(|offer| offer.jobs.iter())) {
        announce(svc, job);
    }
    Ok(Some((now_order, moved)))
}

/// Treats every offer not answered by `now` as refused ("no answer within N s") and passes
/// its order on; returns how many. Run by the sweeper: the deadlines are in the database, so
/// offers made before a restart lapse after it as they would have.
pub async fn lapse_offers(svc: &Services, now: DateTime<Utc>) -> Result<usize, ServiceOrderError> {
    let lapsed = svc.store.lapsed_offers(now, LAPSED_PER_SWEEP).await?;
    let mut passed = 0;
    for order in &lapsed {
        let reason = format!("no answer within {} s", order.offer_timeout_s.unwrap_or_default());
        if pass_on(svc, order, OrderEvent::TimedOut, TIMEOUT_ACTOR, Some(reason), now).await?.is_some() {
            passed += 1;
        }
    }
    Ok(passed)
}
